package engine

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galews/gale/codec"
)

// Limits on what a server holds for peers that send faster than they read.
//
// Backlog: the bytes written to a connection that the kernel has not taken
// yet (gnet's outbound buffer) plus those queued by other goroutines. A
// message that meets a backlog of Config.MaxOutbound is the sign of a peer
// that does not read; admit (write.go) applies Config.OutboundPolicy to it.
//
// Read backpressure: a connection whose backlog passes half of MaxOutbound
// is not read further (its frames are not parsed, so its handler writes no
// more replies) until the backlog falls under an eighth. gnet v2.10 cannot
// stop reading a socket (its level-triggered registration is internal and
// it has no pause call), so what the peer sends meanwhile waits in gnet's
// inbound buffer; past MaxOutbound of it (one read's worth while the server
// is over its memory budget) the peer is neither reading nor waiting and is
// dropped.
//
// Memory budget: the server counts, across connections, the backlogs, the
// unread bytes of paused connections, queued writes and message
// reassembly buffers. Past Config.MemoryBudget: a message to a connection
// with any backlog is refused or drops it (OutboundPolicy); a message
// waiting for reassembly is not read further until memory falls under the
// budget; and, under OutboundClose, the paused connections are dropped with
// 1013 until it does. A connection that keeps up is never dropped for
// the budget.
//
// Paused and backlogged connections are on their loop's watch list, which
// a timer checks every watchEvery while it is not empty: it resumes
// connections that drained and applies the budget. After a burst, once
// the memory held has fallen well below its peak, the server returns the
// freed memory to the operating system (releaseAfterBurst).

// Why reading is held back (Conn.paused).
const (
	pausedBacklog uint8 = 1 << iota // the backlog passed the high-water mark
	pausedBudget                    // reassembly waits for memory under the budget
)

// watchEvery is how often a loop with watched connections checks them.
const watchEvery = 5 * time.Millisecond

// memBudget counts the bytes held for connections beyond their idle cost.
type memBudget struct {
	used  atomic.Int64
	limit int64 // ≤ 0: no budget

	// Burst release, runTicker's goroutine only.
	peak     int64
	released time.Time
	quiet    quietWatch
	heapAt   atomic.Uint64 // the heap kept after the last release
	releases atomic.Uint64 // releases done (Stats.MemoryReleases)
}

func (m *memBudget) add(d int64) {
	if d != 0 {
		m.used.Add(d)
	}
}

// over reports whether the budget is exceeded.
func (m *memBudget) over() bool { return m.limit > 0 && m.used.Load() > m.limit }

// Burst release thresholds: a peak of at least releaseMin bytes held, now
// fallen under a quarter of it, or, on a server gone quiet, a heap grown
// since the last release by releaseGrowth or an eighth, whichever is more;
// at most once per releaseEvery. The second case is what an idle-heavy
// server meets after a ramp of new connections: the garbage of their
// accepts and handshakes leaves a heap of about twice the live one, a
// few hundred bytes of RSS per connection that nothing would return (a
// quiet server collects rarely). A release costs one collection, which
// the growth pays for many times over.
const (
	releaseMin    = 32 << 20
	releaseGrowth = 4 << 20
	releaseEvery  = 2 * time.Second
)

// quietWatch tells a server that has gone quiet after traffic, sampled
// once a second: no new connection, and at most a sixteenth of the bytes
// of the busiest second since the last release. Most of a burst's memory
// is not in what the budget counts (gnet's buffers, inflated messages,
// garbage the collector has not met yet), and once traffic stops nothing
// allocates, so no collection runs to free it: the runtime's own forced
// collection comes every two minutes.
type quietWatch struct {
	at              time.Time
	moved, upgrades uint64 // the counters at the last sample
	busiest         uint64 // bytes moved in the busiest second since the last release
}

