package engine

import (
	"errors"
	"net"
	"net/http"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// Server-Sent Events: a GET that asks for text/event-stream, on a path
// Config.OnEventStream accepts, becomes a stream held by the loops like a
// WebSocket connection. It is a *Conn with the stream flag set, so
// everything else a connection has applies unchanged: OnOpen and OnClose,
// UserData, Request, Subscribe, the write path with its ordering and
// outbound policy, the memory budget, the timing wheel. What differs:
//
//   - writes are events in the text/event-stream format, written as raw
//     bytes through the same path as frames (outFrame.raw);
//   - nothing is read: bytes the client sends after its request are
//     discarded (an EventSource sends none, and a stream has no way to
//     answer them);
//   - the keepalive timer writes a heartbeat comment instead of a ping,
//     and IdleTimeout, which counts the time since bytes were received,
//     does not apply: a stream's client never sends. A vanished client
//     shows as the socket failing (a reset, or, on Linux, TCP_USER_TIMEOUT
//     set to IdleTimeout, which drops a stream whose heartbeats go
//     unacknowledged that long) or as a backlog reaching MaxOutbound;
//   - closing ends the stream: what was written is flushed, then the
//     socket closes (the client's EventSource then reconnects by itself,
//     with Last-Event-ID).

// Event is one server-sent event, for Conn.WriteEvent.
type Event = codec.Event

// ErrNotEventStream is returned by WriteEvent on a WebSocket connection.
var ErrNotEventStream = errors.New("gale: WriteEvent on a WebSocket connection")

// ErrEventStream is returned by the writes a stream cannot carry: Ping,
// Pong, and WriteFrame unless it is a whole text or binary message.
var ErrEventStream = errors.New("gale: WebSocket frame written to an event stream")

// EventStreamRequest is what Config.OnEventStream sees of a request for an
// event stream. The embedded codec.Request gives the method, path, query
// and headers (Header, Headers, Cookie); its slices are valid during the
// call only.
type EventStreamRequest struct {
	*codec.Request
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// LastEventID is the Last-Event-ID the client sent, "" when none: the
	// ID of the last event it received before reconnecting, from which the
	// application resumes.
	LastEventID string

	// Set by the hook; sent or attached when the stream is accepted.
	ResponseHeader http.Header // extra fields for the 200 response
	UserData       any         // attached to the Conn (Conn.UserData)
}

// IsEventStream reports whether c is a Server-Sent Events stream rather
// than a WebSocket connection.
func (c *Conn) IsEventStream() bool { return c.stream }

// WriteEvent sends ev on an event stream, with the ordering, outbound
// policy and queueing of WriteMessage: from the connection's callbacks it
// goes to gnet (batched with the other writes of the same callback), from
// other goroutines into the connection's queue, and writes from one
// goroutine arrive in order. ev.Data may be reused as soon as WriteEvent
// returns. It returns codec.ErrEventField for an ID or event name with a
// line break, ErrNotEventStream on a WebSocket connection.
//
// On a stream, WriteMessage, WriteText, WriteBinary, WritePrepared,
// Server.Publish and Server.Broadcast send their payload as the data of
// an event with no ID or name, so that code written for WebSocket
// connections, and topics shared with them, reach streams unchanged.
func (c *Conn) WriteEvent(ev Event) error {
	if !c.stream {
		return ErrNotEventStream
	}
	l := c.loop
	if l.onLoop() {
		if c.closed.Load() || c.state != stateOpen {
			return ErrClosed
		}
		b, err := codec.AppendEvent(l.evbuf[:0], &ev)
		if err != nil {
			return err
		}
		err = c.sendLoop(outFrame{op: codec.OpText, fin: true, raw: true, p: b})
		l.evbuf = b[:0]
		if cap(b) > maxSpare {
			l.evbuf = nil
		}
		return err
	}
	buf := pool.Get(codec.EventLen(&ev))
	defer pool.Put(buf)
	b, err := codec.AppendEvent((*buf)[:0], &ev)
	if err != nil {
		return err
	}
	*buf = b
	return c.sendQueued(outFrame{op: codec.OpText, fin: true, raw: true, p: b})
}

// sendAsEvent sends a WebSocket write on a stream: a whole message
// becomes the data of an event, anything else is refused.
func (c *Conn) sendAsEvent(f outFrame) error {
	if !f.fin || (f.op != codec.OpText && f.op != codec.OpBinary) {
		return ErrEventStream
	}
	return c.WriteEvent(Event{Data: f.p})
}

// heartbeat is the keepalive comment (codec.EventStreamHeartbeat).
var heartbeat = []byte(codec.EventStreamHeartbeat)

// event returns pm's payload encoded as a data-only event, encoded by the
// first stream that needs it and shared by every other.
func (pm *PreparedMessage) event() []byte {
	pm.ev.once.Do(func() {
		ev := Event{Data: pm.payload()}
		pm.ev.b, _ = codec.AppendEvent(make([]byte, 0, codec.EventLen(&ev)), &ev)
	})
	return pm.ev.b
}

// acceptsStream reports whether a request that is not an upgrade asks for
// an event stream the server may serve.
func (s *Server) acceptsStream(req *codec.Request) bool {
	return s.cfg.OnEventStream != nil && string(req.Method) == http.MethodGet &&
		codec.AcceptsEventStream(req.Header("Accept"))
}

// openStream answers a request for an event stream: it runs
// Config.OnEventStream, then writes the 200 head or the refusal, and opens
// the connection as a stream. head is the request's length. Loop only.
func (c *Conn) openStream(req *codec.Request, head int) gnet.Action {
	srv := c.loop.srv
	er := &c.hs.es
	*er = EventStreamRequest{
		Request:     req,
		RemoteAddr:  c.peerAddr(),
		LocalAddr:   c.LocalAddr(),
		LastEventID: string(req.Header("Last-Event-ID")),
	}
	if err := srv.callEventStream(er); err != nil {
		return c.reject(appendRefusal(c.loop.out[:0], err), err)
	}
	resp := codec.AppendEventStreamResponse(c.loop.out[:0], er.ResponseHeader)
	c.loop.out = resp[:0]
	if _, err := c.gc.Write(resp); err != nil {
		return gnet.None // gnet closed the connection
	}
	c.stream = true
	if srv.cfg.KeepRequest {
		c.extra().req = srv.keepRequest(req)
	}
	if er.UserData != nil {
		c.SetUserData(er.UserData)
	}
	c.skip(head)
	setStreamTimeout(c)
	c.open()
	if c.closing() {
		return gnet.Close
	}
	return c.readStream()
}

// readStream discards what the client sent after its request. Loop only.
func (c *Conn) readStream() gnet.Action {
	if n := c.inbound(); n > 0 {
		c.skip(n)
	}
	return c.action()
}

// callEventStream runs the hook, turning a panic into a refusal.
func (s *Server) callEventStream(r *EventStreamRequest) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.cfg.Logger.Error("gale: OnEventStream panicked", "panic", v, "remote", r.RemoteAddr)
			err = &Reject{Status: http.StatusInternalServerError, Body: "internal error\n"}
		}
	}()
	return s.cfg.OnEventStream(r)
}

