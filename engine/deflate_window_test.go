package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// Windows 8..15 (RFC 7692 §7.1.2), in both roles, with and without context
// takeover: Gale must compress so that nothing it sends refers further back
// than the window its peer allowed. The frames Gale emits are inflated by
// testdata/window_inflate.py, zlib with exactly that window and one output
// byte per call, which fails on any reference beyond it.

// randomBlock returns n incompressible bytes, different for each seed.
func randomBlock(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// windowTraps returns messages that a compressor with a window of 2^bits
// bytes compresses, and one with a larger window would compress with
// references beyond 2^bits: a random block repeated 2^bits+ bytes later in
// the same message; one that straddles the end of the kept send window
// (half of it would be in a 2^bits+32 window) and comes back in the next
// message; and last a repeat of the previous message's tail, which context
// takeover makes nearly free.
func windowTraps(bits int) [][]byte {
	w := 1 << bits
	filler := func(n, seed int) []byte { return jsonLines(n, seed) }
	r1, r2 := randomBlock(64, uint64(bits)), randomBlock(64, uint64(bits)+100)
	inOne := bytes.Join([][]byte{r1, filler(max(w+100, 1500), bits), r1}, nil)
	straddle := bytes.Join([][]byte{filler(1500, bits+1), r2, filler(w-32, bits+2)}, nil)
	back := bytes.Join([][]byte{r2, filler(max(w, 1000), bits+3)}, nil)
	tail := back[len(back)-min(w, 200):]
	return [][]byte{inOne, straddle, back, tail}
}

// strictInflate inflates compressed payloads (tails stripped) with a 2^bits
// window and returns the messages, or fails the test.
func strictInflate(t *testing.T, bits int, takeover bool, zs [][]byte) [][]byte {
	t.Helper()
	req := struct {
		Bits     int      `json:"bits"`
		Takeover bool     `json:"takeover"`
		Messages []string `json:"messages"`
	}{Bits: bits, Takeover: takeover}
	for _, z := range zs {
		req.Messages = append(req.Messages, base64.StdEncoding.EncodeToString(z))
	}
	in, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
	defer cancel()
	cmd := command(ctx, []string{"/usr/bin/python3", "window_inflate.py"})
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("window %d (takeover %v): %v\n%s", 1<<bits, takeover, err, out)
	}
	var resp struct{ Messages []string }
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("window_inflate.py: %v\n%s", err, out)
	}
	msgs := make([][]byte, len(resp.Messages))
	for i, m := range resp.Messages {
		msgs[i], _ = base64.StdEncoding.DecodeString(m)
	}
	return msgs
}

// checkWindowFrames checks what Gale sent for the messages of windowTraps:
// every compressed frame inflates under the window to what was sent, and
// the compressible messages were compressed (and the tail nearly free with
// context takeover).
func checkWindowFrames(t *testing.T, bits int, takeover bool, msgs [][]byte, hs []codec.Header, ps [][]byte) {
	t.Helper()
	var zs, want [][]byte
	for i, h := range hs {
		if h.Rsv != codec.Rsv1 {
			if !bytes.Equal(ps[i], msgs[i]) {
				t.Fatalf("plain message %d differs", i)
			}
			continue
		}
		zs, want = append(zs, ps[i]), append(want, msgs[i])
	}
	got := strictInflate(t, bits, takeover, zs)
	if len(got) != len(want) {
		t.Fatalf("%d messages inflated, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("compressed message %d inflates to %d bytes that differ from the %d sent", i, len(got[i]), len(want[i]))
		}
	}
	for i := range 3 {
		if hs[i].Rsv != codec.Rsv1 {
			t.Errorf("message %d (%d bytes) was not compressed", i, len(msgs[i]))
		}
	}
	last := len(msgs) - 1
	sizes := make([]int, len(ps))
	for i := range ps {
		sizes[i] = len(ps[i])
	}
	t.Logf("window %d, takeover %v: %v bytes sent for %d-byte messages", 1<<bits, takeover, sizes, len(msgs[0]))
	if takeover && (hs[last].Rsv != codec.Rsv1 || len(ps[last]) > 20) {
		t.Errorf("context takeover: a repeat of the last %d bytes sent cost %d bytes", len(msgs[last]), len(ps[last]))
	}
}

// windowEcho echoes every message on the loop and reports, after each, how
// many bytes of send window the connection keeps.
type windowEcho struct {
	BaseHandler
	opens chan *Conn
	kept  chan int
}

func newWindowEcho() *windowEcho {
	return &windowEcho{opens: make(chan *Conn, 1), kept: make(chan int, 16)}
}

func (e *windowEcho) OnOpen(c *Conn) { offer(e.opens, c) }

func (e *windowEcho) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(op, p)
	n := 0
	if x := c.ext.Load(); x != nil && x.win.tx != nil {
		n = len(*x.win.tx)
	}
	e.kept <- n
}

