package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/galews/gale/codec"
)

// testTimeout bounds every wait in the interop tests: a read, a callback,
// a child process.
const testTimeout = 10 * time.Second

// startServer starts a server for h on 127.0.0.1:0 and shuts it down when
// the test ends.
func startServer(t testing.TB, h Handler, cfg Config) *Server {
	t.Helper()
	srv, err := NewServer(h, cfg)
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
func wsURL(srv *Server) string { return "ws://" + srv.Addr().String() + "/" }

// recorder is an echo handler that reports its connections' events on
// buffered channels. Sends never block the loop: a test that does not drain
// a channel loses events, not the server.
type recorder struct {
	opens  chan *Conn
	closes chan error
	pings  chan []byte
	pongs  chan []byte
}

func newRecorder() *recorder {
	return &recorder{
		opens:  make(chan *Conn, 16),
		closes: make(chan error, 16),
		pings:  make(chan []byte, 16),
		pongs:  make(chan []byte, 16),
	}
}

func (r *recorder) OnOpen(c *Conn) { offer(r.opens, c) }

func (r *recorder) OnMessage(c *Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

func (r *recorder) OnClose(c *Conn, err error) { offer(r.closes, err) }

func (r *recorder) OnPing(c *Conn, p []byte) { offer(r.pings, clone(p)) }

func (r *recorder) OnPong(c *Conn, p []byte) { offer(r.pongs, clone(p)) }

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
	// payload (coder/websocket, in bench/interop, sends a counter).
	choosesPingPayload bool
	dial               func(t testing.TB, url string) peer
}

// peerKinds are the clients the interop tests run: gobwas/ws (a dependency
// of the engine) and Gale's own Dial. The third-party libraries the engine
// does not depend on (gorilla/websocket, coder/websocket) run the same cases
// in bench/interop.
var peerKinds = []peerKind{
	{name: "gobwas", choosesPingPayload: true, dial: dialGobwas},
	{name: "gale", choosesPingPayload: true, dial: dialGale},
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

// --- gobwas/ws with wsutil ---

type gobwasPeer struct {
	conn      net.Conn
	rd        *wsutil.Reader
	closeSent bool
	ctrlLog
}

func dialGobwas(t testing.TB, url string) peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, url)
	if err != nil {
		t.Fatalf("gobwas dial: %v", err)
	}
	src := io.Reader(conn)
	if br != nil { // the server's first frames arrived with the handshake
		src = br
	}
	p := &gobwasPeer{conn: conn}
	p.rd = &wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: true, OnIntermediate: p.control}
	t.Cleanup(p.Drop)
	return p
}

// control handles a control frame whose payload r yields.
func (p *gobwasPeer) control(h ws.Header, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		p.addPing(b)
		return wsutil.WriteClientMessage(p.conn, ws.OpPong, b)
	case ws.OpPong:
		p.addPong(b)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(b)
		if !p.closeSent {
			p.closeSent = true
			wsutil.WriteClientMessage(p.conn, ws.OpClose, ws.NewCloseFrameBody(code, ""))
		}
		return &codec.CloseError{Code: codec.StatusCode(code), Reason: reason}
	}
	return nil
}

func (p *gobwasPeer) Send(op codec.Opcode, b []byte) error {
	p.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	return wsutil.WriteClientMessage(p.conn, ws.OpCode(op), b)
}

// SendFragments writes each part as its own frame: FIN 0, …, 0, 1.
func (p *gobwasPeer) SendFragments(op codec.Opcode, parts [][]byte) error {
	p.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	for i, b := range parts {
		code := ws.OpContinuation
		if i == 0 {
			code = ws.OpCode(op)
		}
		if err := ws.WriteFrame(p.conn, ws.MaskFrame(ws.NewFrame(code, i == len(parts)-1, b))); err != nil {
			return err
		}
	}
	return nil
}

