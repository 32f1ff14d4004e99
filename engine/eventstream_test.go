package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// streamHandler reports its connections' events on channels; OnOpen runs
// onOpen first when set (on the loop).
type streamHandler struct {
	BaseHandler
	onOpen func(c *Conn)
	opens  chan *Conn
	closes chan closed
}

type closed struct {
	c   *Conn
	err error
}

func newStreamHandler() *streamHandler {
	return &streamHandler{opens: make(chan *Conn, 64), closes: make(chan closed, 64)}
}

func (h *streamHandler) OnOpen(c *Conn) {
	if h.onOpen != nil {
		h.onOpen(c)
	}
	offer(h.opens, c)
}

func (h *streamHandler) OnClose(c *Conn, err error) { offer(h.closes, closed{c, err}) }

// acceptAll is an OnEventStream that takes every request.
func acceptAll(*EventStreamRequest) error { return nil }

// sseClient is a raw client of an event stream.
type sseClient struct {
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialStream requests an event stream at path with extra header lines and
// reads the response head.
func dialStream(t testing.TB, addr net.Addr, path string, extra ...string) *sseClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr.String() + "\r\nAccept: text/event-stream\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(testTimeout))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	return &sseClient{conn: conn, br: br, resp: resp}
}

// sseEvent is an event as an EventSource dispatches it, with the comment
// lines seen before it.
type sseEvent struct {
	id, event, data string
	hasID           bool
	retry           int
	comments        int
}

// next reads the next event (WHATWG's parsing, LF line ends only: Gale
// writes no other), or returns io.EOF at the stream's end.
func (sc *sseClient) next() (sseEvent, error) {
	sc.conn.SetReadDeadline(time.Now().Add(testTimeout))
	var ev sseEvent
	var data []string
	for {
		line, err := sc.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if data == nil {
				continue // a comment block or an empty block dispatches nothing
			}
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		if line[0] == ':' {
			ev.comments++
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			ev.id, ev.hasID = value, true
		case "event":
			ev.event = value
		case "retry":
			ev.retry, _ = strconv.Atoi(value)
		case "data":
			data = append(data, value)
		}
	}
}

func (sc *sseClient) mustNext(t testing.TB) sseEvent {
	t.Helper()
	ev, err := sc.next()
	if err != nil {
		t.Fatalf("reading an event: %v", err)
	}
	return ev
}

// expectEnd reads until the server closes the stream and returns the
// events read meanwhile.
func (sc *sseClient) expectEnd(t testing.TB) []sseEvent {
	t.Helper()
	var evs []sseEvent
	for {
		ev, err := sc.next()
		if err == io.EOF {
			return evs
		}
		if err != nil {
			t.Fatalf("want the stream's end, got %v", err)
		}
		evs = append(evs, ev)
	}
}

