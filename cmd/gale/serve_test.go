package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

func startEcho(t *testing.T, args ...string) string {
	t.Helper()
	srv, _, code := newEchoServer(args, io.Discard)
	if srv == nil {
		t.Fatalf("newEchoServer(%v): exit %d", args, code)
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
	// The seed's server stops after its limit of echoes.
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
