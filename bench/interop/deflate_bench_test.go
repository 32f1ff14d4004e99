package interop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// BenchmarkDeflateEcho echoes one message per op through a server over
// loopback: Gale plain, Gale with permessage-deflate in both modes, and
// gorilla with EnableCompression (no context takeover, level 1 like Gale's
// default) for scale. The client sends pre-built compressed frames and reads
// into a fixed buffer, so allocs/op are the server's. ns/op is the round
// trip, client included.
func BenchmarkDeflateEcho(b *testing.B) {
	sizes := []struct {
		name string
		op   codec.Opcode
		n    int
	}{
		{"1KiB-text", codec.OpText, 1 << 10},
		{"16KiB-binary", codec.OpBinary, 16 << 10},
		{"64KiB-text", codec.OpText, 64 << 10},
	}
	servers := []struct {
		name     string
		deflate  bool
		takeover bool
		start    func(b *testing.B, cfg engine.CompressionConfig) string
	}{
		{name: "gale-plain", start: startGaleBench},
		{name: "gale-deflate", deflate: true, start: startGaleBench},
		{name: "gale-deflate-takeover", deflate: true, takeover: true, start: startGaleBench},
		{name: "gorilla-deflate", deflate: true, start: startGorillaBench},
	}
	for _, sz := range sizes {
		payload := jsonLines(sz.n, 1)
		if sz.op == codec.OpBinary {
			payload = binaryRecords(sz.n, 1)
		}
		for _, sv := range servers {
			b.Run(sz.name+"/"+sv.name, func(b *testing.B) {
				addr := sv.start(b, engine.CompressionConfig{Enabled: sv.deflate, ContextTakeover: sv.takeover})
				ext := ""
				frame := rawFrame(sz.op, true, payload)
				if sv.deflate {
					ext = chrome
					frame = zframe(sz.op, true, deflateRaw(b, payload))
				}
				conn, br := benchUpgrade(b, addr, ext)
				defer conn.Close()
				buf := make([]byte, sz.n+codec.MaxHeaderLen)
				wire := 0
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := conn.Write(frame); err != nil {
						b.Fatal(err)
					}
					wire = benchReadFrame(b, br, buf)
				}
				b.ReportMetric(float64(len(frame)), "B-in/msg")
				b.ReportMetric(float64(wire), "B-out/msg")
			})
		}
	}
}

func startGaleBench(b *testing.B, cfg engine.CompressionConfig) string {
	srv := startServer(b, echo{}, engine.Config{Loops: 1, Compression: cfg})
	return srv.Addr().String()
}

func startGorillaBench(b *testing.B, _ engine.CompressionConfig) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := websocket.Upgrader{EnableCompression: true, CheckOrigin: func(*http.Request) bool { return true }}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(1 << 24)
		for {
			op, p, err := c.ReadMessage()
			if err != nil || c.WriteMessage(op, p) != nil {
				return
			}
		}
	})}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// benchUpgrade dials and upgrades, offering ext when not empty.
func benchUpgrade(b *testing.B, addr, ext string) (net.Conn, *bufio.Reader) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", addr)
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	conn.Write([]byte(req + "\r\n"))
	br := bufio.NewReaderSize(conn, 128<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || (ext != "") != (resp.Header.Get("Sec-WebSocket-Extensions") != "") {
		b.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// benchReadFrame reads one server message, whose frames (gorilla cuts at
// 4 KiB) fit together in buf, and returns its payload length on the wire.
func benchReadFrame(b *testing.B, br *bufio.Reader, buf []byte) int {
	total := 0
	for {
		h, _ := readServerFrame(b, br, buf[total:])
		total += int(h.Length)
		if h.Fin {
			return total
		}
	}
}

// readServerFrame reads one unmasked server frame into buf (which must hold
// its payload) and returns its header and payload.
func readServerFrame(t testing.TB, br *bufio.Reader, buf []byte) (codec.Header, []byte) {
	t.Helper()
	hdr, err := br.Peek(2)
	if err != nil {
		t.Fatal(err)
	}
	n := 2
	switch hdr[1] & 0x7F {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	if _, err := io.ReadFull(br, buf[:n]); err != nil {
		t.Fatal(err)
	}
	h, _, err := codec.DecodeFrameHeader(buf[:n])
	if err != nil || h.Masked || h.Length > int64(len(buf)) {
		t.Fatalf("server frame header %+v %v (buffer %d)", h, err, len(buf))
	}
	if _, err := io.ReadFull(br, buf[:h.Length]); err != nil {
		t.Fatal(err)
	}
	return h, buf[:h.Length]
}

// rawMask is the mask of every frame rawFrame and zframe build.
var rawMask = [4]byte{0x5a, 0xc3, 0x17, 0x8e}

// rawFrame builds a masked client frame.
func rawFrame(op codec.Opcode, fin bool, payload []byte) []byte {
	return codec.AppendFrame(nil, codec.Header{Fin: fin, Opcode: op, Masked: true, Mask: rawMask}, payload)
}

// zframe builds a masked client frame with RSV1 set.
func zframe(op codec.Opcode, fin bool, z []byte) []byte {
	return codec.AppendFrame(nil, codec.Header{Fin: fin, Rsv: codec.Rsv1, Opcode: op, Masked: true, Mask: rawMask}, z)
}

// deflateTail is what a sync flush ends with, and permessage-deflate strips.
var deflateTail = []byte{0, 0, 0xff, 0xff}

// deflateRaw compresses p as a permessage-deflate message: one sync flush,
// the tail stripped.
func deflateRaw(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(p)
	fw.Flush()
	z := buf.Bytes()
	if !bytes.HasSuffix(z, deflateTail) {
		t.Fatalf("flush ended with % x", z[max(0, len(z)-4):])
	}
	return z[:len(z)-4]
}

// chrome is the extension offer a browser sends.
const chrome = "permessage-deflate; client_max_window_bits"
