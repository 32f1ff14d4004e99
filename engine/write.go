package engine

import (
	"encoding/binary"
	mrand "math/rand/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// The write path, one straight line for every kind of frame:
//
//	WriteMessage, WriteText, WriteBinary, WriteMessageUncompressed,
//	WriteFrame, WritePrepared, Ping, Pong          Close
//	        │ an outFrame                             │
//	        ▼                                         │
//	      send ── on the connection's loop ──► sendLoop: admit, compress,
//	        │                                  frame, then batch (inside
//	        │                                  OnTraffic) or write
//	        └── any other goroutine ─────────► sendQueued: compress, frame,
//	                                           admit, append to the queue;
//	                                           the loop's drain writes it
//
// An event stream's events (eventstream.go) take the same line as raw
// outFrames: encoded by WriteEvent, then sendLoop or sendQueued, which
// write their bytes as they are instead of framing them.
//
// admit is the one outbound-policy check. Frames a callback writes during
// OnTraffic, whatever their kind, join one batch in call order; a frame too
// big to batch flushes the batch first. So the wire order is the call order
// on each goroutine.

// outFrame is one frame on its way out.
type outFrame struct {
	op      codec.Opcode
	fin     bool
	p       []byte           // the payload
	pm      *PreparedMessage // instead of p: a prepared message, written as encoded
	deflate bool             // a whole message that permessage-deflate may compress
	own     bool             // Gale's own frame (pong, close, keepalive ping): not subject to the outbound policy
	raw     bool             // p is written as it is, unframed: an event stream's bytes (eventstream.go)
}

// startsMessage reports whether the outbound policy applies: it is checked
// where a message starts, so the frames of a message already started are
// never cut off, and control frames (at most 131 bytes) always go.
func (f *outFrame) startsMessage() bool {
	return !f.own && (f.raw || f.op == codec.OpText || f.op == codec.OpBinary)
}

// WriteMessage sends p as one message; op is codec.OpText or codec.OpBinary.
// Inside the connection's callbacks the frame goes straight to gnet (batched
// with the other frames written during the same read) and p is not retained;
// from other goroutines it is copied into the connection's queue and written
// by the loop, in order. p may be reused as soon as WriteMessage returns.
// With permessage-deflate, a message of at least
// Config.Compression.Threshold bytes is compressed. A write that meets a
// backlog over Config.MaxOutbound follows Config.OutboundPolicy.
func (c *Conn) WriteMessage(op codec.Opcode, p []byte) error {
	if op != codec.OpText && op != codec.OpBinary {
		return ErrInvalidOpcode
	}
	return c.send(outFrame{op: op, fin: true, p: p, deflate: true})
}

// WriteText sends p as a text message. p must be valid UTF-8.
func (c *Conn) WriteText(p []byte) error {
	return c.send(outFrame{op: codec.OpText, fin: true, p: p, deflate: true})
}

// WriteBinary sends p as a binary message.
func (c *Conn) WriteBinary(p []byte) error {
	return c.send(outFrame{op: codec.OpBinary, fin: true, p: p, deflate: true})
}

// WriteMessageUncompressed is WriteMessage without compression, whatever
// the connection negotiated: for data that is already compressed, or small
// and latency-bound.
func (c *Conn) WriteMessageUncompressed(op codec.Opcode, p []byte) error {
	if op != codec.OpText && op != codec.OpBinary {
		return ErrInvalidOpcode
	}
	return c.send(outFrame{op: op, fin: true, p: p})
}

// WriteFrame sends one frame of a fragmented message: the first with
// codec.OpText or codec.OpBinary, the rest with codec.OpContinuation, the
// last with fin set. The frames of one message must come from one goroutine
// and no other message may be sent between them (RFC 6455 §5.4); control
// frames may. Frames are never compressed.
func (c *Conn) WriteFrame(op codec.Opcode, p []byte, fin bool) error {
	if !op.IsData() || op.IsReserved() {
		return ErrInvalidOpcode
	}
	return c.send(outFrame{op: op, fin: fin, p: p})
}

// Ping sends a ping with payload p (at most 125 bytes).
func (c *Conn) Ping(p []byte) error {
	if len(p) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	return c.send(outFrame{op: codec.OpPing, fin: true, p: p})
}

// Pong sends an unsolicited pong (RFC 6455 §5.5.3: a heartbeat).
func (c *Conn) Pong(p []byte) error {
	if len(p) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	return c.send(outFrame{op: codec.OpPong, fin: true, p: p})
}

// WritePrepared sends a prepared message. On the connection's loop the
// shared frame is written without encoding it again; from other goroutines
// it is copied into the queue like any write. On a client connection the
// message is sent like WriteMessage: a client masks each frame with a fresh
// key, so a shared frame cannot go out as is.
func (c *Conn) WritePrepared(pm *PreparedMessage) error {
	if c.client {
		return c.send(outFrame{op: pm.op, fin: true, p: pm.payload(), deflate: true})
	}
	return c.send(outFrame{op: pm.op, fin: true, pm: pm})
}

// Close starts the closing handshake: it sends a Close frame with code and
// reason (cut to 123 bytes) and drops the connection when the peer answers
// or after Config.CloseTimeout. OnClose reports the peer's answer. Writes
// after Close fail with ErrClosed.
func (c *Conn) Close(code codec.StatusCode, reason string) error {
	if code != codec.StatusNoStatusReceived && !code.IsValid() {
		return codec.ErrCloseCode
	}
	if c.loop.onLoop() {
		if c.state != stateOpen || c.closed.Load() {
			return ErrClosed
		}
		c.sendClose(code, reason)
		return nil
	}
	q := c.queue()
	q.wmu.Lock()
	if c.closed.Load() {
		q.wmu.Unlock()
		return ErrClosed
	}
	c.closed.Store(true)
	q.qclose = &closeRequest{code: code, reason: reason}
	c.enqueueLocked(q)
	return nil
}

// Buffered returns the bytes accepted for this connection and not yet taken
// by the kernel: gnet's outbound buffer plus writes queued by other
// goroutines.
func (c *Conn) Buffered() int {
	n := 0
	if q := c.q.Load(); q != nil {
		q.wmu.Lock()
		n = q.lenLocked()
		q.wmu.Unlock()
	}
	if c.loop.onLoop() && c.state != stateClosed {
		return n + c.gc.OutboundBuffered()
	}
	if q := c.q.Load(); q != nil {
		n += int(q.outbound.Load())
	}
	return n
}

// send routes a frame: straight to gnet on the connection's loop, through
// the queue from anywhere else.
func (c *Conn) send(f outFrame) error {
	if c.stream && f.pm == nil {
		return c.sendAsEvent(f)
	}
	if !c.loop.onLoop() {
		return c.sendQueued(f)
	}
	if c.closed.Load() || c.state != stateOpen {
		return ErrClosed
	}
	return c.sendLoop(f)
}

// admit is the outbound policy, checked where a message starts. backlog
// is what the kernel has not taken from the connection (gnet's outbound
// buffer), pending what is accepted but not yet handed to gnet (the loop's
// batch, the queue). Together, MaxOutbound or more means the peer is not
// reading; so does any backlog while the server is over its memory budget
// (pending bytes alone are not a sign: they are written at once). One
// message larger than MaxOutbound written to a peer that keeps up is not a
// backlog and goes. Under OutboundReject the write is refused
// (ErrOutboundFull); under OutboundClose the caller drops the connection
// with the error returned.
func (c *Conn) admit(backlog, pending int) error {
	srv := c.loop.srv
	var err error
	switch {
	case backlog+pending >= srv.cfg.MaxOutbound:
		err = ErrSlowReader
	case backlog > 0 && srv.mem.over():
		err = ErrMemoryBudget
	default:
		return nil
	}
	if srv.cfg.OutboundPolicy == OutboundReject {
		c.loop.stats.refused.Add(1)
		return ErrOutboundFull
	}
	return err
}

// sendLoop encodes f and hands it to gnet. Loop only; the caller has
// checked that the connection is open.
func (c *Conn) sendLoop(f outFrame) error {
	l := c.loop
	if f.startsMessage() {
		if err := c.admit(c.gc.OutboundBuffered(), c.batched()); err != nil {
			if err != ErrOutboundFull {
				c.dropBacklogged(err)
			}
			return err
		}
	}

	// Encode: a prepared frame as it is; else the payload, compressed when
	// the message qualifies, behind a header (masked in a copy for a client,
	// whose caller's payload must not change).
	var (
		frame    []byte // a whole encoded frame, or nil: hdr + p
		p        = f.p
		n        = len(f.p) // payload bytes, uncompressed, for Stats
		rsv      byte
		window   bool // compressed with the connection's window: extend it once written
		noWindow bool // compressed without it: the window must be dropped
	)
	switch {
	case f.raw:
		frame = f.p
	case f.pm != nil:
		frame, noWindow = c.preparedFrame(f.pm)
		n = f.pm.n
	case f.deflate && c.dfl.on && len(p) >= l.srv.cfg.Compression.Threshold:
		if z, ok := c.deflateLoop(p); ok {
			p, rsv, window = z, codec.Rsv1, !c.dfl.txReset
		}
	}
	size := len(frame)
	var h codec.Header
	if frame == nil {
		h = codec.Header{Fin: f.fin, Rsv: rsv, Opcode: f.op, Length: int64(len(p))}
		if c.client {
			h.Masked, h.Mask = true, newMaskKey()
		}
		size = h.Len() + len(p)
	}

	// Write: inside this connection's OnTraffic, frames are gathered for
	// one syscall when OnTraffic ends (a read that carried several messages
	// gets one write back). The copy keeps the promise that p may be reused
	// at once and costs far less than the write it saves. A frame too big
	// to batch flushes the batch first, so the order holds.
	var err error
	if c.is(flagInTraffic) && size <= batchMax {
		if frame != nil {
			l.batch = append(l.batch, frame...)
		} else {
			l.batch = codec.AppendFrame(l.batch, h, p) // masks the copy for a client
		}
		l.batchConn = c
		if len(l.batch) >= batchFlush {
			err = c.flushBatch()
		}
	} else if err = c.flushBatch(); err == nil {
		err = c.writeDirect(frame, h, p)
	}
	if err != nil {
		return err // gnet has closed the connection; OnClose follows
	}
	l.stats.countOut(f.op, f.fin, n)
	if window {
		x := c.extra()
		x.win.tx = pushWindow(x.win.tx, f.p, 1<<c.dfl.txBits)
	} else if noWindow {
		c.dropTx()
	}
	l.z.out.trim()
	return nil
}

// writeDirect writes one frame to gnet now: frame when it is encoded
// already, else h and p, zero-copy for a server. Loop only.
func (c *Conn) writeDirect(frame []byte, h codec.Header, p []byte) error {
	l := c.loop
	var err error
	switch {
	case frame != nil:
		_, err = c.gc.Write(frame)
	case h.Masked && len(p) > 0:
		l.mbuf = codec.AppendFrame(l.mbuf[:0], h, p)
		_, err = c.gc.Write(l.mbuf)
		if cap(l.mbuf) > maxSpare {
			l.mbuf = nil
		}
	case len(p) == 0:
		_, err = c.gc.Write(codec.AppendFrameHeader(l.hdr[:0], h))
	default:
		l.iov = append(l.iov[:0], codec.AppendFrameHeader(l.hdr[:0], h), p)
		_, err = c.gc.Writev(l.iov)
		l.iov[0], l.iov[1] = nil, nil
	}
	if err != nil {
		return err
	}
	return c.wrote()
}

// Write batching inside OnTraffic: frames up to batchMax bytes are
// gathered; the batch is written when it reaches batchFlush and when
// OnTraffic ends. Larger frames go out zero-copy.
const (
	batchMax   = 16<<10 + codec.MaxHeaderLen
	batchFlush = 256 << 10
)

// batched returns the bytes c has in the loop's batch.
func (c *Conn) batched() int {
	if c.loop.batchConn != c {
		return 0
	}
	return len(c.loop.batch)
}

// flushBatch writes the frames gathered for c during its OnTraffic. Loop
// only. A callback may write to other connections of the loop meanwhile:
// those writes go straight out and leave c's batch alone.
func (c *Conn) flushBatch() error {
	l := c.loop
	if l.batchConn != c || len(l.batch) == 0 {
		return nil // the batch, if any, is another connection's
	}
	b := l.batch
	l.batch, l.batchConn = l.batch[:0], nil
	if cap(b) > maxSpare {
		l.batch = nil // do not keep a burst's worth between reads
	}
	if c.state == stateClosed {
		return ErrClosed
	}
	if _, err := c.gc.Write(b); err != nil {
		return err // gnet has closed the connection; OnClose follows
	}
	return c.wrote()
}

// wrote runs after gnet took a write: what it could not hand to the kernel
// counts as the connection's backlog (limits.go).
func (c *Conn) wrote() error {
	if c.state == stateClosed {
		return ErrClosed
	}
	c.account()
	return nil
}

// sendQueued encodes f on the calling goroutine and appends it to the
// connection's queue for the loop. Compression here is without the
// connection's window, which belongs to the loop.
func (c *Conn) sendQueued(f outFrame) error {
	srv := c.loop.srv
	var (
		frame    []byte
		p        = f.p
		n        = len(f.p)
		rsv      byte
		noWindow bool
		s        *sink
	)
	switch {
	case f.raw:
		frame = f.p
	case f.pm != nil:
		frame, noWindow = c.preparedFrame(f.pm)
		n = f.pm.n
	case f.deflate && c.dfl.on && len(p) >= srv.cfg.Compression.Threshold:
		s = sinks.Get().(*sink)
		if z, ok := s.deflate(p, srv.cfg.Compression.Level, c.dfl.txBits, nil); ok {
			p, rsv, noWindow = z, codec.Rsv1, true
		}
	}
	h := codec.Header{Fin: f.fin, Rsv: rsv, Opcode: f.op, Length: int64(len(p))}
	if c.client {
		h.Masked, h.Mask = true, newMaskKey()
	}
	need := len(frame)
	if frame == nil {
		need = h.Len() + len(p)
	}
	err := c.enqueue(&f, need, frame, h, p, noWindow)
	if err == nil {
		c.loop.stats.countOut(f.op, f.fin, n)
	}
	if s != nil {
		s.trim()
		sinks.Put(s)
	}
	return err
}

// enqueue appends the encoded frame (frame, or h and p), need bytes, to
// c's queue after the outbound policy, and schedules a drain.
func (c *Conn) enqueue(f *outFrame, need int, frame []byte, h codec.Header, p []byte, noWindow bool) error {
	q := c.queue()
	q.wmu.Lock()
	if c.closed.Load() {
		q.wmu.Unlock()
		return ErrClosed
	}
	if f.startsMessage() {
		if err := c.admit(int(q.outbound.Load()), q.lenLocked()); err != nil {
			if err == ErrOutboundFull {
				q.wmu.Unlock()
				return err
			}
			c.closed.Store(true)
			q.qabort = err
			c.enqueueLocked(q)
			return err
		}
	}
	if q.wq == nil {
		q.wq = pool.Get(need)
		*q.wq = (*q.wq)[:0]
	}
	m := len(*q.wq)
	q.wq = pool.Grow(q.wq, m+need)
	if frame != nil {
		*q.wq = append((*q.wq)[:m], frame...)
	} else {
		*q.wq = codec.AppendFrame((*q.wq)[:m], h, p)
	}
	q.noWindow = q.noWindow || noWindow
	c.loop.srv.mem.add(int64(need))
	c.enqueueLocked(q)
	return nil
}

// enqueueLocked schedules a drain if none is pending and unlocks q.wmu.
func (c *Conn) enqueueLocked(q *outQueue) {
	first := !q.queued
	q.queued = true
	q.wmu.Unlock()
	if first {
		c.loop.wake(c)
	}
}

// flushQueue writes what other goroutines queued, then carries out a
// queued close or drop. Loop only.
func (c *Conn) flushQueue() {
	q := c.q.Load()
	if q == nil {
		return
	}
	q.wmu.Lock()
	b, cl, abort, noWindow := q.wq, q.qclose, q.qabort, q.noWindow
	q.wq, q.qclose, q.qabort, q.queued, q.noWindow = nil, nil, nil, false, false
	q.wmu.Unlock()
	if b != nil {
		c.loop.srv.mem.add(-int64(len(*b)))
		if c.state == stateOpen {
			if _, err := c.gc.Write(*b); err == nil {
				c.wrote()
			}
		}
		pool.Put(b)
	}
	if noWindow {
		c.dropTx() // compressed without the send window: see dropTx
	}
	switch {
	case c.state == stateClosed:
	case abort != nil:
		c.dropBacklogged(abort)
	case cl != nil:
		if cl.err != nil {
			c.setCloseErr(cl.err)
		}
		c.sendClose(cl.code, cl.reason)
	}
	c.checkBacklog()
}

// newMaskKey returns a fresh masking key from the runtime's per-thread
// ChaCha8 generator (seeded from the OS): unpredictable, as RFC 6455 §5.3
// asks, goroutine-safe, and without allocation.
func newMaskKey() (key [4]byte) {
	binary.LittleEndian.PutUint32(key[:], mrand.Uint32())
	return key
}
