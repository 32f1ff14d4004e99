package engine

import (
	"fmt"

	"github.com/galews/gale/codec"
)

// Dispatch runs user callbacks with panic recovery: a panic closes the
// connection with 1011 and is logged, and the loop carries on.

func (c *Conn) dispatchOpen() {
	defer c.recoverPanic("OnOpen")
	c.loop.srv.h.OnOpen(c)
}

func (c *Conn) dispatchMessage(op codec.Opcode, p []byte) {
	l := c.loop
	l.stats.msgsIn.Add(1)
	l.stats.bytesIn.Add(uint64(len(p)))
	if l.srv.workers != nil {
		c.toWorker(eventMessage, op, false, p)
		return
	}
	defer c.recoverPanic("OnMessage")
	l.srv.h.OnMessage(c, op, p)
}

func (c *Conn) dispatchFrame(op codec.Opcode, fin bool, p []byte) {
	l := c.loop
	if fin {
		l.stats.msgsIn.Add(1)
	}
	l.stats.bytesIn.Add(uint64(len(p)))
	if l.srv.workers != nil {
		c.toWorker(eventFrame, op, fin, p)
		return
	}
	defer c.recoverPanic("OnFrame")
	l.srv.frames.OnFrame(c, op, fin, p)
}

func (c *Conn) dispatchControl(op codec.Opcode, p []byte) {
	srv := c.loop.srv
	if srv.workers != nil {
		c.toWorker(eventControl, op, true, p)
		return
	}
	defer c.recoverPanic("OnPing/OnPong")
	if op == codec.OpPing {
		srv.pings.OnPing(c, p)
	} else {
		srv.pongs.OnPong(c, p)
	}
}

// recoverPanic is deferred around callbacks run on the loop.
func (c *Conn) recoverPanic(callback string) {
	v := recover()
	if v == nil {
		return
	}
	c.loop.srv.cfg.Logger.Error("gale: handler panicked", "callback", callback, "panic", v, "remote", c.RemoteAddr())
	c.failWith(codec.StatusInternalError, "", fmt.Errorf("%w: %s: %v", ErrHandlerPanic, callback, v))
}

func callClose(srv *Server, c *Conn, err error) {
	defer func() {
		if v := recover(); v != nil {
			srv.cfg.Logger.Error("gale: handler panicked", "callback", "OnClose", "panic", v, "remote", c.RemoteAddr())
		}
	}()
	srv.h.OnClose(c, err)
}
