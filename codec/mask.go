package codec

import (
	"encoding/binary"
	"math/bits"
)

// blockMin is the length from which Mask hands whole blocks to maskBlocks
// (SIMD on amd64, gobwas' ws.Cipher elsewhere); below it maskWords'
// eight-byte XORs finish first. Measured with BenchmarkMask.
const blockMin = 128

// Mask XORs p in place with the masking key (RFC 6455 §5.3), starting at
// byte pos of the key stream, and returns the position to pass with the next
// chunk, (pos+len(p)) & 3. Masking and unmasking are the same operation, so a
// payload that arrives in several reads can be unmasked read by read:
//
//	pos := 0
//	pos = Mask(first, key, pos)
//	pos = Mask(second, key, pos)
//
// Only pos's low two bits matter, so a running byte count may be passed.
func Mask(p []byte, key [4]byte, pos int) int {
	next := (pos + len(p)) & 3
	k := binary.LittleEndian.Uint32(key[:])
	if pos&3 != 0 {
		// Rotate the key so that p[0] meets its first byte; every multiple
		// of four bytes after it then does too, and no byte needs a %4.
		k = bits.RotateLeft32(k, -8*(pos&3))
		binary.LittleEndian.PutUint32(key[:], k)
	}
	if len(p) < blockMin {
		maskWords(p, k)
		return next
	}
	n := maskBlocks(p, k)
	if n < len(p) {
		// The tail starts on a multiple of 4 bytes, so k still lines up.
		maskWords(p[n:], k)
	}
	return next
}

// maskWords XORs p with the key stream k, a little-endian key aligned to
// p[0]. The little-endian loads and stores compile to plain MOVs, so this
// does eight bytes per instruction pair with no assembly.
func maskWords(p []byte, k uint32) {
	m := uint64(k)<<32 | uint64(k)
	for len(p) >= 32 {
		q := p[:32] // one bounds check for the four words
		binary.LittleEndian.PutUint64(q, binary.LittleEndian.Uint64(q)^m)
		binary.LittleEndian.PutUint64(q[8:], binary.LittleEndian.Uint64(q[8:])^m)
		binary.LittleEndian.PutUint64(q[16:], binary.LittleEndian.Uint64(q[16:])^m)
		binary.LittleEndian.PutUint64(q[24:], binary.LittleEndian.Uint64(q[24:])^m)
		p = p[32:]
	}
	if len(p) >= 16 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^m)
		binary.LittleEndian.PutUint64(p[8:], binary.LittleEndian.Uint64(p[8:])^m)
		p = p[16:]
	}
	if len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^m)
		p = p[8:]
	}
	if len(p) >= 4 {
		binary.LittleEndian.PutUint32(p, binary.LittleEndian.Uint32(p)^k)
		p = p[4:]
	}
	if len(p) >= 2 {
		binary.LittleEndian.PutUint16(p, binary.LittleEndian.Uint16(p)^uint16(k))
		p = p[2:]
		k >>= 16
	}
	if len(p) == 1 {
		p[0] ^= byte(k)
	}
}
