package load

import (
	"context"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

type echo struct{ engine.BaseHandler }

func (echo) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

func startEcho(t *testing.T) string {
	t.Helper()
	srv, err := engine.NewServer(echo{}, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addr().String()
}

func TestEcho(t *testing.T) {
	addr := startEcho(t)
	for _, tc := range []struct {
		name  string
		size  int
		text  bool
		depth int
	}{
		{name: "text64", size: 64, text: true, depth: 1},
		{name: "binary16k-depth4", size: 16 << 10, depth: 4},
		{name: "binary200k", size: 200 << 10, depth: 2}, // larger than the read buffer
		{name: "empty", size: 0, depth: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var started, stopped bool
			res, err := Echo(context.Background(), EchoConfig{
				Addr: addr, Conns: 4, Size: tc.size, Text: tc.text, Depth: tc.depth,
				Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond,
				Window: Window{Start: func() { started = true }, Stop: func() { stopped = true }},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 || res.Messages == 0 || !started || !stopped {
				t.Fatalf("got %+v (window hooks %v %v)", res, started, stopped)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	addr := startEcho(t)
	res, err := Handshake(context.Background(), HandshakeConfig{
		Addr: addr, Workers: 4, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Handshakes == 0 {
		t.Fatalf("got %+v", res)
	}
}

func TestHold(t *testing.T) {
	addr := startEcho(t)
	h := Hold(context.Background(), HoldConfig{Addr: addr, Conns: 50, PerSource: 20, FirstSource: 3})
	defer h.Close()
	if h.Len() != 50 || h.Errors != 0 {
		t.Fatalf("held %v", h)
	}
	if alive := h.Check(context.Background()); alive != 50 {
		t.Fatalf("alive = %d, want 50", alive)
	}
}
