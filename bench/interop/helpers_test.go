package interop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// testTimeout bounds every wait in the interop tests: a read, a callback.
const testTimeout = 10 * time.Second

// startServer starts a server for h on 127.0.0.1:0 and shuts it down when
// the test ends.
func startServer(t testing.TB, h engine.Handler, cfg engine.Config) *engine.Server {
	t.Helper()
	srv, err := engine.NewServer(h, cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// wsURL is the ws:// URL of srv's root.
func wsURL(srv *engine.Server) string { return "ws://" + srv.Addr().String() + "/" }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// echo echoes every message with its opcode.
type echo struct{ engine.BaseHandler }

func (echo) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

// recorder is an echo handler that reports its connections' events on
// buffered channels. Sends never block the loop: a test that does not drain
// a channel loses events, not the server.
type recorder struct {
	opens  chan *engine.Conn
	closes chan error
	pings  chan []byte
	pongs  chan []byte
}

func newRecorder() *recorder {
	return &recorder{
		opens:  make(chan *engine.Conn, 16),
		closes: make(chan error, 16),
		pings:  make(chan []byte, 16),
		pongs:  make(chan []byte, 16),
	}
}

func (r *recorder) OnOpen(c *engine.Conn) { offer(r.opens, c) }

func (r *recorder) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

func (r *recorder) OnClose(c *engine.Conn, err error) { offer(r.closes, err) }

func (r *recorder) OnPing(c *engine.Conn, p []byte) { offer(r.pings, clone(p)) }

func (r *recorder) OnPong(c *engine.Conn, p []byte) { offer(r.pongs, clone(p)) }

func offer[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func clone(p []byte) []byte { return append([]byte{}, p...) }

// recv waits for a value on ch, failing the test after testTimeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// pollUntil polls cond until it holds, failing the test after testTimeout.
func pollUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// wantCloseError checks that err, as given to Handler.OnClose, is a
// *codec.CloseError with code and, unless reason is nil, that reason.
func wantCloseError(t testing.TB, err error, code codec.StatusCode, reason *string) {
	t.Helper()
	ce, ok := err.(*codec.CloseError)
	if !ok {
		t.Fatalf("OnClose error = %T %v, want *codec.CloseError %d", err, err, code)
	}
	if ce.Code != code || reason != nil && ce.Reason != *reason {
		t.Fatalf("OnClose error = %v, want code %d reason %q", ce, code, deref(reason))
	}
}

func deref(s *string) string {
	if s == nil {
		return "<any>"
	}
	return *s
}

// textPayload returns n bytes of valid UTF-8 mixing 1-, 2-, 3- and 4-byte
// runes (so fragment and buffer boundaries fall inside runes), padded with
// ASCII to the exact length.
func textPayload(n int) []byte {
	const runes = "aé€😀 Gale ß→𝄞\n"
	var b strings.Builder
	b.Grow(n)
	for b.Len()+len(runes) <= n {
		b.WriteString(runes)
	}
	for b.Len() < n {
		b.WriteByte('x')
	}
	return []byte(b.String())
}

// binaryPayload returns n bytes covering every byte value.
func binaryPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// peer is a third-party client adapted to the few operations the interop
// tests need. Its methods are called from the test goroutine only; every
// read and write is bounded by testTimeout.
type peer interface {
	// Send writes p as one message (framed as the library frames it).
	Send(op codec.Opcode, p []byte) error
	// SendFragments writes one message through the library's streaming
	// writer, one Write per part.
	SendFragments(op codec.Opcode, parts [][]byte) error
	// Read returns the next data message. Pings are answered and recorded
	// on the way, pongs recorded; a Close from the server is answered and
	// ends the read with a *codec.CloseError holding its code and reason.
	Read() (codec.Opcode, []byte, error)
	// PingPong pings (with p when the library lets the caller choose) and
	// reads until the answering pong; it returns the pong's payload.
	PingPong(p []byte) ([]byte, error)
	// Pings returns the payloads of the pings received so far.
	Pings() [][]byte
	// CloseHandshake sends Close with code and reason and reads until the
	// server's Close, which it returns.
	CloseHandshake(code codec.StatusCode, reason string) (*codec.CloseError, error)
	// Drop closes the transport.
	Drop()
}

// peerKind names a client library and how to dial it.
type peerKind struct {
	name string
	// choosesPingPayload is false for libraries that pick their own ping
	// payload (coder/websocket sends a counter and matches the pong itself).
	choosesPingPayload bool
	dial               func(t testing.TB, url string) peer
}

// peerKinds are the third-party Go clients. The engine's own interop tests
// run the same cases with gobwas/ws and Gale's Dial.
var peerKinds = []peerKind{
	{name: "gorilla", choosesPingPayload: true, dial: dialGorilla},
	{name: "coder", choosesPingPayload: false, dial: dialCoder},
}

// ctrlLog records the control frames a peer received.
type ctrlLog struct {
	mu           sync.Mutex
	pings, pongs [][]byte
}

func (l *ctrlLog) addPing(p []byte) { l.mu.Lock(); l.pings = append(l.pings, clone(p)); l.mu.Unlock() }
func (l *ctrlLog) addPong(p []byte) { l.mu.Lock(); l.pongs = append(l.pongs, clone(p)); l.mu.Unlock() }

func (l *ctrlLog) Pings() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pings)
}

func (l *ctrlLog) lastPong() ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pongs) == 0 {
		return nil, false
	}
	return l.pongs[len(l.pongs)-1], true
}

