package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 5, 125, 126, 65535, 65536, 1 << 20} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		op, got, err := ws.ReadMessage()
		if err != nil || op != websocket.BinaryMessage || string(got) != string(msg) {
			t.Fatalf("n=%d: op=%d len=%d err=%v", n, op, len(got), err)
		}
	}
	if err := ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye")); err != nil {
		t.Fatal(err)
	}
	// The server echoes the Close's code and reason (RFC 6455 §5.5.1).
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "bye" {
		t.Fatalf("close answered with %v, want close 1000 \"bye\"", err)
	}
	t.Logf("close: %v; stats %+v", err, srv.Stats())
}
