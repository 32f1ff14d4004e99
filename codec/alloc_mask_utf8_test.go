//go:build !race

// Allocation counts are only meaningful without the race detector.

package codec

import "testing"

func TestMaskAllocs(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 8, 15, 125, 1024, 65536} {
		p := make([]byte, n)
		if a := testing.AllocsPerRun(100, func() {
			Mask(p, key, 1)
		}); a != 0 {
			t.Errorf(
				"Mask(%d bytes): %v allocs, want 0",
				n, a,
			)
		}
	}
}

func TestUTF8Allocs(t *testing.T) {
	for _, n := range []int{64, 1024, 65536} {
		for _, mixed := range []bool{false, true} {
			p := utf8Text(n, mixed)
			var v UTF8Validator
			if a := testing.AllocsPerRun(100, func() {
				v.Reset()
				v.Write(p[:n/2+1]) // likely cuts a rune when mixed
				v.Write(p[n/2+1:])
				v.Done()
			}); a != 0 {
				t.Errorf(
					"UTF8Validator on %d bytes (mixed %v): %v allocs, want 0",
					n, mixed, a,
				)
			}
			if a := testing.AllocsPerRun(100, func() {
				ValidUTF8(p)
			}); a != 0 {
				t.Errorf(
					"ValidUTF8 on %d bytes (mixed %v): %v allocs, want 0",
					n, mixed, a,
				)
			}
		}
	}
}