// sample reports whether the server was quiet over the last second, given
// its counters now. ok is false between samples.
func (q *quietWatch) sample(now time.Time, moved, upgrades uint64) (quiet, ok bool) {
	if now.Sub(q.at) < time.Second {
		return false, false
	}
	d := moved - q.moved
	quiet = upgrades == q.upgrades && d <= q.busiest/16
	q.busiest = max(q.busiest, d)
	q.at, q.moved, q.upgrades = now, moved, upgrades
	return quiet, true
}

// releaseAfterBurst returns freed memory to the operating system once a
// burst is over. Without it the pools and the heap keep a burst's worth of
// memory for minutes (pooled buffers survive until two garbage collections
// pass, and a quiet server collects rarely). Called on every tick from the
// ticker goroutine with the server's traffic counters.
func (m *memBudget) releaseAfterBurst(now time.Time, moved, upgrades uint64) {
	used := m.used.Load()
	m.peak = max(m.peak, used)
	burst := m.peak >= releaseMin && used <= m.peak/4
	if quiet, ok := m.quiet.sample(now, moved, upgrades); ok && quiet && !burst {
		burst = heapKept() >= releaseAt(m.heapAt.Load())
	}
	if !burst || now.Sub(m.released) < releaseEvery {
		return
	}
	m.peak, m.released = used, now
	m.quiet.busiest = 0
	go func() {
		runtime.GC() // a first cycle moves pooled buffers to the victim caches
		debug.FreeOSMemory()
		m.heapAt.Store(heapKept())
		m.releases.Add(1)
	}()
}

// releaseAt is the heap kept at which a quiet server releases memory again,
// given the heap it kept after the last release.
func releaseAt(kept uint64) uint64 { return kept + max(releaseGrowth, kept/8) }

// heapSample reads the heap the process keeps from the operating system:
// everything mapped for it but what the scavenger has returned.
var heapSample = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
}

var heapMu sync.Mutex

