package engine

import (
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// noDelay reads TCP_NODELAY from the socket behind c.
func noDelay(t *testing.T, c *Conn) int {
	t.Helper()
	v, err := unix.GetsockoptInt(c.gc.Fd(), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil {
		t.Fatalf("getsockopt TCP_NODELAY: %v", err)
	}
	return v
}

// TestNoDelayKept pins what the engine relies on in not setting TCP_NODELAY
// itself: the sockets the loops receive, accepted and dialled, already have
// it (small frames go out at once, not after the peer's delayed ACK).
func TestNoDelayKept(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, rec, Config{})

	nc, _, _, err := ws.Dial(t.Context(), wsURL(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc := recv(t, rec.opens, "server OnOpen")
	if got := noDelay(t, sc); got == 0 {
		t.Errorf("accepted connection: TCP_NODELAY is off")
	}

	cl := newTestClient(t, newRecorder(), Config{})
	cc, err := cl.Dial(t.Context(), wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := noDelay(t, cc); got == 0 {
		t.Errorf("dialled connection: TCP_NODELAY is off")
	}
	recv(t, rec.opens, "server OnOpen (event-loop client)")
}
