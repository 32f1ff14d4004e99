package pool

import (
	"math/bits"
	"sync"
)

const (
	minShift = 6  // smallest class: 64 B, below which pooling costs more than it saves
	maxShift = 26 // largest class: MaxPooled

	// MaxPooled is the largest buffer kept for reuse (64 MiB). Larger ones
	// are allocated by Get and left to the garbage collector by Put:
	// keeping them would pin rare huge messages in memory.
	MaxPooled = 1 << maxShift
)

// classes[i] holds *[]byte of capacity exactly 1<<(i+minShift).
var classes [maxShift - minShift + 1]sync.Pool

// class returns the index of the smallest class that holds n bytes,
// 0 <= n <= MaxPooled.
func class(n int) int {
	if n <= 1<<minShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a buffer with len n and capacity the smallest power of two
// ≥ n (min class 64 B). Above MaxPooled it allocates and Put drops it.
//
// The bytes are not zeroed. Give the buffer back with Put when done with it;
// n must not be negative.
func Get(n int) *[]byte {
	if n < 0 {
		panic("pool: negative buffer length")
	}
	if n > MaxPooled {
		b := make([]byte, n)
		return &b
	}
	c := class(n)
	if v := classes[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minShift))
	return &b
}

// Put returns b to its class; b must not be used afterwards. Buffers whose
// cap is not exactly a class size are dropped (never pollute a class), so a
// buffer from elsewhere, or one resliced to a smaller capacity, is safe to
// pass. nil is ignored.
func Put(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)
	if c < 1<<minShift || c > MaxPooled || c&(c-1) != 0 {
		return
	}
	*b = (*b)[:0]
	classes[bits.TrailingZeros(uint(c))-minShift].Put(b)
}

// Grow returns a buffer of len ≥ n with b's contents copied: b itself when
// cap suffices (len extended), else a bigger class with b Put back, so b
// must not be used after Grow, only its result. A len already ≥ n is kept;
// bytes past the old len are not zeroed. A nil b is Get(n).
func Grow(b *[]byte, n int) *[]byte {
	if b == nil {
		return Get(n)
	}
	if n <= len(*b) {
		return b
	}
	if n <= cap(*b) {
		*b = (*b)[:n]
		return b
	}
	nb := Get(n)
	copy(*nb, *b)
	Put(b)
	return nb
}
