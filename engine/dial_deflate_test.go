package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
)

// permessage-deflate on the blocking client (Dial): against Gale's server
// in every window and context takeover mode, against Python websockets and
// node ws, against raw servers that misbehave, and what a write costs.

// sentFrames is a client socket that records the frames the client writes
// (one Write per frame once the request is out) and counts the bytes it
// reads, so a test sees what went on the wire each way.
type sentFrames struct {
	net.Conn
	mu      sync.Mutex
	request bool // the upgrade request has been written
	hs      []codec.Header
	ps      [][]byte // unmasked payloads of data frames, when kept
	keep    bool
	in      int64
}

func (s *sentFrames) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	s.mu.Lock()
	s.in += int64(n)
	s.mu.Unlock()
	return n, err
}

func (s *sentFrames) Write(p []byte) (int, error) {
	s.mu.Lock()
	if !s.request {
		s.request = true
	} else if h, n, err := codec.DecodeFrameHeader(p); err == nil && h.Opcode.IsData() {
		s.hs = append(s.hs, h)
		if s.keep {
			q := bytes.Clone(p[n:])
			codec.Mask(q, h.Mask, 0)
			s.ps = append(s.ps, q)
		}
	}
	s.mu.Unlock()
	return s.Conn.Write(p)
}

func (s *sentFrames) headers() []codec.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hs)
}

func (s *sentFrames) bytesIn() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in
}

// dialRecorded dials url with opts, recording on the returned sentFrames.
func dialRecorded(t *testing.T, url string, opts DialOptions, keep bool) (*ClientConn, *sentFrames) {
	t.Helper()
	var sf *sentFrames
	opts.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sf = &sentFrames{Conn: nc, keep: keep}
		return sf, nil
	}
	c, err := Dial(t.Context(), url, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, sf
}

// zmsg is a message for the echo tests and whether it must go compressed.
type zmsg struct {
	op       codec.Opcode
	p        []byte
	compress bool // compressible enough to halve under any window
}

// echoMessages are text and binary messages from 0 B to 1 MiB, compressible
// and not.
func echoMessages() []zmsg {
	var ms []zmsg
	for i, n := range []int{0, 1, 100, 128, 1000, 4096, 65543, 300_000, 1 << 20} {
		ms = append(ms,
			zmsg{codec.OpText, jsonLines(n, i), n >= 1000},
			zmsg{codec.OpBinary, binaryRecords(n, i), n >= 1000})
	}
	return append(ms, zmsg{codec.OpBinary, randomBlock(20000, 1), false}) // sent plain: it does not shrink
}

// readData reads the next data frame, skipping control frames.
func readData(t *testing.T, c *ClientConn) Frame {
	t.Helper()
	for {
		c.SetReadDeadline(time.Now().Add(3 * testTimeout))
		f, err := c.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Opcode.IsData() {
			return f
		}
	}
}

