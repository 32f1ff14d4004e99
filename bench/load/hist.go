package load

import (
	"math/bits"
	"time"
)

// Hist is a log-linear latency histogram: exact below 64 ns, then 32
// buckets per power of two (at most 3% error), fixed size, no allocation
// on Record. The zero value is ready.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSub     = 32 // buckets per power of two
	histBuckets = 2*histSub + (63-6)*histSub
)

func histIndex(v uint64) int {
	l := bits.Len64(v)
	if l <= 6 {
		return int(v)
	}
	e := l - 6
	return 2*histSub + (e-1)*histSub + int(v>>e) - histSub
}

// histValue returns the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	e := (i-2*histSub)/histSub + 1
	m := uint64((i-2*histSub)%histSub + histSub)
	return m<<e + (uint64(1)<<e)/2
}

// Record adds one sample.
func (h *Hist) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's samples to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns the number of samples.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest sample, exactly.
func (h *Hist) Max() time.Duration { return h.max }

// Quantile returns the q-quantile (0 < q ≤ 1) within the bucket error, or
// 0 without samples.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histValue(i)), h.max)
		}
	}
	return h.max
}

// Latency summarises a histogram in microseconds.
type Latency struct {
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us"`
}

// Summary returns h's percentiles in microseconds.
func (h *Hist) Summary() Latency {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return Latency{
		P50: us(h.Quantile(0.50)),
		P90: us(h.Quantile(0.90)),
		P99: us(h.Quantile(0.99)),
		Max: us(h.max),
	}
}
