package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// bench idle -sse holds Server-Sent Events streams instead of WebSocket
// connections: each child sends GET with Accept: text/event-stream to the
// -url's host and path and keeps reading what arrives (heartbeats, if the
// server sends them). A stream has no ping to answer, so the final check
// counts the streams still open. Each stream costs the child a goroutine
// blocked in Read: the load generator's memory, not the server's.

// streamHolder holds a child's event streams.
type streamHolder struct {
	c       *common
	offset  int
	host    string // host:port
	request []byte // the request every stream sends

	holdCounts

	mu    sync.Mutex
	conns []net.Conn
}

// newStreamHolder prepares n streams to the URL's host and path.
func newStreamHolder(c *common, offset, n int) (*streamHolder, error) {
	u, err := url.Parse(c.url)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, errors.New("-sse needs a ws:// -url (its host and path are requested over plain HTTP)")
	}
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
	return &streamHolder{c: c, offset: offset, host: u.Host, request: []byte(req), conns: make([]net.Conn, n)}, nil
}

func (h *streamHolder) dial(i int) error {
	d := &net.Dialer{KeepAlive: -1} // as dialOptions: no keepalive probes from the load generator
	if sources := h.c.effectiveSources(); sources > 0 {
		n := h.c.first + (h.offset+i)%sources
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(n>>8), byte(n))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", h.host)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(dialTimeout))
	br := bufio.NewReaderSize(conn, 512)
	if _, err := conn.Write(h.request); err != nil {
		conn.Close()
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		conn.Close()
		return fmt.Errorf("not an event stream: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	conn.SetDeadline(time.Time{})
	h.mu.Lock()
	h.conns[i] = conn
	h.mu.Unlock()
	h.open.Add(1)
	go h.hold(i, conn, br)
	return nil
}

// hold reads the stream until it ends.
func (h *streamHolder) hold(i int, conn net.Conn, br *bufio.Reader) {
	var buf [256]byte
	for {
		if _, err := br.Read(buf[:]); err != nil {
			break
		}
	}
	conn.Close()
	if !h.dropped1() {
		return
	}
	h.mu.Lock()
	h.conns[i] = nil
	h.mu.Unlock()
}

func (h *streamHolder) stats() childStats {
	st := childStats{Open: h.open.Load(), Dropped: h.dropped.Load(), FirstDropNs: h.firstDrop.Load(), LastDropNs: h.lastDrop.Load()}
	if st.Dropped > 0 {
		st.Codes = map[string]int64{"stream ended": st.Dropped}
	}
	return st
}

// check counts the streams still open: all of them answer, at once.
func (h *streamHolder) check() (alive, within10 int) {
	n := int(h.open.Load())
	return n, n
}

// quit closes every stream.
func (h *streamHolder) quit() {
	h.quitting.Store(true)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if c != nil {
			c.Close()
		}
	}
}