// echoCompressed sends ms from a goroutine while reading the echoes in
// order, and checks each one, and that the compressible ones came back
// compressed.
func echoCompressed(t *testing.T, c *ClientConn, ms []zmsg, serverCompresses func(zmsg) bool) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		for _, m := range ms {
			if err := c.WriteMessage(m.op, m.p); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for i, m := range ms {
		f := readData(t, c)
		if f.Opcode != m.op || !f.Fin || !bytes.Equal(f.Payload, m.p) {
			t.Fatalf("echo %d: %v fin=%v %d bytes, want %v %d bytes", i, f.Opcode, f.Fin, len(f.Payload), m.op, len(m.p))
		}
		if serverCompresses(m) && !f.Compressed {
			t.Errorf("echo %d (%v, %d bytes) did not come back compressed", i, m.op, len(m.p))
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// checkSent checks the client's frames for ms: RSV1 on every compressible
// message, on none of the others that could not shrink, and compressed
// ones well under their size.
func checkSent(t *testing.T, sf *sentFrames, ms []zmsg) {
	t.Helper()
	hs := sf.headers()
	if len(hs) < len(ms) {
		t.Fatalf("%d data frames sent for %d messages", len(hs), len(ms))
	}
	compressed := 0
	for i, m := range ms {
		h := hs[i]
		switch {
		case m.compress && h.Rsv != codec.Rsv1:
			t.Errorf("message %d (%v, %d bytes) was sent without RSV1", i, m.op, len(m.p))
		case m.compress && h.Length > int64(len(m.p))/2:
			t.Errorf("message %d: %d bytes compressed to %d", i, len(m.p), h.Length)
		case len(m.p) > 128 && !m.compress && h.Rsv != 0:
			t.Errorf("message %d (incompressible) was sent with RSV1", i)
		}
		if h.Rsv == codec.Rsv1 {
			compressed++
		}
	}
	t.Logf("%d of %d messages went compressed (RSV1)", compressed, len(ms))
}

// TestDialDeflateGale: the blocking client against Gale's server in every
// combination of context takeover and window bits 8, 12 and 15, messages
// of 0 B to 1 MiB each way in order; compressed frames go both ways
// (counted as RSV1 frames on the client's socket and as the Compressed
// echoes), and with context takeover a repeated message costs next to
// nothing each way.
func TestDialDeflateGale(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		for _, bits := range []int{8, 12, 15} {
			t.Run(fmt.Sprintf("takeover %v/%d", takeover, bits), func(t *testing.T) {
				t.Parallel()
				z := CompressionConfig{Enabled: true, ContextTakeover: takeover, MaxWindowBits: bits, Threshold: 1}
				rec := newRecorder()
				srv := startServer(t, rec, Config{Loops: 1, Compression: z})
				c, sf := dialRecorded(t, wsURL(srv), DialOptions{Compression: z}, false)
				if !c.Compression() {
					t.Fatal("client: permessage-deflate not in force")
				}
				if !recv(t, rec.opens, "OnOpen").Compression() {
					t.Fatal("server: permessage-deflate not in force")
				}
				d := c.dfl
				if int(d.txBits) != bits || int(d.rxBits) != bits || d.txReset == takeover || d.rxReset == takeover {
					t.Fatalf("negotiated %+v; want %d-bit windows, context takeover %v", d, bits, takeover)
				}
				ms := echoMessages()
				echoCompressed(t, c, ms, func(m zmsg) bool { return m.compress })
				checkSent(t, sf, ms)

				// The same message twice; it fits the window, so the second
				// can refer to the first.
				m := jsonLines(1<<bits*3/4, 99)
				var out, in [2]int64
				for i := range 2 {
					before := sf.bytesIn()
					if err := c.WriteText(m); err != nil {
						t.Fatal(err)
					}
					if f := readData(t, c); !bytes.Equal(f.Payload, m) {
						t.Fatalf("repeat %d differs", i)
					}
					hs := sf.headers()
					out[i], in[i] = hs[len(hs)-1].Length, sf.bytesIn()-before
				}
				t.Logf("same %d bytes twice: %v to the server, %v back", len(m), out, in)
				if takeover && (out[1] > out[0]/4 || in[1] > in[0]/4) {
					t.Errorf("context takeover, yet the repeat cost %d out, %d in after %d, %d", out[1], in[1], out[0], in[0])
				}
				if !takeover && (out[1] < out[0]*3/4 || in[1] < in[0]*3/4) {
					t.Errorf("no context takeover, yet the repeat cost %d out, %d in after %d, %d", out[1], in[1], out[0], in[0])
				}
				if err := c.Close(codec.StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
				var ce *codec.CloseError
				if _, _, err := c.ReadMessage(); !errors.As(err, &ce) || ce.Code != codec.StatusNormalClosure {
					t.Fatalf("after Close: %v, want the server's Close 1000", err)
				}
			})
		}
	}
}

// TestDialDeflateWindows: a raw server answers the blocking client's offer
// with client_max_window_bits of 8 to 15; what the client sends under it
// inflates with exactly that window (testdata/window_inflate.py).
func TestDialDeflateWindows(t *testing.T) {
	needPeer(t, "python3", "Debian's /usr/bin/python3", []string{"/usr/bin/python3", "-c", "import zlib"})
	for bits := 8; bits <= 15; bits++ {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/takeover %v", bits, takeover), func(t *testing.T) {
				t.Parallel()
				ext := fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits)
				if !takeover {
					ext += "; client_no_context_takeover"
				}
				url, offers := deflateRawServer(t, ext, func(nc net.Conn, br *bufio.Reader) {
					for {
						if _, err := br.ReadByte(); err != nil {
							return
						}
					}
				})
				c, sf := dialRecorded(t, url, DialOptions{Compression: CompressionConfig{Enabled: true, ContextTakeover: true, Threshold: 1}}, true)
				if offer := recv(t, offers, "the offer"); !strings.Contains(offer, "client_max_window_bits") {
					t.Fatalf("offer %q has no client_max_window_bits", offer)
				}
				if !c.Compression() || int(c.dfl.txBits) != bits || c.dfl.txReset == takeover {
					t.Fatalf("negotiated %+v; want a %d-bit window, context takeover %v", c.dfl, bits, takeover)
				}
				msgs := windowTraps(bits)
				for _, m := range msgs {
					if err := c.WriteBinary(m); err != nil {
						t.Fatal(err)
					}
				}
				sf.mu.Lock()
				hs, ps := slices.Clone(sf.hs), slices.Clone(sf.ps)
				sf.mu.Unlock()
				checkWindowFrames(t, bits, takeover, msgs, hs, ps)
			})
		}
	}
}

