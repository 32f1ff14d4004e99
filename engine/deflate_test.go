package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
)

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

// deflateRaw compresses p as a permessage-deflate message: one sync flush,
// the tail stripped. With fw non-nil it continues that stream (context
// takeover).
func deflateRaw(t testing.TB, fw *flate.Writer, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if fw == nil {
		var err error
		if fw, err = flate.NewWriter(&buf, flate.BestCompression); err != nil {
			t.Fatal(err)
		}
	} else {
		fw.Reset(&buf)
	}
	fw.Write(p)
	fw.Flush()
	z := buf.Bytes()
	if !bytes.HasSuffix(z, deflateTail) {
		t.Fatalf("flush ended with % x", z[max(0, len(z)-4):])
	}
	return z[:len(z)-4]
}

// inflateRaw inflates a compressed server message.
func inflateRaw(t testing.TB, z []byte) []byte {
	t.Helper()
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(deflateTail)))
	p, err := io.ReadAll(fr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("inflate: %v", err)
	}
	return p
}

// zframe builds a masked client frame with RSV1 set.
func zframe(op codec.Opcode, fin bool, z []byte) []byte {
	return codec.AppendFrame(nil, codec.Header{Fin: fin, Rsv: codec.Rsv1, Opcode: op, Masked: true, Mask: rawMask}, z)
}

// upgradeDeflate dials and upgrades with the given Sec-WebSocket-Extensions
// lines and returns the client and the response's extensions.
func upgradeDeflate(t testing.TB, srv *Server, lines ...string) (*rawClient, string) {
	t.Helper()
	rc := dialRaw(t, srv.Addr())
	req := rawRequest()
	for _, l := range lines {
		req = strings.TrimSuffix(req, "\r\n") + "Sec-WebSocket-Extensions: " + l + "\r\n\r\n"
	}
	rc.write([]byte(req))
	resp, body := rc.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s %q", resp.Status, body)
	}
	if n := len(resp.Header.Values("Sec-WebSocket-Extensions")); n > 1 {
		t.Fatalf("%d Sec-WebSocket-Extensions fields", n)
	}
	return rc, resp.Header.Get("Sec-WebSocket-Extensions")
}

const (
	bothNCT = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	chrome  = "permessage-deflate; client_max_window_bits"
)

func TestDeflateNegotiation(t *testing.T) {
	tests := []struct {
		name     string
		takeover bool // Config.Compression.ContextTakeover
		off      bool // compression disabled
		maxBits  int  // Config.Compression.MaxWindowBits
		lines    []string
		want     string // the response's extensions, "" for none
	}{
		{name: "Chromium's offer", lines: []string{chrome}, want: bothNCT},
		{name: "Chromium's offer, takeover", takeover: true, lines: []string{chrome}, want: "permessage-deflate"},
		{name: "bare offer", lines: []string{"permessage-deflate"}, want: bothNCT},
		{name: "bare offer, takeover", takeover: true, lines: []string{"permessage-deflate"}, want: "permessage-deflate"},
		{name: "client asks server_no_context_takeover", takeover: true, lines: []string{"permessage-deflate; server_no_context_takeover"},
			want: "permessage-deflate; server_no_context_takeover"},
		{name: "client_max_window_bits=10 echoed", takeover: true, lines: []string{"permessage-deflate; client_max_window_bits=10"},
			want: "permessage-deflate; client_max_window_bits=10"},
		{name: "server_max_window_bits=15 echoed", lines: []string{"permessage-deflate; server_max_window_bits=15"},
			want: bothNCT + "; server_max_window_bits=15"},
		{name: "server_max_window_bits=10 honoured", lines: []string{"permessage-deflate; server_max_window_bits=10"},
			want: bothNCT + "; server_max_window_bits=10"},
		{name: "server_max_window_bits=8 honoured, takeover", takeover: true, lines: []string{"permessage-deflate; server_max_window_bits=8; client_max_window_bits"},
			want: "permessage-deflate; server_max_window_bits=8"},
		{name: "declined offer, then a fallback", lines: []string{"permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits"},
			want: bothNCT},
		{name: "window cap answered", takeover: true, maxBits: 11, lines: []string{chrome},
			want: "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11"},
		{name: "window cap lowers an offer", takeover: true, maxBits: 11, lines: []string{"permessage-deflate; server_max_window_bits=13; client_max_window_bits=9"},
			want: "permessage-deflate; server_max_window_bits=11; client_max_window_bits=9"},
		{name: "second header line", lines: []string{"x-webkit-deflate-frame", chrome}, want: bothNCT},
		{name: "malformed first line, good second", lines: []string{"permessage-deflate;;", chrome}, want: bothNCT},
		{name: "other extension only", lines: []string{"x-webkit-deflate-frame"}},
		{name: "repeated parameter", lines: []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}},
		{name: "repeated client_max_window_bits", lines: []string{"permessage-deflate; client_max_window_bits; client_max_window_bits"}},
		{name: "window bits 16", lines: []string{"permessage-deflate; client_max_window_bits=16"}},
		{name: "window bits 7", lines: []string{"permessage-deflate; server_max_window_bits=7"}},
		{name: "server_max_window_bits without value", lines: []string{"permessage-deflate; server_max_window_bits"}},
		{name: "no_context_takeover with a value", lines: []string{"permessage-deflate; client_no_context_takeover=1"}},
		{name: "unknown parameter", lines: []string{"permessage-deflate; foo"}},
		{name: "case differs", lines: []string{"Permessage-Deflate"}},
		{name: "syntax error", lines: []string{"permessage-deflate; client_max_window_bits=\"10"}},
		{name: "compression off", off: true, lines: []string{chrome}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			srv := startServer(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: !tt.off, ContextTakeover: tt.takeover, MaxWindowBits: tt.maxBits}})
			rc, ext := upgradeDeflate(t, srv, tt.lines...)
			if ext != tt.want {
				t.Fatalf("Sec-WebSocket-Extensions %q, want %q", ext, tt.want)
			}
			if got := recv(t, rec.opens, "OnOpen").Compression(); got != (tt.want != "") {
				t.Fatalf("Conn.Compression() = %v", got)
			}
			msg := jsonLines(1000, 1)
			if tt.want == "" {
				// Plain frames work; RSV1 is a protocol error (RFC 6455 §5.2).
				rc.write(rawFrame(codec.OpText, true, msg))
				if op, p := rc.readMessage(); op != codec.OpText || !bytes.Equal(p, msg) {
					t.Fatalf("echo %v %d bytes", op, len(p))
				}
				rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, msg)))
				rc.expectClose(codec.StatusProtocolError)
				return
			}
			rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, msg)))
			h, z := rc.readFrame()
			if h.Rsv != codec.Rsv1 || !h.Fin || h.Opcode != codec.OpText || !bytes.Equal(inflateRaw(t, z), msg) {
				t.Fatalf("echo: %+v, %d bytes", h, len(z))
			}
		})
	}
}

