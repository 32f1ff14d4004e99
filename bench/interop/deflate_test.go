package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// permessage-deflate against Go peers: gorilla (no context takeover only)
// and gws (both modes). Every case proves compression on the wire: the
// bytes each way are counted under the peer's socket and must be well
// under the payload's.

// jsonLines returns n bytes of UTF-8 text that compresses like real
// traffic (repeated keys, varying values), different for each seed.
func jsonLines(n, seed int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"user":"gale-%d","room":"lobby","text":"héllo wörld ✓ message %d","ts":%d}`+"\n",
			seed*1000+i, (seed+i)%97, i*7+seed, 1700000000+i*13)
	}
	s := b.String()[:n]
	for !utf8.ValidString(s) { // cut inside a rune: pad instead
		s = s[:len(s)-1]
	}
	return []byte(s + strings.Repeat(" ", n-len(s)))
}

// binaryRecords returns n compressible binary bytes: fixed-size records
// with a counter, plus bytes above 0x7F.
func binaryRecords(n, seed int) []byte {
	p := make([]byte, n)
	for i := range p {
		switch i % 16 {
		case 0, 1:
			p[i] = byte((i / 16) + seed)
		default:
			p[i] = byte(0xF0 + i%16)
		}
	}
	return p
}

// wireConn counts the bytes that cross a client's socket.
type wireConn struct {
	net.Conn
	in, out atomic.Int64
}

func (w *wireConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.in.Add(int64(n))
	return n, err
}

func (w *wireConn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	w.out.Add(int64(n))
	return n, err
}

// zpeer is a Go client with compression on.
type zpeer interface {
	send(op codec.Opcode, p []byte) error
	read() (codec.Opcode, []byte, error)
	wire() *wireConn
}

type zpeerKind struct {
	name     string
	takeover bool // the client offers and uses context takeover
	dial     func(t *testing.T, url string) zpeer
}

var zpeerKinds = []zpeerKind{
	{name: "gorilla", dial: dialGorillaDeflate},
	{name: "gws", dial: func(t *testing.T, url string) zpeer { return dialGwsDeflate(t, url, false) }},
	{name: "gws takeover", takeover: true, dial: func(t *testing.T, url string) zpeer { return dialGwsDeflate(t, url, true) }},
}

func TestDeflateGoPeers(t *testing.T) {
	for _, pk := range zpeerKinds {
		for _, takeover := range []bool{false, true} {
			name := fmt.Sprintf("%s/server takeover %v", pk.name, takeover)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				rec := newRecorder()
				cfg := engine.Config{Loops: 1, Compression: engine.CompressionConfig{Enabled: true, ContextTakeover: takeover}}
				srv := startServer(t, rec, cfg)
				c := pk.dial(t, wsURL(srv))
				sc := recv(t, rec.opens, "OnOpen")
				if !sc.Compression() {
					t.Fatal("server: permessage-deflate not in force")
				}
				w := c.wire()
				in0, out0 := w.in.Load(), w.out.Load()
				payload := 0
				echo := func(op codec.Opcode, p []byte) (in, out int64) {
					t.Helper()
					i, o := w.in.Load(), w.out.Load()
					if err := c.send(op, p); err != nil {
						t.Fatalf("send: %v", err)
					}
					gop, got, err := c.read()
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if gop != op || !bytes.Equal(got, p) {
						t.Fatalf("echo: op %v, %d bytes, want op %v, %d bytes", gop, len(got), op, len(p))
					}
					payload += len(p)
					return w.in.Load() - i, w.out.Load() - o
				}
				for i, n := range []int{200, 1000, 20000, 70000, 300000} {
					echo(codec.OpText, jsonLines(n, i))
					echo(codec.OpBinary, binaryRecords(n, i))
				}
				// Below the threshold: sent plain, still echoed.
				echo(codec.OpText, []byte("tiny"))
				in, out := w.in.Load()-in0, w.out.Load()-out0
				t.Logf("%d payload bytes each way; on the wire: %d to the server (%.1f%%), %d back (%.1f%%)",
					payload, out, 100*float64(out)/float64(payload), in, 100*float64(in)/float64(payload))
				if in > int64(payload)/3 || out > int64(payload)/3 {
					t.Fatalf("wire bytes %d in, %d out for %d payload bytes: not compressed", in, out, payload)
				}
				// The same message twice: with context takeover (both the
				// server and the client must want it), the second costs a
				// fraction of the first each way.
				msg := jsonLines(8000, 42)
				in1, out1 := echo(codec.OpText, msg)
				in2, out2 := echo(codec.OpText, msg)
				t.Logf("same 8000 bytes twice: to the server %d then %d, back %d then %d", out1, out2, in1, in2)
				both := takeover && pk.takeover
				if both && (in2 > in1/4 || out2 > out1/4) {
					t.Errorf("context takeover: second message %d bytes in, %d out; first %d, %d", in2, out2, in1, out1)
				}
				if !both && (in2 < in1*3/4 || out2 < out1*3/4) {
					t.Errorf("no context takeover, yet the second message took %d bytes in, %d out; first %d, %d", in2, out2, in1, out1)
				}
				// Stats count messages uncompressed: an echo server's match
				// (the last echo is counted just after it is written).
				pollUntil(t, "Stats", func() bool {
					st := srv.Stats()
					return st.BytesIn == uint64(payload) && st.BytesOut == st.BytesIn
				})
			})
		}
	}
}

// --- gorilla, which only does no context takeover ---

type gorillaZ struct {
	c *websocket.Conn
	w *wireConn
}

func dialGorillaDeflate(t *testing.T, url string) zpeer {
	p := &gorillaZ{}
	d := websocket.Dialer{
		HandshakeTimeout:  testTimeout,
		EnableCompression: true,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			p.w = &wireConn{Conn: nc}
			return p.w, nil
		},
	}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("gorilla dial: %v", err)
	}
	resp.Body.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("gorilla: response extensions %q", ext)
	}
	p.c = c
	c.SetReadLimit(1 << 24)
	t.Cleanup(func() { c.Close() })
	return p
}

func (p *gorillaZ) send(op codec.Opcode, b []byte) error {
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	return p.c.WriteMessage(int(op), b)
}

func (p *gorillaZ) read() (codec.Opcode, []byte, error) {
	p.c.SetReadDeadline(time.Now().Add(testTimeout))
	op, b, err := p.c.ReadMessage()
	return codec.Opcode(op), b, err
}

func (p *gorillaZ) wire() *wireConn { return p.w }

// --- gws ---

type gwsZ struct {
	c    *gws.Conn
	w    *wireConn
	msgs chan gwsMsg
}

type gwsMsg struct {
	op  codec.Opcode
	p   []byte
	err error
}

type gwsHandler struct {
	gws.BuiltinEventHandler
	msgs chan gwsMsg
}

func (h *gwsHandler) OnMessage(_ *gws.Conn, m *gws.Message) {
	h.msgs <- gwsMsg{op: codec.Opcode(m.Opcode), p: bytes.Clone(m.Bytes())}
	m.Close()
}

func (h *gwsHandler) OnClose(_ *gws.Conn, err error) {
	select {
	case h.msgs <- gwsMsg{err: err}:
	default:
	}
}

type gwsDialer struct{ w **wireConn }

func (d gwsDialer) Dial(network, addr string) (net.Conn, error) {
	nc, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		return nil, err
	}
	*d.w = &wireConn{Conn: nc}
	return *d.w, nil
}

func dialGwsDeflate(t *testing.T, url string, takeover bool) zpeer {
	p := &gwsZ{msgs: make(chan gwsMsg, 4)}
	c, resp, err := gws.NewClient(&gwsHandler{msgs: p.msgs}, &gws.ClientOption{
		Addr:               url,
		ReadMaxPayloadSize: 1 << 24,
		CheckUtf8Enabled:   true,
		PermessageDeflate: gws.PermessageDeflate{
			Enabled:               true,
			Threshold:             1,
			ServerContextTakeover: takeover,
			ClientContextTakeover: takeover,
		},
		NewDialer: func() (gws.Dialer, error) { return gwsDialer{&p.w}, nil },
	})
	if err != nil {
		t.Fatalf("gws dial: %v", err)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("gws: response extensions %q", ext)
	}
	p.c = c
	go c.ReadLoop()
	t.Cleanup(func() { c.NetConn().Close() })
	return p
}

func (p *gwsZ) send(op codec.Opcode, b []byte) error { return p.c.WriteMessage(gws.Opcode(op), b) }

func (p *gwsZ) read() (codec.Opcode, []byte, error) {
	select {
	case m := <-p.msgs:
		if m.err != nil {
			return 0, nil, m.err
		}
		return m.op, m.p, nil
	case <-time.After(testTimeout):
		return 0, nil, errors.New("gws: no message")
	}
}

func (p *gwsZ) wire() *wireConn { return p.w }