func TestEventStreamHandshake(t *testing.T) {
	h := newStreamHandler()
	var lastID sync.Map
	srv := startServer(t, h, Config{
		Loops:       1,
		KeepRequest: true,
		OnEventStream: func(r *EventStreamRequest) error {
			lastID.Store(string(r.Path), r.LastEventID)
			switch string(r.Path) {
			case "/missing":
				return &Reject{Status: http.StatusNotFound, Body: "no such stream\n"}
			case "/private":
				return errors.New("not for you")
			case "/panic":
				panic("hook")
			}
			r.ResponseHeader = http.Header{"X-Stream": {"yes"}, "Content-Length": {"12"}}
			r.UserData = "user"
			return nil
		},
		Logger: discardLogger(),
	})

	sc := dialStream(t, srv.Addr(), "/events?x=1", "Last-Event-ID: 41")
	r := sc.resp
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" ||
		r.Header.Get("Cache-Control") != "no-cache" || r.Header.Get("X-Stream") != "yes" ||
		r.ContentLength != -1 || len(r.TransferEncoding) != 0 || !r.Close {
		t.Fatalf("response %d %v (length %d, encoding %v, close %v)", r.StatusCode, r.Header, r.ContentLength, r.TransferEncoding, r.Close)
	}
	c := recv(t, h.opens, "OnOpen")
	if !c.IsEventStream() || c.UserData() != "user" || c.Request().Path != "/events" || c.Request().RawQuery != "x=1" {
		t.Fatalf("stream conn: stream %v, user data %v, request %+v", c.IsEventStream(), c.UserData(), c.Request())
	}
	if v, _ := lastID.Load("/events"); v != "41" {
		t.Fatalf("hook saw Last-Event-ID %q, want 41", v)
	}

	for _, tt := range []struct {
		path   string
		extra  []string
		status int
	}{
		{"/missing", nil, http.StatusNotFound},
		{"/private", nil, http.StatusForbidden},
		{"/panic", nil, http.StatusInternalServerError},
		{"/events", []string{"Accept: text/html"}, http.StatusUpgradeRequired}, // not a stream request: plain HTTP
	} {
		t.Run(tt.path+fmt.Sprint(tt.extra), func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			accept := "Accept: text/event-stream\r\n"
			if tt.extra != nil {
				accept = strings.Join(tt.extra, "\r\n") + "\r\n"
			}
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", tt.path, accept)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// TestEventStreamZeroConfig: without OnEventStream a stream request is a
// plain request, for Fallback or 426 as before.
func TestEventStreamZeroConfig(t *testing.T) {
	srv := startServer(t, newStreamHandler(), Config{Loops: 1})
	sc := dialStream(t, srv.Addr(), "/")
	if sc.resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status %d, want 426", sc.resp.StatusCode)
	}
}

func TestEventStreamFields(t *testing.T) {
	h := newStreamHandler()
	ws := make(chan error, 8)
	h.onOpen = func(c *Conn) {
		if !c.IsEventStream() {
			ws <- c.WriteEvent(Event{Data: []byte("x")})
			return
		}
		// From the loop, inside the request's OnTraffic.
		c.WriteEvent(Event{ID: "1", Event: "greeting", Data: []byte("hello\nworld\r\nand\rmore"), Retry: 1500 * time.Millisecond})
		c.WriteEvent(Event{Data: []byte(" leading space")})
		c.WriteEvent(Event{ID: "", Data: nil})
		c.WriteText([]byte("as text"))
	}
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll})
	sc := dialStream(t, srv.Addr(), "/")
	c := recv(t, h.opens, "OnOpen")

	for _, want := range []sseEvent{
		{id: "1", hasID: true, event: "greeting", data: "hello\nworld\nand\nmore", retry: 1500},
		{data: " leading space"},
		{data: ""},
		{data: "as text"},
	} {
		if got := sc.mustNext(t); got != want {
			t.Fatalf("event %+v, want %+v", got, want)
		}
	}

	for _, tt := range []struct {
		name  string
		write func() error
		want  error
	}{
		{"id with LF", func() error { return c.WriteEvent(Event{ID: "a\nb"}) }, codec.ErrEventField},
		{"id with NUL", func() error { return c.WriteEvent(Event{ID: "a\x00"}) }, codec.ErrEventField},
		{"name with CR", func() error { return c.WriteEvent(Event{Event: "a\rdata: x"}) }, codec.ErrEventField},
		{"ping", func() error { return c.Ping(nil) }, ErrEventStream},
		{"pong", func() error { return c.Pong(nil) }, ErrEventStream},
		{"partial frame", func() error { return c.WriteFrame(codec.OpText, []byte("a"), false) }, ErrEventStream},
		{"binary message", func() error { return c.WriteBinary([]byte("bin")) }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.write(); err != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if got := sc.mustNext(t); got.data != "bin" {
		t.Fatalf("after the refused writes: %+v, want the binary message's data", got)
	}

	p := dialGale(t, wsURL(srv))
	defer p.Drop()
	if err := recv(t, ws, "WriteEvent on a WebSocket"); err != ErrNotEventStream {
		t.Fatalf("WriteEvent on a WebSocket: %v, want ErrNotEventStream", err)
	}
}

// TestEventStreamOrder: events from many goroutines arrive, each
// goroutine's in the order written, and none lost.
func TestEventStreamOrder(t *testing.T) {
	const writers, each = 8, 300
	h := newStreamHandler()
	srv := startServer(t, h, Config{Loops: 2, OnEventStream: acceptAll})
	sc := dialStream(t, srv.Addr(), "/")
	c := recv(t, h.opens, "OnOpen")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := c.WriteEvent(Event{ID: fmt.Sprintf("%d-%d", w, i), Data: []byte(strconv.Itoa(i))}); err != nil {
					t.Errorf("WriteEvent: %v", err)
					return
				}
			}
		}()
	}
	next := make([]int, writers)
	for range writers * each {
		ev := sc.mustNext(t)
		var w, i int
		if _, err := fmt.Sscanf(ev.id, "%d-%d", &w, &i); err != nil || ev.data != strconv.Itoa(i) {
			t.Fatalf("event %+v", ev)
		}
		if i != next[w] {
			t.Fatalf("writer %d: event %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	wg.Wait()
}

// TestEventStreamHeartbeat: with PingInterval a stream that is written
// nothing gets comment lines, and IdleTimeout (which counts from bytes
// received, and a stream's client sends none) does not end it.
func TestEventStreamHeartbeat(t *testing.T) {
	h := newStreamHandler()
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll, PingInterval: 40 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	sc := dialStream(t, srv.Addr(), "/")
	c := recv(t, h.opens, "OnOpen")
	start := time.Now()
	beats := 0
	for time.Since(start) < 400*time.Millisecond {
		line, err := sc.br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", beats, err)
		}
		if line == ":\n" {
			beats++
		}
	}
	if beats < 4 {
		t.Fatalf("%d heartbeats in 400 ms at a 40 ms interval", beats)
	}
	if err := c.WriteEvent(Event{Data: []byte("still here")}); err != nil {
		t.Fatalf("stream ended past IdleTimeout: %v", err)
	}
	for {
		ev := sc.mustNext(t)
		if ev.data == "still here" {
			break
		}
	}
	select {
	case cl := <-h.closes:
		t.Fatalf("stream closed: %v", cl.err)
	default:
	}
}

// TestEventStreamSlowReader: a client that never reads hits MaxOutbound
// and is closed with ErrSlowReader; a stream that reads is unaffected.
func TestEventStreamSlowReader(t *testing.T) {
	h := newStreamHandler()
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll, MaxOutbound: 64 << 10, CloseTimeout: 200 * time.Millisecond})
	good := dialStream(t, srv.Addr(), "/")
	gc := recv(t, h.opens, "OnOpen")
	rc := dialRawWith(t, srv.Addr(), smallReceiveBuffer)
	rc.write([]byte("GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"))
	slow := recv(t, h.opens, "OnOpen")

	data := bytes.Repeat([]byte("x"), 1024)
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ {
		werr = slow.WriteEvent(Event{Data: data})
	}
	if werr != ErrSlowReader && werr != ErrClosed {
		t.Fatalf("writes to a client that never reads: %v, want ErrSlowReader", werr)
	}
	cl := recv(t, h.closes, "OnClose")
	if cl.c != slow || !errors.Is(cl.err, ErrSlowReader) {
		t.Fatalf("OnClose(%v): %v, want the slow stream with ErrSlowReader", cl.c == slow, cl.err)
	}
	if err := gc.WriteEvent(Event{Data: []byte("fine")}); err != nil {
		t.Fatal(err)
	}
	if ev := good.mustNext(t); ev.data != "fine" {
		t.Fatalf("reading stream got %+v", ev)
	}
}

