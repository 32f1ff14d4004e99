package engine

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/flate"
)

// BenchmarkDeflateEcho (Gale plain and compressed against gorilla with
// EnableCompression, over loopback) is in bench/interop.

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
