package engine

import "golang.org/x/sys/unix"

// setStreamTimeout makes the kernel drop a stream whose written bytes go
// unacknowledged for Config.IdleTimeout: a stream's client never sends, so
// the idle timeout cannot count from its reads, and the heartbeats are
// what TCP then times. Loop only.
func setStreamTimeout(c *Conn) {
	d := c.loop.srv.cfg.IdleTimeout
	if d <= 0 {
		return
	}
	// Best effort: without it a dead client is still found by TCP's own
	// retransmission limit, or by its backlog reaching MaxOutbound.
	_ = unix.SetsockoptInt(c.socket().Fd(), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(max(d.Milliseconds(), 1)))
}
