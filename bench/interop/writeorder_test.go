package interop

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// firstThenPrepared answers every message with a WriteMessage and then a
// WritePrepared, in one callback, and counts OnOpen and OnClose calls.
type firstThenPrepared struct {
	engine.BaseHandler
	pm            *engine.PreparedMessage
	opens, closes atomic.Int64
}

func (h *firstThenPrepared) OnOpen(*engine.Conn) { h.opens.Add(1) }

func (h *firstThenPrepared) OnClose(*engine.Conn, error) { h.closes.Add(1) }

func (h *firstThenPrepared) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(codec.OpText, []byte("first"))
	c.WritePrepared(h.pm)
}

// TestWriteOrderGorilla is the case first reported: WriteMessage then
// WritePrepared inside OnMessage reach a gorilla client in that order.
// (TestWriteOrder in package engine checks every kind of write on the wire.)
func TestWriteOrderGorilla(t *testing.T) {
	pm, err := engine.NewPreparedMessage(codec.OpText, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	h := &firstThenPrepared{pm: pm}
	// Registered before startServer, so it runs after the Shutdown: every
	// connection opened saw exactly one OnClose.
	t.Cleanup(func() {
		if o, c := h.opens.Load(), h.closes.Load(); o != 1 || c != 1 {
			t.Errorf("%d OnOpen and %d OnClose calls, want 1 each", o, c)
		}
	})
	srv := startServer(t, h, engine.Config{Loops: 1, Logger: discardLogger()})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(testTimeout))
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	for _, want := range []string{"first", "second"} {
		if _, p, err := ws.ReadMessage(); err != nil || string(p) != want {
			t.Fatalf("got %q (%v), want %q", p, err, want)
		}
	}
}
