package engine

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEventStreamUserTimeout: a stream's socket carries IdleTimeout as
// TCP_USER_TIMEOUT, the kernel's bound on unacknowledged heartbeats; a
// WebSocket connection's does not.
func TestEventStreamUserTimeout(t *testing.T) {
	h := newStreamHandler()
	got := make(chan int, 2)
	h.onOpen = func(c *Conn) {
		v, err := unix.GetsockoptInt(c.socket().Fd(), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		if err != nil {
			v = -1
		}
		got <- v
	}
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll, IdleTimeout: 1500 * time.Millisecond})
	dialStream(t, srv.Addr(), "/")
	if v := recv(t, got, "the stream's timeout"); v != 1500 {
		t.Fatalf("stream: TCP_USER_TIMEOUT %d ms, want 1500", v)
	}
	p := dialGale(t, wsURL(srv))
	defer p.Drop()
	if v := recv(t, got, "the WebSocket's timeout"); v != 0 {
		t.Fatalf("WebSocket: TCP_USER_TIMEOUT %d ms, want 0", v)
	}
}
