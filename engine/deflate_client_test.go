package engine

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/galews/gale/codec"
)

// bouncer echoes each message back until it has seen rounds of them, then
// reports the last one.
type bouncer struct {
	BaseHandler
	rounds int
	n      int
	done   chan []byte
}

func (b *bouncer) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	if b.n++; b.n < b.rounds {
		c.WriteMessage(op, p) // on the loop: compressed with the window, if any
		return
	}
	b.done <- bytes.Clone(p)
}

// TestDeflateClientRole: the event-loop client offers permessage-deflate
// and both roles compress. A message bounces between the client and a Gale
// server through a counting proxy; with context takeover each bounce after
// the first costs a few bytes, without it the whole compressed size.
func TestDeflateClientRole(t *testing.T) {
	for _, tc := range []struct{ server, client bool }{{false, false}, {true, true}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("server takeover %v, client takeover %v", tc.server, tc.client), func(t *testing.T) {
			rec := newRecorder()
			srv := startServer(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: tc.server}})
			px := startWireProxy(t, srv.Addr().String())
			const rounds = 50
			b := &bouncer{rounds: rounds, done: make(chan []byte, 1)}
			cl := newTestClient(t, b, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: tc.client}})
			c, err := cl.Dial(t.Context(), "ws://"+px.addr()+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Compression() || !recv(t, rec.opens, "OnOpen").Compression() {
				t.Fatal("permessage-deflate not in force on both ends")
			}
			msg := jsonLines(6000, 4)
			if err := c.WriteText(msg); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, b.done, "the last bounce"); !bytes.Equal(got, msg) {
				t.Fatalf("after %d bounces the message differs", rounds)
			}
			in, out := px.ws.in.Load(), px.ws.out.Load()
			payload := int64(rounds * len(msg))
			t.Logf("%d bytes each way: %d on the wire to the server (%.1f%%), %d back (%.1f%%)",
				payload, out, 100*float64(out)/float64(payload), in, 100*float64(in)/float64(payload))
			if in > payload/3 || out > payload/3 {
				t.Fatalf("wire %d in, %d out for %d payload bytes: not compressed", in, out, payload)
			}
			// Each side keeps its send window only when both want it.
			if both := tc.server && tc.client; both != (in < payload/50 && out < payload/50) {
				t.Errorf("context takeover %v, yet %d bytes in and %d out", both, in, out)
			}
		})
	}
}
