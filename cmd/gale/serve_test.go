package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

func startEcho(t *testing.T, args ...string) string {
	t.Helper()
	sf, code := parseServe(args, io.Discard, io.Discard)
	if sf == nil {
		t.Fatalf("parseServe(%v): exit %d", args, code)
	}
	srv, err := sf.server(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv.Addr().String()
}

func TestServePage(t *testing.T) {
	addr := startEcho(t, "-path", "/echo")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), `<meta name="ws-path" content="/echo">`) || !strings.Contains(string(body), "new WebSocket(") {
		t.Fatalf("GET /: %d %q\n%s", resp.StatusCode, resp.Header, body)
	}
	if resp, err := http.Get("http://" + addr + "/nope"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET /nope: %v %v", resp, err)
	}
}

func TestServePathAndLimits(t *testing.T) {
	addr := startEcho(t, "-path", "/echo", "-max-echo", "2", "-max-message", "1024")
	ctx := t.Context()
	if _, err := engine.Dial(ctx, "ws://"+addr+"/other", nil); !errors.Is(err, codec.ErrResponseStatus) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("upgrade on another path: %v, want 404", err)
	}
	c, err := engine.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c.WriteMessage(codec.OpText, []byte("hi"))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
			t.Fatalf("echo %d: %q %v", i, p, err)
		}
	}
	// The acceptance walk-through's server stops after its limit of echoes.
	if _, _, err := c.ReadMessage(); codec.CloseStatus(err) != codec.StatusPolicyViolation {
		t.Fatalf("after the echo limit: %v, want close 1008", err)
	}
	c2, err := engine.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.WriteMessage(codec.OpBinary, make([]byte, 2048))
	if _, _, err := c2.ReadMessage(); codec.CloseStatus(err) != codec.StatusMessageTooBig {
		t.Fatalf("oversize: %v, want close 1009", err)
	}
}

