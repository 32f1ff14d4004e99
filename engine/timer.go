package engine

import "github.com/galews/gale/codec"

// wheelSlots is the number of slots in a loop's timing wheel. Deadlines
// further out than one revolution stay in their slot and are skipped until
// their round comes.
const wheelSlots = 256

// timerLink is the intrusive part of a connection that the wheel strings
// into its slot lists, so arming a timer allocates nothing and an idle
// connection has no timer object of its own.
//
// The tick itself is Conn.timerAt: 32 bits, which pack beside the Conn's
// other 32-bit fields where an int64 here would cost a word of its own.
type timerLink struct {
	next, prev *Conn
}

// maxAhead bounds how far ahead a connection is armed: deadlines are kept
// in 32 bits and compared modulo 2³², which holds within 2³¹ ticks. A
// later one is armed at the bound (62 days at the finest tick, 5 ms):
// onTimer re-arms a keepalive that fires before its time, and a handshake
// or close timeout longer than that ends at the bound.
const maxAhead = 1 << 30

// due reports whether tick at has come by tick now, modulo 2³².
func due(at uint32, now int64) bool { return int32(at-uint32(now)) <= 0 }

// wheel is a hashed timing wheel owned by one event loop and advanced only
// from inside it, so it needs no locks.
type wheel struct {
	slots [wheelSlots]*Conn
	now   int64 // last tick processed
}

// schedule arms c for tick at (clamped to the next tick), replacing any
// earlier arming.
func (w *wheel) schedule(c *Conn, at int64) {
	if at <= w.now {
		at = w.now + 1
	}
	at = min(at, w.now+maxAhead)
	if c.timerAt != 0 {
		w.remove(c)
	}
	// 0 means "not armed": a deadline that wraps to it is kept a tick
	// later (wheelSlots divides 2³², so the slot follows the tick).
	c.timerAt = max(uint32(at), 1)
	head := &w.slots[c.timerAt%wheelSlots]
	c.timer.next = *head
	c.timer.prev = nil
	if *head != nil {
		(*head).timer.prev = c
	}
	*head = c
}

// remove disarms c; a no-op when it is not armed.
func (w *wheel) remove(c *Conn) {
	if c.timerAt == 0 {
		return
	}
	if c.timer.prev != nil {
		c.timer.prev.timer.next = c.timer.next
	} else {
		w.slots[c.timerAt%wheelSlots] = c.timer.next
	}
	if c.timer.next != nil {
		c.timer.next.timer.prev = c.timer.prev
	}
	c.timer = timerLink{}
	c.timerAt = 0
}

// advance processes every tick up to now, calling fire for each connection
// whose tick has come (disarmed first, so fire may re-arm it).
func (w *wheel) advance(now int64, fire func(*Conn)) {
	// After a long stall, one revolution visits every slot once.
	if now-w.now > wheelSlots {
		w.now = now - wheelSlots
	}
	for w.now < now {
		w.now++
		c := w.slots[w.now%wheelSlots]
		for c != nil {
			next := c.timer.next
			if due(c.timerAt, w.now) {
				w.remove(c)
				fire(c)
			}
			c = next
		}
	}
}

// Keepalive: the policy the wheel carries out for open connections. Each
// connection is armed for its next deadline only: the idle timeout counted
// from the last bytes received, or the next ping, whichever comes first.

// armKeepalive arms the wheel for the next idle deadline or ping.
func (c *Conn) armKeepalive() {
	l := c.loop
	cfg := &l.srv.cfg
	now := l.wheel.now
	var next int64
	if c.stream {
		// A stream's client sends nothing: no idle deadline, and a
		// heartbeat every PingInterval.
		if cfg.PingInterval > 0 {
			l.wheel.schedule(c, now-c.since(c.lastPing)+l.srv.ticks(cfg.PingInterval))
		} else {
			l.wheel.remove(c) // the handshake deadline
		}
		return
	}
	if cfg.IdleTimeout > 0 {
		next = now - c.since(c.lastRead) + l.srv.ticks(cfg.IdleTimeout)
	}
	if cfg.PingInterval > 0 {
		p := now - min(c.since(c.lastRead), c.since(c.lastPing)) + l.srv.ticks(cfg.PingInterval)
		if next == 0 || p < next {
			next = p
		}
	}
	if next != 0 {
		l.wheel.schedule(c, next)
	} else {
		l.wheel.remove(c)
	}
}

// since returns the ticks from the (32-bit) tick t to now.
func (c *Conn) since(t uint32) int64 { return int64(uint32(c.loop.wheel.now) - t) }

// stamp returns the current tick in the 32 bits a Conn keeps.
func (l *loop) stamp() uint32 { return uint32(l.wheel.now) }

// onTimer runs when the connection's tick comes. Loop only.
func (c *Conn) onTimer() {
	l := c.loop
	cfg := &l.srv.cfg
	switch c.state {
	case stateHandshake:
		c.abort(ErrHandshakeTimeout)
	case stateClosing:
		c.abort(ErrCloseTimeout)
	case stateOpen:
		if c.stream {
			c.lastPing = l.stamp()
			if c.sendLoop(outFrame{op: codec.OpPing, raw: true, own: true, p: heartbeat}) == nil {
				c.armKeepalive()
			}
			return
		}
		if cfg.IdleTimeout > 0 && c.since(c.lastRead) >= l.srv.ticks(cfg.IdleTimeout) {
			c.failWith(codec.StatusGoingAway, "idle timeout", ErrIdleTimeout)
			return
		}
		if cfg.PingInterval > 0 && min(c.since(c.lastRead), c.since(c.lastPing)) >= l.srv.ticks(cfg.PingInterval) {
			c.lastPing = l.stamp()
			if c.sendLoop(outFrame{op: codec.OpPing, fin: true, own: true}) != nil {
				return
			}
		}
		c.armKeepalive()
	}
}
