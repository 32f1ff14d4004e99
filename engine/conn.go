package engine

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// Conn is one WebSocket connection, or a Server-Sent Events stream
// (IsEventStream; see Config.OnEventStream). All its methods are safe to
// call from any goroutine. Fields are owned by the connection's event loop unless
// marked otherwise.
type Conn struct {
	gc   gnet.Conn // gnet's connection, or a view of it: prefixed (mount.go), tlsConn (tls.go)
	loop *loop

	// Fields are grouped so that small ones share words: an idle server
	// holds one Conn per connection, and this keeps it in a 176-byte class
	// (TestConnSize).
	state    connState
	client   bool             // the client role: our frames are masked, the peer's must not be; any goroutine reads it
	flags    connFlags        // flagInTraffic, flagWantClose, flagNotified, flagInFrame, flagAwaitEnd: the loop's only
	maskPos  uint8            // key position for the next payload byte
	msgOp    codec.Opcode     // first frame's opcode while a message is in progress, else 0
	paused   uint8            // why reading is held back (limits.go); 0: reading
	sentCode codec.StatusCode // the code of the Close we sent, if any

	utf8 codec.UTF8Validator
	// closed is set once a Close was sent or requested, or the socket is
	// gone: writes from any goroutine check it.
	closed atomic.Bool

	// The frame and the message being read.
	h      codec.Header // h.Length counts down the payload bytes not read yet
	msgLen int64
	msg    *[]byte // reassembly buffer, from package pool while in use

	dfl deflateState // permessage-deflate (deflate.go); zero when off
	// stream: a Server-Sent Events stream (eventstream.go), not a
	// WebSocket. Set before the connection opens, never after, so any
	// goroutine may read it; it fills padding after dfl.
	stream  bool
	watched bool // on the loop's watch list (limits.go)

	hs *handshake // while upgrading

	timer timerLink
	// Wheel ticks, low 32 bits (differences are taken modulo 2³², so
	// they hold for idle spans up to 2³¹ ticks: months at the finest tick).
	timerAt  uint32 // the tick the wheel holds c for (timer.go); 0: not armed
	lastRead uint32 // the last bytes received
	lastPing uint32 // the last ping sent
	held     uint32 // gnet's buffered bytes as last counted in the memory budget (limits.go)

	lnext, lprev *Conn // the loop's list of connections

	addrs connAddrs // the socket's addresses (addr.go)
	// The application's value (UserData), boxed so that any goroutine may
	// set and read it without a lock; nil until one is set.
	ud atomic.Pointer[any]
	// What most connections never need. Atomic because Subprotocol reads
	// it from any goroutine while the loop may create it later.
	ext atomic.Pointer[connExtra]

	// Writes queued by other goroutines, flushed by the loop: created by
	// the first such write, so a connection only written from its
	// callbacks never pays for it.
	q atomic.Pointer[outQueue]
}

// connFlags are the loop's yes/no facts about a connection, in one byte of
// the Conn. Only the loop reads or writes them: a fact other goroutines
// read (client, stream, closed) has a field of its own, since writing one
// bit writes the whole byte.
type connFlags uint8

const (
	flagInTraffic connFlags = 1 << iota // inside OnTraffic for this connection
	flagWantClose                       // close the socket when OnTraffic returns
	flagNotified                        // Handler.OnClose has been called
	flagInFrame                         // a frame's payload is being read
	flagAwaitEnd                        // client: the close handshake is done; the server closes the socket
)

func (c *Conn) is(f connFlags) bool { return c.flags&f != 0 }

// connExtra holds the rarely used parts of a connection, allocated when one
// is needed. Written by the loop only; subprotocol and req before the
// connection is handed to anyone who reads them, the rest read by the loop
// only.
type connExtra struct {
	subprotocol string
	req         *RequestInfo   // with Config.KeepRequest
	closeErr    error          // why the connection is closing, for OnClose
	work        *workQueue     // with Config.Workers: events waiting for a worker
	win         deflateWindows // with permessage-deflate's context takeover
	topics      []string       // the topics subscribed to (topics.go)
	// tls is a TLS connection's transport (tls.go), set before the
	// connection opens and never after: ConnectionState reaches it from
	// any goroutine, which c.gc (loop only) cannot give.
	tls *tlsConn
}

// extra returns c's connExtra, creating it. Loop only.
func (c *Conn) extra() *connExtra {
	x := c.ext.Load()
	if x == nil {
		x = new(connExtra)
		c.ext.Store(x)
	}
	return x
}

// outQueue holds what other goroutines queued for a connection until its
// loop drains it. Guarded by wmu.
type outQueue struct {
	wmu    sync.Mutex
	wq     *[]byte
	queued bool
	// noWindow: the queue holds a message compressed without the send
	// window (deflate.go, dropTx).
	noWindow bool
	qclose   *closeRequest
	qabort   error
	// outbound is gnet's outbound buffer size as the loop last saw it, for
	// the backpressure checks of queued writes.
	outbound atomic.Int64
}