// TestServeFlags: every flag of gale serve is checked before anything
// starts: bad values exit 2 with a message naming the flag, -h prints the
// usage (with the production limits and what 0 means) and exits 0.
func TestServeFlags(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"-h"}, 0, "-idle-timeout", ""},
		{[]string{"-h"}, 0, "0: no pings", ""},
		{[]string{"-h"}, 0, "0: no budget", ""},
		{[]string{"-h"}, 0, `"ws" is "/ws"`, ""},
		{[]string{"-help"}, 0, "usage: gale serve", ""},
		{[]string{"-max-outbound", "0"}, 2, "", "-max-outbound must be positive"},
		{[]string{"-max-outbound", "-1"}, 2, "", `"-1" is not a size`},
		{[]string{"-max-outbound", "4MB"}, 2, "", `"4MB" is not a size`},
		{[]string{"-memory-budget", "lots"}, 2, "", `invalid value "lots" for flag -memory-budget`},
		{[]string{"-max-message", "1.5MiB"}, 2, "", "flag -max-message"},
		{[]string{"-ping", "-1s"}, 2, "", "-ping -1s is negative"},
		{[]string{"-idle-timeout", "-1s"}, 2, "", "-idle-timeout -1s is negative"},
		{[]string{"-idle-timeout", "0"}, 2, "", "-idle-timeout 0 needs -ping 0"},
		{[]string{"-ping", "30s", "-idle-timeout", "30s"}, 2, "", "must be longer than -ping"},
		{[]string{"-ping", "1m"}, 2, "", "must be longer than -ping"},
		{[]string{"-loops", "-2"}, 2, "", "-loops -2 is negative"},
		{[]string{"-max-echo", "-1"}, 2, "", "-max-echo -1 is negative"},
		{[]string{"-path", "/a b"}, 2, "", "-path"},
		{[]string{"-path", "/ws?x=1"}, 2, "", "query"},
		{[]string{"-addr", ""}, 2, "", "-addr is empty"},
		{[]string{"-procs", "2", "-pprof", "127.0.0.1:6060"}, 2, "", "does not go with -procs"},
		{[]string{"8080"}, 2, "", `unexpected argument "8080"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			// parseServe, not run: flags that were wrongly accepted must
			// fail the test, not start a server that waits for a signal.
			sf, code := parseServe(tt.args, &out, &errb)
			if sf != nil {
				t.Fatalf("accepted: %+v", sf)
			}
			if code != tt.code || !strings.Contains(out.String(), tt.inStdout) || !strings.Contains(errb.String(), tt.inStderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
		})
	}
}

// TestServeConfig: the production limits reach the engine's Config, with
// serve's defaults when not given.
func TestServeConfig(t *testing.T) {
	tests := []struct {
		args []string
		want engine.Config
	}{
		{nil, engine.Config{PingInterval: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxOutbound: 4 << 20, MemoryBudget: 256 << 20}},
		{[]string{"-max-outbound", "1048576", "-memory-budget", "1GiB", "-ping", "5s", "-idle-timeout", "12s", "-max-message", "64KiB"},
			engine.Config{PingInterval: 5 * time.Second, IdleTimeout: 12 * time.Second, MaxOutbound: 1 << 20, MemoryBudget: 1 << 30, MaxMessageSize: 64 << 10}},
		{[]string{"-memory-budget", "0", "-ping", "0", "-idle-timeout", "0", "-max-outbound", "64KiB"},
			engine.Config{MaxOutbound: 64 << 10, MemoryBudget: -1}},
		{[]string{"-ping", "0", "-idle-timeout", "10s"}, engine.Config{IdleTimeout: 10 * time.Second, MaxOutbound: 4 << 20, MemoryBudget: 256 << 20}},
	}
	for _, tt := range tests {
		sf, code := parseServe(tt.args, io.Discard, io.Discard)
		if sf == nil {
			t.Fatalf("%v: exit %d", tt.args, code)
		}
		c := sf.cfg
		got := engine.Config{PingInterval: c.PingInterval, IdleTimeout: c.IdleTimeout, MaxOutbound: c.MaxOutbound, MemoryBudget: c.MemoryBudget, MaxMessageSize: c.MaxMessageSize}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tt.args, got, tt.want)
		}
	}
}

// TestServePathNormalised: -path ws serves upgrades on /ws, and the test
// page points there.
func TestServePathNormalised(t *testing.T) {
	for _, p := range []string{"ws", "/ws"} {
		addr := startEcho(t, "-path", p)
		c, err := engine.Dial(t.Context(), "ws://"+addr+"/ws", nil)
		if err != nil {
			t.Fatalf("-path %s: upgrade on /ws: %v", p, err)
		}
		c.CloseNow()
		if _, err := engine.Dial(t.Context(), "ws://"+addr+"/", nil); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("-path %s: upgrade on /: %v, want 404", p, err)
		}
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `<meta name="ws-path" content="/ws">`) {
			t.Fatalf("-path %s: the page does not point at /ws", p)
		}
	}
}

// TestServeIdleTimeout: a peer that sends nothing is closed after
// -idle-timeout; one that answers the pings stays.
func TestServeIdleTimeout(t *testing.T) {
	addr := startEcho(t, "-ping", "0", "-idle-timeout", "300ms")
	c, err := engine.Dial(t.Context(), "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _, err = c.ReadMessage()
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a silent peer after %v: %v, want closed", time.Since(start), err)
	}

	// Pings well inside the idle timeout, so that a loaded machine delaying
	// a pong by a few hundred milliseconds does not look like a dead peer.
	addr = startEcho(t, "-ping", "200ms", "-idle-timeout", "2s")
	c2, err := engine.Dial(t.Context(), "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	c2.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
	pings := 0
	for {
		f, err := c2.ReadFrame() // answers the pings
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("a peer answering pings, after %d pings: %v", pings, err)
		}
		if f.Opcode == codec.OpPing {
			pings++
		}
	}
	if pings < 2 {
		t.Fatalf("%d pings in 2.5s at -ping 200ms", pings)
	}
}

// TestServePprof: -pprof serves the runtime's profiles on its own listener.
func TestServePprof(t *testing.T) {
	var errb bytes.Buffer
	addr, err := startPprof("127.0.0.1:0", &errb)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), addr.String()) {
		t.Errorf("the log does not name the address %s: %q", addr, errb.String())
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("status %d, body %.200q", resp.StatusCode, body)
	}
	if _, err := startPprof(addr.String(), io.Discard); err == nil {
		t.Error("a second listener on the same address was accepted")
	}
}

// TestServeEventStream: -sse serves event streams on its path only: a
// hello event, then the text messages echoed to WebSocket clients, with
// heartbeats every -ping; the page is told where the stream is.
func TestServeEventStream(t *testing.T) {
	addr := startEcho(t, "-sse", "events", "-ping", "100ms", "-idle-timeout", "1s")
	get := func(path string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+path, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get("/other"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a stream on another path: %d, want 404", resp.StatusCode)
	}
	resp := get("/events")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %d %v", resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	readUntil := func(want string) (comments int) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if line == ":\n" {
				comments++
			}
			if line == want {
				return comments
			}
		}
	}
	readUntil("event: hello\n")

	c, err := engine.Dial(t.Context(), "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.WriteMessage(codec.OpText, []byte("to the stream"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "to the stream" {
		t.Fatalf("echo: %q %v", p, err)
	}
	readUntil("data: to the stream\n")
	time.AfterFunc(300*time.Millisecond, func() { c.WriteMessage(codec.OpText, []byte("second")) })
	if beats := readUntil("data: second\n"); beats < 2 {
		t.Fatalf("%d heartbeats in 300 ms at -ping 100ms", beats)
	}

	page, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), `<meta name="sse-path" content="/events">`) {
		t.Fatal("the page does not point at /events")
	}
}
