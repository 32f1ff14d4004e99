package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// memBus is an in-process broker shared by several servers: what one node
// publishes reaches every other node subscribed to the topic, never the
// publisher itself.
type memBus struct {
	mu    sync.Mutex
	nodes []*memBroker
}

type memBroker struct {
	bus     *memBus
	mu      sync.Mutex
	deliver func(string, codec.Opcode, []byte)
	topics  map[string]bool
	calls   []string // "sub t", "unsub t", "pub t", "close"
	closed  bool
}

func (b *memBus) node() *memBroker {
	n := &memBroker{bus: b, topics: map[string]bool{}}
	b.mu.Lock()
	b.nodes = append(b.nodes, n)
	b.mu.Unlock()
	return n
}

func (n *memBroker) log(s string) { n.mu.Lock(); n.calls = append(n.calls, s); n.mu.Unlock() }

func (n *memBroker) Start(deliver func(string, codec.Opcode, []byte)) error {
	n.mu.Lock()
	n.deliver = deliver
	n.mu.Unlock()
	return nil
}

func (n *memBroker) Publish(topic string, op codec.Opcode, p []byte) error {
	n.log("pub " + topic)
	n.bus.mu.Lock()
	nodes := slices.Clone(n.bus.nodes)
	n.bus.mu.Unlock()
	for _, o := range nodes {
		o.mu.Lock()
		d, ok := o.deliver, o.topics[topic] && !o.closed
		o.mu.Unlock()
		if o != n && ok {
			d(topic, op, p)
		}
	}
	return nil
}

func (n *memBroker) Subscribe(t string) error {
	n.log("sub " + t)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.topics[t] {
		return errors.New("subscribed twice")
	}
	n.topics[t] = true
	return nil
}

func (n *memBroker) Unsubscribe(t string) error {
	n.log("unsub " + t)
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.topics[t] {
		return errors.New("unsubscribed without interest")
	}
	delete(n.topics, t)
	return nil
}

func (n *memBroker) Close() error {
	n.log("close")
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	return nil
}

func (n *memBroker) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, c := range n.calls {
		if strings.HasPrefix(c, prefix) {
			k++
		}
	}
	return k
}

// TestBroker: two servers on one bus. A publish on either reaches the
// subscribers of both once; the broker hears of a topic once per node,
// however many loops and connections subscribe, and of its end when the
// last subscriber leaves; a delivery from the broker is not published back.
func TestBroker(t *testing.T) {
	bus := &memBus{}
	b1, b2 := bus.node(), bus.node()
	h1, h2 := newTopicHandler(), newTopicHandler()
	s1 := startServer(t, h1, Config{Loops: 3, KeepRequest: true, Broker: b1})
	s2 := startServer(t, h2, Config{Loops: 2, KeepRequest: true, Broker: b2})

	var clients []*ClientConn
	for i := range 8 {
		srv, h := s1, h1
		if i%2 == 1 {
			srv, h = s2, h2
		}
		c, err := Dial(t.Context(), wsURL(srv)+"?news", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		recv(t, h.opened, "OnOpen")
		clients = append(clients, c)
	}
	if s1.Subscribers("news") != 4 || s2.Subscribers("news") != 4 {
		t.Fatalf("subscribers: %d and %d, want 4 each", s1.Subscribers("news"), s2.Subscribers("news"))
	}
	for _, b := range []*memBroker{b1, b2} {
		if n := b.count("sub news"); n != 1 {
			t.Fatalf("the broker heard of the node's interest %d times, want once", n)
		}
	}

	for i := range 5 {
		if err := s1.Publish("news", codec.OpText, fmt.Appendf(nil, "one %d", i)); err != nil {
			t.Fatal(err)
		}
		if err := s2.Publish("news", codec.OpBinary, fmt.Appendf(nil, "two %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for ci, c := range clients {
		var one, two int
		for range 10 {
			c.SetReadDeadline(time.Now().Add(testTimeout))
			op, p, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("client %d: %v", ci, err)
			}
			switch {
			case op == codec.OpText && string(p) == fmt.Sprint("one ", one):
				one++
			case op == codec.OpBinary && string(p) == fmt.Sprint("two ", two):
				two++
			default:
				t.Fatalf("client %d: got %v %q after %d from one and %d from two", ci, op, p, one, two)
			}
		}
		// Nothing more (no echo of a node's own publish): the marker is next.
		c.WriteText([]byte("marker"))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "ok marker" {
			t.Fatalf("client %d: after the publishes got %q %v, want the marker", ci, p, err)
		}
	}
	if b1.count("pub") != 5 || b2.count("pub") != 5 {
		t.Fatalf("broker publishes %d and %d, want 5 each (deliveries are not published back)", b1.count("pub"), b2.count("pub"))
	}

	// The last subscriber leaving a node withdraws its interest.
	for i, c := range clients {
		if i%2 == 0 {
			c.CloseNow()
			recv(t, h1.closed, "OnClose")
		}
	}
	if n := b1.count("unsub news"); n != 1 {
		t.Fatalf("node 1 withdrew its interest %d times, want once", n)
	}
	if n := b2.count("unsub"); n != 0 {
		t.Fatalf("node 2 withdrew its interest with subscribers left")
	}
	if err := s1.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := b1.count("close"); n != 1 {
		t.Fatalf("Shutdown closed the broker %d times, want once", n)
	}
}

// errBroker refuses every publish.
type errBroker struct{ memBroker }

func (*errBroker) Publish(string, codec.Opcode, []byte) error { return errors.New("down") }

// TestBrokerDown: when the broker refuses a publish, Publish says so with
// ErrBroker and the local subscribers get the message all the same.
func TestBrokerDown(t *testing.T) {
	h := newTopicHandler()
	srv := startServer(t, h, Config{KeepRequest: true, Broker: &errBroker{memBroker{topics: map[string]bool{}}}})
	c, err := Dial(t.Context(), wsURL(srv)+"?a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	recv(t, h.opened, "OnOpen")
	if err := srv.Publish("a", codec.OpText, []byte("local")); !errors.Is(err, ErrBroker) {
		t.Fatalf("Publish with the broker down: %v, want ErrBroker", err)
	}
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "local" {
		t.Fatalf("local delivery: %q %v", p, err)
	}
}

// TestBrokerClientRefused: a broker is the server's.
func TestBrokerClientRefused(t *testing.T) {
	_, err := NewClient(BaseHandler{}, Config{Broker: (&memBus{}).node()})
	if err == nil || !strings.Contains(err.Error(), "Broker") {
		t.Fatalf("NewClient with a Broker: %v", err)
	}
}
