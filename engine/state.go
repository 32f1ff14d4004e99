package engine

import (
	"errors"

	"github.com/galews/gale/codec"
)

// A connection's life, for both roles, in one place. Every change of
// c.state happens in this file.
//
//	            accept / dial
//	                  │
//	          stateHandshake ── bad request or response, timeout,
//	                  │         shutdown ──────────────────────────┐
//	                  │ c.open()                                   │
//	                  ▼                                            │
//	             stateOpen ─── c.sendClose(): our Close sent ──┐   │
//	                  │                                        ▼   │
//	                  │                                stateClosing│
//	                  │ the peer's Close (echoed),              │  │
//	                  │ c.fail(), c.abort()     the peer's      │  │
//	                  │                         Close, timeout  │  │
//	                  ▼                                         ▼  ▼
//	        socket close requested: c.abort() (wantClose inside OnTraffic)
//	                  │
//	                  ▼  gnet's OnClose → c.socketClosed()
//	             stateClosed: resources released, Handler.OnClose once
//
// A client whose close handshake is done stays in stateClosing with
// flagAwaitEnd set, discarding input, until the server closes the socket
// or the close timer fires (closeReceived says why).
//
// Beside the state, three flags say what the rest of the engine may do:
// closed (atomic, read by any goroutine) is set as soon as no more user
// writes are accepted, that is once a Close was sent or requested or the
// socket is going; wantClose asks OnTraffic to return gnet.Close (a close
// requested from inside the callback, where gnet's own Close would only be
// queued); notified records that Handler.OnClose ran.

type connState uint8

const (
	stateHandshake connState = iota // reading the upgrade request (server) or response (client)
	stateOpen                       // upgraded
	stateClosing                    // our Close is sent; waiting for the peer's
	stateClosed                     // the socket is gone
)

// open moves an upgraded connection to stateOpen: the one open transition
// of both roles. Loop only.
func (c *Conn) open() {
	l := c.loop
	c.releaseHandshake()
	c.state = stateOpen
	l.stats.upgrades.Add(1)
	c.lastRead, c.lastPing = l.stamp(), l.stamp()
	c.armKeepalive()
	c.dispatchOpen()
}

// sendClose writes a Close frame and moves to stateClosing with the close
// timer armed; no more user writes are accepted. A no-op unless open. Loop
// only.
func (c *Conn) sendClose(code codec.StatusCode, reason string) {
	if c.state != stateOpen {
		return
	}
	if c.stream {
		c.endStream(code, reason)
		return
	}
	c.closed.Store(true)
	var buf [codec.MaxControlPayload]byte
	payload := codec.AppendClosePayload(buf[:0], code, reason)
	c.sendLoop(outFrame{op: codec.OpClose, fin: true, p: payload, own: true})
	c.sentCode = code
	if c.state == stateClosed {
		return
	}
	c.state = stateClosing
	l := c.loop
	l.wheel.schedule(c, l.wheel.now+l.srv.ticks(l.srv.cfg.CloseTimeout))
}

// closeReceived handles the peer's Close: echo its code and reason when we
// had not sent ours (RFC 6455 §5.5.1), then drop the socket. Loop only.
func (c *Conn) closeReceived(code codec.StatusCode, reason []byte) {
	if c.state == stateOpen {
		c.sendClose(closeEchoCode(code), string(reason))
	}
	err := &codec.CloseError{Code: code, Reason: string(reason)}
	if c.client && c.state == stateClosing {
		// RFC 6455 §7.1.1: the server closes the TCP connection first, so
		// that TIME_WAIT stays with it and not with the client, whose
		// address and port would otherwise be held for a minute. A client
		// redialling many connections from few addresses (every client of
		// a restarting server) otherwise finds its dials slowed by its own
		// TIME_WAIT sockets. The close timer (armed with our Close) bounds
		// the wait for a server that never closes.
		c.setCloseErr(err)
		c.flags |= flagAwaitEnd
		return
	}
	c.abort(err)
}

// fail sends a Close with the error's code (1002 unless the error says
// otherwise) when none was sent yet, and drops the socket: RFC 6455 §7.1.7
// "Fail the WebSocket Connection". Loop only.
func (c *Conn) fail(err error) { c.failWith(failCode(err), "", err) }

// failWith is fail with a chosen code and reason: Gale's own decisions
// (idle timeout, slow reader, handler panic). Loop only.
func (c *Conn) failWith(code codec.StatusCode, reason string, err error) {
	c.sendClose(code, reason)
	c.abort(err)
}

// abort drops the socket now (or when OnTraffic returns, if inside it) with
// err as the reason given to OnClose, unless an earlier reason was set.
// Loop only.
func (c *Conn) abort(err error) {
	c.setCloseErr(err)
	c.closed.Store(true)
	if c.state == stateClosed {
		return
	}
	if c.is(flagInTraffic) {
		c.flags |= flagWantClose
		return
	}
	c.loop.el.Close(c.socket())
}

// closing reports whether the socket is closed or about to be, so reading
// must stop. Loop only.
func (c *Conn) closing() bool { return c.is(flagWantClose) || c.state == stateClosed }

func (c *Conn) setCloseErr(err error) {
	if x := c.extra(); x.closeErr == nil {
		x.closeErr = err
	}
}

// closeErr is why the connection is closing (nil until Gale or the peer
// decided). Loop only.
func (c *Conn) closeErr() error {
	if x := c.ext.Load(); x != nil {
		return x.closeErr
	}
	return nil
}

// socketClosed is gnet's OnClose for the connection: the last transition.
// It releases everything the connection borrowed, counts how it ended and
// calls Handler.OnClose (held back while inside OnTraffic, which calls it
// on return). Loop only.
func (c *Conn) socketClosed(err error) {
	l := c.loop
	prev := c.state
	c.state = stateClosed
	c.closed.Store(true)
	l.wheel.remove(c)
	l.unlink(c)
	l.stats.open.Add(-1)
	if l.batchConn == c {
		l.batch, l.batchConn = l.batch[:0], nil // never to reach another connection
	}
	c.releaseMsg()
	c.releaseDeflate()
	c.releaseQueue()
	c.releaseTopics()
	c.unaccount()
	if c.paused != 0 {
		c.paused = 0
		l.stats.paused.Add(-1)
	}
	if prev == stateHandshake && c.client {
		c.dialFailed(err)
	}
	c.releaseHandshake()
	if prev == stateHandshake {
		return // never opened: no OnClose
	}
	cause := c.closeErr()
	switch {
	case cause != nil:
	case err != nil:
		cause = err
	default:
		cause = ErrServerClosed
	}
	c.extra().closeErr = cause
	code := codec.CloseStatus(cause)
	switch {
	case code != 0:
	case c.sentCode != 0:
		code = c.sentCode // an engine decision (idle, panic, slow reader …): the code we sent
	case errors.Is(cause, ErrServerClosed):
		code = codec.StatusGoingAway
	default:
		code = codec.StatusAbnormalClosure
	}
	l.stats.countClose(code)
	if !c.is(flagInTraffic) {
		c.notifyClose(cause)
	}
}

// notifyClose calls Handler.OnClose once.
func (c *Conn) notifyClose(err error) {
	if c.is(flagNotified) {
		return
	}
	c.flags |= flagNotified
	srv := c.loop.srv
	if srv.workers != nil {
		c.closeToWorker(err)
		return
	}
	callClose(srv, c, err)
}