// deflateRawServer accepts one connection, answers its upgrade with the
// Sec-WebSocket-Extensions value ext (none when empty), sends the offer it
// got on the channel and runs fn.
func deflateRawServer(t *testing.T, ext string, fn func(nc net.Conn, br *bufio.Reader)) (string, chan string) {
	t.Helper()
	offers := make(chan string, 1)
	url := rawServer(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		offers <- req.Header.Get("Sec-WebSocket-Extensions")
		nc.Write(codec.AppendUpgradeResponse(nil, []byte(req.Header.Get("Sec-WebSocket-Key")), nil, []byte(ext), nil))
		fn(nc, br)
	})
	return url, offers
}

// compress returns p as a permessage-deflate payload (tail stripped).
func compress(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	for len(p) > 0 {
		n := min(len(p), 1<<20)
		fw.Write(p[:n])
		p = p[n:]
	}
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflateTail)
}

// serverSends is a raw server that negotiates ext, writes frames and
// reports the code of the client's Close.
func serverSends(t *testing.T, ext string, frames ...[]byte) (string, chan error) {
	t.Helper()
	verdict := make(chan error, 1)
	url, _ := deflateRawServer(t, ext, func(nc net.Conn, br *bufio.Reader) {
		for _, f := range frames {
			nc.Write(f)
		}
		code, err := readClientClose(&bufConn{Conn: nc, br: br})
		if err == nil {
			err = closeCodeError(code)
		}
		verdict <- err
	})
	return url, verdict
}

type closeCodeError codec.StatusCode

func (e closeCodeError) Error() string {
	return fmt.Sprintf("client sent Close %d", codec.StatusCode(e))
}

// wantClientClose checks that the raw server got a Close with code.
func wantClientClose(t *testing.T, verdict chan error, code codec.StatusCode) {
	t.Helper()
	select {
	case err := <-verdict:
		if ce, ok := err.(closeCodeError); !ok || codec.StatusCode(ce) != code {
			t.Errorf("server side: %v, want the client's Close %d", err, code)
		}
	case <-time.After(rawWait):
		t.Error("server side: no Close from the client")
	}
}

const deflateExt = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// TestDialDeflateBomb: a server sends 64 KiB that inflate to 64 MiB to a
// client whose MaxMessageSize is 1 MiB. ReadMessage fails with 1009 (sent
// to the server) having allocated about the limit, not the message.
func TestDialDeflateBomb(t *testing.T) {
	const limit = 1 << 20
	z := compress(t, make([]byte, 64<<20))
	t.Logf("bomb: %d bytes inflating to 64 MiB", len(z))
	for _, fragmented := range []bool{false, true} {
		t.Run(fmt.Sprintf("fragmented %v", fragmented), func(t *testing.T) {
			var frames [][]byte
			if fragmented {
				half := len(z) / 2
				frames = [][]byte{
					codec.AppendFrame(nil, codec.Header{Rsv: codec.Rsv1, Opcode: codec.OpBinary}, z[:half]),
					codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpContinuation}, z[half:]),
				}
			} else {
				frames = [][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpBinary}, z)}
			}
			url, verdict := serverSends(t, deflateExt, frames...)
			c, err := Dial(t.Context(), url, &DialOptions{MaxMessageSize: limit, Compression: CompressionConfig{Enabled: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadDeadline(time.Now().Add(rawWait))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err = c.ReadMessage()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, codec.ErrMessageTooBig) || codec.CloseStatus(err) != codec.StatusMessageTooBig {
				t.Fatalf("ReadMessage: %v, want ErrMessageTooBig (1009)", err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB while reading the bomb", alloc>>10)
			if alloc > 4*limit {
				t.Errorf("allocated %d bytes for a %d-byte limit", alloc, limit)
			}
			wantClientClose(t, verdict, codec.StatusMessageTooBig)
		})
	}
}

