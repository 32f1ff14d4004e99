package goid

import (
	"sync"
	"testing"
)

func TestID(t *testing.T) {
	self := ID()
	if self == 0 || ID() != self {
		t.Fatalf("ID unstable or zero: %x %x", self, ID())
	}
	// The identity survives stack growth (the runtime moves the stack, not g).
	var deep func(n int) uintptr
	deep = func(n int) uintptr {
		var pad [512]byte
		_ = pad
		if n == 0 {
			return ID()
		}
		return deep(n - 1)
	}
	if got := deep(500); got != self {
		t.Fatalf("ID changed after stack growth: %x != %x", got, self)
	}
	// Live goroutines all differ from each other and from us: they stay
	// alive until every one has recorded its id, since an exited goroutine's
	// identity may be reused.
	const n = 16
	ids := make([]uintptr, n)
	var recorded, done sync.WaitGroup
	release := make(chan struct{})
	for i := range n {
		recorded.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ids[i] = ID()
			recorded.Done()
			<-release
		}()
	}
	recorded.Wait()
	close(release)
	done.Wait()
	seen := map[uintptr]bool{self: true}
	for _, id := range ids {
		if id == 0 || seen[id] {
			t.Fatalf("duplicate or zero id %x among %x", id, ids)
		}
		seen[id] = true
	}
}

func BenchmarkID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ID()
	}
}