// checkKept checks that no more than the window was kept after each of n
// messages, and with context takeover a full window after a long one.
func checkKept(t *testing.T, e *windowEcho, bits int, takeover bool, n int) {
	t.Helper()
	most := 0
	for range n {
		k := recv(t, e.kept, "the kept window")
		if k > 1<<bits {
			t.Errorf("%d bytes of send window kept, more than the %d negotiated", k, 1<<bits)
		}
		most = max(most, k)
	}
	if takeover != (most == 1<<bits) {
		t.Errorf("context takeover %v: kept at most %d bytes of a %d-byte window", takeover, most, 1<<bits)
	}
}

func TestDeflateWindows(t *testing.T) {
	needPeer(t, "python3", "Debian's /usr/bin/python3", []string{"/usr/bin/python3", "-c", "import zlib"})
	for bits := 8; bits <= 15; bits++ {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("server/%d/takeover %v", bits, takeover), func(t *testing.T) {
				t.Parallel()
				testServerWindow(t, bits, takeover)
			})
			t.Run(fmt.Sprintf("client/%d/takeover %v", bits, takeover), func(t *testing.T) {
				t.Parallel()
				testClientWindow(t, bits, takeover)
			})
		}
	}
}

// testServerWindow: a raw client offers server_max_window_bits=bits and
// sends the traps plain; the Gale server echoes them (on its loop, with the
// window when taking over context) under that window.
func testServerWindow(t *testing.T, bits int, takeover bool) {
	rec := newWindowEcho()
	srv := startServer(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: takeover, Threshold: 1}})
	rc, ext := upgradeDeflate(t, srv, fmt.Sprintf("permessage-deflate; server_max_window_bits=%d; client_max_window_bits", bits))
	if want := fmt.Sprintf("server_max_window_bits=%d", bits); !strings.Contains(ext, want) || strings.Contains(ext, "server_no_context_takeover") == takeover {
		t.Fatalf("answer %q: want %s and context takeover %v", ext, want, takeover)
	}
	msgs := windowTraps(bits)
	var hs []codec.Header
	var ps [][]byte
	for _, m := range msgs {
		rc.write(rawFrame(codec.OpBinary, true, m))
		h, p := rc.readFrame()
		hs, ps = append(hs, h), append(ps, p)
	}
	checkWindowFrames(t, bits, takeover, msgs, hs, ps)
	checkKept(t, rec, bits, takeover, len(msgs))
	// A prepared message goes out under the window too, and the one after
	// it (whose window was dropped) still inflates.
	pm, err := NewPreparedMessage(codec.OpBinary, msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	c := recv(t, rec.opens, "OnOpen")
	if err := c.WritePrepared(pm); err != nil {
		t.Fatal(err)
	}
	h, p := rc.readFrame()
	rc.write(rawFrame(codec.OpBinary, true, msgs[1]))
	h2, p2 := rc.readFrame()
	recv(t, rec.kept, "the kept window")
	if h.Rsv != codec.Rsv1 || h2.Rsv != codec.Rsv1 {
		t.Fatalf("prepared or following message not compressed: %+v, %+v", h, h2)
	}
	got := strictInflate(t, bits, false, [][]byte{p, p2})
	if !bytes.Equal(got[0], msgs[0]) || !bytes.Equal(got[1], msgs[1]) {
		t.Fatal("prepared message, or the message after it, differs")
	}
}

// testClientWindow: a raw server answers the Gale client's offer with
// client_max_window_bits=bits and sends the traps plain; the client echoes
// them (on its loop) under that window.
func testClientWindow(t *testing.T, bits int, takeover bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	offers := make(chan string, 1)
	conns := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			nc.Close()
			return
		}
		offer := req.Header.Get("Sec-WebSocket-Extensions")
		offers <- offer
		ext := fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits)
		if !takeover {
			ext += "; client_no_context_takeover"
		}
		nc.Write(codec.AppendUpgradeResponse(nil, []byte(req.Header.Get("Sec-WebSocket-Key")), nil, []byte(ext), nil))
		conns <- &bufConn{Conn: nc, br: br}
	}()
	b := newWindowEcho()
	cl := newTestClient(t, b, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: true, Threshold: 1}})
	c, err := cl.Dial(t.Context(), "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if offer := recv(t, offers, "the offer"); !strings.Contains(offer, "client_max_window_bits") {
		t.Fatalf("offer %q has no client_max_window_bits", offer)
	}
	if !c.Compression() {
		t.Fatal("permessage-deflate not in force")
	}
	nc := recv(t, conns, "the connection")
	t.Cleanup(func() { nc.Close() })
	msgs := windowTraps(bits)
	var hs []codec.Header
	var ps [][]byte
	for _, m := range msgs {
		nc.SetDeadline(time.Now().Add(rawWait))
		if _, err := nc.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpBinary}, m)); err != nil {
			t.Fatal(err)
		}
		h, p, err := readMaskedFrame(nc.(*bufConn).br)
		if err != nil || !h.Masked {
			t.Fatalf("client frame header %+v: %v", h, err)
		}
		hs, ps = append(hs, h), append(ps, p)
	}
	checkWindowFrames(t, bits, takeover, msgs, hs, ps)
	checkKept(t, b, bits, takeover, len(msgs))
}