// appendRefusal appends the response refusing a request for err: a
// *Reject's status (4xx or 5xx), headers and body, else 403.
func appendRefusal(dst []byte, err error) []byte {
	var rj *Reject
	if !errors.As(err, &rj) {
		rj = &Reject{Status: http.StatusForbidden, Body: "forbidden\n"}
	}
	status := rj.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	return codec.AppendRejectResponse(dst, status, rj.Header, []byte(rj.Body))
}

// endStream is sendClose for a stream: no more writes are accepted, and
// the socket closes once gnet has handed what was written to the kernel,
// or at CloseTimeout if the client does not read that far. OnClose gets a
// *codec.CloseError with code and reason unless Gale decided earlier why
// the stream ends. Loop only; the caller has checked that c is open.
func (c *Conn) endStream(code codec.StatusCode, reason string) {
	c.closed.Store(true)
	c.sentCode = code
	c.setCloseErr(&codec.CloseError{Code: code, Reason: reason})
	if c.flushBatch() != nil || c.state == stateClosed {
		return
	}
	if c.gc.OutboundBuffered() == 0 {
		c.abort(nil)
		return
	}
	c.state = stateClosing
	l := c.loop
	l.wheel.schedule(c, l.wheel.now+l.srv.ticks(l.srv.cfg.CloseTimeout))
	c.account() // watched while it holds a backlog: the watch ends it (streamDrained)
}

// streamDrained closes a stream that is ending once its backlog is gone;
// run by the watch list. Loop only.
func (c *Conn) streamDrained() {
	if c.stream && c.state == stateClosing && c.gc.OutboundBuffered() == 0 {
		c.abort(nil)
	}
}
