package engine

import (
	"errors"
	"fmt"
	"sync"

	"github.com/galews/gale/codec"
)

// Topics across servers: a Broker carries what Server.Publish sends to the
// other servers (nodes) sharing it, and hands their publishes to this one.
// The engine knows only this interface, so a program that imports engine
// gets no messaging client in its module graph; Gale's NATS broker is the
// separate module github.com/galews/gale/natsbroker.

// Broker connects a server's topics to other servers. The server calls
// Start once, when it starts; Publish for every Server.Publish (after the
// local delivery was queued); Subscribe when the server's first subscriber
// of a topic appears and Unsubscribe when its last one leaves; Close on
// Shutdown. Subscribe and Unsubscribe are called one at a time, in order,
// from the server's event loops: they must queue their work rather than
// wait on the network. Publish may be called from many goroutines at once.
//
// The guarantee across nodes is at most once: a message a node publishes
// reaches each subscriber on the other nodes once if the broker carries it,
// and not at all if the broker loses it (an outage, a slow consumer). A
// node never receives its own publishes back from the broker (the broker
// drops them): its subscribers get them from the local delivery only, which
// goes on whatever the broker's state.
type Broker interface {
	// Start begins delivering: deliver is to be called with every message
	// another node published to a topic this node is subscribed to. It
	// sends to local subscribers only, never back to the broker, and may
	// be called from any goroutine; the payload is copied before it
	// returns.
	Start(deliver func(topic string, op codec.Opcode, payload []byte)) error
	// Publish sends a message to the other nodes subscribed to topic.
	// The payload is the caller's only for the duration of the call.
	Publish(topic string, op codec.Opcode, payload []byte) error
	// Subscribe declares this node's interest in topic; Unsubscribe
	// withdraws it.
	Subscribe(topic string) error
	Unsubscribe(topic string) error
	// Close stops delivering and releases the broker's resources.
	Close() error
}

// ErrBroker wraps the errors a Broker returns to Server.Publish. The local
// delivery was queued all the same: only the other nodes may miss the
// message.
var ErrBroker = errors.New("gale: broker")

// brokerState is the server's side of its Broker: the node-wide interest,
// as a count of the loops holding a subscriber set for each topic. It is
// touched only when a loop creates or drops a set, never per subscriber or
// per publish, so subscribing a connection to a topic the loop already
// serves costs no lock.
type brokerState struct {
	b        Broker // Config.Broker; nil without
	mu       sync.Mutex
	interest map[string]int // loops with a set for the topic
	started  bool
}

// startBroker starts the configured broker, if any. Under bootMu.
func (s *Server) startBroker() error {
	k := &s.bk
	if k.b == nil || k.started {
		return nil
	}
	if err := k.b.Start(s.deliverRemote); err != nil {
		return fmt.Errorf("%w: start: %w", ErrBroker, err)
	}
	k.mu.Lock()
	k.started = true
	k.mu.Unlock()
	return nil
}

// closeBroker closes the broker once the loops have stopped.
func (s *Server) closeBroker() {
	k := &s.bk
	if k.b == nil {
		return
	}
	k.mu.Lock()
	started := k.started
	k.started = false
	k.mu.Unlock()
	if started {
		if err := k.b.Close(); err != nil {
			s.cfg.Logger.Warn("gale: closing the broker", "err", err)
		}
	}
}

// topicInterest records that a loop created (delta 1) or dropped (-1) its
// set for topic, and tells the broker when the node's first set appears or
// its last one goes. Loop only; the lock orders the loops' calls, so the
// broker sees Subscribe and Unsubscribe of a topic alternate.
func (s *Server) topicInterest(topic string, delta int) {
	k := &s.bk
	if k.b == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.interest == nil {
		k.interest = make(map[string]int)
	}
	n := k.interest[topic] + delta
	if n > 0 {
		k.interest[topic] = n
	} else {
		delete(k.interest, topic)
	}
	if !k.started {
		return // after Close: the broker is gone
	}
	var err error
	switch {
	case delta > 0 && n == 1:
		err = k.b.Subscribe(topic)
	case delta < 0 && n == 0:
		err = k.b.Unsubscribe(topic)
	}
	if err != nil {
		s.cfg.Logger.Warn("gale: broker interest", "topic", topic, "subscribe", delta > 0, "err", err)
	}
}

// relay hands a published message to the broker, for the other nodes.
func (s *Server) relay(topic string, pm *PreparedMessage) error {
	if s.bk.b == nil {
		return nil
	}
	if err := s.bk.b.Publish(topic, pm.op, pm.payload()); err != nil {
		return fmt.Errorf("%w: publish: %w", ErrBroker, err)
	}
	return nil
}

// deliverRemote is the broker's deliver: a message from another node goes
// to this node's subscribers only.
func (s *Server) deliverRemote(topic string, op codec.Opcode, payload []byte) {
	pm, err := NewPreparedMessage(op, payload)
	if err != nil {
		s.cfg.Logger.Debug("gale: broker delivered a message with a bad opcode", "topic", topic, "op", op)
		return
	}
	s.publishLocal(topic, pm)
}