func (p *gobwasPeer) Read() (codec.Opcode, []byte, error) {
	p.conn.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		h, err := p.rd.NextFrame()
		if err != nil {
			return 0, nil, err
		}
		if h.OpCode.IsControl() {
			if err := p.control(h, p.rd); err != nil {
				return 0, nil, err
			}
			continue
		}
		b, err := io.ReadAll(p.rd) // continuation frames and interleaved control frames included
		return codec.Opcode(h.OpCode), b, err
	}
}

func (p *gobwasPeer) PingPong(b []byte) ([]byte, error) {
	p.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	if err := wsutil.WriteClientMessage(p.conn, ws.OpPing, b); err != nil {
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

func (p *gobwasPeer) CloseHandshake(code codec.StatusCode, reason string) (*codec.CloseError, error) {
	p.closeSent = true
	p.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	body := ws.NewCloseFrameBody(ws.StatusCode(code), reason)
	if err := wsutil.WriteClientMessage(p.conn, ws.OpClose, body); err != nil {
		return nil, err
	}
	return readUntilClose(p)
}

func (p *gobwasPeer) Drop() { p.conn.Close() }

// --- Gale's blocking client (Dial) ---

type galePeer struct {
	c *ClientConn
	ctrlLog
}

func dialGale(t testing.TB, url string) peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("gale dial: %v", err)
	}
	p := &galePeer{c: c}
	t.Cleanup(p.Drop)
	return p
}

func (p *galePeer) Send(op codec.Opcode, b []byte) error {
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	return p.c.WriteMessage(op, b)
}

// SendFragments writes each part as its own frame: FIN 0, …, 0, 1.
func (p *galePeer) SendFragments(op codec.Opcode, parts [][]byte) error {
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	for i, b := range parts {
		code := codec.OpContinuation
		if i == 0 {
			code = op
		}
		if err := p.c.WriteFrame(code, b, i == len(parts)-1); err != nil {
			return err
		}
	}
	return nil
}

// Read reads frame by frame so that it sees the control frames: ReadFrame
// answers pings and Closes itself.
func (p *galePeer) Read() (codec.Opcode, []byte, error) {
	p.c.SetReadDeadline(time.Now().Add(testTimeout))
	var op codec.Opcode
	var msg []byte
	for {
		f, err := p.c.ReadFrame()
		if err != nil {
			return 0, nil, err
		}
		switch f.Opcode {
		case codec.OpPing:
			p.addPing(f.Payload)
			continue
		case codec.OpPong:
			p.addPong(f.Payload)
			continue
		case codec.OpText, codec.OpBinary:
			op = f.Opcode
		}
		msg = append(msg, f.Payload...) // Payload is valid until the next read
		if f.Fin {
			return op, msg, nil
		}
	}
}

func (p *galePeer) PingPong(b []byte) ([]byte, error) {
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	if err := p.c.Ping(b); err != nil {
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

// CloseHandshake starts the handshake with Close; the server's answer comes
// back from the next read.
func (p *galePeer) CloseHandshake(code codec.StatusCode, reason string) (*codec.CloseError, error) {
	if err := p.c.Close(code, reason); err != nil {
		return nil, err
	}
	return readUntilClose(p)
}

func (p *galePeer) Drop() { p.c.CloseNow() }

// readServerFrame reads one unmasked server frame into buf (which must hold
// its payload) and returns its header and payload.
func readServerFrame(t testing.TB, br *bufio.Reader, buf []byte) (codec.Header, []byte) {
	t.Helper()
	hdr, err := br.Peek(2)
	if err != nil {
		t.Fatal(err)
	}
	n := 2
	switch hdr[1] & 0x7F {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	if _, err := io.ReadFull(br, buf[:n]); err != nil {
		t.Fatal(err)
	}
	h, _, err := codec.DecodeFrameHeader(buf[:n])
	if err != nil || h.Masked || h.Length > int64(len(buf)) {
		t.Fatalf("server frame header %+v %v (buffer %d)", h, err, len(buf))
	}
	if _, err := io.ReadFull(br, buf[:h.Length]); err != nil {
		t.Fatal(err)
	}
	return h, buf[:h.Length]
}