// TestEventStreamClientGone: the client closing its socket ends the
// stream with OnClose.
func TestEventStreamClientGone(t *testing.T) {
	h := newStreamHandler()
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll})
	sc := dialStream(t, srv.Addr(), "/")
	c := recv(t, h.opens, "OnOpen")
	sc.conn.Close()
	cl := recv(t, h.closes, "OnClose")
	if cl.c != c || cl.err == nil {
		t.Fatalf("OnClose: %v", cl.err)
	}
	if err := c.WriteEvent(Event{Data: []byte("late")}); err != ErrClosed {
		t.Fatalf("write after the client left: %v, want ErrClosed", err)
	}
}

// TestEventStreamClose: Close flushes what was written, then ends the
// stream; OnClose reports the code given.
func TestEventStreamClose(t *testing.T) {
	for _, fromLoop := range []bool{true, false} {
		t.Run(fmt.Sprint("from loop ", fromLoop), func(t *testing.T) {
			const n = 200
			h := newStreamHandler()
			if fromLoop {
				h.onOpen = func(c *Conn) {
					for i := range n {
						c.WriteEvent(Event{ID: strconv.Itoa(i), Data: bytes.Repeat([]byte("y"), 2000)})
					}
					c.Close(codec.StatusNormalClosure, "done")
				}
			}
			srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll})
			sc := dialStream(t, srv.Addr(), "/")
			c := recv(t, h.opens, "OnOpen")
			if !fromLoop {
				for i := range n {
					c.WriteEvent(Event{ID: strconv.Itoa(i), Data: bytes.Repeat([]byte("y"), 2000)})
				}
				c.Close(codec.StatusNormalClosure, "done")
			}
			evs := sc.expectEnd(t)
			if len(evs) != n || evs[n-1].id != strconv.Itoa(n-1) {
				t.Fatalf("%d events before the end, want %d", len(evs), n)
			}
			cl := recv(t, h.closes, "OnClose")
			wantCloseError(t, cl.err, codec.StatusNormalClosure, ptr("done"))
			if err := c.WriteEvent(Event{}); err != ErrClosed {
				t.Fatalf("write after Close: %v", err)
			}
		})
	}
}

