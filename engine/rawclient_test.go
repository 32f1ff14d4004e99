package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// rawWait bounds every read, write and wait of the raw-client tests. It is
// generous: the race detector on a small noisy machine is slow, and a
// correct server answers in milliseconds.
const rawWait = 10 * time.Second

// rawMask is the mask of every frame a rawClient builds; not zero, so an
// unmasking bug shows.
var rawMask = [4]byte{0x5a, 0xc3, 0x17, 0x8e}

// rawClient speaks bytes to a server: it writes what a test builds
// (malformed requests and frames, partial writes) and reads the answer one
// HTTP head or one frame at a time, under a deadline each time.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw connects to addr (TCP or unix) without sending anything. The
// socket is closed when the test ends.
func dialRaw(t testing.TB, addr net.Addr) *rawClient {
	t.Helper()
	return dialRawWith(t, addr, nil)
}

// dialRawWith is dialRaw with a hook on the socket before it connects
// (to shrink its receive buffer, say).
func dialRawWith(t testing.TB, addr net.Addr, control func(fd uintptr)) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: rawWait}
	if control != nil {
		d.Control = func(_, _ string, rc syscall.RawConn) error { return rc.Control(control) }
	}
	conn, err := d.Dial(addr.Network(), addr.String())
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReaderSize(conn, 64<<10)}
}

// upgradeRaw dials addr and completes a valid upgrade.
func upgradeRaw(t testing.TB, addr net.Addr) *rawClient {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.upgrade()
	return rc
}

// addr is the client's end of the connection: the server's Conn.RemoteAddr.
func (rc *rawClient) addr() string { return rc.conn.LocalAddr().String() }

