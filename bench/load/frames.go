package load

import (
	"math/rand/v2"

	"github.com/galews/gale/codec"
)

// frameSet is a cycle of distinct messages prebuilt as masked client frames,
// shared read-only by every connection: connection i sends frames[k%len] as
// its k-th message and expects payloads[k%len] back, so a reordered, lost or
// corrupted echo shows as a mismatch.
type frameSet struct {
	op       codec.Opcode
	frames   [][]byte // masked frames, ready to write
	payloads [][]byte // the unmasked payloads the echoes must carry
}

func newFrameSet(op codec.Opcode, size, cycle int) *frameSet {
	fs := &frameSet{op: op}
	rng := rand.New(rand.NewPCG(uint64(size), uint64(op)))
	const printable = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_"
	for range cycle {
		p := make([]byte, size)
		for i := range p {
			if op == codec.OpText {
				p[i] = printable[rng.IntN(len(printable))]
			} else {
				p[i] = byte(rng.Uint32())
			}
		}
		var key [4]byte
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		f := codec.AppendFrameHeader(make([]byte, 0, codec.MaxHeaderLen+size), codec.Header{
			Fin: true, Opcode: op, Masked: true, Mask: key, Length: int64(size),
		})
		start := len(f)
		f = append(f, p...)
		codec.Mask(f[start:], key, 0)
		fs.frames = append(fs.frames, f)
		fs.payloads = append(fs.payloads, p)
	}
	return fs
}
