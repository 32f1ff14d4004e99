package engine

import (
	"encoding/binary"
	mrand "math/rand/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// WriteMessage sends p as one message; op is codec.OpText or codec.OpBinary.
// Inside the connection's callbacks the frame goes straight to the socket
// and p is not copied (the kernel, or gnet's outbound buffer, takes it before
// WriteMessage returns); from other goroutines it is copied into the
// connection's queue and written by the loop, in order. p may be reused as
// soon as WriteMessage returns. With permessage-deflate, a message of at
// least Config.Compression.Threshold bytes is compressed (into the loop's
// scratch space, or a pooled buffer off the loop).
func (c *Conn) WriteMessage(op codec.Opcode, p []byte) error {
	if op != codec.OpText && op != codec.OpBinary {
		return ErrInvalidOpcode
	}
	return c.writeMessage(op, p)
}

// WriteText sends p as a text message. p must be valid UTF-8.
func (c *Conn) WriteText(p []byte) error { return c.writeMessage(codec.OpText, p) }

// WriteBinary sends p as a binary message.
func (c *Conn) WriteBinary(p []byte) error { return c.writeMessage(codec.OpBinary, p) }

// WriteFrame sends one frame of a fragmented message: the first with
// codec.OpText or codec.OpBinary, the rest with codec.OpContinuation, the
// last with fin set. The frames of one message must come from one goroutine
// and no other message may be sent between them (RFC 6455 §5.4); control
// frames may.
func (c *Conn) WriteFrame(op codec.Opcode, p []byte, fin bool) error {
	if !op.IsData() || op.IsReserved() {
		return ErrInvalidOpcode
	}
	return c.write(op, fin, p)
}

// Ping sends a ping with payload p (at most 125 bytes).
func (c *Conn) Ping(p []byte) error {
	if len(p) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	return c.write(codec.OpPing, true, p)
}

// Pong sends an unsolicited pong (RFC 6455 §5.5.3: a heartbeat).
func (c *Conn) Pong(p []byte) error {
	if len(p) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	return c.write(codec.OpPong, true, p)
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
		c.closed.Store(true)
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

func (c *Conn) write(op codec.Opcode, fin bool, p []byte) error {
	if c.loop.onLoop() {
		if c.closed.Load() || c.state != stateOpen {
			return ErrClosed
		}
		return c.writeLoop(op, fin, p, false)
	}
	return c.writeQueued(op, fin, p)
}

// writeLoop writes one frame straight to gnet. Loop only. control says the
// frame is Gale's own (pong, close) and bypasses the outbound policy.
func (c *Conn) writeLoop(op codec.Opcode, fin bool, p []byte, control bool) error {
	return c.writeFrameLoop(op, 0, fin, p, control)
}

// writeFrameLoop is writeLoop with RSV bits: codec.Rsv1 marks a compressed
// message (deflate.go).
func (c *Conn) writeFrameLoop(op codec.Opcode, rsv byte, fin bool, p []byte, control bool) error {
	srv := c.loop.srv
	l := c.loop
	h := codec.Header{Fin: fin, Rsv: rsv, Opcode: op, Length: int64(len(p))}
	if c.client {
		h.Masked, h.Mask = true, newMaskKey()
	}
	if !control && srv.cfg.OutboundPolicy == OutboundReject &&
		c.gc.OutboundBuffered()+len(l.batch)+h.Len()+len(p) > srv.cfg.MaxOutbound {
		return ErrOutboundFull
	}
	if c.inTraffic && len(p) <= batchMax {
		// Inside this connection's OnTraffic: gather the frame with the
		// others its callbacks write, for one syscall when OnTraffic ends
		// (a read that carried several messages gets one write back). The
		// copy keeps WriteMessage's promise that p may be reused at once,
		// and costs far less than the write it saves.
		l.batch = codec.AppendFrame(l.batch, h, p) // masks the copy for a client
		l.batchConn = c
		l.stats.countOut(op, fin, len(p))
		if len(l.batch) >= batchFlush {
			return c.flushBatch()
		}
		return nil
	}
	if err := c.flushBatch(); err != nil {
		return err
	}
	var err error
	switch {
	case c.client && len(p) > 0:
		// The caller's payload must not change, so it is masked in a copy.
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
		return err // gnet has closed the connection; OnClose follows
	}
	l.stats.countOut(op, fin, len(p))
	return c.afterWrite()
}

// Write batching inside OnTraffic: frames with payloads up to batchMax are
// gathered; the batch is written when it reaches batchFlush and when
// OnTraffic ends. Larger payloads go out zero-copy with Writev.
const (
	batchMax   = 16 << 10
	batchFlush = 256 << 10
)

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
	return c.afterWrite()
}

// afterWrite applies the outbound cap once gnet has taken a write.
func (c *Conn) afterWrite() error {
	if c.state == stateClosed {
		return ErrClosed
	}
	buffered := c.gc.OutboundBuffered()
	if q := c.q.Load(); q != nil {
		q.outbound.Store(int64(buffered))
	}
	if buffered > c.loop.srv.cfg.MaxOutbound && c.loop.srv.cfg.OutboundPolicy == OutboundClose {
		c.abort(ErrSlowReader)
		return ErrSlowReader
	}
	return nil
}

// sendClose writes a Close frame and moves to stateClosing with the close
// timer armed. Loop only.
func (c *Conn) sendClose(code codec.StatusCode, reason string) {
	if c.state != stateOpen {
		return
	}
	var buf [codec.MaxControlPayload]byte
	payload := codec.AppendClosePayload(buf[:0], code, reason)
	c.writeLoop(codec.OpClose, true, payload, true)
	c.sentCode = code
	if c.state == stateClosed {
		return
	}
	c.state = stateClosing
	l := c.loop
	l.wheel.schedule(c, l.wheel.now+l.srv.ticks(l.srv.cfg.CloseTimeout))
}

// writeQueued appends the frame to the connection's queue for the loop.
func (c *Conn) writeQueued(op codec.Opcode, fin bool, p []byte) error {
	return c.writeQueuedFrame(op, 0, fin, p)
}

// writeQueuedFrame is writeQueued with RSV bits: codec.Rsv1 marks a
// compressed message (deflate.go).
func (c *Conn) writeQueuedFrame(op codec.Opcode, rsv byte, fin bool, p []byte) error {
	cfg := &c.loop.srv.cfg
	h := codec.Header{Fin: fin, Rsv: rsv, Opcode: op, Length: int64(len(p))}
	if c.client {
		h.Masked, h.Mask = true, newMaskKey()
	}
	need := h.Len() + len(p)
	q := c.queue()
	q.wmu.Lock()
	if c.closed.Load() {
		q.wmu.Unlock()
		return ErrClosed
	}
	if int(q.outbound.Load())+q.lenLocked()+need > cfg.MaxOutbound {
		if cfg.OutboundPolicy == OutboundReject {
			q.wmu.Unlock()
			return ErrOutboundFull
		}
		c.closed.Store(true)
		q.qabort = ErrSlowReader
		c.enqueueLocked(q)
		return ErrSlowReader
	}
	var n int
	q.wq, n = growQueued(q.wq, need)
	*q.wq = codec.AppendFrame((*q.wq)[:n], h, p)
	q.qdeflated = q.qdeflated || rsv != 0
	c.enqueueLocked(q)
	c.loop.stats.countOut(op, fin, len(p))
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
// queued close or abort. Loop only.
func (c *Conn) flushQueue() {
	q := c.q.Load()
	if q == nil {
		return
	}
	q.wmu.Lock()
	b, cl, abort, deflated := q.wq, q.qclose, q.qabort, q.qdeflated
	q.wq, q.qclose, q.qabort, q.queued, q.qdeflated = nil, nil, nil, false, false
	q.wmu.Unlock()
	if b != nil {
		if c.state == stateOpen {
			if _, err := c.gc.Write(*b); err == nil {
				c.afterWrite()
			}
		}
		pool.Put(b)
	}
	if deflated {
		c.dropTx() // compressed without the send window: see dropTx
	}
	switch {
	case c.state == stateClosed:
	case abort != nil:
		c.abort(abort)
	case cl != nil:
		if cl.err != nil {
			c.setCloseErr(cl.err)
		}
		c.sendClose(cl.code, cl.reason)
	}
}

// growQueued makes room for need more bytes in the queue buffer q (nil for
// none yet) and returns it with the length to append at.
func growQueued(q *[]byte, need int) (*[]byte, int) {
	if q == nil {
		q = pool.Get(need)
		*q = (*q)[:0]
	}
	n := len(*q)
	return pool.Grow(q, n+need), n
}

// appendQueued appends raw bytes to the queue buffer q.
func appendQueued(q *[]byte, p []byte) *[]byte {
	q, n := growQueued(q, len(p))
	copy((*q)[n:], p)
	return q
}

// newMaskKey returns a fresh masking key from the runtime's per-thread
// ChaCha8 generator (seeded from the OS): unpredictable, as RFC 6455 §5.3
// asks, goroutine-safe, and without allocation.
func newMaskKey() (key [4]byte) {
	binary.LittleEndian.PutUint32(key[:], mrand.Uint32())
	return key
}
