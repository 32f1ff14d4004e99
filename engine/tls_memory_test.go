//go:build !race

package engine

import (
	"context"
	"runtime"
	"testing"
	"unsafe"
)

// TestTLSIdleMemory measures the heap an idle TLS connection holds after
// its upgrade, on the server and the event-loop client together (both
// keep the same state: Conn, the tlsConn view, crypto/tls's Conn with its
// ciphers and the buffers crypto/tls keeps), and reports half of it as the
// cost of one side. No goroutine or timer is left per connection.
func TestTLSIdleMemory(t *testing.T) {
	srv := startTLSServer(t, echo{}, Config{})
	cl, err := NewClient(BaseHandler{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(context.Background())
	const n = 400
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	g0 := runtime.NumGoroutine()
	before := heap()
	conns := make([]*Conn, 0, n)
	for range n {
		c, err := cl.Dial(t.Context(), wssURL(srv), &DialOptions{TLSConfig: testCerts(t).client()})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	after := heap()
	per := float64(after-before) / n / 2
	t.Logf("%.0f bytes of heap per idle TLS connection and side (%d connections); goroutines %d → %d",
		per, n, g0, runtime.NumGoroutine())
	if g := runtime.NumGoroutine(); g > g0+8 {
		t.Errorf("goroutines grew from %d to %d for %d idle connections", g0, g, n)
	}
	runtime.KeepAlive(conns)
}

// TestTLSConnSize guards the view an idle TLS connection holds beside its
// Conn and crypto/tls's state: on 64-bit platforms it stays in the
// 112-byte size class.
func TestTLSConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are budgeted for 64-bit platforms")
	}
	if n := unsafe.Sizeof(tlsConn{}); n > 112 {
		t.Fatalf("tlsConn is %d bytes, budget 112", n)
	}
}