// TestDialDeflateBadFrames: what the engine fails a connection for, the
// blocking client fails it for with the same code.
func TestDialDeflateBadFrames(t *testing.T) {
	z := compress(t, []byte(strings.Repeat("hello ", 100)))
	cases := []struct {
		name   string
		ext    string // what the server negotiates
		frames [][]byte
		want   error
	}{
		{"RSV1 without negotiation", "",
			[][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpText}, z)}, codec.ErrReservedBits},
		{"RSV1 on a continuation", deflateExt, [][]byte{
			codec.AppendFrame(nil, codec.Header{Rsv: codec.Rsv1, Opcode: codec.OpText}, z[:4]),
			codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpContinuation}, z[4:]),
		}, codec.ErrReservedBits},
		{"RSV1 on a ping", deflateExt,
			[][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpPing}, nil)}, codec.ErrReservedBits},
		{"RSV2", deflateExt,
			[][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: 0x20, Opcode: codec.OpText}, z)}, codec.ErrReservedBits},
		{"invalid deflate data", deflateExt,
			[][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpBinary}, []byte{0xff, 0xff, 0xff, 0xff})}, codec.ErrDeflateData},
		{"inflates to invalid UTF-8", deflateExt,
			[][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpText}, compress(t, []byte("ok \xff")))}, codec.ErrInvalidUTF8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, verdict := serverSends(t, tc.ext, tc.frames...)
			c, err := Dial(t.Context(), url, &DialOptions{Compression: CompressionConfig{Enabled: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if c.Compression() != (tc.ext != "") {
				t.Fatalf("Compression() = %v with %q negotiated", c.Compression(), tc.ext)
			}
			c.SetReadDeadline(time.Now().Add(rawWait))
			_, _, err = c.ReadMessage()
			code := codec.CloseStatus(tc.want)
			if code == 0 {
				code = codec.StatusProtocolError
			}
			if !errors.Is(err, tc.want) || failCode(err) != code {
				t.Fatalf("ReadMessage: %v, want %v (%d)", err, tc.want, code)
			}
			wantClientClose(t, verdict, code)
		})
	}
}

