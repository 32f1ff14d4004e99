//go:build !amd64 || purego

package codec

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// maskBlocks XORs the largest multiple of 16 bytes at the start of p with
// the key stream k and returns how many bytes it did. Off amd64 (or with
// -tags purego) gobwas' ws.Cipher does the blocks: it has an arm64 kernel
// and a portable loop.
func maskBlocks(p []byte, k uint32) int {
	n := len(p) &^ 15
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], k)
	ws.Cipher(p[:n], key, 0)
	return n
}
