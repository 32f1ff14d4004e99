package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
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
		start    func(b *testing.B, cfg CompressionConfig) string
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
				addr := sv.start(b, CompressionConfig{Enabled: sv.deflate, ContextTakeover: sv.takeover})
				ext := ""
				frame := rawFrame(sz.op, true, payload)
				if sv.deflate {
					ext = chrome
					frame = zframe(sz.op, true, deflateRaw(b, nil, payload))
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

func startGaleBench(b *testing.B, cfg CompressionConfig) string {
	srv := startServer(b, echo{}, Config{Loops: 1, Compression: cfg})
	return srv.Addr().String()
}

func startGorillaBench(b *testing.B, _ CompressionConfig) string {
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

// BenchmarkDeflateCodec measures Gale's compress and inflate of one message
// with no I/O: what a compressed echo costs the server's CPU beyond a plain
// one.
func BenchmarkDeflateCodec(b *testing.B) {
	for _, n := range []int{1 << 10, 16 << 10, 64 << 10} {
		p := jsonLines(n, 2)
		b.Run(fmt.Sprintf("compress-%dKiB", n>>10), func(b *testing.B) {
			var s sink
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				s.deflate(p, DefaultCompressionLevel, 15, nil)
			}
		})
		b.Run(fmt.Sprintf("compress-%dKiB-with-32KiB-window", n>>10), func(b *testing.B) {
			var s sink
			dict := jsonLines(32<<10, 3)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				s.deflate(p, DefaultCompressionLevel, 15, dict)
			}
		})
		b.Run(fmt.Sprintf("inflate-%dKiB", n>>10), func(b *testing.B) {
			srv := &Server{cfg: Config{MaxMessageSize: DefaultMaxMessageSize}}
			c := &Conn{loop: &loop{srv: srv}, dfl: deflateState{on: true, rxReset: true, rxBits: 15}}
			z := deflateRaw(b, nil, p)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				c.appendMsg(z)
				out, err := c.inflate()
				if err != nil || len(*out) != n {
					b.Fatal(err)
				}
				c.loop.z.putMsg(out)
				c.releaseMsg()
			}
		})
	}
}

// BenchmarkFlateMemory measures what one compressor and one decompressor
// cost: what a loop keeps once it has compressed and inflated a message,
// and what each connection would cost if it kept its own. B/op and
// allocs/op are what building one and running one message through it
// allocates; heap-B/instance is what stays in use afterwards, measured over
// a batch of live instances.
func BenchmarkFlateMemory(b *testing.B) {
	z := deflateRaw(b, nil, jsonLines(4000, 1))
	newWriter := func(level int) func() any {
		return func() any {
			fw, _ := flate.NewWriter(io.Discard, level)
			fw.Write(z)
			fw.Flush()
			return fw
		}
	}
	newWindowWriter := func(bits int) func() any {
		return func() any {
			fw, _ := flate.NewWriterWindow(io.Discard, 1<<bits)
			fw.Write(z)
			fw.Flush()
			return fw
		}
	}
	newReader := func() any {
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(deflateTail)))
		io.Copy(io.Discard, fr)
		return fr
	}
	cases := []struct {
		name  string
		alloc func() any
	}{
		{"writer-level-1", newWriter(1)},
		{"writer-level-5", newWriter(5)},
		{"writer-level-9", newWriter(9)},
		{"writer-window-256", newWindowWriter(8)},
		{"writer-window-4096", newWindowWriter(12)},
		{"reader", newReader},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink any
			for b.Loop() {
				sink = tc.alloc()
			}
			runtime.KeepAlive(sink)
			b.ReportMetric(retainedHeap(tc.alloc), "heap-B/instance")
		})
	}
}

// retainedHeap returns the heap in use per live value that alloc returns,
// over a batch of 16 held at once.
func retainedHeap(alloc func() any) float64 {
	const n = 16
	keep := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = alloc()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
}