func TestDeflateBadInput(t *testing.T) {
	const limit = 64 << 10
	bomb := deflateRaw(t, nil, make([]byte, 1<<20))
	t.Logf("1 MiB of zeros compresses to %d bytes", len(bomb))
	atLimit := deflateRaw(t, nil, make([]byte, limit))
	overLimit := deflateRaw(t, nil, make([]byte, limit+1))
	text := jsonLines(3000, 7)
	ztext := deflateRaw(t, nil, text)
	badUTF8 := deflateRaw(t, nil, append(bytes.Clone(text[:2000]), 0xff, 'x'))
	// A stored block whose NLEN is not the complement of LEN, and a block
	// of the reserved type 3.
	badStored := []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}
	reservedBlock := []byte{0x07, 0x00}
	// A final block followed by garbage.
	final := func() []byte {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
		fw.Write(text)
		fw.Close()
		return append(buf.Bytes(), 1, 2, 3, 4, 5, 6, 7, 8)
	}()
	ping := codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: codec.OpPing, Masked: true, Mask: rawMask}, []byte("p"))

	type tcase struct {
		name   string
		writes [][]byte
		want   []byte           // the message echoed, when code is 0
		code   codec.StatusCode // the Close expected
		err    error
	}
	tests := []tcase{
		{name: "compressed text", writes: [][]byte{zframe(codec.OpText, true, ztext)}, want: text},
		{name: "compressed, fragmented", writes: [][]byte{
			zframe(codec.OpText, false, ztext[:10]), rawFrame(codec.OpContinuation, false, ztext[10:200]),
			rawFrame(codec.OpContinuation, false, nil), rawFrame(codec.OpContinuation, true, ztext[200:])}, want: text},
		{name: "compressed, fragmented with a ping between", writes: [][]byte{
			zframe(codec.OpText, false, ztext[:100]), rawFrame(codec.OpPing, true, []byte("mid")), rawFrame(codec.OpContinuation, true, ztext[100:])},
			want: text},
		{name: "inflates to the limit", writes: [][]byte{zframe(codec.OpBinary, true, atLimit)}, want: make([]byte, limit)},
		{name: "RSV1 on a ping", writes: [][]byte{ping}, code: 1002, err: codec.ErrReservedBits},
		{name: "RSV1 on a continuation", writes: [][]byte{zframe(codec.OpText, false, ztext[:10]), zframe(codec.OpContinuation, true, ztext[10:])},
			code: 1002, err: codec.ErrReservedBits},
		{name: "RSV1 on a continuation of a plain message", writes: [][]byte{rawFrame(codec.OpText, false, text[:10]), zframe(codec.OpContinuation, true, ztext)},
			code: 1002, err: codec.ErrReservedBits},
		{name: "RSV2", writes: [][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: codec.Rsv1 | codec.Rsv2, Opcode: codec.OpText, Masked: true, Mask: rawMask}, ztext)},
			code: 1002, err: codec.ErrReservedBits},
		{name: "bad stored block", writes: [][]byte{zframe(codec.OpBinary, true, badStored)}, code: 1007, err: codec.ErrDeflateData},
		{name: "reserved block type", writes: [][]byte{zframe(codec.OpBinary, true, reservedBlock)}, code: 1007, err: codec.ErrDeflateData},
		{name: "garbage after a final block", writes: [][]byte{zframe(codec.OpBinary, true, final)}, code: 1007, err: codec.ErrDeflateData},
		{name: "random bytes", writes: [][]byte{zframe(codec.OpBinary, true, binaryPayload(300))}, code: 1007, err: codec.ErrDeflateData},
		{name: "invalid UTF-8 once inflated", writes: [][]byte{zframe(codec.OpText, true, badUTF8)}, code: 1007, err: codec.ErrInvalidUTF8},
		{name: "one byte over the limit", writes: [][]byte{zframe(codec.OpBinary, true, overLimit)}, code: 1009, err: codec.ErrMessageTooBig},
		{name: "bomb", writes: [][]byte{zframe(codec.OpBinary, true, bomb)}, code: 1009, err: codec.ErrMessageTooBig},
		{name: "bomb, fragmented", writes: [][]byte{zframe(codec.OpBinary, false, bomb[:len(bomb)/2]), rawFrame(codec.OpContinuation, true, bomb[len(bomb)/2:])},
			code: 1009, err: codec.ErrMessageTooBig},
	}
	for _, takeover := range []bool{false, true} {
		tr := newTracker(t)
		srv := startServer(t, tr, Config{Loops: 1, MaxMessageSize: limit, Logger: discardLogger(),
			Compression: CompressionConfig{Enabled: true, ContextTakeover: takeover}})
		for _, tt := range tests {
			t.Run(fmt.Sprintf("takeover %v/%s", takeover, tt.name), func(t *testing.T) {
				rc, ext := upgradeDeflate(t, srv, chrome)
				if ext == "" {
					t.Fatal("not negotiated")
				}
				rc.write(tt.writes...)
				if tt.code == 0 {
					h, z := rc.readFrame()
					for h.Opcode == codec.OpPong {
						h, z = rc.readFrame()
					}
					if h.Rsv != codec.Rsv1 || !bytes.Equal(inflateRaw(t, z), tt.want) {
						t.Fatalf("echo %+v of %d bytes, want %d bytes inflated", h, len(z), len(tt.want))
					}
					return
				}
				rc.expectClose(tt.code)
				rc.expectDropped()
				err := tr.closed(t, rc.addr())
				if got := codec.CloseStatus(err); got != tt.code || !errors.Is(err, tt.err) {
					t.Errorf("OnClose got %v (code %d), want %v (code %d)", err, got, tt.err, tt.code)
				}
			})
		}
	}
}

