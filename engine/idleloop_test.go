package engine

import (
	"context"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Helpers for the idle-loop tests. A loop with no connection gets no ticks
// (runTicker skips it), so its wheel stands still while the server's clock
// runs on; register catches it up when the next connection arrives. The
// tests make the idle spell by moving the server's tick 0 (Server.base)
// back before Start instead of sleeping through it, and observe the wheel
// on the loop instead of racing a sleep against the ticker.

// startIdleServer starts a server whose loops, at their first connection,
// have stood still for idle: exactly a loop's state after an idle spell.
func startIdleServer(t testing.TB, h Handler, cfg Config, idle time.Duration) *Server {
	t.Helper()
	srv, err := NewServer(h, cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv.base = srv.base.Add(-idle) // before Start: no goroutine reads it yet
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// wheelNow reads the tick l's wheel stands at, on the loop.
func wheelNow(t testing.TB, l *loop) int64 {
	t.Helper()
	ch := make(chan int64, 1)
	err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		ch <- l.wheel.now
		return nil
	}))
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return rawRecv(t, ch, "the loop's wheel")
}

// waitWheelAdvanced waits until a connection is registered on srv's single
// loop and the loop has then processed ticks: every timer due by the tick
// it reached has fired.
func waitWheelAdvanced(t testing.TB, srv *Server) {
	t.Helper()
	pollUntil(t, "a connection registered", func() bool { return srv.Stats().Open > 0 })
	l := srv.loopList()[0]
	start := wheelNow(t, l)
	pollUntil(t, "the wheel to advance", func() bool { return wheelNow(t, l) > start+1 })
}