// rawRequest returns an upgrade request head: a valid version-13 request,
// with each extra line replacing the field of the same name or, when no
// such field exists, added; a line "Name:" with no value removes the
// field. The first line of extra may be a request line ("POST / HTTP/1.1").
func rawRequest(extra ...string) string {
	lines := []string{
		"GET / HTTP/1.1",
		"Host: gale.test",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version: 13",
	}
	for _, e := range extra {
		if strings.Contains(e, " HTTP/") {
			lines[0] = e
			continue
		}
		name, value, _ := strings.Cut(e, ":")
		replaced := false
		for i := 1; i < len(lines); i++ {
			if n, _, _ := strings.Cut(lines[i], ":"); strings.EqualFold(n, name) {
				if strings.TrimSpace(value) == "" {
					lines = append(lines[:i], lines[i+1:]...)
				} else {
					lines[i] = e
				}
				replaced = true
				break
			}
		}
		if !replaced && strings.TrimSpace(value) != "" {
			lines = append(lines, e)
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

// write sends each p in its own write call.
func (rc *rawClient) write(ps ...[]byte) {
	rc.t.Helper()
	for _, p := range ps {
		rc.conn.SetWriteDeadline(time.Now().Add(rawWait))
		if _, err := rc.conn.Write(p); err != nil {
			rc.t.Fatalf("write: %v", err)
		}
	}
}

// rawAccept is Sec-WebSocket-Accept for rawRequest's key (RFC 6455 §1.3).
const rawAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

// upgrade sends a valid request and expects 101.
func (rc *rawClient) upgrade() {
	rc.t.Helper()
	rc.write([]byte(rawRequest()))
	resp, body := rc.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != rawAccept {
		rc.t.Fatalf("upgrade: %s %v %q", resp.Status, resp.Header, body)
	}
}

// readResponse reads one HTTP response head and its body.
func (rc *rawClient) readResponse() (*http.Response, string) {
	rc.t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(rawWait))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, "" // the body is the WebSocket stream
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read response body: %v", err)
	}
	return resp, string(body)
}

// readFrame reads one server frame, which must be unmasked.
func (rc *rawClient) readFrame() (codec.Header, []byte) {
	rc.t.Helper()
	h, p, err := rc.tryReadFrame()
	if err != nil {
		rc.t.Fatalf("read frame: %v", err)
	}
	return h, p
}

func (rc *rawClient) tryReadFrame() (codec.Header, []byte, error) {
	rc.conn.SetReadDeadline(time.Now().Add(rawWait))
	var h codec.Header
	b, err := rc.br.Peek(2)
	if err != nil {
		return h, nil, err
	}
	n := 2
	switch b[1] & 0x7F {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	if b, err = rc.br.Peek(n); err != nil {
		return h, nil, err
	}
	h, n, err = codec.DecodeFrameHeader(b)
	if err != nil {
		return h, nil, err
	}
	rc.br.Discard(n)
	if h.Masked {
		return h, nil, errors.New("server frame is masked")
	}
	if h.Length > 64<<20 {
		return h, nil, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(rc.br, p)
	return h, p, err
}

// readMessage reads one unfragmented data frame, skipping pings and pongs.
func (rc *rawClient) readMessage() (codec.Opcode, []byte) {
	rc.t.Helper()
	for {
		h, p := rc.readFrame()
		if h.Opcode == codec.OpPing || h.Opcode == codec.OpPong {
			continue
		}
		if !h.Fin || !h.Opcode.IsData() {
			rc.t.Fatalf("read message: got frame %+v %q", h, p)
		}
		return h.Opcode, p
	}
}

// expectClose reads the next frame (skipping pings), which must be a Close
// with code, and returns its reason.
func (rc *rawClient) expectClose(code codec.StatusCode) string {
	rc.t.Helper()
	for {
		h, p := rc.readFrame()
		if h.Opcode == codec.OpPing {
			continue
		}
		if h.Opcode != codec.OpClose {
			rc.t.Fatalf("got %v frame %q, want Close %d", h.Opcode, p, code)
		}
		got, reason, err := codec.ParseClosePayload(p)
		if err != nil || got != code {
			rc.t.Fatalf("got Close %d %q (%v), want %d", got, reason, err, code)
		}
		return string(reason)
	}
}

// expectDropped expects the next read to find the connection dropped,
// failing on any byte received or on the deadline. A reset counts as
// dropped: a server that closes with unread input resets.
func (rc *rawClient) expectDropped() {
	rc.t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(rawWait))
	var b [512]byte
	n, err := rc.br.Read(b[:])
	switch {
	case n > 0:
		rc.t.Fatalf("got %q, want the connection dropped", b[:n])
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		rc.t.Fatalf("want the connection dropped, got %v", err)
	}
}

// drainUntilDropped discards whatever arrives until the server drops the
// connection.
func (rc *rawClient) drainUntilDropped() {
	rc.t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(rawWait))
	_, err := io.Copy(io.Discard, rc.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		rc.t.Fatalf("want the connection dropped, got %v", err)
	}
}

// rawFrame builds a masked client frame.
func rawFrame(op codec.Opcode, fin bool, payload []byte) []byte {
	return codec.AppendFrame(nil, codec.Header{Fin: fin, Opcode: op, Masked: true, Mask: rawMask}, payload)
}

// rawClosePayload builds a Close payload with any code, valid or not.
func rawClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// discardLogger discards; slogTo and lockedBuffer let a test read what
// was logged.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// connTracker is a Handler that echoes by default and logs every
// connection's OnOpen and OnClose calls. Created with newTracker, it fails
// the test unless each opened connection saw exactly one OnClose by the
// time the server has shut down.
type connTracker struct {
	BaseHandler
	message func(c *Conn, op codec.Opcode, p []byte) // nil: echo
	open    func(c *Conn)                            // optional

	mu    sync.Mutex
	conns []*connLog
}

// connLog is one connection's history as its handler saw it.
type connLog struct {
	conn   *Conn
	addr   string
	ctx    any
	closes int
	err    error // the first OnClose's
}

// newTracker returns a tracker and registers its check. Call it before
// startServer so that the check runs after the server's Shutdown.
func newTracker(t testing.TB) *connTracker {
	tr := &connTracker{}
	t.Cleanup(func() {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, l := range tr.conns {
			if l.closes != 1 {
				t.Errorf("connection %s: OnClose called %d times, want 1 (err %v)", l.addr, l.closes, l.err)
			}
		}
	})
	return tr
}

func (tr *connTracker) OnOpen(c *Conn) {
	tr.mu.Lock()
	tr.conns = append(tr.conns, &connLog{conn: c, addr: c.RemoteAddr().String(), ctx: c.UserData()})
	tr.mu.Unlock()
	if tr.open != nil {
		tr.open(c)
	}
}

func (tr *connTracker) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	if tr.message != nil {
		tr.message(c, op, p)
		return
	}
	c.WriteMessage(op, p)
}

