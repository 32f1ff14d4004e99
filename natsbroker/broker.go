// Package natsbroker carries Gale's topics between servers over NATS: an
// engine.Broker on github.com/nats-io/nats.go. Each Gale server (node)
// gets its own Broker, and so its own NATS connection, and sets it as
// engine.Config.Broker; a Server.Publish on any node then reaches the
// subscribers of every node sharing the NATS cluster.
//
// A topic is a NATS subject under a prefix ("gale.topic.news"; see
// Options.Prefix for topics that are not valid subject tokens). A node
// subscribes to a topic's subject while it has local subscribers, so NATS
// sends each node only what it needs. The opcode and the publishing node
// travel in headers (Gale-Op, Gale-Node); a message without Gale-Op, from
// another NATS client, is text when it is valid UTF-8 and binary
// otherwise.
//
// Delivery across nodes is at most once, as NATS core's: a node does not
// get its own publishes back (Connect sets nats.NoEcho, and a node drops
// any message bearing its own Gale-Node, for a connection given to New
// without it). While NATS is unreachable, local delivery goes on; nats.go
// keeps what is published in its reconnect buffer (nats.ReconnectBufSize,
// 8 MiB by default) and sends it once reconnected, and refuses more past
// that (Server.Publish then returns an error wrapping engine.ErrBroker). It
// reconnects forever and subscribes again to every subject on its own.
package natsbroker

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// Headers of the messages a Broker publishes.
const (
	// HeaderOp is the message's opcode: "text" or "binary".
	HeaderOp = "Gale-Op"
	// HeaderNode names the node that published it.
	HeaderNode = "Gale-Node"
)

// Defaults.
const (
	DefaultPrefix        = "gale.topic."
	DefaultBuffer        = 1 << 16
	DefaultReconnectWait = time.Second
)

// Options configure a Broker. The zero value works.
type Options struct {
	// Prefix starts every subject; a missing final '.' is added. Default
	// "gale.topic.". Nodes that are to share topics use the same prefix.
	Prefix string
	// Buffer is how many messages from other nodes may wait for delivery
	// to local subscribers; past it NATS drops what arrives (a slow
	// consumer, logged). Default 65536.
	Buffer int
	// Logger receives the connection's events (disconnected, reconnected,
	// closed, dropped messages). Default slog.Default().
	Logger *slog.Logger
}

// Broker is an engine.Broker on a NATS connection. Its methods are safe
// for concurrent use.
type Broker struct {
	nc     *nats.Conn
	own    bool // Connect made nc: Close closes it
	prefix string
	node   string
	hdr    [3]nats.Header // by opcode: text (1) and binary (2)
	log    *slog.Logger
	ch     chan *nats.Msg

	mu      sync.Mutex
	subs    map[string]*nats.Subscription
	started bool
	closed  bool
	done    chan struct{}
	exited  chan struct{}

	published, delivered atomic.Uint64
}

var _ engine.Broker = (*Broker)(nil)

// ErrClosed is returned by a Broker's methods after Close.
var ErrClosed = errors.New("natsbroker: closed")

