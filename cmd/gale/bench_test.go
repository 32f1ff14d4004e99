package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/galews/gale/engine"
)

// TestMain lets the test binary stand in for gale when bench idle re-runs
// itself as its child processes.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func benchServer(t *testing.T) string {
	t.Helper()
	srv, err := engine.NewServer(&echoHandler{}, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "ws://" + srv.Addr().String() + "/"
}

func runBench(t *testing.T, args ...string) benchResult {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"bench"}, args...), &out, &errb); code != 0 {
		t.Fatalf("gale bench %v: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
	}
	var r benchResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	return r
}

// TestBenchEcho checks the CLI contract: one JSON object with msgs_per_s,
// p50_us, p99_us and errors, every echo verified.
func TestBenchEcho(t *testing.T) {
	url := benchServer(t)
	pid := strconv.Itoa(os.Getpid())
	for _, args := range [][]string{
		{"-size", "64"},
		{"-size", "16384", "-binary", "-depth", "4"},
	} {
		r := runBench(t, append([]string{"echo", "-url", url, "-conns", "20", "-duration", "500ms", "-warmup", "100ms", "-json", "-pid", pid}, args...)...)
		if r.MsgsPerS <= 0 || r.Msgs == 0 || r.P50us <= 0 || r.P99us < r.P50us || r.Errors != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		raw := map[string]any{}
		b, _ := json.Marshal(r)
		json.Unmarshal(b, &raw)
		for _, k := range []string{"msgs_per_s", "p50_us", "p99_us", "errors"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("JSON lacks %q: %s", k, b)
			}
		}
	}
}

func TestBenchHandshake(t *testing.T) {
	r := runBench(t, "handshake", "-url", benchServer(t), "-conns", "8", "-duration", "300ms", "-json")
	if r.Handshakes == 0 || r.HandshakesS <= 0 || r.Errors != 0 {
		t.Fatalf("%+v", r)
	}
}

// TestBenchIdle holds connections from a child process and reads this
// process's (the server's) RSS.
func TestBenchIdle(t *testing.T) {
	r := runBench(t, "idle", "-url", benchServer(t), "-conns", "300", "-duration", "200ms", "-settle", "100ms",
		"-json", "-pid", strconv.Itoa(os.Getpid()))
	if r.Held != 300 || r.Errors != 0 || r.ServerRSSAfter == 0 {
		t.Fatalf("%+v", r)
	}
}

func TestBenchMarkdown(t *testing.T) {
	var b bytes.Buffer
	writeMarkdown(&b, &benchResult{Mode: "echo", Conns: 1, Size: 64, Depth: 1, MsgsPerS: 10})
	if got := b.String(); !bytes.HasPrefix([]byte(got), []byte("| mode | conns | size | depth | msgs/s |")) {
		t.Fatalf("%s", got)
	}
}