func (tr *connTracker) OnClose(c *Conn, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, l := range tr.conns {
		if l.conn == c {
			if l.closes == 0 {
				l.err = err
			}
			l.closes++
			return
		}
	}
	tr.conns = append(tr.conns, &connLog{conn: c, closes: 1, err: err, addr: "never opened"})
}

// find returns the log of the connection from addr once it opened.
func (tr *connTracker) find(t testing.TB, addr string) *connLog {
	t.Helper()
	var found *connLog
	pollUntil(t, "OnOpen from "+addr, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, l := range tr.conns {
			if l.addr == addr {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// closed waits for the first OnClose of the connection from addr and
// returns its error. The count is checked when the test ends.
func (tr *connTracker) closed(t testing.TB, addr string) error {
	t.Helper()
	l := tr.find(t, addr)
	var err error
	pollUntil(t, "OnClose of "+addr, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		err = l.err
		return l.closes > 0
	})
	return err
}

// opened returns how many connections have called OnOpen.
func (tr *connTracker) opened() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.conns)
}

// pollUntil polls cond until it holds, failing the test after rawWait.
func pollUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(rawWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawRecv waits for a value on ch, failing the test after rawWait.
func rawRecv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(rawWait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitOpenCount waits until the server has exactly n connections open.
func waitOpenCount(t testing.TB, srv *Server, n int64) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("Stats().Open == %d", n), func() bool { return srv.Stats().Open == n })
}

// bystander is a well-behaved client (Gale's Dial) kept connected while a
// test abuses the server, to prove the loop and other connections unharmed.
// A reader goroutine reads frame by frame: ReadFrame answers pings, and the
// reader queues messages and the payloads of pongs.
type bystander struct {
	c     *ClientConn
	msgs  chan []byte // closed when reading fails, after readErr is set
	pongs chan []byte
	n     int

	readErr error
}

// dialBystander connects a bystander to addr, offering subprotocols (Dial
// refuses a subprotocol it did not offer).
func dialBystander(t testing.TB, addr net.Addr, subprotocols ...string) *bystander {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	c, err := Dial(ctx, "ws://gale.test/", &DialOptions{
		Subprotocols: subprotocols,
		NetDial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, addr.Network(), addr.String())
		},
	})
	if err != nil {
		t.Fatalf("bystander dial: %v", err)
	}
	b := &bystander{c: c, msgs: make(chan []byte, 64), pongs: make(chan []byte, 16)}
	go func() {
		defer close(b.msgs)
		var msg []byte
		for {
			f, err := c.ReadFrame()
			if err != nil {
				b.readErr = err
				return
			}
			switch f.Opcode {
			case codec.OpPing: // answered by ReadFrame
			case codec.OpPong:
				offer(b.pongs, clone(f.Payload))
			default:
				msg = append(msg, f.Payload...) // Payload is valid until the next read
				if f.Fin {
					b.msgs <- msg
					msg = nil
				}
			}
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return b
}

// addr is the bystander's end of the connection.
func (b *bystander) addr() string { return b.c.LocalAddr().String() }

// ended waits for the bystander's connection to end and returns the read
// error that ended it.
func (b *bystander) ended(t testing.TB) error {
	t.Helper()
	timeout := time.After(rawWait)
	for {
		select {
		case _, ok := <-b.msgs:
			if !ok {
				return b.readErr
			}
		case <-timeout:
			t.Fatal("bystander: connection still open")
		}
	}
}

// check echoes a fresh message through the bystander.
func (b *bystander) check(t testing.TB) {
	t.Helper()
	b.n++
	msg := fmt.Sprintf("bystander %d", b.n)
	b.c.SetWriteDeadline(time.Now().Add(rawWait))
	if err := b.c.WriteMessage(codec.OpText, []byte(msg)); err != nil {
		t.Fatalf("bystander write: %v", err)
	}
	select {
	case p, ok := <-b.msgs:
		if !ok || string(p) != msg {
			t.Fatalf("bystander got %q (open %v), want %q", p, ok, msg)
		}
	case <-time.After(rawWait):
		t.Fatal("bystander: no echo")
	}
}
