package load

import (
	"testing"
	"time"
)

func TestHistIndexMonotonic(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		i := histIndex(v)
		if i < prev || i > prev+1 {
			t.Fatalf("histIndex(%d) = %d after %d", v, i, prev)
		}
		prev = i
	}
	if i := histIndex(1<<63 - 1); i >= histBuckets {
		t.Fatalf("histIndex(max) = %d, want < %d", i, histBuckets)
	}
}

func TestHistQuantile(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		name string
		q    float64
		want time.Duration
	}{
		{name: "p50", q: 0.5, want: 500 * time.Microsecond},
		{name: "p90", q: 0.9, want: 900 * time.Microsecond},
		{name: "p99", q: 0.99, want: 990 * time.Microsecond},
		{name: "max", q: 1, want: 1000 * time.Microsecond},
	} {
		got := h.Quantile(tc.q)
		if got < tc.want*96/100 || got > tc.want*104/100 {
			t.Errorf("%s: got %v, want %v ±4%%", tc.name, got, tc.want)
		}
	}
}
