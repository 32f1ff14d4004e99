package engine

import "errors"

// Errors returned by Conn methods and passed to Handler.OnClose.
var (
	// ErrClosed is returned by writes after the connection started closing.
	ErrClosed = errors.New("gale: connection closed")
	// ErrOutboundFull is returned by a write that would take the outbound
	// buffer past Config.MaxOutbound under OutboundReject.
	ErrOutboundFull = errors.New("gale: outbound buffer full")
	// ErrCloseTimeout: we sent Close and the peer did not answer in time.
	ErrCloseTimeout = errors.New("gale: close handshake timed out")
	// ErrIdleTimeout: nothing was received for Config.IdleTimeout.
	ErrIdleTimeout = errors.New("gale: idle timeout")
	// ErrHandshakeTimeout: the upgrade request did not complete in time.
	ErrHandshakeTimeout = errors.New("gale: handshake timeout")
	// ErrHandlerPanic: a callback panicked; the connection was closed with 1011.
	ErrHandlerPanic = errors.New("gale: handler panicked")
	// ErrServerClosed: the server shut down; connections were closed with 1001.
	ErrServerClosed = errors.New("gale: server closed")
	// ErrSlowReader: a message met a backlog of Config.MaxOutbound under
	// OutboundClose, or a paused peer sent MaxOutbound unread bytes; the
	// connection was closed with 1008.
	ErrSlowReader = errors.New("gale: outbound buffer limit exceeded (slow reader)")
	// ErrMemoryBudget: the server was over Config.MemoryBudget and the
	// connection had a backlog (it was not reading); it was closed with 1013.
	ErrMemoryBudget = errors.New("gale: server memory budget exceeded")
	// ErrWorkerQueueFull: a connection's events outran the workers
	// (Config.WorkerQueue); it was closed with 1013.
	ErrWorkerQueueFull = errors.New("gale: worker queue full")
	// ErrInvalidOpcode is returned by writes with an opcode that is not a
	// data opcode (WriteMessage) or not a data or continuation opcode
	// (WriteFrame).
	ErrInvalidOpcode = errors.New("gale: invalid opcode for this write")
	// ErrBadURL is returned by the dials for a URL that is not ws:// or
	// wss://.
	ErrBadURL = errors.New("gale: URL scheme must be ws or wss")
	// ErrDialOption is returned by Client.Dial for a DialOptions limit
	// (MaxMessageSize, MaxHeaderBytes, CloseTimeout) or Compression that
	// differs from the Client's Config, which sets them for all its
	// connections.
	ErrDialOption = errors.New("gale: dial option conflicts with the Client's Config")
	// ErrBadAddress is returned by Start for a listen address that is not
	// host:port, tcp://host:port (tcp4://, tcp6://) or unix:///path.
	ErrBadAddress = errors.New("gale: listen address must be host:port, tcp://host:port or unix:///path")
	// ErrControlTooLong is returned by Ping and Close with a payload over 125 bytes.
	ErrControlTooLong = errors.New("gale: control frame payload over 125 bytes")
)
