package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/internal/goid"
	"github.com/galews/gale/pool"
)

// loop is Gale's state for one gnet event loop. Everything but the fields
// marked otherwise is touched only by the loop's goroutine.
type loop struct {
	srv *Server
	el  gnet.EventLoop
	gid atomic.Uintptr // goid of the loop's goroutine, learnt at its first callback

	wheel wheel
	conns *Conn // open and handshaking connections, for broadcast and shutdown

	topics map[string]topicSet // this loop's subscribers by topic (topics.go)

	// Scratch space for building frames written straight from the loop.
	hdr       [2 * 14]byte
	iov       [][]byte
	out       []byte // handshake requests and responses
	mbuf      []byte // masked copies of client frames
	batch     []byte // frames written during the current OnTraffic (write.go)
	batchConn *Conn  // whose frames batch holds
	tlsOut    []byte // records crypto/tls produced, until written to gnet (tls.go)
	evbuf     []byte // an event being encoded (eventstream.go)

	z loopDeflate // compression scratch (deflate.go)

	// spare is the last reassembly buffer released, kept for the next
	// message: a message that grows through several size classes would
	// otherwise churn the shared pools on every message.
	spareBuf *[]byte

	tickNow atomic.Int64 // the tick the ticker asks the loop to advance to

	// Connections with a backlog or paused reading (limits.go), and the
	// timer that checks them while there are any.
	watched, watchSpare []*Conn
	watching            bool
	watchTimer          *time.Timer

	// Connections with bytes or a close queued by other goroutines, and
	// whether a drain is already scheduled. Guarded by mu.
	mu      sync.Mutex
	ready   []*Conn
	spare   []*Conn
	pending bool

	stats loopStats
	_     [64]byte // keep the next loop's hot fields off this cache line
}

// onLoop reports whether the caller runs on l's goroutine.
func (l *loop) onLoop() bool { return goid.ID() == l.gid.Load() }

// enter records the loop goroutine's identity; called at the top of every
// gnet callback (a load and compare once known).
func (l *loop) enter() {
	if l.gid.Load() == 0 {
		l.gid.Store(goid.ID())
	}
}

// link adds c to the loop's list of connections.
func (l *loop) link(c *Conn) {
	c.lnext = l.conns
	if l.conns != nil {
		l.conns.lprev = c
	}
	l.conns = c
}

// unlink removes c from the loop's list.
func (l *loop) unlink(c *Conn) {
	if c.lprev != nil {
		c.lprev.lnext = c.lnext
	} else if l.conns == c {
		l.conns = c.lnext
	}
	if c.lnext != nil {
		c.lnext.lprev = c.lprev
	}
	c.lnext, c.lprev = nil, nil
}

// wake asks the loop to drain c's queue. Called by other goroutines with
// c.wmu not held; one Execute per batch, however many writes join it.
func (l *loop) wake(c *Conn) {
	l.mu.Lock()
	l.ready = append(l.ready, c)
	first := !l.pending
	l.pending = true
	l.mu.Unlock()
	if first {
		if err := l.el.Execute(context.Background(), drainer{l}); err != nil {
			// The engine is shutting down; the connection goes with it.
			l.mu.Lock()
			l.pending = false
			l.mu.Unlock()
		}
	}
}

// drainer is the runnable that flushes queued writes on the loop.
type drainer struct{ l *loop }

func (d drainer) Run(context.Context) error {
	l := d.l
	l.enter()
	l.mu.Lock()
	batch := l.ready
	l.ready, l.spare = l.spare[:0], nil
	l.pending = false
	l.mu.Unlock()
	for i, c := range batch {
		c.flushQueue()
		batch[i] = nil
	}
	l.mu.Lock()
	if l.spare == nil {
		l.spare = batch[:0]
	}
	l.mu.Unlock()
	return nil
}

// maxSpare bounds the buffer a loop keeps between messages.
const maxSpare = 1 << 20

// getBuf returns an empty buffer with room for at least n bytes.
func (l *loop) getBuf(n int) *[]byte {
	if b := l.spareBuf; b != nil && cap(*b) >= n {
		l.spareBuf = nil
		*b = (*b)[:0]
		return b
	}
	b := pool.Get(n)
	*b = (*b)[:0]
	return b
}

// putBuf takes back a buffer from getBuf, keeping the larger of it and the
// spare (up to maxSpare) for the next message.
func (l *loop) putBuf(b *[]byte) {
	if cap(*b) > maxSpare {
		pool.Put(b)
		return
	}
	if l.spareBuf != nil {
		if cap(*l.spareBuf) >= cap(*b) {
			pool.Put(b)
			return
		}
		pool.Put(l.spareBuf)
	}
	l.spareBuf = b
}

// tickRunner is the loop as the runnable that advances its wheel; a pointer
// conversion, so scheduling a tick allocates nothing on Gale's side.
type tickRunner loop

func (t *tickRunner) Run(context.Context) error {
	l := (*loop)(t)
	l.enter()
	l.wheel.advance(l.tickNow.Load(), (*Conn).onTimer)
	return nil
}
