package main

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in a bucket whose bounds hold it, within 1/32.
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 1000, 1023, 1024, 123456, 1 << 40, 1<<63 + 12345} {
		i := bucketOf(v)
		hi := bucketMax(i)
		lo := uint64(0)
		if i > 0 {
			lo = bucketMax(i-1) + 1
		}
		if v < lo || v > hi {
			t.Fatalf("v=%d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if v >= 32 && float64(hi-lo+1) > float64(v)/16 {
			t.Fatalf("v=%d: bucket width %d too coarse", v, hi-lo+1)
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	got := h.percentiles(0.5, 0.99, 1)
	want := []time.Duration{500 * time.Microsecond, 990 * time.Microsecond, 1000 * time.Microsecond}
	for i := range got {
		if d := got[i] - want[i]; d < 0 || d > want[i]/30 {
			t.Errorf("q%d: got %v, want %v (+3%%)", i, got[i], want[i])
		}
	}
	h.reset()
	if p := h.percentiles(0.5); p[0] != 0 {
		t.Fatalf("after reset: %v", p)
	}
}
