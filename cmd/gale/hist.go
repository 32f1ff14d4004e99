package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in log-linear buckets: 32 per power of two,
// so a percentile is exact to about 3 %. Adds are lock-free, for the event
// loops that record into it concurrently.
type histogram struct {
	counts [64 * 32]atomic.Uint64
	max    atomic.Int64
}

const subBits = 5

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	exp := bits.Len64(v) - 1
	return (exp-subBits+1)<<subBits | int(v>>(exp-subBits))&(1<<subBits-1)
}

// bucketMax is the largest value that falls into bucket i.
func bucketMax(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	exp := i>>subBits + subBits - 1
	mant := uint64(i&(1<<subBits-1)) | 1<<subBits
	return (mant+1)<<(exp-subBits) - 1
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.max.Store(0)
}

// percentiles returns the values at each quantile q (0 < q ≤ 1).
func (h *histogram) percentiles(qs ...float64) []time.Duration {
	var total uint64
	var snap [len(histogram{}.counts)]uint64
	for i := range h.counts {
		snap[i] = h.counts[i].Load()
		total += snap[i]
	}
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out
	}
	for j, q := range qs {
		rank := uint64(q*float64(total) + 0.5)
		rank = max(rank, 1)
		var seen uint64
		for i, n := range snap {
			seen += n
			if seen >= rank {
				out[j] = time.Duration(min(bucketMax(i), uint64(h.max.Load())))
				break
			}
		}
	}
	return out
}
