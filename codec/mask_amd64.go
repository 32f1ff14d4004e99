//go:build !purego

package codec

import "golang.org/x/sys/cpu"

// hasAVX2 selects the 32-byte kernel; every amd64 CPU has SSE2.
var hasAVX2 = cpu.X86.HasAVX2

// maskBlocks XORs the largest multiple of 32 bytes at the start of p with
// the key stream k (little-endian, aligned to p[0]) and returns how many
// bytes it did. The kernels are called directly, with no wrapper between
// Mask and the loop, which is what lets Mask keep up with gobwas' Cipher
// at every size.
func maskBlocks(p []byte, k uint32) int {
	n := len(p) &^ 31
	if n == 0 {
		return 0
	}
	key := uint64(k)<<32 | uint64(k)
	if hasAVX2 {
		maskAVX2(&p[0], n, key)
	} else {
		maskSSE2(&p[0], n, key)
	}
	return n
}

// maskAVX2 and maskSSE2 XOR n bytes at b (n a multiple of 32) with key.
//
//go:noescape
func maskAVX2(b *byte, n int, key uint64)

//go:noescape
func maskSSE2(b *byte, n int, key uint64)
