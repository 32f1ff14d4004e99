package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

type echo struct{ BaseHandler }

func (echo) OnMessage(c *Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

func TestSmoke(t *testing.T) {
	srv, err := NewServer(echo{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ws, err := Dial(t.Context(), "ws://"+srv.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for _, n := range []int{0, 5, 125, 126, 65535, 65536, 1 << 20} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(codec.OpBinary, msg); err != nil {
			t.Fatal(err)
		}
		op, got, err := ws.ReadMessage()
		if err != nil || op != codec.OpBinary || string(got) != string(msg) {
			t.Fatalf("n=%d: op=%v len=%d err=%v", n, op, len(got), err)
		}
	}
	if err := ws.Close(1000, "bye"); err != nil {
		t.Fatal(err)
	}
	// The server echoes the Close's code and reason (RFC 6455 §5.5.1).
	_, _, err = ws.ReadMessage()
	var ce *codec.CloseError
	if !errors.As(err, &ce) || ce.Code != codec.StatusNormalClosure || ce.Reason != "bye" {
		t.Fatalf("close answered with %v, want close 1000 \"bye\"", err)
	}
	t.Logf("close: %v; stats %+v", err, srv.Stats())
}