// TestDeflateContextTakeover sends a stream of messages, each compressed
// with the window of the ones before (a client keeping its context), and
// checks the server's replies are compressed against its own window.
func TestDeflateContextTakeover(t *testing.T) {
	srv := startServer(t, newRecorder(), Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: true}})
	rc, ext := upgradeDeflate(t, srv, "permessage-deflate; client_max_window_bits=12")
	if ext != "permessage-deflate; client_max_window_bits=12" {
		t.Fatalf("negotiated %q", ext)
	}
	var out bytes.Buffer
	fw, _ := flate.NewWriterWindow(&out, 1<<12)
	var in bytes.Buffer
	fr := flate.NewReader(&in)
	var sizes []int
	for i := range 40 {
		msg := jsonLines(500+i*300, i%3)
		out.Reset()
		fw.Write(msg)
		fw.Flush()
		z := out.Bytes()[:out.Len()-4]
		rc.write(zframe(codec.OpText, true, z))
		h, p := rc.readFrame()
		if h.Rsv != codec.Rsv1 {
			t.Fatalf("message %d: echo not compressed: %+v %q", i, h, p)
		}
		// The server's stream: one inflater across messages.
		in.Write(p)
		in.Write(deflateTail)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(fr, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: echo differs (%v)", i, err)
		}
		sizes = append(sizes, len(z), len(p))
	}
	t.Logf("compressed sizes (client, server) per message: %v", sizes)
}

// FuzzInflate feeds arbitrary bytes to the inflater as a compressed
// message: it must not panic, must never return more than the limit, and
// must fail with 1007 or 1009 only.
func FuzzInflate(f *testing.F) {
	f.Add(deflateRaw(f, nil, []byte("hello, hello, hello")))
	f.Add(deflateRaw(f, nil, make([]byte, 10000)))
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x07, 0x00})
	f.Add([]byte{})
	const limit = 4096
	srv := &Server{cfg: Config{MaxMessageSize: limit}}
	f.Fuzz(func(t *testing.T, z []byte) {
		c := &Conn{loop: &loop{srv: srv}, dfl: deflateState{on: true, rxBits: 15}}
		for range 2 { // the second time with the first's window
			c.appendMsg(z)
			out, err := c.inflate()
			c.releaseMsg()
			switch {
			case err == nil:
				if len(*out) > limit {
					t.Fatalf("%d bytes inflated past the limit of %d", len(*out), limit)
				}
				c.loop.z.putMsg(out)
			case err != codec.ErrDeflateData && err != codec.ErrMessageTooBig:
				t.Fatalf("error %v", err)
			}
		}
		c.releaseDeflate()
	})
}
