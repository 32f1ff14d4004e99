package engine

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/galews/gale/codec"
)

// countingListener counts the bytes its connections read: what a client
// put on the wire towards the server.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// startCounted serves h over a counting listener.
func startCounted(t *testing.T, h http.Handler) (url string, wire *atomic.Int64) {
	t.Helper()
	wire = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = countingListener{srv.Listener, wire}
	srv.Start()
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/", wire
}

// gorillaServer is gorilla's echo server, compressing when asked.
func gorillaServer(t *testing.T, compress bool) (string, *atomic.Int64) {
	up := websocket.Upgrader{EnableCompression: compress}
	return startCounted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.EnableWriteCompression(compress)
		for {
			op, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if ws.WriteMessage(op, p) != nil {
				return
			}
		}
	}))
}

// gwsEcho is gws's event handler echoing every message.
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.WriteMessage(m.Opcode, m.Bytes())
}

// gwsServer is gws's echo server (its Upgrader over net/http, ReadLoop per
// connection, as its docs show), compressing when asked.
func gwsServer(t *testing.T, compress bool) (string, *atomic.Int64) {
	opt := &gws.ServerOption{}
	opt.PermessageDeflate.Enabled = compress
	up := gws.NewUpgrader(gwsEcho{}, opt)
	return startCounted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	}))
}

// TestEventLoopClientServers: Gale's event-loop client against gorilla and
// gws servers, with and without permessage-deflate. With it, the bytes the
// server reads are a fraction of the payload: compression really happened.
func TestEventLoopClientServers(t *testing.T) {
	servers := []struct {
		name  string
		start func(t *testing.T, compress bool) (string, *atomic.Int64)
	}{
		{name: "gorilla", start: gorillaServer},
		{name: "gws", start: gwsServer},
	}
	msg := bytes.Repeat([]byte(`{"event":"tick","symbol":"GALE","price":101.25,"size":300} `), 200) // ~12 KB of JSON
	const rounds = 20
	for _, srv := range servers {
		for _, compress := range []bool{false, true} {
			name := srv.name + map[bool]string{false: "/plain", true: "/deflate"}[compress]
			t.Run(name, func(t *testing.T) {
				url, wire := srv.start(t, compress)
				rec := newClientRecorder()
				cl := newTestClient(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true}})
				c, err := cl.Dial(t.Context(), url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if c.Compression() != compress {
					t.Fatalf("Compression() = %v, want %v", c.Compression(), compress)
				}
				before := wire.Load() // the upgrade request
				for i := range rounds {
					if err := c.WriteMessage(codec.OpText, msg); err != nil {
						t.Fatal(err)
					}
					if m := rec.next(t); m.op != codec.OpText || !bytes.Equal(m.payload, msg) {
						t.Fatalf("round %d: echo differs (%d bytes)", i, len(m.payload))
					}
				}
				sent := wire.Load() - before
				ratio := float64(sent) / float64(rounds*len(msg))
				t.Logf("%s: %d payload bytes sent as %d on the wire (%.1f%%)", name, rounds*len(msg), sent, 100*ratio)
				if compress && ratio > 0.25 || !compress && ratio < 1 {
					t.Fatalf("wire/payload = %.2f with compression %v", ratio, compress)
				}
			})
		}
	}
}

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
