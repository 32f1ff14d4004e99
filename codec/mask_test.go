package codec

import (
	"bytes"
	"testing"
)

// maskRef is the RFC 6455 §5.3 definition, byte by byte.
func maskRef(p []byte, key [4]byte, pos int) {
	for i := range p {
		p[i] ^= key[(pos+i)%4]
	}
}

// maskPattern returns n bytes that differ from their neighbours, so a byte
// masked with the wrong key byte or at the wrong index shows.
func maskPattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

var maskKeys = []struct {
	name string
	key  [4]byte
}{
	{
		name: "zero",
		key:  [4]byte{},
	},
	{
		name: "distinct",
		key:  [4]byte{0x37, 0xfa, 0x21, 0x3d},
	},
	{
		name: "ones",
		key:  [4]byte{0xff, 0xff, 0xff, 0xff},
	},
	{
		name: "one byte set",
		key:  [4]byte{0, 0, 0x80, 0},
	},
}

func TestMask(t *testing.T) {
	const guard = 8 // untouched bytes on each side, and room to misalign p
	for _, tc := range maskKeys {
		t.Run(tc.name, func(t *testing.T) {
			for n := 0; n <= 300; n++ {
				for pos := range 4 {
					for _, off := range []int{0, 1, 3} {
						buf := maskPattern(n + 2*guard)
						want := bytes.Clone(buf)
						maskRef(want[guard+off:guard+off+n], tc.key, pos)
						p := buf[guard+off : guard+off+n]
						next := Mask(p, tc.key, pos)
						if !bytes.Equal(buf, want) {
							t.Fatalf(
								"Mask(len %d, pos %d, offset %d) = %x, want %x",
								n, pos, off, buf, want,
							)
						}
						if next != (pos+n)%4 {
							t.Fatalf(
								"Mask(len %d, pos %d) returned %d, want %d",
								n, pos, next, (pos+n)%4,
							)
						}
					}
				}
			}
		})
	}
}

// TestMaskPosHighBits checks that only pos's low two bits matter, as a caller
// that counts payload bytes may pass the running count.
func TestMaskPosHighBits(t *testing.T) {
	key := maskKeys[1].key
	for _, n := range []int{5, 100, 300} {
		for pos := range 4 {
			want := maskPattern(n)
			Mask(want, key, pos)
			got := maskPattern(n)
			next := Mask(got, key, pos+1024)
			if !bytes.Equal(got, want) {
				t.Fatalf(
					"Mask(len %d, pos %d) differs from pos %d",
					n, pos+1024, pos,
				)
			}
			if next != (pos+n)%4 {
				t.Fatalf(
					"Mask(len %d, pos %d) returned %d, want %d",
					n, pos+1024, next, (pos+n)%4,
				)
			}
		}
	}
}

// TestMaskChunked splits a payload at every boundary, in two and in three
// pieces, and chains the returned position: the result must equal masking
// the whole payload at once, as when a frame arrives over several reads.
func TestMaskChunked(t *testing.T) {
	key := maskKeys[1].key
	for _, n := range []int{0, 1, 7, 31, 64, 300, 600} {
		for start := range 4 {
			want := maskPattern(n)
			Mask(want, key, start)
			for i := 0; i <= n; i++ {
				got := maskPattern(n)
				pos := Mask(got[:i], key, start)
				Mask(got[i:], key, pos)
				if !bytes.Equal(got, want) {
					t.Fatalf(
						"len %d, pos %d split at %d: got %x, want %x",
						n, start, i, got, want,
					)
				}
			}
			if n > 64 {
				continue // three-way splits are quadratic; the short ones cover the edges
			}
			for i := 0; i <= n; i++ {
				for j := i; j <= n; j++ {
					got := maskPattern(n)
					pos := Mask(got[:i], key, start)
					pos = Mask(got[i:j], key, pos)
					Mask(got[j:], key, pos)
					if !bytes.Equal(got, want) {
						t.Fatalf(
							"len %d, pos %d split at %d and %d: got %x, want %x",
							n, start, i, j, got, want,
						)
					}
				}
			}
		}
	}
}

// TestMaskRoundTrip masks twice: XOR with the same key stream is its own
// inverse, which is what lets one function both mask and unmask.
func TestMaskRoundTrip(t *testing.T) {
	for _, tc := range maskKeys {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 15, 16, 17, 255, 256, 257, 4096 + 13} {
				for pos := range 4 {
					orig := maskPattern(n)
					p := bytes.Clone(orig)
					Mask(p, tc.key, pos)
					Mask(p, tc.key, pos)
					if !bytes.Equal(p, orig) {
						t.Fatalf(
							"len %d, pos %d: masking twice changed the payload",
							n, pos,
						)
					}
				}
			}
		})
	}
}
