//go:build !race

// The race detector makes sync.Pool drop items at random, so these run
// without it.

package pool

import "testing"

func TestGetPutAllocs(t *testing.T) {
	for _, n := range []int{0, 100, 4096, 1 << 20} {
		Put(Get(n)) // warm the class
		if a := testing.AllocsPerRun(100, func() {
			Put(Get(n))
		}); a != 0 {
			t.Errorf(
				"Get(%d)/Put: %v allocs, want 0",
				n, a,
			)
		}
	}
}

func TestGrowAllocs(t *testing.T) {
	if a := testing.AllocsPerRun(100, func() {
		b := Get(100)
		b = Grow(b, 128) // within the 128-byte class
		Put(b)
	}); a != 0 {
		t.Errorf(
			"Grow within a class: %v allocs, want 0",
			a,
		)
	}
	Put(Get(1000)) // warm the 1 KiB class
	if a := testing.AllocsPerRun(100, func() {
		b := Get(100)
		b = Grow(b, 1000) // to a warm class
		Put(b)
	}); a != 0 {
		t.Errorf(
			"Grow to a warm class: %v allocs, want 0",
			a,
		)
	}
}