func heapKept() uint64 {
	heapMu.Lock()
	defer heapMu.Unlock()
	metrics.Read(heapSample)
	var n uint64
	for _, s := range heapSample {
		if s.Value.Kind() == metrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return n
}

// account brings the budget up to date with what gnet holds for c: its
// outbound backlog and, while reading is paused, the unread bytes. A
// connection holding anything is watched. Loop only.
func (c *Conn) account() {
	out := c.gc.OutboundBuffered()
	if q := c.q.Load(); q != nil {
		q.outbound.Store(int64(out))
	}
	held := out
	if c.paused != 0 {
		held += c.unread()
	}
	h := uint32(min(held, math.MaxUint32))
	if h != c.held {
		c.loop.srv.mem.add(int64(h) - int64(c.held))
		c.held = h
	}
	if h > 0 && !c.watched {
		c.loop.watch(c)
	}
}

// unaccount takes what c held out of the budget: its socket is gone.
func (c *Conn) unaccount() {
	c.loop.srv.mem.add(-int64(c.held))
	c.held = 0
}

// checkBacklog runs after c's reads and writes: it pauses reading past the
// high-water mark, and drops a paused peer that keeps sending past
// MaxOutbound unread bytes. Loop only.
func (c *Conn) checkBacklog() {
	if c.state != stateOpen && c.state != stateClosing {
		return
	}
	srv := c.loop.srv
	if c.paused&pausedBacklog == 0 && c.gc.OutboundBuffered()+c.batched() >= srv.pauseAt {
		c.pause(pausedBacklog)
	}
	if c.paused != 0 && c.unread() > c.unreadLimit() {
		// Neither reading nor waiting: drop it now.
		if c.paused&pausedBacklog != 0 {
			c.failWith(codec.StatusPolicyViolation, "slow reader", ErrSlowReader)
		} else {
			c.failWith(codec.StatusTryAgainLater, "server memory budget exceeded", ErrMemoryBudget)
		}
		return
	}
	c.account()
	if c.paused != 0 && !c.watched {
		c.loop.watch(c)
	}
}

// unreadLimit is how much a paused connection may leave unread in gnet's
// buffer: MaxOutbound, or one read's worth while the server is over its
// budget, since gnet cannot be told to stop reading and the bytes would
// otherwise pile up past the budget under any policy.
func (c *Conn) unreadLimit() int {
	if c.loop.srv.mem.over() {
		return c.loop.srv.cfg.ReadBufferCap
	}
	return c.loop.srv.cfg.MaxOutbound
}

// admitRead reports whether k more bytes may be copied into the reassembly
// buffer; over the memory budget it pauses c instead, unless the buffer
// has room already. Loop only.
func (c *Conn) admitRead(k int64) bool {
	if !c.loop.srv.mem.over() || c.msg != nil && int64(cap(*c.msg)-len(*c.msg)) >= k {
		return true
	}
	c.pause(pausedBudget)
	return false
}

// pause holds reading back for why; unpause lets go of why and reports
// whether reading may resume. Loop only.
func (c *Conn) pause(why uint8) {
	if c.paused == 0 {
		c.loop.stats.paused.Add(1)
	}
	c.paused |= why
}

func (c *Conn) unpause(why uint8) bool {
	if c.paused&why == 0 {
		return false
	}
	c.paused &^= why
	if c.paused != 0 {
		return false
	}
	c.loop.stats.paused.Add(-1)
	return true
}

// dropBacklogged closes a connection that does not keep up. Its Close
// goes behind the backlog. A slow reader (ErrSlowReader) gets the closing
// handshake: the peer sees the Close (1008) once it reads that far, and is
// dropped at Config.CloseTimeout if it never does; its backlog is bounded
// meanwhile, since nothing more is accepted. Over the memory budget
// (ErrMemoryBudget) the socket is dropped at once to free the memory, and
// the Close (1013) reaches the peer only if the socket still takes it (gnet
// writes what it can before closing). Loop only.
func (c *Conn) dropBacklogged(err error) {
	if err == ErrSlowReader && c.state == stateOpen {
		c.setCloseErr(err)
		c.sendClose(codec.StatusPolicyViolation, "slow reader")
		return
	}
	c.failWith(codec.StatusTryAgainLater, "server memory budget exceeded", err)
}

// watch adds c to the loop's watch list, starting the check timer.
func (l *loop) watch(c *Conn) {
	c.watched = true
	l.watched = append(l.watched, c)
	if l.watching {
		return
	}
	l.watching = true
	if l.watchTimer == nil {
		l.watchTimer = time.AfterFunc(watchEvery, l.wakeWatch)
	} else {
		l.watchTimer.Reset(watchEvery)
	}
}

func (l *loop) wakeWatch() {
	if l.el.Execute(context.Background(), (*watchRunner)(l)) != nil {
		return // the loop is stopping
	}
}

// watchRunner is the loop as the runnable that checks its watch list.
type watchRunner loop

func (w *watchRunner) Run(context.Context) error {
	l := (*loop)(w)
	l.enter()
	srv := l.srv
	// Resuming a connection runs its handler, which may get other
	// connections watched: they join a fresh list.
	list := l.watched
	l.watched = l.watchSpare[:0]
	for i, c := range list {
		list[i] = nil
		if c.state == stateClosed {
			c.watched = false
			continue
		}
		c.account()
		c.streamDrained()
		resume := false
		if c.gc.OutboundBuffered() <= srv.resumeAt && c.unpause(pausedBacklog) {
			resume = true
		}
		if !srv.mem.over() && c.unpause(pausedBudget) {
			resume = true
		}
		if c.paused&pausedBacklog != 0 && srv.mem.over() && srv.cfg.OutboundPolicy == OutboundClose {
			c.dropBacklogged(ErrMemoryBudget)
		}
		if resume {
			c.resume()
		}
		if c.state != stateClosed && (c.held > 0 || c.paused != 0) {
			l.watched = append(l.watched, c)
		} else {
			c.watched = false
		}
	}
	l.watchSpare = list[:0]
	if len(l.watched) > 0 {
		l.watchTimer.Reset(watchEvery)
	} else {
		l.watching = false
	}
	return nil
}
