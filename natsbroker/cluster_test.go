package natsbroker

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

const waitFor = 15 * time.Second

// startNATS runs an embedded NATS server on port (-1: a random one).
func startNATS(t *testing.T, port int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(waitFor) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// subHandler subscribes each connection to the topics in its query
// ("?a,b", each query-unescaped).
type subHandler struct{ engine.BaseHandler }

func (subHandler) OnOpen(c *engine.Conn) {
	for _, t := range strings.Split(c.Request().RawQuery, ",") {
		t, err := url.QueryUnescape(t)
		if err != nil {
			panic(err)
		}
		if err := c.Subscribe(t); err != nil {
			panic(err)
		}
	}
}

// logBuf collects a node's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type node struct {
	srv  *engine.Server
	b    *Broker
	logs *logBuf
}

func startNode(t *testing.T, url string) *node {
	t.Helper()
	n := &node{logs: &logBuf{}}
	log := slog.New(slog.NewTextHandler(n.logs, nil))
	b, err := Connect(url, Options{Logger: log}, nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.NewServer(subHandler{}, engine.Config{Loops: 2, KeepRequest: true, Broker: b, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	n.srv, n.b = srv, b
	return n
}

// client is a WebSocket subscriber recording what it receives.
type client struct {
	node int
	mu   sync.Mutex
	got  map[string]int // message → times received
	seq  []string       // in arrival order
}

func dial(t *testing.T, n *node, nodeIdx int, query string) *client {
	t.Helper()
	c, err := engine.Dial(t.Context(), "ws://"+n.srv.Addr().String()+"/?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	cl := &client{node: nodeIdx, got: map[string]int{}}
	go func() {
		for {
			_, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			cl.mu.Lock()
			cl.got[string(p)]++
			cl.seq = append(cl.seq, string(p))
			cl.mu.Unlock()
		}
	}()
	return cl
}

// has reports whether c received every message of want.
func (c *client) has(want []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range want {
		if c.got[w] == 0 {
			return false
		}
	}
	return true
}

// poll waits until cond holds, failing after waitFor.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// flush waits until NATS has processed what each node sent it (its
// subscriptions).
func flush(t *testing.T, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		if err := n.b.Conn().FlushTimeout(waitFor); err != nil {
			t.Fatal(err)
		}
	}
}

// batch publishes count messages "<tag>-<node>-<i>" to topic from every
// node, interleaved, and returns them.
func batch(t *testing.T, nodes []*node, topic, tag string, count int) []string {
	t.Helper()
	var all []string
	for i := range count {
		for k, n := range nodes {
			m := fmt.Sprintf("%s-%d-%04d", tag, k, i)
			if err := n.srv.Publish(topic, codec.OpText, []byte(m)); err != nil {
				t.Fatalf("node %d: Publish: %v", k, err)
			}
			all = append(all, m)
		}
	}
	return all
}

// checkExactlyOnce: every client got each of want once, and the messages
// of each publisher in the order published.
func checkExactlyOnce(t *testing.T, clients []*client, want []string, tag string) {
	t.Helper()
	for ci, c := range clients {
		c.mu.Lock()
		for _, w := range want {
			if n := c.got[w]; n != 1 {
				t.Errorf("client %d (node %d): %q received %d times", ci, c.node, w, n)
			}
		}
		last := map[string]string{}
		for _, m := range c.seq {
			if !strings.HasPrefix(m, tag+"-") {
				continue
			}
			pub := m[:strings.LastIndexByte(m, '-')]
			if m <= last[pub] {
				t.Errorf("client %d (node %d): %q after %q: out of order", ci, c.node, m, last[pub])
			}
			last[pub] = m
		}
		c.mu.Unlock()
	}
}

// TestCluster: three Gale nodes on one NATS server, subscribers spread over
// them. Every publish from every node reaches every subscriber once, in
// each publisher's order; a node does not get its own publishes back. With
// NATS down, local delivery goes on and the disconnection is logged; with
// NATS back on the same port, the nodes reconnect, subscribe again, and
// delivery across nodes resumes.
func TestCluster(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	nodes := []*node{startNode(t, natsURL), startNode(t, natsURL), startNode(t, natsURL)}

	const odd = "a.b c" // not a subject token: encoded
	var all, roomOnly, oddSubs []*client
	for i := range 12 {
		k := i % len(nodes)
		query := "room"
		if i%4 == 0 {
			query = "room," + strings.ReplaceAll(odd, " ", "%20")
		}
		c := dial(t, nodes[k], k, query)
		all = append(all, c)
		if i%4 == 0 {
			oddSubs = append(oddSubs, c)
		} else {
			roomOnly = append(roomOnly, c)
		}
	}
	poll(t, "the subscriptions", func() bool {
		for _, n := range nodes {
			if n.srv.Subscribers("room") != 4 {
				return false
			}
		}
		return true
	})
	flush(t, nodes)

	const count = 100
	want := batch(t, nodes, "room", "m", count)
	poll(t, "every message at every subscriber", func() bool {
		for _, c := range all {
			if !c.has(want) {
				return false
			}
		}
		return true
	})
	// The odd topic reaches its subscribers, on every node, and only them.
	oddWant := []string{}
	for k, n := range nodes {
		m := fmt.Sprintf("odd-%d", k)
		if err := n.srv.Publish(odd, codec.OpText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		oddWant = append(oddWant, m)
	}
	poll(t, "the odd topic", func() bool {
		for _, c := range oddSubs {
			if !c.has(oddWant) {
				return false
			}
		}
		return true
	})
	// A last round trip through NATS from every node, so that any
	// duplicate would have arrived by now.
	end := batch(t, nodes, "room", "end", 1)
	poll(t, "the end markers", func() bool {
		for _, c := range all {
			if !c.has(end) {
				return false
			}
		}
		return true
	})
	checkExactlyOnce(t, all, want, "m")
	for _, c := range roomOnly {
		if c.has(oddWant[:1]) {
			t.Errorf("a subscriber of room only received the odd topic")
		}
	}
	for k, n := range nodes {
		// Each node hands its server the other two nodes' messages only.
		st := n.b.Stats()
		if wantDelivered := uint64(2*count + 2 + 2); st.Delivered != wantDelivered {
			t.Errorf("node %d: the broker delivered %d messages, want %d (the others' only)", k, st.Delivered, wantDelivered)
		}
	}
	if t.Failed() {
		return
	}

	// NATS goes down.
	ns.Shutdown()
	poll(t, "every node to see NATS gone", func() bool {
		for _, n := range nodes {
			if n.b.Conn().IsConnected() {
				return false
			}
		}
		return true
	})
	var local []*client
	for _, c := range all {
		if c.node == 0 {
			local = append(local, c)
		}
	}
	outage := []string{"outage-0-0000", "outage-0-0001"}
	for _, m := range outage {
		if err := nodes[0].srv.Publish("room", codec.OpText, []byte(m)); err != nil {
			t.Fatalf("Publish during the outage: %v", err)
		}
	}
	poll(t, "local delivery during the outage", func() bool {
		for _, c := range local {
			if !c.has(outage) {
				return false
			}
		}
		return true
	})
	for k, n := range nodes {
		if !strings.Contains(n.logs.String(), "disconnected from NATS") {
			t.Errorf("node %d logged no disconnection:\n%s", k, n.logs.String())
		}
	}

	// NATS comes back on the same port.
	startNATS(t, port)
	poll(t, "every node to reconnect", func() bool {
		for _, n := range nodes {
			if !n.b.Conn().IsConnected() {
				return false
			}
		}
		return true
	})
	flush(t, nodes) // the subscriptions nats.go sent again are in
	for k, n := range nodes {
		if !strings.Contains(n.logs.String(), "reconnected to NATS") {
			t.Errorf("node %d logged no reconnection", k)
		}
	}
	after := batch(t, nodes, "room", "after", 20)
	poll(t, "delivery across nodes after the restart", func() bool {
		for _, c := range all {
			if !c.has(after) {
				return false
			}
		}
		return true
	})
	end = batch(t, nodes, "room", "end2", 1)
	poll(t, "the end markers", func() bool {
		for _, c := range all {
			if !c.has(end) {
				return false
			}
		}
		return true
	})
	checkExactlyOnce(t, all, after, "after")
	// What node 0 published during the outage reached its own subscribers
	// once; the others get it at most once (nats.go's reconnect buffer).
	for ci, c := range all {
		c.mu.Lock()
		for _, m := range outage {
			if n := c.got[m]; n > 1 || (c.node == 0 && n != 1) {
				t.Errorf("client %d (node %d): %q received %d times", ci, c.node, m, n)
			}
		}
		c.mu.Unlock()
	}
}

// TestNoEchoWithoutNoEcho: on a connection made without nats.NoEcho
// (given to New), a node still drops its own publishes.
func TestNoEchoWithoutNoEcho(t *testing.T) {
	ns := startNATS(t, -1)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := New(nc, Options{Prefix: "test"})
	got := make(chan string, 16)
	if err := b.Start(func(topic string, op codec.Opcode, p []byte) { got <- fmt.Sprint(topic, op, string(p)) }); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Subscribe("t"); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if err := b.Publish("t", codec.OpText, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	// Another NATS client, without Gale's headers: text when UTF-8.
	if err := nc.Publish("test.t", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if want := fmt.Sprint("t", codec.OpText, "theirs"); m != want {
			t.Fatalf("delivered %q, want %q (own publish dropped)", m, want)
		}
	case <-time.After(waitFor):
		t.Fatal("nothing delivered")
	}
	if b.Stats().Delivered != 1 {
		t.Fatalf("delivered %d, want 1", b.Stats().Delivered)
	}
}