// bufConn is a net.Conn whose reads go through br.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// windowPeer is a third-party peer script (testdata/window_peer.*).
type windowPeer struct {
	name, hint string
	probe      []string
	argv       []string // interpreter and script
	minOwn     int      // the smallest window it can compress with
}

var windowPeers = []windowPeer{
	{name: "python", hint: "apt-get install -y --no-install-recommends python3-websockets (Debian's, for /usr/bin/python3)",
		probe: []string{"/usr/bin/python3", "-c", "import websockets"}, argv: []string{"/usr/bin/python3", "window_peer.py"}, minOwn: 9},
	{name: "node", hint: "npm ci in engine/testdata (needs node and npm)",
		probe: []string{"node", "-e", "require.resolve('ws')"}, argv: []string{"node", "window_peer.js"}, minOwn: 8},
}

// startWindowPeerServer runs a peer's server mode and returns its URL.
func startWindowPeerServer(t *testing.T, argv []string) string {
	t.Helper()
	cmd := command(context.Background(), argv)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", argv[1], stderr.Bytes())
		}
	})
	port, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%v: no port: %v", argv, err)
	}
	return "ws://127.0.0.1:" + strings.TrimSpace(port) + "/"
}

// windowRelay echoes each message it gets hops times on the loop (compressed with
// the connection's window under context takeover), then hands it over.
type windowRelay struct {
	BaseHandler
	hops, n int
	done    chan []byte
}

func (r *windowRelay) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	if r.n++; r.n <= r.hops {
		c.WriteMessage(op, p)
		return
	}
	r.n = 0
	r.done <- bytes.Clone(p)
}

// TestDeflateWindowPeers: Python websockets and node ws, as clients of the
// Gale server and servers for the Gale client, each asking for windows of
// 8, 9, 12 and 15 bits in both directions, with context takeover. The
// peers inflate with the agreed window, so a reference past it into an
// earlier message fails the exchange.
func TestDeflateWindowPeers(t *testing.T) {
	for _, pr := range windowPeers {
		for _, bits := range []int{8, 9, 12, 15} {
			// What the peer asks for its own direction, which it must be able
			// to compress with; Gale's direction gets bits.
			own := strconv.Itoa(max(bits, pr.minOwn))
			b := strconv.Itoa(bits)
			t.Run(fmt.Sprintf("%s client/%d", pr.name, bits), func(t *testing.T) {
				t.Parallel()
				needPeer(t, pr.name, pr.hint, pr.probe)
				rec := newRecorder()
				srv := startServer(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: true, Threshold: 1}})
				ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
				defer cancel()
				out, err := command(ctx, append(pr.argv, "client", wsURL(srv), b, own)).CombinedOutput()
				if err != nil {
					t.Fatalf("%s client: %v\n%s", pr.name, err, out)
				}
				if !recv(t, rec.opens, "OnOpen").Compression() {
					t.Fatal("server: permessage-deflate not in force")
				}
				if want := "server_max_window_bits=" + b; !strings.Contains(string(out), want) {
					t.Errorf("negotiated without %s:\n%s", want, out)
				}
				t.Logf("%s", bytes.TrimSpace(out))
			})
			t.Run(fmt.Sprintf("%s server/%d", pr.name, bits), func(t *testing.T) {
				t.Parallel()
				needPeer(t, pr.name, pr.hint, pr.probe)
				// node ws with clientMaxWindowBits set requires the client
				// to offer client_max_window_bits; so does Python here.
				url := startWindowPeerServer(t, append(pr.argv, "server", own, b, "require"))
				r := &windowRelay{hops: 4, done: make(chan []byte, 1)}
				cl := newTestClient(t, r, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: true, Threshold: 1}})
				c, err := cl.Dial(t.Context(), url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !c.Compression() {
					t.Fatal("permessage-deflate not in force")
				}
				if c.dfl.txBits != uint8(bits) || c.dfl.rxBits != uint8(max(bits, pr.minOwn)) || c.dfl.txReset {
					t.Fatalf("windows %d out, %d in (reset %v); want %d, %s", c.dfl.txBits, c.dfl.rxBits, c.dfl.txReset, bits, own)
				}
				for i, m := range append(windowTraps(bits), jsonLines(20000, bits), jsonLines(20000, bits)) {
					if err := c.WriteMessage(codec.OpBinary, m); err != nil {
						t.Fatal(err)
					}
					if got := recv(t, r.done, "the relayed message"); !bytes.Equal(got, m) {
						t.Fatalf("message %d: %d bytes back, differ from the %d sent", i, len(got), len(m))
					}
				}
			})
		}
	}
}