// TestDialDeflateFragmented: a compressed message in three frames with a
// ping between them is read as one inflated message (ReadFrame returns the
// ping first), and a plain message after it is read as it came.
func TestDialDeflateFragmented(t *testing.T) {
	msg := jsonLines(5000, 3)
	z := compress(t, msg)
	a, b := len(z)/3, 2*len(z)/3
	url, _ := serverSends(t, deflateExt,
		codec.AppendFrame(nil, codec.Header{Rsv: codec.Rsv1, Opcode: codec.OpText}, z[:a]),
		codec.AppendFrame(nil, codec.Header{Opcode: codec.OpContinuation}, z[a:b]),
		codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpPing}, []byte("p")),
		codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpContinuation}, z[b:]),
		codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText}, []byte("plain")),
	)
	c, err := Dial(t.Context(), url, &DialOptions{Compression: CompressionConfig{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadDeadline(time.Now().Add(rawWait))
	if f, err := c.ReadFrame(); err != nil || f.Opcode != codec.OpPing {
		t.Fatalf("first frame: %+v, %v; want the ping", f, err)
	}
	f, err := c.ReadFrame()
	if err != nil || f.Opcode != codec.OpText || !f.Fin || !f.Compressed || !bytes.Equal(f.Payload, msg) {
		t.Fatalf("second frame: %v fin=%v compressed=%v %d bytes, %v; want the %d-byte message", f.Opcode, f.Fin, f.Compressed, len(f.Payload), err, len(msg))
	}
	op, p, err := c.ReadMessage()
	if err != nil || op != codec.OpText || string(p) != "plain" {
		t.Fatalf("then %v %q, %v", op, p, err)
	}
}

// TestDialDeflateDeclined: a server without compression, Gale's or a raw
// one that ignores the offer: the dial succeeds, nothing is compressed.
func TestDialDeflateDeclined(t *testing.T) {
	srv := startServer(t, newRecorder(), Config{Loops: 1})
	c, sf := dialRecorded(t, wsURL(srv), DialOptions{Compression: CompressionConfig{Enabled: true, Threshold: 1}}, false)
	if c.Compression() {
		t.Fatal("Compression() with a server that declined")
	}
	m := jsonLines(10000, 1)
	if err := c.WriteText(m); err != nil {
		t.Fatal(err)
	}
	if f := readData(t, c); !bytes.Equal(f.Payload, m) || f.Compressed {
		t.Fatalf("echo: %d bytes, compressed %v", len(f.Payload), f.Compressed)
	}
	if hs := sf.headers(); len(hs) != 1 || hs[0].Rsv != 0 || hs[0].Length != int64(len(m)) {
		t.Fatalf("sent %+v", hs)
	}
}

// TestDialDeflateBadResponse: an answer to the offer that names parameters
// the client did not offer or cannot honour fails both clients' dials with
// the same error.
func TestDialDeflateBadResponse(t *testing.T) {
	z := CompressionConfig{Enabled: true, MaxWindowBits: 10}
	const ok = "server_no_context_takeover; client_no_context_takeover"
	cases := []struct {
		ext  string
		want error
	}{
		{"permessage-deflate; " + ok + "; server_max_window_bits=10; client_max_window_bits=12", codec.ErrExtensionParams},
		{"permessage-deflate; " + ok + "; server_max_window_bits=12", codec.ErrExtensionParams},
		{"permessage-deflate; client_no_context_takeover; server_max_window_bits=10", codec.ErrExtensionParams},
		{"permessage-deflate; " + ok + "; server_max_window_bits=10; mystery", codec.ErrExtensionParams},
		{"permessage-deflate; " + ok + "; server_max_window_bits=10, permessage-deflate", codec.ErrExtensionParams},
		{"x-webkit-deflate-frame", codec.ErrExtensionNotOffer},
	}
	cl := newTestClient(t, newClientRecorder(), Config{Loops: 1, Compression: z})
	for _, tc := range cases {
		t.Run(tc.ext, func(t *testing.T) {
			serve := func(nc net.Conn, br *bufio.Reader) { br.ReadByte() }
			url, _ := deflateRawServer(t, tc.ext, serve)
			_, err := Dial(t.Context(), url, &DialOptions{Compression: z})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Dial: %v, want %v", err, tc.want)
			}
			url, _ = deflateRawServer(t, tc.ext, serve)
			_, err2 := cl.Dial(t.Context(), url, nil)
			// The event-loop client says "gale: handshake:" before every
			// response error, Dial before the extension's.
			same := func(e error) string { return strings.TrimPrefix(e.Error(), "gale: handshake: ") }
			if !errors.Is(err2, tc.want) || same(err) != same(err2) {
				t.Fatalf("Dial: %v; Client.Dial: %v; want the same error", err, err2)
			}
		})
	}
	if _, err := Dial(t.Context(), "ws://127.0.0.1:1/", &DialOptions{Compression: CompressionConfig{Enabled: true, MaxWindowBits: 16}}); err == nil || !strings.Contains(err.Error(), "MaxWindowBits") {
		t.Fatalf("Dial with MaxWindowBits 16: %v", err)
	}
}

// TestClientDialCompressionOption: the event-loop Client takes compression
// from its Config, so a DialOptions.Compression that differs is refused
// rather than ignored; one equal to it (defaults applied) is fine.
func TestClientDialCompressionOption(t *testing.T) {
	srv := startServer(t, newRecorder(), Config{Loops: 1, Compression: CompressionConfig{Enabled: true}})
	cl := newTestClient(t, newClientRecorder(), Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: true}})
	for _, z := range []CompressionConfig{
		{Enabled: true},
		{Enabled: true, ContextTakeover: true, MaxWindowBits: 12},
		{Enabled: true, ContextTakeover: true, Level: 9},
		{ContextTakeover: true},
	} {
		if _, err := cl.Dial(t.Context(), wsURL(srv), &DialOptions{Compression: z}); !errors.Is(err, ErrDialOption) {
			t.Errorf("Dial with Compression %+v: %v, want ErrDialOption", z, err)
		}
	}
	for _, z := range []CompressionConfig{{}, {Enabled: true, ContextTakeover: true}, {Enabled: true, ContextTakeover: true, Level: 1, Threshold: 128}} {
		c, err := cl.Dial(t.Context(), wsURL(srv), &DialOptions{Compression: z})
		if err != nil {
			t.Fatalf("Dial with Compression %+v: %v", z, err)
		}
		if !c.Compression() {
			t.Errorf("Dial with Compression %+v: not in force", z)
		}
		c.Close(codec.StatusNormalClosure, "")
	}
}

