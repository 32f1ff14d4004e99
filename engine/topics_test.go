package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// topicHandler subscribes a connection to the topics named in the request's
// query ("?a,b"), and on a message "sub X" / "unsub X" changes them from
// the callback.
type topicHandler struct {
	BaseHandler
	opened chan *Conn
	closed chan *Conn
}

func (h *topicHandler) OnOpen(c *Conn) {
	if ri := c.Request(); ri != nil && ri.RawQuery != "" {
		for _, t := range strings.Split(ri.RawQuery, ",") {
			if err := c.Subscribe(t); err != nil {
				panic(err)
			}
		}
	}
	offer(h.opened, c)
}

func (h *topicHandler) OnMessage(c *Conn, _ codec.Opcode, p []byte) {
	cmd, topic, _ := strings.Cut(string(p), " ")
	var err error
	switch cmd {
	case "sub":
		err = c.Subscribe(topic)
	case "unsub":
		err = c.Unsubscribe(topic)
	}
	if err != nil {
		c.WriteText([]byte("error: " + err.Error()))
		return
	}
	c.WriteText([]byte("ok " + string(p)))
}

func (h *topicHandler) OnClose(c *Conn, _ error) { offer(h.closed, c) }

func newTopicHandler() *topicHandler {
	return &topicHandler{opened: make(chan *Conn, 256), closed: make(chan *Conn, 256)}
}

// TestTopics: a publish reaches every subscriber of its topic on every loop
// exactly once and in publish order, and no one else; subscriptions change
// from callbacks and from other goroutines, and go with the connection.
func TestTopics(t *testing.T) {
	h := newTopicHandler()
	srv := startServer(t, h, Config{Loops: 3, KeepRequest: true})
	type client struct {
		c      *ClientConn
		topics string
	}
	var clients []client
	for i := range 12 {
		topics := []string{"a", "b", "a,b", ""}[i%4]
		c, err := Dial(t.Context(), wsURL(srv)+"?"+topics, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients = append(clients, client{c, topics})
	}
	conns := make([]*Conn, 0, len(clients))
	for range clients {
		conns = append(conns, recv(t, h.opened, "OnOpen"))
	}
	if got := srv.Subscribers("a"); got != 6 {
		t.Fatalf("Subscribers(a) = %d, want 6", got)
	}
	if got := srv.Subscribers("b"); got != 6 {
		t.Fatalf("Subscribers(b) = %d, want 6", got)
	}

	// Publish from another goroutine, interleaving topics.
	for i := range 5 {
		srv.Publish("a", codec.OpText, fmt.Appendf(nil, "a%d", i))
		srv.Publish("b", codec.OpText, fmt.Appendf(nil, "b%d", i))
	}
	srv.Publish("nobody", codec.OpText, []byte("lost"))
	for _, cl := range clients {
		var want []string
		for i := range 5 {
			if strings.Contains(cl.topics, "a") {
				want = append(want, fmt.Sprintf("a%d", i))
			}
			if strings.Contains(cl.topics, "b") {
				want = append(want, fmt.Sprintf("b%d", i))
			}
		}
		for _, w := range want {
			cl.c.SetReadDeadline(time.Now().Add(testTimeout))
			_, p, err := cl.c.ReadMessage()
			if err != nil || string(p) != w {
				t.Fatalf("client %q: got %q %v, want %q", cl.topics, p, err, w)
			}
		}
		// Nothing more: a marker echo comes next.
		cl.c.WriteText([]byte("marker"))
		_, p, err := cl.c.ReadMessage()
		if err != nil || string(p) != "ok marker" {
			t.Fatalf("client %q: after its publishes got %q %v, want the marker", cl.topics, p, err)
		}
	}

	// From the callback: the first client leaves a, joins c.
	first := clients[0]
	for _, cmd := range []string{"unsub a", "sub c", "sub c"} {
		first.c.WriteText([]byte(cmd))
		if _, p, err := first.c.ReadMessage(); err != nil || string(p) != "ok "+cmd {
			t.Fatalf("%s: %q %v", cmd, p, err)
		}
	}
	if srv.Subscribers("a") != 5 || srv.Subscribers("c") != 1 {
		t.Fatalf("after the callbacks: a=%d c=%d, want 5 and 1", srv.Subscribers("a"), srv.Subscribers("c"))
	}
	// From another goroutine: the last client (no topics) joins c; a
	// publish after Subscribe returns reaches it.
	last := clients[len(clients)-1]
	lastConn := conns[len(conns)-1]
	for _, c := range conns {
		if c.RemoteAddr().String() == last.c.LocalAddr().String() {
			lastConn = c
		}
	}
	if err := lastConn.Subscribe("c"); err != nil {
		t.Fatal(err)
	}
	srv.Publish("c", codec.OpBinary, []byte("to c"))
	for _, cl := range []client{first, last} {
		if op, p, err := cl.c.ReadMessage(); err != nil || op != codec.OpBinary || string(p) != "to c" {
			t.Fatalf("publish to c: %v %q %v", op, p, err)
		}
	}

	// Subscriptions go with their connections.
	for _, cl := range clients {
		cl.c.CloseNow()
	}
	for range clients {
		recv(t, h.closed, "OnClose")
	}
	for _, topic := range []string{"a", "b", "c"} {
		if n := srv.Subscribers(topic); n != 0 {
			t.Errorf("Subscribers(%s) = %d after every subscriber left", topic, n)
		}
	}
	for _, l := range srv.loopList() {
		done := make(chan int)
		l.el.Execute(context.Background(), runFunc(func() { done <- len(l.topics) }))
		if n := <-done; n != 0 {
			t.Errorf("a loop keeps %d topic sets after every subscriber left", n)
		}
	}
	if err := lastConn.Subscribe("a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe on a closed connection: %v, want ErrClosed", err)
	}
}

