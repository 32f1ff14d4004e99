package engine

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// relay answers each message on its connection, and first sends it on to
// the other connection (the same loop), so one callback writes to two
// connections: the batched answer must reach only its own.
type relay struct {
	BaseHandler
	mu    sync.Mutex
	conns []*Conn
}

func (r *relay) OnOpen(c *Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

func (r *relay) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(op, append([]byte("ack:"), p...)) // batched until OnTraffic ends
	r.mu.Lock()
	for _, o := range r.conns {
		if o != c {
			o.WriteMessage(op, append([]byte("relay:"), p...)) // straight out
		}
	}
	r.mu.Unlock()
	c.WriteMessage(op, append([]byte("done:"), p...))
}

func TestBatchStaysWithItsConnection(t *testing.T) {
	h := &relay{}
	srv := startServer(t, h, Config{Loops: 1})
	dial := func() *ClientConn {
		ws, err := Dial(t.Context(), wsURL(srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		ws.SetReadDeadline(time.Now().Add(testTimeout))
		return ws
	}
	a, b := dial(), dial()
	for i := 0; ; i++ { // wait until both are registered
		h.mu.Lock()
		n := len(h.conns)
		h.mu.Unlock()
		if n == 2 {
			break
		}
		if i > 1000 {
			t.Fatal("connections not opened")
		}
		time.Sleep(time.Millisecond)
	}
	// Several messages in one write, so one OnTraffic handles them all.
	var burst bytes.Buffer
	for _, m := range []string{"1", "2", "3"} {
		burst.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText, Masked: true, Mask: [4]byte{9, 8, 7, 6}}, []byte(m)))
	}
	if _, err := a.NetConn().Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	read := func(ws *ClientConn, want ...string) {
		t.Helper()
		for _, w := range want {
			_, p, err := ws.ReadMessage()
			if err != nil || string(p) != w {
				t.Fatalf("got %q %v, want %q", p, err, w)
			}
		}
	}
	read(a, "ack:1", "done:1", "ack:2", "done:2", "ack:3", "done:3")
	read(b, "relay:1", "relay:2", "relay:3")
}
