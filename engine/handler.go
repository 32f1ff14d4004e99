package engine

import "github.com/galews/gale/codec"

// Handler receives a connection's events. Callbacks run on the event loop
// that owns the connection, one at a time per connection, unless
// Config.Workers is set, in which case OnMessage, OnFrame, OnPing and OnPong
// run on a worker goroutine, still in order per connection. Either way a
// callback must not retain the payload slice after it returns: it aliases
// gnet's read buffer or a pooled buffer that is reused (copy it to keep it).
type Handler interface {
	// OnOpen is called once the upgrade succeeded, before any message, or
	// once an event stream was accepted (Conn.IsEventStream). It runs on
	// the event loop.
	OnOpen(c *Conn)
	// OnMessage is called with each complete message: op is OpText or
	// OpBinary, payload the reassembled (and, for text, UTF-8 checked)
	// data, valid during the call only.
	OnMessage(c *Conn, op codec.Opcode, payload []byte)
	// OnClose is called exactly once per opened connection, on every path:
	// err is a *codec.CloseError for a close handshake (the peer's code and
	// reason), a *codec.ProtocolError when Gale failed the connection (its
	// Code was sent), one of this package's Err* values, or the transport
	// error (io.EOF and friends) when the peer vanished. codec.CloseStatus
	// extracts the code. It runs on the event loop (after any queued
	// worker callbacks of the connection when Config.Workers is set).
	OnClose(c *Conn, err error)
}

// PingHandler is implemented by handlers that want to see pings. A pong
// is sent automatically before OnPing is called.
type PingHandler interface {
	OnPing(c *Conn, payload []byte)
}

// PongHandler is implemented by handlers that want to see pongs.
type PongHandler interface {
	OnPong(c *Conn, payload []byte)
}

// FrameHandler is implemented by handlers that want data frames one by one
// as they arrive instead of whole messages: OnFrame replaces OnMessage. op
// is the frame's opcode (OpContinuation after the first frame of a
// message), fin its FIN bit; payload is valid during the call only. Text
// frames are UTF-8 checked across the message as usual.
type FrameHandler interface {
	OnFrame(c *Conn, op codec.Opcode, fin bool, payload []byte)
}

// BaseHandler is a Handler that does nothing; embed it to implement only
// the callbacks you need.
type BaseHandler struct{}

func (BaseHandler) OnOpen(*Conn)                          {}
func (BaseHandler) OnMessage(*Conn, codec.Opcode, []byte) {}
func (BaseHandler) OnClose(*Conn, error)                  {}