// runFunc runs a function as a gnet task.
type runFunc func()

func (f runFunc) Run(context.Context) error { f(); return nil }

// TestTopicsConcurrent: subscribing, unsubscribing and publishing from many
// goroutines at once (run with -race) leaves the sets consistent.
func TestTopicsConcurrent(t *testing.T) {
	h := newTopicHandler()
	srv := startServer(t, h, Config{Loops: 2})
	var conns []*Conn
	for range 8 {
		c, err := Dial(t.Context(), wsURL(srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		conns = append(conns, recv(t, h.opened, "OnOpen"))
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for j := range 50 {
				topic := fmt.Sprint("t", j%3)
				c.Subscribe(topic)
				if j%2 == i%2 {
					c.Unsubscribe(topic)
				}
				srv.Publish(topic, codec.OpText, []byte(topic))
			}
		})
	}
	wg.Wait()
	total := 0
	for j := range 3 {
		total += srv.Subscribers(fmt.Sprint("t", j))
	}
	// Each connection ends subscribed to exactly the topics it last
	// subscribed to without leaving: its parity decides which.
	want := 0
	for i := range conns {
		left := map[string]bool{}
		for j := range 50 {
			left[fmt.Sprint("t", j%3)] = j%2 == i%2
		}
		for _, l := range left {
			if !l {
				want++
			}
		}
	}
	if total != want {
		t.Fatalf("%d subscriptions in the sets, want %d", total, want)
	}
}

// TestTopicsClientRefused: the event-loop client's connections have no
// server to publish to them.
func TestTopicsClientRefused(t *testing.T) {
	srv := startServer(t, newTopicHandler(), Config{})
	cl := newTestClient(t, BaseHandler{}, Config{Loops: 1})
	c, err := cl.Dial(t.Context(), wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("a"); !errors.Is(err, ErrTopicsClient) {
		t.Fatalf("Subscribe on a client connection: %v", err)
	}
}
