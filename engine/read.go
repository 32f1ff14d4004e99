package engine

import (
	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// Reading frames where gnet holds the bytes. readFrames loops over four
// steps: the header (readHeader), then by the kind of frame a control frame
// (readControl), a data frame that is whole in gnet's buffer and needs no
// reassembly (readWhole: delivered in place, no copy), or the part of a
// frame that has arrived (readPartial: copied into the reassembly buffer).

// readFrames parses and dispatches every whole frame, and every piece of a
// data frame, that gnet holds. It returns the action for gnet. Loop only.
func (c *Conn) readFrames() gnet.Action {
	for {
		if c.closing() {
			return gnet.Close
		}
		if c.is(flagAwaitEnd) {
			// Nothing may follow the server's Close: drop what does and
			// keep waiting for the server's end of the TCP connection.
			c.skip(c.inbound())
			return gnet.None
		}
		if c.paused != 0 {
			return gnet.None // read backpressure (limits.go): the bytes wait in gnet
		}
		avail := int64(c.inbound())
		if !c.is(flagInFrame) {
			n, more := c.readHeader(avail)
			if !more {
				return c.action()
			}
			avail -= int64(n)
		}
		var more bool
		switch {
		case c.h.Opcode.IsControl():
			more = c.readControl(avail)
		case avail >= c.h.Length && c.msgLen == 0 && !c.dfl.compressed &&
			(c.h.Fin && c.h.Opcode != codec.OpContinuation || c.loop.srv.frames != nil):
			more = c.readWhole()
		default:
			more = c.readPartial(avail)
		}
		if !more {
			return c.action()
		}
	}
}

// action is what OnTraffic returns to gnet when reading stops.
func (c *Conn) action() gnet.Action {
	if c.closing() {
		return gnet.Close
	}
	return gnet.None
}

// readHeader decodes and checks the next frame header and consumes it. It
// returns the header's length, and false when the header is incomplete or
// the connection failed.
func (c *Conn) readHeader(avail int64) (int, bool) {
	if avail < 2 {
		return 0, false
	}
	srv := c.loop.srv
	h, n, err := codec.DecodeFrameHeader(c.peek(int(min(avail, codec.MaxHeaderLen))))
	if err == codec.ErrNeedMore {
		return 0, false
	}
	if err == nil {
		err = checkFrame(h, c.checkState(), c.msgLen, srv.cfg.MaxFrameSize, srv.cfg.MaxMessageSize)
	}
	if err != nil {
		c.fail(err)
		return 0, false
	}
	c.skip(n)
	c.h, c.maskPos = h, 0
	c.flags |= flagInFrame
	if h.Opcode == codec.OpText || h.Opcode == codec.OpBinary {
		c.msgOp, c.msgLen = h.Opcode, 0
		c.utf8.Reset()
		c.dfl.compressed = h.Rsv&codec.Rsv1 != 0
	}
	return n, true
}

// payload returns the current frame's next n bytes, unmasked in place,
// where they are held (see peek); valid until the matching discard.
func (c *Conn) payload(n int) []byte {
	if n == 0 {
		return nil
	}
	p := c.peek(n)
	if c.h.Masked {
		codec.Mask(p, c.h.Mask, 0)
	}
	return p
}

// discard drops n bytes the handler has seen. gnet's Discard(0) drops
// everything, and a closed connection has nothing left to drop.
func (c *Conn) discard(n int) {
	if n > 0 && c.state != stateClosed {
		c.skip(n)
	}
}

// readControl handles a control frame once it is whole.
func (c *Conn) readControl(avail int64) bool {
	if avail < c.h.Length {
		return false
	}
	n := int(c.h.Length)
	p := c.payload(n)
	c.flags &^= flagInFrame
	c.control(p)
	c.discard(n)
	return true
}

// readWhole delivers a data frame that gnet holds whole, in place, when no
// message is being reassembled.
func (c *Conn) readWhole() bool {
	n := int(c.h.Length)
	p := c.payload(n)
	c.flags &^= flagInFrame
	if c.msgOp == codec.OpText && !textValid(&c.utf8, p, c.h.Fin) {
		c.fail(codec.ErrInvalidUTF8)
		return false
	}
	op, fin := c.msgOp, c.h.Fin
	if fin {
		c.msgOp, c.msgLen = 0, 0
	} else {
		c.msgLen += int64(n) // FrameHandler: the message goes on
	}
	if c.loop.srv.frames != nil {
		c.dispatchFrame(c.h.Opcode, fin, p)
	} else {
		c.dispatchMessage(op, p)
	}
	c.discard(n)
	return true
}

// readPartial copies what has arrived of the current data frame into the
// reassembly buffer and, once the frame is complete, delivers the frame (to
// a FrameHandler) or the message (when it was the last frame).
func (c *Conn) readPartial(avail int64) bool {
	text := c.msgOp == codec.OpText
	k := min(avail, c.h.Length)
	if k == 0 && c.h.Length > 0 {
		return false
	}
	if k > 0 {
		if !c.admitRead(k) {
			return false // over the memory budget: the bytes wait in gnet
		}
		p := c.peek(int(k))
		if c.h.Masked {
			c.maskPos = uint8(codec.Mask(p, c.h.Mask, int(c.maskPos)))
		}
		if text && !c.dfl.compressed && !c.utf8.Write(p) {
			c.fail(codec.ErrInvalidUTF8)
			return false
		}
		c.appendMsg(p)
		c.skip(int(k))
		c.h.Length -= k
		c.msgLen += k
		if c.h.Length > 0 {
			return false
		}
	}
	c.flags &^= flagInFrame
	fin := c.h.Fin
	switch {
	case c.dfl.compressed:
		if fin {
			c.deliverDeflated() // whole, even to a FrameHandler
		}
		return true
	case fin && text && !c.utf8.Done():
		c.fail(codec.ErrInvalidUTF8)
		return false
	case c.loop.srv.frames != nil:
		c.dispatchFrame(c.h.Opcode, fin, c.msgBytes())
		c.releaseMsg()
	case fin:
		c.dispatchMessage(c.msgOp, c.msgBytes())
		c.releaseMsg()
	}
	if fin {
		c.msgOp, c.msgLen = 0, 0
	}
	return true
}

// control handles a control frame whose unmasked payload is p.
func (c *Conn) control(p []byte) {
	srv := c.loop.srv
	switch c.h.Opcode {
	case codec.OpPing:
		if c.state == stateOpen {
			c.sendLoop(outFrame{op: codec.OpPong, fin: true, p: p, own: true})
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
		c.closeReceived(code, reason)
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
// The buffer's capacity counts in the memory budget.
func (c *Conn) appendMsg(p []byte) {
	was := 0
	if c.msg == nil {
		c.msg = c.loop.getBuf(len(p))
	} else {
		was = cap(*c.msg)
	}
	n := len(*c.msg)
	c.msg = pool.Grow(c.msg, n+len(p))
	copy((*c.msg)[n:], p)
	c.loop.srv.mem.add(int64(cap(*c.msg) - was))
}

func (c *Conn) releaseMsg() {
	if c.msg != nil {
		c.loop.srv.mem.add(-int64(cap(*c.msg)))
		c.loop.putBuf(c.msg)
		c.msg = nil
	}
}
