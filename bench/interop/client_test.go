package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// Gale's clients against third-party servers: the blocking Dial and the
// event-loop Client against gorilla/websocket and lxzan/gws, plain and with
// permessage-deflate.

// gorillaEcho is a third-party echo server: gorilla's Upgrader and a
// goroutine per connection, as its docs recommend.
func gorillaEcho(t *testing.T, tlsServer bool) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"chat"}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetReadLimit(16 << 10)
		for {
			op, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(op, p); err != nil {
				return
			}
		}
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

func testURL(s *httptest.Server) string {
	return "ws" + strings.TrimPrefix(s.URL, "http")
}

// closeWalkthrough is an acceptance scenario for a client:
// one message as three frames (FIN 0, 0, 1), the echo read frame by frame
// until FIN, then Close 1000 with a reason and the echoed code checked.
func closeWalkthrough(t *testing.T, c *engine.ClientConn, echoesReason bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	lines := []string{"This is the 1st frame\r\n", "This is the 2nd frame\r\n", "This is the 3rd frame\r\n"}
	for i, line := range lines {
		op := codec.OpText
		if i > 0 {
			op = codec.OpContinuation
		}
		if err := c.WriteFrame(op, []byte(line), i == len(lines)-1); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	var msg []byte
	for {
		f, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		t.Logf("frame: opcode=%v fin=%v len=%d", f.Opcode, f.Fin, len(f.Payload))
		if f.Opcode.IsControl() {
			continue
		}
		msg = append(msg, f.Payload...)
		if f.Fin {
			break
		}
	}
	if got, want := string(msg), strings.Join(lines, ""); got != want {
		t.Fatalf("echo %q, want %q", got, want)
	}
	if err := c.Close(codec.StatusNormalClosure, "Closing this websocket."); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	var ce *codec.CloseError
	if _, _, err := c.ReadMessage(); !errors.As(err, &ce) {
		t.Fatalf("read after Close: %v, want the server's Close", err)
	}
	if ce.Code != codec.StatusNormalClosure {
		t.Fatalf("server answered close %v, want 1000", ce)
	}
	if echoesReason && ce.Reason != "Closing this websocket." {
		t.Fatalf("server answered reason %q, want the one sent", ce.Reason)
	}
	t.Logf("close answered: %d %q", ce.Code, ce.Reason)
}

func TestClientWalkthroughGorilla(t *testing.T) {
	srv := gorillaEcho(t, false)
	c, err := engine.Dial(t.Context(), testURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	closeWalkthrough(t, c, false) // gorilla answers with the code only
}

func TestClientMessagesAndTLS(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "ws", true: "wss"}[secure]
		t.Run(name, func(t *testing.T) {
			srv := gorillaEcho(t, secure)
			opts := &engine.DialOptions{Subprotocols: []string{"x", "chat"}}
			if secure {
				opts.TLSConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			}
			c, err := engine.Dial(t.Context(), testURL(srv), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if c.Subprotocol() != "chat" {
				t.Fatalf("subprotocol %q", c.Subprotocol())
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for _, n := range []int{0, 1, 125, 126, 65535 % (16 << 10), 16 << 10} {
				msg := []byte(strings.Repeat("é", n/2) + strings.Repeat("a", n%2))
				if err := c.WriteMessage(codec.OpText, msg); err != nil {
					t.Fatal(err)
				}
				op, got, err := c.ReadMessage()
				if err != nil || op != codec.OpText || string(got) != string(msg) {
					t.Fatalf("n=%d: op=%v len=%d err=%v", n, op, len(got), err)
				}
			}
			// The server's 16 KiB limit: gorilla closes with 1009.
			c.WriteMessage(codec.OpBinary, make([]byte, 20<<10))
			_, _, err = c.ReadMessage()
			if codec.CloseStatus(err) != codec.StatusMessageTooBig {
				t.Fatalf("oversize: %v, want close 1009", err)
			}
		})
	}
}

// clientRecorder collects what the event-loop client's connections receive.
type clientRecorder struct {
	engine.BaseHandler
	msgs   chan clientMsg
	closes chan error
	pings  atomic.Int64
}

type clientMsg struct {
	c       *engine.Conn
	op      codec.Opcode
	payload []byte
}

func newClientRecorder() *clientRecorder {
	return &clientRecorder{msgs: make(chan clientMsg, 4096), closes: make(chan error, 4096)}
}

func (r *clientRecorder) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	r.msgs <- clientMsg{c: c, op: op, payload: bytes.Clone(p)}
}

func (r *clientRecorder) OnClose(_ *engine.Conn, err error) { r.closes <- err }

func (r *clientRecorder) OnPong(*engine.Conn, []byte) { r.pings.Add(1) }

func (r *clientRecorder) next(t *testing.T) clientMsg {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message within the timeout")
		return clientMsg{}
	}
}

func newTestClient(t *testing.T, h engine.Handler, cfg engine.Config) *engine.Client {
	t.Helper()
	cl, err := engine.NewClient(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		cl.Close(ctx)
	})
	return cl
}

// TestEventLoopClientGorilla drives the event-loop client against
// gorilla's echo server: echoes of every size, a fragmented send, a ping,
// and a close with a code. (The same cases against Gale's server and node ws
// are TestEventLoopClientInterop in package engine.)
func TestEventLoopClientGorilla(t *testing.T) {
	servers := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{name: "gorilla", url: func(t *testing.T) string { return testURL(gorillaEcho(t, false)) }},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			url := srv.url(t)
			rec := newClientRecorder()
			cl := newTestClient(t, rec, engine.Config{Loops: 2})
			c, err := cl.Dial(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{0, 1, 125, 126, 4096, 16 << 10} {
				for _, op := range []codec.Opcode{codec.OpText, codec.OpBinary} {
					msg := bytes.Repeat([]byte("wé"), n/3+1)[:n-n%3+min(n%3, 0)]
					if op == codec.OpBinary {
						msg = bytes.Repeat([]byte{0, 0xFF, 7}, n/3+1)[:n]
					}
					if err := c.WriteMessage(op, msg); err != nil {
						t.Fatal(err)
					}
					m := rec.next(t)
					if m.op != op || !bytes.Equal(m.payload, msg) {
						t.Fatalf("n=%d op=%v: got %v with %d bytes", n, op, m.op, len(m.payload))
					}
				}
			}
			// One message as three frames, FIN 0, 0, 1.
			parts := []string{"This is the 1st frame\r\n", "This is the 2nd frame\r\n", "This is the 3rd frame\r\n"}
			for i, p := range parts {
				op := codec.OpText
				if i > 0 {
					op = codec.OpContinuation
				}
				if err := c.WriteFrame(op, []byte(p), i == 2); err != nil {
					t.Fatal(err)
				}
			}
			if m := rec.next(t); string(m.payload) != strings.Join(parts, "") {
				t.Fatalf("fragmented echo %q", m.payload)
			}
			if err := c.Ping([]byte("are you there")); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(4000, "done here"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-rec.closes:
				var ce *codec.CloseError
				if !errors.As(err, &ce) || ce.Code != 4000 {
					t.Fatalf("OnClose: %v, want the server's 4000 echo", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("no OnClose")
			}
			if rec.pings.Load() != 1 {
				t.Fatalf("pongs seen: %d, want 1", rec.pings.Load())
			}
		})
	}
}

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
				cl := newTestClient(t, rec, engine.Config{Loops: 1, Compression: engine.CompressionConfig{Enabled: true}})
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