// syncRead sends a text message and reads its echo, so that every frame
// the server sent before the echo has been through the peer's reader.
func syncRead(p peer) error {
	const sync = "sync"
	if err := p.Send(codec.OpText, []byte(sync)); err != nil {
		return err
	}
	op, got, err := p.Read()
	if err != nil {
		return err
	}
	if op != codec.OpText || string(got) != sync {
		return fmt.Errorf("sync echo: op %v %q", op, got)
	}
	return nil
}

// readUntilClose reads (discarding data messages) until the server's Close.
func readUntilClose(p peer) (*codec.CloseError, error) {
	for {
		_, _, err := p.Read()
		var ce *codec.CloseError
		if errors.As(err, &ce) {
			return ce, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// --- gorilla/websocket ---

type gorillaPeer struct {
	c         *websocket.Conn
	closeSent bool
	ctrlLog
}

func dialGorilla(t testing.TB, url string) peer {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: testTimeout}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("gorilla dial: %v", err)
	}
	resp.Body.Close()
	p := &gorillaPeer{c: c}
	c.SetPingHandler(func(s string) error {
		p.addPing([]byte(s))
		return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(testTimeout))
	})
	c.SetPongHandler(func(s string) error { p.addPong([]byte(s)); return nil })
	c.SetCloseHandler(func(code int, _ string) error {
		if !p.closeSent {
			p.closeSent = true
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(testTimeout))
		}
		return nil
	})
	t.Cleanup(p.Drop)
	return p
}

func (p *gorillaPeer) Send(op codec.Opcode, b []byte) error {
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	return p.c.WriteMessage(int(op), b)
}

// SendFragments streams the parts through NextWriter; gorilla cuts frames at
// its write buffer (4 KiB), so parts larger than that make several frames.
func (p *gorillaPeer) SendFragments(op codec.Opcode, parts [][]byte) error {
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	w, err := p.c.NextWriter(int(op))
	if err != nil {
		return err
	}
	for _, b := range parts {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Close()
}

func (p *gorillaPeer) Read() (codec.Opcode, []byte, error) {
	p.c.SetReadDeadline(time.Now().Add(testTimeout))
	mt, b, err := p.c.ReadMessage()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return 0, nil, &codec.CloseError{Code: codec.StatusCode(ce.Code), Reason: ce.Text}
	}
	return codec.Opcode(mt), b, err
}

func (p *gorillaPeer) PingPong(b []byte) ([]byte, error) {
	if err := p.c.WriteControl(websocket.PingMessage, b, time.Now().Add(testTimeout)); err != nil {
		return nil, err
	}
	if err := syncRead(p); err != nil {
		return nil, err
	}
	if pong, ok := p.lastPong(); ok {
		return pong, nil
	}
	return nil, errors.New("no pong before the echo that followed the ping")
}

func (p *gorillaPeer) CloseHandshake(code codec.StatusCode, reason string) (*codec.CloseError, error) {
	p.closeSent = true
	msg := websocket.FormatCloseMessage(int(code), reason)
	if err := p.c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(testTimeout)); err != nil {
		return nil, err
	}
	return readUntilClose(p)
}

func (p *gorillaPeer) Drop() { p.c.Close() }

// --- coder/websocket ---

type coderPeer struct {
	c *cws.Conn
	ctrlLog
}

func dialCoder(t testing.TB, url string) peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p := &coderPeer{}
	c, resp, err := cws.Dial(ctx, url, &cws.DialOptions{
		OnPingReceived: func(_ context.Context, b []byte) bool { p.addPing(b); return true },
		OnPongReceived: func(_ context.Context, b []byte) { p.addPong(b) },
	})
	if err != nil {
		t.Fatalf("coder dial: %v", err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	c.SetReadLimit(-1)
	p.c = c
	t.Cleanup(p.Drop)
	return p
}

func coderType(op codec.Opcode) cws.MessageType {
	if op == codec.OpBinary {
		return cws.MessageBinary
	}
	return cws.MessageText
}

func (p *coderPeer) Send(op codec.Opcode, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return p.c.Write(ctx, coderType(op), b)
}

// SendFragments streams the parts through Writer: each Write is one frame,
// and Close sends an empty final frame.
func (p *coderPeer) SendFragments(op codec.Opcode, parts [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	w, err := p.c.Writer(ctx, coderType(op))
	if err != nil {
		return err
	}
	for _, b := range parts {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Close()
}

func (p *coderPeer) Read() (codec.Opcode, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	typ, b, err := p.c.Read(ctx)
	var ce cws.CloseError
	if errors.As(err, &ce) {
		return 0, nil, &codec.CloseError{Code: codec.StatusCode(ce.Code), Reason: ce.Reason}
	}
	op := codec.OpText
	if typ == cws.MessageBinary {
		op = codec.OpBinary
	}
	return op, b, err
}

// PingPong ignores b: coder/websocket's Ping sends its own payload and
// returns only once a pong with that payload came back, which needs a
// concurrent reader, so sync messages are read until Ping returns.
func (p *coderPeer) PingPong([]byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.c.Ping(ctx) }()
	for {
		if err := syncRead(p); err != nil {
			return nil, err
		}
		select {
		case err := <-done:
			if err != nil {
				return nil, err
			}
			pong, _ := p.lastPong()
			return pong, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
	}
}

// CloseHandshake returns the code only: coder/websocket's Close checks that
// the server echoed the code and does not expose the reason.
func (p *coderPeer) CloseHandshake(code codec.StatusCode, reason string) (*codec.CloseError, error) {
	if err := p.c.Close(cws.StatusCode(code), reason); err != nil {
		return nil, err
	}
	return &codec.CloseError{Code: code}, nil
}

func (p *coderPeer) Drop() { p.c.CloseNow() }
