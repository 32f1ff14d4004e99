package codec

import (
	"strconv"
	"testing"

	"github.com/gobwas/ws"
)

// The three benchmarks share one file so that their ratios come from one run:
// Mask against gobwas' ws.Cipher it partly delegates to, and against copy,
// the memory-bandwidth floor for touching every byte once.

var maskBenchSizes = []int{8, 16, 125, 1024, 4096, 65536, 1048576}

var maskBenchKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func BenchmarkMask(b *testing.B) {
	for _, n := range maskBenchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			p := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			pos := 0
			for b.Loop() {
				pos = Mask(p, maskBenchKey, pos)
			}
		})
	}
}

func BenchmarkCipher(b *testing.B) {
	for _, n := range maskBenchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			p := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			pos := 0
			for b.Loop() {
				ws.Cipher(p, maskBenchKey, pos)
				pos = (pos + n) & 3
			}
		})
	}
}

func BenchmarkCopy(b *testing.B) {
	for _, n := range maskBenchSizes[1:] { // copy has no 8-byte row to compare
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			src := make([]byte, n)
			dst := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}
