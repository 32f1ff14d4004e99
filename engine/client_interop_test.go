package engine

import (
	"bytes"
	"strings"
	"testing"

	"github.com/galews/gale/codec"
)

// The event-loop client against gorilla's and gws's servers, plain and with
// permessage-deflate (TestEventLoopClientServers), is in bench/interop.

// TestEventLoopClientNodeDeflate: against node ws with permessage-deflate,
// the client negotiates it (node reports the extension it accepted) and
// every echo survives the round trip through both compressors.
func TestEventLoopClientNodeDeflate(t *testing.T) {
	url := nodeServer(t, true)
	rec := newClientRecorder()
	cl := newTestClient(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true}})
	c, err := cl.Dial(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Compression() {
		t.Fatal("permessage-deflate not negotiated with node ws")
	}
	if m := rec.next(t); !strings.HasPrefix(string(m.payload), "extensions: permessage-deflate") {
		t.Fatalf("node greeting %q", m.payload)
	}
	for i, n := range []int{1, 200, 5000, 64 << 10} {
		msg := bytes.Repeat([]byte("node and gale "), n/14+1)[:n]
		if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
			t.Fatal(err)
		}
		if m := rec.next(t); m.op != codec.OpBinary || !bytes.Equal(m.payload, msg) {
			t.Fatalf("message %d: echo differs", i)
		}
	}
}
