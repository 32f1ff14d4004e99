//go:build !purego

package codec

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestMaskKernels runs both amd64 kernels directly, so the SSE2 one is
// covered on machines where Mask picks AVX2.
func TestMaskKernels(t *testing.T) {
	kernels := []struct {
		name string
		fn   func(b *byte, n int, key uint64)
		ok   bool
	}{
		{name: "AVX2", fn: maskAVX2, ok: hasAVX2},
		{name: "SSE2", fn: maskSSE2, ok: true},
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	k := binary.LittleEndian.Uint32(key[:])
	for _, kern := range kernels {
		if !kern.ok {
			t.Logf("%s: not supported by this CPU", kern.name)
			continue
		}
		for _, n := range []int{32, 64, 96, 128, 160, 256, 4096, 65536 + 32} {
			got := maskPattern(n + 7) // bytes past n must stay untouched
			want := bytes.Clone(got)
			maskRef(want[:n], key, 0)
			kern.fn(&got[0], n, uint64(k)<<32|uint64(k))
			if !bytes.Equal(got, want) {
				t.Fatalf("%s n=%d: mismatch", kern.name, n)
			}
		}
	}
}