// queue returns c's queue, creating it on first use.
func (c *Conn) queue() *outQueue {
	if q := c.q.Load(); q != nil {
		return q
	}
	c.q.CompareAndSwap(nil, new(outQueue))
	return c.q.Load()
}

// lenLocked returns the queued bytes.
func (q *outQueue) lenLocked() int {
	if q.wq == nil {
		return 0
	}
	return len(*q.wq)
}

type closeRequest struct {
	code   codec.StatusCode
	reason string
	err    error // for OnClose, when the close is Gale's decision
}

// RemoteAddr returns the peer's address. An IPv4 peer's is kept as bytes,
// to spare every idle connection an object, so each call builds a new
// *net.TCPAddr (one allocation): a handler that needs it per message
// should keep it, in UserData for instance.
func (c *Conn) RemoteAddr() net.Addr { return c.addrs.remote() }

// LocalAddr returns the connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.addrs.local() }

// Server returns the server the connection belongs to, or nil for a
// connection of the event-loop Client.
func (c *Conn) Server() *Server {
	if c.client {
		return nil
	}
	return c.loop.srv
}

// Client returns the event-loop Client that dialled the connection, or nil
// for a server's connection.
func (c *Conn) Client() *Client {
	if !c.client {
		return nil
	}
	return c.loop.srv.client
}

// Request returns what was kept of the upgrade request under
// Config.KeepRequest, or nil: nothing is kept unless asked, so that idle
// connections cost no more than they need.
func (c *Conn) Request() *RequestInfo {
	if x := c.ext.Load(); x != nil {
		return x.req // written before the connection opened, never after
	}
	return nil
}

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string {
	if x := c.ext.Load(); x != nil {
		return x.subprotocol // written before the connection opened, never after
	}
	return ""
}

// UserData returns the application's value for the connection: the one
// set by Config.OnUpgrade (UpgradeRequest.UserData) or SetUserData, or nil.
// Like every Conn method it may be called from any goroutine.
func (c *Conn) UserData() any {
	if p := c.ud.Load(); p != nil {
		return *p
	}
	return nil
}

// SetUserData attaches v to the connection, replacing any earlier value;
// safe from any goroutine. Setting a non-nil value costs one small
// allocation (the box that lets it be swapped atomically).
func (c *Conn) SetUserData(v any) {
	if v == nil {
		c.ud.Store(nil)
		return
	}
	c.ud.Store(&v)
}

// checkState is the codec's view of where the read side stands.
func (c *Conn) checkState() codec.State {
	s := codec.StateServer
	if c.client {
		s = codec.StateClient
	}
	if c.msgOp != 0 {
		s |= codec.StateFragmented
	}
	if c.dfl.on {
		s |= codec.StateDeflate
	}
	return s
}

// The read side reaches the connection's inbound bytes only through
// inbound, peek and skip. A connection mounted through ServeHTTP may start
// with bytes net/http read from the socket before the hand-over (frames
// the client sent right behind its request); gnet cannot take them back,
// so until they are read c.gc is a prefixed view (mount.go) that serves
// them before gnet's own. The read path pays nothing for it: the interface
// call it makes anyway is what dispatches to the view.

// inbound returns how many bytes are there to read.
func (c *Conn) inbound() int { return c.gc.InboundBuffered() }

// peek returns the next n bytes, 0 < n <= inbound(), as gnet holds them (no
// copy unless they straddle its ring buffer). Valid until the matching
// skip.
func (c *Conn) peek(n int) []byte {
	p, _ := c.gc.Peek(n)
	return p
}

// skip consumes n > 0 bytes (gnet's Discard(0) would drop them all).
func (c *Conn) skip(n int) { c.gc.Discard(n) }

// socket returns gnet's own connection, for calls that need it rather than
// the read view: gnet's EventLoop.Close asserts its concrete type.
func (c *Conn) socket() gnet.Conn {
	switch v := c.gc.(type) {
	case *prefixed:
		return v.Conn
	case *tlsConn:
		return v.Conn
	}
	return c.gc
}

// releaseQueue drops what other goroutines queued and the loop never
// wrote: the socket is gone. Loop only.
func (c *Conn) releaseQueue() {
	q := c.q.Load()
	if q == nil {
		return
	}
	q.wmu.Lock()
	if q.wq != nil {
		c.loop.srv.mem.add(-int64(len(*q.wq)))
		pool.Put(q.wq)
		q.wq = nil
	}
	q.qclose, q.qabort = nil, nil
	q.wmu.Unlock()
}
