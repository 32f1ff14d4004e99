package interop

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// Third-party Go clients (peerKinds: gorilla/websocket, coder/websocket)
// against Gale's server: echoes of every size, fragmented messages, pings
// both ways, close handshakes both ways. The same cases run in package
// engine (interop_test.go) with gobwas/ws and Gale's Dial.

func TestInteropEcho(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 65535, 65536, 1 << 20}
	type echoCase struct {
		name    string
		op      codec.Opcode
		payload []byte
	}
	var cases []echoCase
	for _, n := range sizes {
		cases = append(cases,
			echoCase{name: fmt.Sprintf("text/%d", n), op: codec.OpText, payload: textPayload(n)},
			echoCase{name: fmt.Sprintf("binary/%d", n), op: codec.OpBinary, payload: binaryPayload(n)},
		)
	}
	for _, pk := range peerKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, newRecorder(), engine.Config{Loops: 2})
			c := pk.dial(t, wsURL(srv))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if err := c.Send(tc.op, tc.payload); err != nil {
						t.Fatalf("send: %v", err)
					}
					op, got, err := c.Read()
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if op != tc.op || !bytes.Equal(got, tc.payload) {
						t.Fatalf("echo: op %v len %d, want op %v len %d (equal bytes: false)", op, len(got), tc.op, len(tc.payload))
					}
				})
			}
		})
	}
}

func TestInteropFragmented(t *testing.T) {
	bigText := textPayload(50000)
	bigBinary := binaryPayload(60000)
	cases := []struct {
		name  string
		op    codec.Opcode
		parts [][]byte
	}{
		{name: "text three lines", op: codec.OpText, parts: [][]byte{
			[]byte("This is the 1st frame\r\n"), []byte("This is the 2nd frame\r\n"), []byte("This is the 3rd frame\r\n"),
		}},
		{name: "text runes split across parts", op: codec.OpText, parts: [][]byte{
			[]byte("caf\xc3"), []byte("\xa9 \xe2\x82"), []byte("\xac \xf0\x9f"), []byte("\x98\x80"),
		}},
		{name: "text empty parts", op: codec.OpText, parts: [][]byte{{}, []byte("é"), {}}},
		{name: "binary three parts", op: codec.OpBinary, parts: [][]byte{{0}, {1, 2}, {3, 4, 5}}},
		// Parts above gorilla's 4 KiB write buffer, so it fragments too; the
		// cuts fall inside runes.
		{name: "text large parts", op: codec.OpText, parts: [][]byte{bigText[:16385], bigText[16385:33333], bigText[33333:]}},
		{name: "binary large parts", op: codec.OpBinary, parts: [][]byte{bigBinary[:20000], bigBinary[20000:40000], bigBinary[40000:]}},
	}
	for _, pk := range peerKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, newRecorder(), engine.Config{Loops: 2})
			c := pk.dial(t, wsURL(srv))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if err := c.SendFragments(tc.op, tc.parts); err != nil {
						t.Fatalf("send: %v", err)
					}
					op, got, err := c.Read()
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if want := bytes.Join(tc.parts, nil); op != tc.op || !bytes.Equal(got, want) {
						t.Fatalf("echo: op %v len %d, want op %v len %d", op, len(got), tc.op, len(want))
					}
				})
			}
		})
	}
}

func TestInteropPing(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
	}{
		{name: "empty", payload: []byte{}},
		{name: "text", payload: []byte("ping ✓")},
		{name: "125 bytes", payload: binaryPayload(125)},
	}
	for _, pk := range peerKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run("client/"+tc.name, func(t *testing.T) {
					rec := newRecorder()
					srv := startServer(t, rec, engine.Config{Loops: 1})
					c := pk.dial(t, wsURL(srv))
					pong, err := c.PingPong(tc.payload)
					if err != nil {
						t.Fatalf("ping: %v", err)
					}
					// OnPing sees the ping; the automatic pong carries the same payload.
					seen := recv(t, rec.pings, "OnPing")
					if pk.choosesPingPayload && !bytes.Equal(seen, tc.payload) {
						t.Fatalf("OnPing got %q, want %q", seen, tc.payload)
					}
					if !bytes.Equal(pong, seen) {
						t.Fatalf("pong %q, want the ping's payload %q", pong, seen)
					}
				})
				t.Run("server/"+tc.name, func(t *testing.T) {
					rec := newRecorder()
					srv := startServer(t, rec, engine.Config{Loops: 1})
					c := pk.dial(t, wsURL(srv))
					sc := recv(t, rec.opens, "OnOpen")
					// From a goroutine other than the loop: queued, in order.
					if err := sc.Ping(tc.payload); err != nil {
						t.Fatalf("Conn.Ping: %v", err)
					}
					if err := sc.WriteText([]byte("after ping")); err != nil {
						t.Fatalf("WriteText: %v", err)
					}
					if _, got, err := c.Read(); err != nil || string(got) != "after ping" {
						t.Fatalf("read: %q, %v", got, err)
					}
					if pings := c.Pings(); !slices.ContainsFunc(pings, func(p []byte) bool { return bytes.Equal(p, tc.payload) }) {
						t.Fatalf("client saw pings %q, want %q", pings, tc.payload)
					}
					if pong := recv(t, rec.pongs, "OnPong"); !bytes.Equal(pong, tc.payload) {
						t.Fatalf("OnPong got %q, want %q", pong, tc.payload)
					}
				})
			}
		})
	}
}

func TestInteropClose(t *testing.T) {
	cases := []struct {
		name   string
		code   codec.StatusCode
		reason string
	}{
		{name: "1000", code: codec.StatusNormalClosure, reason: "done"},
		{name: "1001", code: codec.StatusGoingAway, reason: "going away"},
		{name: "4000", code: 4000, reason: "app-defined ✓"},
		{name: "4000 no reason", code: 4000, reason: ""},
	}
	for _, pk := range peerKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run("client/"+tc.name, func(t *testing.T) {
					rec := newRecorder()
					srv := startServer(t, rec, engine.Config{Loops: 1})
					c := pk.dial(t, wsURL(srv))
					echo, err := c.CloseHandshake(tc.code, tc.reason)
					if err != nil {
						t.Fatalf("close handshake: %v", err)
					}
					if echo.Code != tc.code {
						t.Fatalf("echoed close %v, want code %d", echo, tc.code)
					}
					wantCloseError(t, recv(t, rec.closes, "OnClose"), tc.code, &tc.reason)
				})
			}
			t.Run("server/4001", func(t *testing.T) {
				rec := newRecorder()
				srv := startServer(t, rec, engine.Config{Loops: 1})
				c := pk.dial(t, wsURL(srv))
				sc := recv(t, rec.opens, "OnOpen")
				if err := sc.Close(4001, "bye"); err != nil {
					t.Fatalf("Conn.Close: %v", err)
				}
				if err := sc.WriteText([]byte("late")); !errors.Is(err, engine.ErrClosed) {
					t.Fatalf("write after Close: %v, want engine.ErrClosed", err)
				}
				_, _, err := c.Read()
				var ce *codec.CloseError
				if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye" {
					t.Fatalf("client read: %v, want close 4001 \"bye\"", err)
				}
				// The client's echo (its reason is the library's choice).
				wantCloseError(t, recv(t, rec.closes, "OnClose"), 4001, nil)
			})
		})
	}
}
