package engine

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

type connState uint8

const (
	stateHandshake connState = iota // reading the upgrade request
	stateOpen                       // upgraded
	stateClosing                    // our Close is sent; waiting for the peer's
	stateClosed                     // the socket is gone
)

// Conn is one WebSocket connection. All its methods are safe to call from
// any goroutine. Fields are owned by the connection's event loop unless
// marked otherwise.
type Conn struct {
	gc   gnet.Conn
	loop *loop

	// Fields are grouped so that small ones share words: an idle server
	// holds one Conn per connection, and this keeps it in a 208-byte class.
	state     connState
	client    bool         // the client role: our frames are masked, the peer's must not be
	inTraffic bool         // inside OnTraffic for this connection
	wantClose bool         // close the socket when OnTraffic returns
	notified  bool         // Handler.OnClose has been called
	inFrame   bool         // a frame's payload is being read
	maskPos   uint8        // key position for the next payload byte
	msgOp     codec.Opcode // first frame's opcode while a message is in progress, else 0

	utf8 codec.UTF8Validator
	// closed is set once a Close was sent or requested, or the socket is
	// gone: writes from any goroutine check it.
	closed atomic.Bool

	// The frame and the message being read.
	h      codec.Header // h.Length counts down the payload bytes not read yet
	msgLen int64
	msg    *[]byte // reassembly buffer, from package pool while in use

	dfl deflateState // permessage-deflate (deflate.go); zero when off

	hs *handshake // while upgrading

	timer timerLink
	// Wheel ticks, low 32 bits (differences are taken modulo 2³², so
	// they hold for idle spans up to 2³¹ ticks: months at the finest tick).
	lastRead uint32 // the last bytes received
	lastPing uint32 // the last ping sent

	lnext, lprev *Conn // the loop's list of connections

	sentCode codec.StatusCode // the code of the Close we sent, if any

	raddr net.Addr
	ctx   any
	ext   *connExtra // what most connections never need

	// Writes queued by other goroutines, flushed by the loop: created by
	// the first such write, so a connection only written from its
	// callbacks never pays for it.
	q atomic.Pointer[outQueue]
}

// connExtra holds the rarely used parts of a connection, allocated when one
// is needed. Written by the loop only, before the connection is handed to
// anyone who reads them.
type connExtra struct {
	subprotocol string
	closeErr    error      // why the connection is closing, for OnClose
	work        *workQueue // with Config.Workers: events waiting for a worker
}

// extra returns c's connExtra, creating it. Loop only.
func (c *Conn) extra() *connExtra {
	if c.ext == nil {
		c.ext = new(connExtra)
	}
	return c.ext
}

