package engine

import (
	"context"
	"sync"

	"github.com/galews/gale/codec"
)

// PreparedMessage is a message encoded once, to be sent to many
// connections: its frame is built at creation and written as is, so a
// broadcast costs one encoding however many receive it. With
// permessage-deflate it is also compressed once per window size, without
// context, by the first connection with that window, and that compressed
// frame is shared by every receiver with the same window; the others get
// the plain frame. It is immutable and safe for concurrent use.
//
// One frame per window rather than one with the smallest window: most
// peers use 32 KiB, and a 256-byte window loses every repeat further apart
// than that (records, long strings) and, below 15 bits, the configured
// Level (klauspost's custom-window compressor runs at about level 5's
// speed). So the common case keeps its level and pays one compression as
// before, while a broadcast to peers of k distinct windows compresses k
// times (at most 8), lazily, only for the windows in use.
type PreparedMessage struct {
	op    codec.Opcode
	n     int
	frame []byte

	z [8]preparedZ // by window bits - 8

	// The message as a Server-Sent Event, for streams (eventstream.go),
	// encoded by the first that needs it.
	ev struct {
		once sync.Once
		b    []byte
	}
}

// preparedZ is a prepared message's compressed frame for one window size.
type preparedZ struct {
	once  sync.Once
	frame []byte // the compressed frame (RSV1), nil when not smaller
}

// NewPreparedMessage encodes p (copied) as a server-to-client message.
func NewPreparedMessage(op codec.Opcode, p []byte) (*PreparedMessage, error) {
	if op != codec.OpText && op != codec.OpBinary {
		return nil, ErrInvalidOpcode
	}
	frame := codec.AppendFrame(make([]byte, 0, codec.MaxHeaderLen+len(p)), codec.Header{Fin: true, Opcode: op}, p)
	return &PreparedMessage{op: op, n: len(p), frame: frame}, nil
}

// payload returns the message's payload, inside its plain frame.
func (pm *PreparedMessage) payload() []byte { return pm.frame[len(pm.frame)-pm.n:] }

// Broadcast sends pm to every open connection. Each loop writes the one
// shared frame to its own connections, so there is no per-receiver copy or
// queueing. It returns once every loop has been asked; delivery follows.
//
// The guarantee: every connection open when its loop runs the broadcast
// receives pm once, after whatever was written to it before, and
// broadcasts made from one goroutine arrive in the order they were made.
// A connection whose backlog is at Config.MaxOutbound is treated as for
// any write (closed as a slow reader, or skipped under OutboundReject);
// connections that open later do not receive it, and nothing is retried.
func (s *Server) Broadcast(pm *PreparedMessage) error {
	var first error
	for _, l := range s.loopList() {
		if err := l.el.Execute(context.Background(), broadcaster{l, pm}); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type broadcaster struct {
	l  *loop
	pm *PreparedMessage
}

func (b broadcaster) Run(context.Context) error {
	b.l.enter()
	for c := b.l.conns; c != nil; {
		next := c.lnext
		if c.state == stateOpen && !c.closed.Load() {
			c.sendLoop(outFrame{op: b.pm.op, fin: true, pm: b.pm})
		}
		c = next
	}
	return nil
}
