package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// TestMain lets the test binary stand in for gale when bench idle re-runs
// itself as its child processes, and when the supervisor tests run gale
// serve -procs (whose workers re-run it too).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "bench" || os.Args[1] == "serve") {
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
		{"-size", "1024", "-distinct", "3"},
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
	for _, extra := range [][]string{nil, {"-compress"}} {
		args := append([]string{"idle", "-url", benchServer(t), "-conns", "300", "-duration", "200ms", "-settle", "100ms",
			"-json", "-pid", strconv.Itoa(os.Getpid())}, extra...)
		r := runBench(t, args...)
		if r.Held != 300 || r.Alive != 300 || r.Errors != 0 || r.ServerRSSAfter == 0 || r.ServerRSSHeld == 0 {
			t.Fatalf("%v: %+v", extra, r)
		}
	}
}

func TestBenchMarkdown(t *testing.T) {
	var b bytes.Buffer
	writeMarkdown(&b, &benchResult{Mode: "echo", Conns: 1, Size: 64, Depth: 1, MsgsPerS: 10})
	if got := b.String(); !bytes.HasPrefix([]byte(got), []byte("| mode | conns | size | depth | msgs/s |")) {
		t.Fatalf("%s", got)
	}
}

// TestBenchEchoCompress runs echo with permessage-deflate against a server
// that accepts it.
func TestBenchEchoCompress(t *testing.T) {
	srv, err := engine.NewServer(&echoHandler{}, engine.Config{Compression: engine.CompressionConfig{Enabled: true, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	r := runBench(t, "echo", "-url", "ws://"+srv.Addr().String()+"/", "-conns", "10", "-size", "1024", "-compress",
		"-duration", "300ms", "-warmup", "100ms", "-json")
	if r.Msgs == 0 || r.Errors != 0 || !r.Compress || r.Distinct != 8 || r.Compression == nil || *r.Compression != 10 {
		t.Fatalf("%+v", r)
	}
}

func TestBenchPayloads(t *testing.T) {
	ps := benchPayloads(1024, 8)
	for i, p := range ps {
		if len(p) != 1024 || !utf8.Valid(p) {
			t.Fatalf("payload %d: %d bytes, valid UTF-8 %v", i, len(p), utf8.Valid(p))
		}
		if i > 0 && bytes.Equal(p, ps[i-1]) {
			t.Fatalf("payloads %d and %d are equal", i-1, i)
		}
	}
}

// broadcaster sends every message it receives to every connection.
type broadcaster struct {
	engine.BaseHandler
	srv *engine.Server
}

func (b *broadcaster) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	pm, err := engine.NewPreparedMessage(op, p)
	if err == nil {
		b.srv.Broadcast(pm)
	}
}

func TestBenchBroadcast(t *testing.T) {
	b := &broadcaster{}
	srv, err := engine.NewServer(b, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	// The window can close with up to two broadcasts partly delivered.
	r := runBench(t, "broadcast", "-url", "ws://"+srv.Addr().String()+"/", "-conns", "50", "-size", "1024",
		"-duration", "500ms", "-warmup", "100ms", "-json", "-pid", strconv.Itoa(os.Getpid()))
	if r.Broadcasts == 0 || r.Msgs < 50*(r.Broadcasts-2) || r.Errors != 0 || r.P50us <= 0 || r.ServerCPUPerMsg <= 0 {
		t.Fatalf("%+v", r)
	}
}
