package engine

import (
	"context"
	"errors"

	"github.com/galews/gale/codec"
)

// Topics: publish/subscribe inside one server. Each loop keeps its own
// subscriber sets, touched only by its goroutine, so a publish takes no
// lock at all: it is encoded once (a PreparedMessage) and each loop writes
// the shared frame to its own subscribers, as Broadcast does for everyone.
// A connection's subscriptions are listed in its connExtra and released
// when it closes; a connection that never subscribes pays nothing.

// ErrTopicsClient is returned by Subscribe on a connection of the
// event-loop Client: topics are the server's (Server.Publish).
var ErrTopicsClient = errors.New("gale: topics are a server's; this is a client connection")

// topicSet is one topic's subscribers on one loop.
type topicSet map[*Conn]struct{}

// Subscribe adds the connection to topic's subscribers: every later
// Server.Publish to topic reaches it, until Unsubscribe or until it
// closes. Safe from any goroutine; from outside the connection's
// callbacks it takes effect on the loop, after what the caller asked of
// the loop before (a Publish made after Subscribe returns, from the same
// goroutine, reaches the connection). Subscribing twice is one
// subscription.
func (c *Conn) Subscribe(topic string) error { return c.topicOp(topic, true) }

// Unsubscribe removes the connection from topic's subscribers; like
// Subscribe, safe from any goroutine.
func (c *Conn) Unsubscribe(topic string) error { return c.topicOp(topic, false) }

func (c *Conn) topicOp(topic string, sub bool) error {
	if c.client {
		return ErrTopicsClient
	}
	l := c.loop
	if l.onLoop() {
		return c.applyTopic(topic, sub)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return l.el.Execute(context.Background(), topicTask{c: c, topic: topic, sub: sub})
}

type topicTask struct {
	c     *Conn
	topic string
	sub   bool
}

func (t topicTask) Run(context.Context) error {
	t.c.loop.enter()
	t.c.applyTopic(t.topic, t.sub)
	return nil
}

// applyTopic subscribes or unsubscribes c. Loop only.
func (c *Conn) applyTopic(topic string, sub bool) error {
	if c.state == stateClosed || (sub && c.closed.Load()) {
		return ErrClosed
	}
	l := c.loop
	x := c.extra()
	if !sub {
		for i, t := range x.topics {
			if t == topic {
				x.topics = append(x.topics[:i], x.topics[i+1:]...)
				l.leave(topic, c)
				return nil
			}
		}
		return nil
	}
	set := l.topics[topic]
	if _, ok := set[c]; ok {
		return nil
	}
	if set == nil {
		if l.topics == nil {
			l.topics = make(map[string]topicSet)
		}
		set = make(topicSet)
		l.topics[topic] = set
		l.srv.topicInterest(topic, 1)
	}
	set[c] = struct{}{}
	x.topics = append(x.topics, topic)
	return nil
}

// leave removes c from topic's set on l, dropping an empty set. Loop only.
func (l *loop) leave(topic string, c *Conn) {
	set := l.topics[topic]
	delete(set, c)
	if len(set) == 0 {
		delete(l.topics, topic)
		l.srv.topicInterest(topic, -1)
	}
}

// releaseTopics drops every subscription of a closing connection. Loop only.
func (c *Conn) releaseTopics() {
	x := c.ext.Load()
	if x == nil || len(x.topics) == 0 {
		return
	}
	for _, t := range x.topics {
		c.loop.leave(t, c)
	}
	x.topics = nil
}

// Publish sends payload as one message (op is codec.OpText or
// codec.OpBinary) to every subscriber of topic. It is encoded, and with
// permessage-deflate compressed, once however many receive it. The
// guarantee is Broadcast's: every connection subscribed when its loop runs
// the publish receives it once, after what was written to it before, and
// publishes from one goroutine arrive in the order they were made; a
// subscriber at its outbound cap is treated as for any write (closed as a
// slow reader, or skipped under OutboundReject).
//
// With a Config.Broker, the message also goes to the other nodes'
// subscribers, at most once each (see Broker); an error wrapping ErrBroker
// means the broker refused it, after the local delivery was queued.
func (s *Server) Publish(topic string, op codec.Opcode, payload []byte) error {
	pm, err := NewPreparedMessage(op, payload)
	if err != nil {
		return err
	}
	return s.PublishPrepared(topic, pm)
}

// PublishPrepared is Publish with a message already prepared.
func (s *Server) PublishPrepared(topic string, pm *PreparedMessage) error {
	err := s.publishLocal(topic, pm)
	if rerr := s.relay(topic, pm); err == nil {
		err = rerr
	}
	return err
}

// publishLocal sends pm to this server's subscribers of topic.
func (s *Server) publishLocal(topic string, pm *PreparedMessage) error {
	var first error
	for _, l := range s.loopList() {
		if err := l.el.Execute(context.Background(), publisher{l, topic, pm}); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type publisher struct {
	l     *loop
	topic string
	pm    *PreparedMessage
}

func (p publisher) Run(context.Context) error {
	p.l.enter()
	for c := range p.l.topics[p.topic] {
		if c.state == stateOpen && !c.closed.Load() {
			// A write that closes c (a slow reader) releases its topics,
			// deleting from the set being ranged over: allowed in Go.
			c.sendLoop(outFrame{op: p.pm.op, fin: true, pm: p.pm})
		}
	}
	return nil
}

// Subscribers returns how many connections are subscribed to topic now,
// summed over the loops (a snapshot, for metrics and tests).
func (s *Server) Subscribers(topic string) int {
	n := 0
	for _, l := range s.loopList() {
		done := make(chan int, 1)
		if l.el.Execute(context.Background(), countTask{l, topic, done}) == nil {
			n += <-done
		}
	}
	return n
}

type countTask struct {
	l     *loop
	topic string
	done  chan int
}

func (t countTask) Run(context.Context) error {
	t.l.enter()
	t.done <- len(t.l.topics[t.topic])
	return nil
}
