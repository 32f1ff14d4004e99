package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Window receives the boundaries of the measured window, after the warm-up:
// the driver samples the server there. Either func may be nil.
type Window struct {
	Start func()
	Stop  func()
}

// phases of a timed run, read by every connection on each read.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runPhases moves ph through warm-up, the measured window and stop,
// calling w's hooks at the window's edges, and returns the window's actual
// length. A cancelled ctx ends the current phase early.
func runPhases(ctx context.Context, ph *atomic.Int32, warmup, duration time.Duration, w Window) time.Duration {
	Sleep(ctx, warmup)
	if w.Start != nil {
		w.Start()
	}
	t0 := time.Now()
	ph.Store(phaseMeasure)
	Sleep(ctx, duration)
	ph.Store(phaseStop)
	elapsed := time.Since(t0)
	if w.Stop != nil {
		w.Stop()
	}
	return elapsed
}

// Sleep waits for d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errCounter counts errors across goroutines and keeps the first one.
type errCounter struct {
	mu    sync.Mutex
	n     int
	first error
}

func (e *errCounter) add(err error) {
	e.mu.Lock()
	e.n++
	if e.first == nil {
		e.first = err
	}
	e.mu.Unlock()
}

func (e *errCounter) result() (int, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		return e.n, ""
	}
	return e.n, e.first.Error()
}

// parallel runs f(i) for i in [0, n) on at most width goroutines.
func parallel(n, width int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, width) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