// outQueue holds what other goroutines queued for a connection until its
// loop drains it. Guarded by wmu.
type outQueue struct {
	wmu    sync.Mutex
	wq     *[]byte
	queued bool
	// qdeflated: the queue holds a message compressed without the send
	// window (deflate.go, dropTx).
	qdeflated bool
	qclose    *closeRequest
	qabort    error
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

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string {
	if c.ext == nil {
		return ""
	}
	return c.ext.subprotocol
}

// Context returns the value attached by Config.OnUpgrade or SetContext.
// Like SetContext, it is meant for the connection's callbacks; from other
// goroutines, synchronise yourself.
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches a value to the connection.
func (c *Conn) SetContext(v any) { c.ctx = v }

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

// peek returns the next n bytes, n > 0, as gnet holds them (no copy unless
// they straddle its ring buffer). Valid until the matching discard.
func (c *Conn) peek(n int) []byte {
	p, _ := c.gc.Peek(n)
	return p
}

// readFrames parses and dispatches every whole frame, and every piece of a
// data frame, that gnet holds. It returns the action for gnet.
func (c *Conn) readFrames() gnet.Action {
	srv := c.loop.srv
	for {
		if c.wantClose || c.state == stateClosed {
			return gnet.Close
		}
		avail := int64(c.gc.InboundBuffered())
		if !c.inFrame {
			if avail < 2 {
				return gnet.None
			}
			h, n, err := codec.DecodeFrameHeader(c.peek(int(min(avail, codec.MaxHeaderLen))))
			if err == codec.ErrNeedMore {
				return gnet.None
			}
			if err == nil {
				err = codec.CheckFrameHeader(h, c.checkState())
			}
			if err == nil && h.Opcode.IsData() {
				switch {
				case h.Length > srv.cfg.MaxFrameSize:
					err = codec.ErrFrameTooBig
				case c.msgLen+h.Length > srv.cfg.MaxMessageSize:
					err = codec.ErrMessageTooBig
				}
			}
			if err != nil {
				return c.fail(err)
			}
			c.gc.Discard(n)
			avail -= int64(n)
			c.h, c.maskPos, c.inFrame = h, 0, true
			if h.Opcode == codec.OpText || h.Opcode == codec.OpBinary {
				c.msgOp, c.msgLen = h.Opcode, 0
				c.utf8.Reset()
				c.dfl.compressed = h.Rsv&codec.Rsv1 != 0
			}
		}

		if c.h.Opcode.IsControl() {
			if avail < c.h.Length {
				return gnet.None
			}
			n := int(c.h.Length)
			var p []byte
			if n > 0 {
				p = c.peek(n)
				if c.h.Masked {
					codec.Mask(p, c.h.Mask, 0)
				}
			}
			c.inFrame = false
			c.control(p)
			if n > 0 && c.state != stateClosed { // gnet's Discard(0) drops everything
				c.gc.Discard(n)
			}
			continue
		}

		text := c.msgOp == codec.OpText
		// Fast path: the whole frame is in gnet's buffer and no message is
		// being reassembled, so it is delivered in place, unmasked, with no
		// copy. A compressed message is always reassembled, then inflated.
		if avail >= c.h.Length && (c.msg == nil || len(*c.msg) == 0) && !c.dfl.compressed &&
			(c.h.Fin && c.h.Opcode != codec.OpContinuation || srv.frames != nil) {
			n := int(c.h.Length)
			var p []byte
			if n > 0 {
				p = c.peek(n)
				if c.h.Masked {
					codec.Mask(p, c.h.Mask, 0)
				}
			}
			c.inFrame = false
			if text {
				valid := c.utf8.Write(p)
				if valid && c.h.Fin {
					valid = c.utf8.Done()
				}
				if !valid {
					return c.fail(codec.ErrInvalidUTF8)
				}
			}
			c.msgLen += int64(n)
			op, fin := c.msgOp, c.h.Fin
			if fin {
				c.msgOp, c.msgLen = 0, 0
			}
			if srv.frames != nil {
				c.dispatchFrame(c.h.Opcode, fin, p)
			} else {
				c.dispatchMessage(op, p)
			}
			if n > 0 && c.state != stateClosed { // gnet's Discard(0) drops everything
				c.gc.Discard(n)
			}
			continue
		}

		// Slow path: copy what has arrived into the reassembly buffer.
		k := min(avail, c.h.Length)
		if k == 0 && c.h.Length > 0 {
			return gnet.None
		}
		if k > 0 {
			p := c.peek(int(k))
			if c.h.Masked {
				c.maskPos = uint8(codec.Mask(p, c.h.Mask, int(c.maskPos)))
			}
			if text && !c.dfl.compressed && !c.utf8.Write(p) {
				return c.fail(codec.ErrInvalidUTF8)
			}
			c.appendMsg(p)
			c.gc.Discard(int(k))
			c.h.Length -= k
			c.msgLen += k
			if c.h.Length > 0 {
				return gnet.None
			}
		}
		c.inFrame = false
		fin := c.h.Fin
		if c.dfl.compressed {
			if fin {
				c.deliverDeflated() // whole, even to a FrameHandler
			}
			continue
		}
		if fin && text && !c.utf8.Done() {
			return c.fail(codec.ErrInvalidUTF8)
		}
		if srv.frames != nil {
			c.dispatchFrame(c.h.Opcode, fin, c.msgBytes())
			c.releaseMsg()
		} else if fin {
			c.dispatchMessage(c.msgOp, c.msgBytes())
			c.releaseMsg()
		}
		if fin {
			c.msgOp, c.msgLen = 0, 0
		}
	}
}

func (c *Conn) msgBytes() []byte {
	if c.msg == nil {
		return nil
	}
	return *c.msg
}

// appendMsg adds p to the reassembly buffer, growing it through the pool.
// Growth follows the bytes that actually arrive, never the declared length.
func (c *Conn) appendMsg(p []byte) {
	if c.msg == nil {
		c.msg = c.loop.getBuf(len(p))
	}
	n := len(*c.msg)
	c.msg = pool.Grow(c.msg, n+len(p))
	copy((*c.msg)[n:], p)
}

func (c *Conn) releaseMsg() {
	if c.msg != nil {
		c.loop.putBuf(c.msg)
		c.msg = nil
	}
}

// control handles a control frame whose unmasked payload is p.
func (c *Conn) control(p []byte) {
	srv := c.loop.srv
	switch c.h.Opcode {
	case codec.OpPing:
		if c.state == stateOpen {
			c.writeLoop(codec.OpPong, true, p, true)
		}
		if srv.pings != nil {
			c.dispatchControl(codec.OpPing, p)
		}
	case codec.OpPong:
		if srv.pongs != nil {
			c.dispatchControl(codec.OpPong, p)
		}
	case codec.OpClose:
		code, reason, err := codec.ParseClosePayload(p)
		if err != nil {
			c.fail(err)
			return
		}
		if c.state == stateOpen {
			// Echo the peer's code and reason (RFC 6455 §5.5.1); 1000 when
			// it sent no code.
			echo := code
			if echo == codec.StatusNoStatusReceived {
				echo = codec.StatusNormalClosure
			}
			c.sendClose(echo, string(reason))
		}
		c.setCloseErr(&codec.CloseError{Code: code, Reason: string(reason)})
		c.closed.Store(true)
		c.wantClose = true
	}
}

// fail sends a Close with the error's code (1002 unless the error says
// otherwise) when none was sent yet, and closes the socket: RFC 6455 §7.1.7
// "Fail the WebSocket Connection".
func (c *Conn) fail(err error) gnet.Action {
	if c.state == stateOpen {
		code := codec.CloseStatus(err)
		if code == 0 {
			code = codec.StatusProtocolError
		}
		c.sendClose(code, "")
	}
	c.setCloseErr(err)
	c.closed.Store(true)
	c.wantClose = true
	return gnet.Close
}

func (c *Conn) setCloseErr(err error) {
	if x := c.extra(); x.closeErr == nil {
		x.closeErr = err
	}
}

// abort closes the socket now (or when OnTraffic returns, if inside it)
// with err as the reason given to OnClose.
func (c *Conn) abort(err error) {
	c.setCloseErr(err)
	c.closed.Store(true)
	if c.state == stateClosed {
		return
	}
	if c.inTraffic {
		c.wantClose = true
		return
	}
	c.loop.el.Close(c.gc)
}

// closeErr is why the connection is closing (nil until Gale or the peer
// decided). Loop only.
func (c *Conn) closeErr() error {
	if c.ext == nil {
		return nil
	}
	return c.ext.closeErr
}