// New returns a Broker on nc, which the caller keeps: Close leaves it open.
// Give each node its own connection. Its handlers are left as they are;
// Connect sets them to log, and to reconnect forever.
func New(nc *nats.Conn, opts Options) *Broker {
	prefix := cmp.Or(opts.Prefix, DefaultPrefix)
	if !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	var id [8]byte
	rand.Read(id[:])
	b := &Broker{
		nc:     nc,
		prefix: prefix,
		node:   hex.EncodeToString(id[:]),
		log:    cmp.Or(opts.Logger, slog.Default()),
		ch:     make(chan *nats.Msg, cmp.Or(opts.Buffer, DefaultBuffer)),
		subs:   make(map[string]*nats.Subscription),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	// Shared by every publish: nats.go only reads a message's header.
	b.hdr[codec.OpText] = nats.Header{HeaderOp: {"text"}, HeaderNode: {b.node}}
	b.hdr[codec.OpBinary] = nats.Header{HeaderOp: {"binary"}, HeaderNode: {b.node}}
	return b
}

// Connect connects to the NATS server(s) at url (comma-separated URLs for
// a cluster) and returns a Broker that owns the connection. The connection
// is made with nats.NoEcho (a node's publishes do not come back to it),
// reconnects forever every DefaultReconnectWait, and logs its
// disconnections, reconnections and errors to opts.Logger; natsOpts come
// after these and may change them. The first connection must succeed
// (nats.RetryOnFailedConnect changes that).
func Connect(url string, opts Options, natsOpts ...nats.Option) (*Broker, error) {
	b := New(nil, opts)
	base := []nats.Option{
		nats.Name("gale " + b.node),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			b.log.Warn("natsbroker: disconnected from NATS; local delivery goes on, reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("natsbroker: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				b.log.Warn("natsbroker: NATS connection closed", "err", err)
			}
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Warn("natsbroker: NATS error", "subject", subj, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(base, natsOpts...)...)
	if err != nil {
		return nil, err
	}
	b.nc, b.own = nc, true
	return b, nil
}

// Conn returns the broker's NATS connection.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Node returns the identity the broker puts in HeaderNode.
func (b *Broker) Node() string { return b.node }

// Start implements engine.Broker: deliver gets, on one goroutine, every
// message other nodes publish to the topics subscribed to.
func (b *Broker) Start(deliver func(topic string, op codec.Opcode, payload []byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.started:
		return errors.New("natsbroker: started twice")
	}
	b.started = true
	go b.run(deliver)
	return nil
}

// run delivers what NATS sends, in the order it arrives (so one node's
// publishes to a topic reach the others in the order they were made).
func (b *Broker) run(deliver func(string, codec.Opcode, []byte)) {
	defer close(b.exited)
	for {
		select {
		case <-b.done:
			return
		case m := <-b.ch:
			if m.Header.Get(HeaderNode) == b.node {
				continue // our own, on a connection without NoEcho
			}
			topic, err := decodeSubject(b.prefix, m.Subject)
			if err != nil {
				continue
			}
			var op codec.Opcode
			switch m.Header.Get(HeaderOp) {
			case "text":
				op = codec.OpText
			case "binary":
				op = codec.OpBinary
			default:
				op = codec.OpBinary
				if utf8.Valid(m.Data) {
					op = codec.OpText
				}
			}
			b.delivered.Add(1)
			deliver(topic, op, m.Data)
		}
	}
}

// Publish implements engine.Broker.
func (b *Broker) Publish(topic string, op codec.Opcode, payload []byte) error {
	if op != codec.OpText && op != codec.OpBinary {
		return engine.ErrInvalidOpcode
	}
	if err := b.nc.PublishMsg(&nats.Msg{Subject: subject(b.prefix, topic), Header: b.hdr[op], Data: payload}); err != nil {
		return err
	}
	b.published.Add(1)
	return nil
}

// Subscribe implements engine.Broker. It queues the subscription on the
// connection and returns (NATS applies it in order, before what is
// published on the connection after it).
func (b *Broker) Subscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if _, ok := b.subs[topic]; ok {
		return nil
	}
	sub, err := b.nc.ChanSubscribe(subject(b.prefix, topic), b.ch)
	if err != nil {
		return err
	}
	b.subs[topic] = sub
	return nil
}

// Unsubscribe implements engine.Broker.
func (b *Broker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub, ok := b.subs[topic]
	if !ok {
		return nil
	}
	delete(b.subs, topic)
	return sub.Unsubscribe()
}

// Close implements engine.Broker: it unsubscribes, stops delivering and,
// for a Broker from Connect, flushes and closes the connection.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var errs []error
	if !b.own {
		for _, sub := range b.subs {
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				errs = append(errs, err)
			}
		}
	}
	clear(b.subs)
	started := b.started
	b.mu.Unlock()
	if b.own {
		if b.nc.IsConnected() {
			b.nc.FlushTimeout(time.Second) // what was published goes out
		}
		b.nc.Close()
	}
	close(b.done)
	if started {
		<-b.exited
	}
	return errors.Join(errs...)
}

// Stats are a Broker's counters.
type Stats struct {
	Published uint64 // messages sent to NATS
	Delivered uint64 // messages from other nodes handed to the server
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{Published: b.published.Load(), Delivered: b.delivered.Load()}
}
