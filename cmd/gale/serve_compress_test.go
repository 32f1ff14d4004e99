package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// echoes is an event-loop client handler that queues what it receives.
type echoes struct {
	engine.BaseHandler
	msgs chan []byte
}

func (e echoes) OnMessage(_ *engine.Conn, _ codec.Opcode, p []byte) { e.msgs <- bytes.Clone(p) }

// TestServeCompress: with -compress the server accepts permessage-deflate
// from a client that offers it, and echoes through it; without, it declines.
// The compressing peer is Gale's event-loop client (Gale's blocking Dial does
// not offer compression); bench/interop's TestServeCompress runs the built
// gale binary against gorilla with EnableCompression.
func TestServeCompress(t *testing.T) {
	for _, on := range []bool{false, true} {
		args := []string{}
		if on {
			args = append(args, "-compress")
		}
		addr := startEcho(t, args...)
		h := echoes{msgs: make(chan []byte, 1)}
		cl, err := engine.NewClient(h, engine.Config{Loops: 1, Compression: engine.CompressionConfig{Enabled: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl.Close(ctx)
		})
		c, err := cl.Dial(t.Context(), "ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Compression() != on {
			t.Fatalf("-compress %v: permessage-deflate negotiated: %v", on, c.Compression())
		}
		msg := strings.Repeat("compressible text ", 100)
		if err := c.WriteText([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-h.msgs:
			if string(p) != msg {
				t.Fatalf("echo of %d bytes, want the %d sent", len(p), len(msg))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no echo")
		}
		c.Close(codec.StatusNormalClosure, "")
	}
}