// TestEventStreamTopics: one Publish reaches a stream and a WebSocket
// subscribed to the topic, and Broadcast reaches both too.
func TestEventStreamTopics(t *testing.T) {
	h := newStreamHandler()
	h.onOpen = func(c *Conn) { c.Subscribe("news") }
	srv := startServer(t, h, Config{Loops: 2, OnEventStream: acceptAll})
	sc := dialStream(t, srv.Addr(), "/")
	recv(t, h.opens, "OnOpen")
	p := dialGale(t, wsURL(srv))
	defer p.Drop()
	recv(t, h.opens, "OnOpen")
	if n := srv.Subscribers("news"); n != 2 {
		t.Fatalf("%d subscribers, want 2", n)
	}
	if err := srv.Publish("news", codec.OpText, []byte("line one\nline two")); err != nil {
		t.Fatal(err)
	}
	if ev := sc.mustNext(t); ev.data != "line one\nline two" || ev.hasID || ev.event != "" {
		t.Fatalf("stream got %+v", ev)
	}
	if op, msg, err := p.Read(); err != nil || op != codec.OpText || string(msg) != "line one\nline two" {
		t.Fatalf("WebSocket got %v %q %v", op, msg, err)
	}
	pm, _ := NewPreparedMessage(codec.OpText, []byte("to all"))
	srv.Broadcast(pm)
	if ev := sc.mustNext(t); ev.data != "to all" {
		t.Fatalf("stream got %+v", ev)
	}
	if _, msg, err := p.Read(); err != nil || string(msg) != "to all" {
		t.Fatalf("WebSocket got %q %v", msg, err)
	}
}

// TestEventStreamShutdown: Shutdown ends streams; OnClose gets 1001.
func TestEventStreamShutdown(t *testing.T) {
	h := newStreamHandler()
	srv, err := NewServer(h, Config{Loops: 1, OnEventStream: acceptAll})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	sc := dialStream(t, srv.Addr(), "/")
	recv(t, h.opens, "OnOpen")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sc.expectEnd(t)
	wantCloseError(t, recv(t, h.closes, "OnClose").err, codec.StatusGoingAway, nil)
}

// TestEventStreamClientBytes: what the client sends after its request is
// discarded, and the stream carries on.
func TestEventStreamClientBytes(t *testing.T) {
	h := newStreamHandler()
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll})
	sc := dialStream(t, srv.Addr(), "/")
	c := recv(t, h.opens, "OnOpen")
	sc.conn.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n\r\n"), 1000))
	time.Sleep(20 * time.Millisecond)
	if err := c.WriteEvent(Event{Data: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	if ev := sc.mustNext(t); ev.data != "ok" {
		t.Fatalf("got %+v", ev)
	}
}

// TestEventStreamTLS: a stream over Config.TLS (https), through
// net/http's client: events, then the end after Close.
func TestEventStreamTLS(t *testing.T) {
	pki := testCerts(t)
	h := newStreamHandler()
	h.onOpen = func(c *Conn) {
		c.WriteEvent(Event{ID: "1", Data: []byte("over tls")})
		c.Close(codec.StatusNormalClosure, "")
	}
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll, TLS: pki.server(), IdleTimeout: time.Second})
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.client()}}
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "https://localhost:"+port+"/", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.Header.Get("Content-Type") != "text/event-stream" || string(body) != "id: 1\ndata: over tls\n\n" {
		t.Fatalf("%d %v: %q %v", resp.StatusCode, resp.Header, body, err)
	}
	wantCloseError(t, recv(t, h.closes, "OnClose").err, codec.StatusNormalClosure, nil)
}

// TestEventStreamNoHeartbeat: without PingInterval a stream is written
// nothing of Gale's own, also once its handshake deadline has passed.
func TestEventStreamNoHeartbeat(t *testing.T) {
	h := newStreamHandler()
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll, HandshakeTimeout: 30 * time.Millisecond})
	sc := dialStream(t, srv.Addr(), "/")
	c := recv(t, h.opens, "OnOpen")
	time.Sleep(200 * time.Millisecond)
	c.WriteEvent(Event{Data: []byte("first")})
	if ev := sc.mustNext(t); ev.data != "first" || ev.comments != 0 {
		t.Fatalf("got %+v, want the first event and no comment before it", ev)
	}
}