// pythonDeflateServer is a Python websockets echo server with its default
// permessage-deflate (compression="deflate": 12-bit windows, context
// takeover unless the client asks for none). It prints its port and exits
// when stdin closes.
const pythonDeflateServer = `
import asyncio, sys, websockets

async def echo(ws, path=None):
    try:
        async for m in ws:
            await ws.send(m)
    except websockets.ConnectionClosed:
        pass

async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, compression="deflate", max_size=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
`

// TestDialDeflatePeers: the blocking client against Python websockets and
// node ws servers with permessage-deflate, with and without context
// takeover (both peers honour the client's choice): messages up to 1 MiB
// echoed in order, compressed both ways, and a repeated message nearly free
// each way exactly when context takeover is in force.
func TestDialDeflatePeers(t *testing.T) {
	peers := []struct {
		name, hint string
		probe, run []string
		greets     bool // node's echo_server.js first sends the extensions it negotiated
	}{
		{"python", "apt-get install -y --no-install-recommends python3-websockets (Debian's, for /usr/bin/python3)",
			[]string{"/usr/bin/python3", "-c", "import websockets"}, []string{"/usr/bin/python3", "-c", pythonDeflateServer}, false},
		{"node", "npm ci in engine/testdata (needs node and npm)",
			[]string{"node", "-e", "require.resolve('ws')"}, []string{"node", "echo_server.js", "deflate"}, true},
	}
	for _, pr := range peers {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/takeover %v", pr.name, takeover), func(t *testing.T) {
				t.Parallel()
				needPeer(t, pr.name, pr.hint, pr.probe)
				url := startWindowPeerServer(t, pr.run)
				c, sf := dialRecorded(t, url, DialOptions{Compression: CompressionConfig{Enabled: true, ContextTakeover: takeover, Threshold: 1}}, false)
				if !c.Compression() {
					t.Fatal("permessage-deflate not in force")
				}
				if pr.greets {
					t.Logf("%s", readData(t, c).Payload)
				}
				if c.dfl.txReset == takeover || c.dfl.rxReset == takeover {
					t.Fatalf("negotiated %+v; want context takeover %v both ways", c.dfl, takeover)
				}
				var ms []zmsg
				for i, n := range []int{10, 2000, 30000, 300_000, 1 << 20} {
					ms = append(ms, zmsg{codec.OpText, jsonLines(n, i), n >= 1000}, zmsg{codec.OpBinary, binaryRecords(n, i), n >= 1000})
				}
				echoCompressed(t, c, ms, func(m zmsg) bool { return m.compress })
				checkSent(t, sf, ms)

				m := jsonLines(3000, 7) // fits every window either peer uses
				var out, in [2]int64
				for i := range 2 {
					before := sf.bytesIn()
					if err := c.WriteText(m); err != nil {
						t.Fatal(err)
					}
					if f := readData(t, c); !bytes.Equal(f.Payload, m) || !f.Compressed {
						t.Fatalf("repeat %d: %d bytes, compressed %v", i, len(f.Payload), f.Compressed)
					}
					hs := sf.headers()
					out[i], in[i] = hs[len(hs)-1].Length, sf.bytesIn()-before
				}
				t.Logf("windows %d out, %d in; same %d bytes twice: %v to the server, %v back", c.dfl.txBits, c.dfl.rxBits, len(m), out, in)
				if takeover && (out[1] > out[0]/4 || in[1] > in[0]/4) {
					t.Errorf("context takeover, yet the repeat cost %d out, %d in after %d, %d", out[1], in[1], out[0], in[0])
				}
				if !takeover && (out[1] < out[0]*3/4 || in[1] < in[0]*3/4) {
					t.Errorf("no context takeover, yet the repeat cost %d out, %d in after %d, %d", out[1], in[1], out[0], in[0])
				}
				if err := c.Close(codec.StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
				var ce *codec.CloseError
				if _, _, err := c.ReadMessage(); !errors.As(err, &ce) || ce.Code != codec.StatusNormalClosure {
					t.Fatalf("after Close: %v, want the server's Close 1000", err)
				}
			})
		}
	}
}
