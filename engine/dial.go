package engine

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// DialOptions configures a dial: Dial's (the blocking client) and
// Client.Dial's. The zero value (or nil) works.
//
// The first group applies to each dial of either client. The limits and
// the compression in the second group are the blocking client's own; an
// event-loop Client takes them from its Config for all its connections, so
// Client.Dial refuses (ErrDialOption) a value there that differs from its
// Config's rather than ignore it.
type DialOptions struct {
	Header       http.Header // extra request header fields
	Origin       string      // sent as Origin when not empty
	Subprotocols []string    // offered in order of preference

	// HandshakeTimeout bounds connecting (TCP, TLS) and the upgrade when
	// ctx has no earlier deadline. Default 10 s.
	HandshakeTimeout time.Duration
	// TLSConfig is used for wss:// URLs, by both clients: RootCAs to
	// trust a private CA, InsecureSkipVerify for tests. ServerName
	// defaults to the URL's host; NextProtos to http/1.1.
	TLSConfig *tls.Config
	// NetDial, when set, opens the TCP connection instead of net.Dialer,
	// e.g. to bind a local address.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxMessageSize caps received messages (1009 past it). Default 16 MiB.
	MaxMessageSize int64
	// MaxHeaderBytes caps the server's response head. Default 8 KiB.
	MaxHeaderBytes int
	// CloseTimeout bounds Close's wait for the server's answer. Default 5 s.
	CloseTimeout time.Duration
	// Compression offers permessage-deflate (RFC 7692) when Enabled, with
	// the meaning it has in Config and the offer the event-loop client
	// makes; ClientConn.Compression reports whether the server accepted.
	// WriteMessage, WriteText and WriteBinary then compress messages of
	// at least Threshold bytes (WriteFrame never), and ReadFrame and
	// ReadMessage inflate compressed messages with MaxMessageSize applied
	// to the inflated size.
	//
	// Memory: a ClientConn borrows a compressor (about 1 MiB, from package
	// pool) only while it compresses a message and a decompressor (about
	// 40 KiB) only while it inflates one, so an idle one holds neither.
	// Under context takeover it keeps its windows for its life: the last
	// 2^bits bytes it compressed and inflated, at most 32 KiB each way. The
	// buffer of the last inflated message is kept for the next one, which
	// lets it go if it is over 1 MiB.
	Compression CompressionConfig
}

// ClientConn is a blocking WebSocket client connection over a net.Conn, for
// ordinary programs and scripts (the event-loop client is for many
// connections). One goroutine may read while others write: writes are
// serialised; reads must come from one goroutine at a time.
type ClientConn struct {
	conn         net.Conn
	br           *bufio.Reader
	maxMsg       int64
	closeTimeout time.Duration
	subprotocol  string
	z            CompressionConfig // defaulted; in force when dfl.on
	dfl          deflateState      // set by the handshake, read-only after

	// Read side, owned by the reading goroutine.
	rbuf       []byte // the current frame's payload
	mbuf       []byte // the message being reassembled by ReadMessage
	fragOp     codec.Opcode
	msgLen     int64  // bytes of the message in progress
	compressed bool   // the message in progress has RSV1
	zin        []byte // its compressed frames, when more than one carried it
	zsrc       bytes.Reader
	zout       *[]byte // the last inflated message, from package pool
	rxWin      *[]byte // with the server's context takeover: what we inflated last
	utf8       codec.UTF8Validator
	readErr    error // sticky: once reading failed, it keeps failing the same way

	wmu        sync.Mutex
	wbuf       []byte
	txWin      *[]byte // with our context takeover: what we compressed last
	closeSent  bool
	closeTimer *time.Timer // drops the connection if the answer to our Close never comes
}

// Frame is one frame as ReadFrame returns it. Payload is valid until the
// next read.
//
// A message that arrived compressed (permessage-deflate) is returned as one
// frame, whole and inflated, with Compressed set, Fin true and the message's
// opcode, however many frames carried it: its compressed pieces mean
// nothing alone, and only inflating every message keeps the window that
// later messages may refer to under context takeover. The event-loop
// FrameHandler gets compressed messages the same way.
type Frame struct {
	Opcode     codec.Opcode
	Fin        bool
	Compressed bool
	Payload    []byte
}

// Dial opens a WebSocket connection to rawURL (ws:// or wss://).
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*ClientConn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	if err := opts.Compression.check(); err != nil {
		return nil, fmt.Errorf("gale: invalid DialOptions: %w", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("gale: dial: %w", err)
	}
	var secure bool
	switch u.Scheme {
	case "ws":
	case "wss":
		secure = true
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadURL, rawURL)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host in %q", ErrBadURL, rawURL)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmp.Or(opts.HandshakeTimeout, DefaultHandshakeTimeout))
		defer cancel()
	}
	hostPort := u.Host
	if u.Port() == "" {
		port := "80"
		if secure {
			port = "443"
		}
		hostPort = net.JoinHostPort(u.Hostname(), port)
	}
	dial := opts.NetDial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("gale: dial %s: %w", hostPort, err)
	}
	if secure {
		tc := tls.Client(conn, clientTLS(opts.TLSConfig, u.Hostname()))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("gale: dial %s: tls: %w", hostPort, err)
		}
		conn = tc
	}
	c, err := handshakeClient(ctx, conn, u, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func handshakeClient(ctx context.Context, conn net.Conn, u *url.URL, opts *DialOptions) (*ClientConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	uri := u.EscapedPath()
	if u.RawQuery != "" {
		uri += "?" + u.RawQuery
	}
	z := opts.Compression.withDefaults()
	req := &codec.ClientRequest{
		Host:       u.Host,
		URI:        uri,
		Origin:     opts.Origin,
		Protocols:  opts.Subprotocols,
		Header:     opts.Header,
		Extensions: z.offerValue(),
	}
	key := codec.NewKey()
	if _, err := conn.Write(codec.AppendClientRequest(nil, req, key[:])); err != nil {
		return nil, fmt.Errorf("gale: handshake: write request: %w", err)
	}
	maxHead := cmp.Or(opts.MaxHeaderBytes, codec.DefaultMaxHeaderBytes)
	buf := make([]byte, 0, 1024)
	var resp codec.Response
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		head, perr := resp.Parse(buf, maxHead)
		if perr == nil {
			if err := resp.Validate(key[:], req); err != nil {
				return nil, err
			}
			dp, deflate, err := z.accept(&resp) // deflate.go, as the event-loop client
			if err != nil {
				return nil, fmt.Errorf("gale: handshake: %w", err)
			}
			c := newClientConn(conn, buf[head:], opts)
			c.subprotocol = string(resp.Protocol)
			if deflate {
				c.z, c.dfl = z, newDeflateState(dp, &z, true)
			}
			return c, nil
		}
		if perr != codec.ErrNeedMore {
			return nil, fmt.Errorf("gale: handshake: %w", perr)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("gale: handshake: server closed before the response was complete: %w", err)
		}
	}
}

func newClientConn(conn net.Conn, early []byte, opts *DialOptions) *ClientConn {
	c := &ClientConn{
		conn:         conn,
		maxMsg:       cmp.Or(opts.MaxMessageSize, DefaultMaxMessageSize),
		closeTimeout: cmp.Or(opts.CloseTimeout, DefaultCloseTimeout),
	}
	var r io.Reader = conn
	if len(early) > 0 {
		// Frames that came in the same read as the 101 response.
		r = io.MultiReader(strings.NewReader(string(early)), conn)
	}
	c.br = bufio.NewReaderSize(r, 64<<10)
	return c
}

// Subprotocol returns the subprotocol the server chose, or "".
func (c *ClientConn) Subprotocol() string { return c.subprotocol }

// Compression reports whether permessage-deflate is in force: offered
// (DialOptions.Compression) and accepted by the server.
func (c *ClientConn) Compression() bool { return c.dfl.on }

// LocalAddr returns the connection's local address.
func (c *ClientConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the server's address.
func (c *ClientConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// ConnectionState returns the TLS state of a wss:// connection (version,
// cipher suite, ALPN protocol, the server's certificates, whether the
// session was resumed); ok is false for ws://. Safe from any goroutine.
func (c *ClientConn) ConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// NetConn returns the underlying connection (TCP, or TLS for wss://).
func (c *ClientConn) NetConn() net.Conn { return c.conn }

// SetReadDeadline sets the deadline for reads; a read past it fails with an
// error for which errors.Is(err, os.ErrDeadlineExceeded) holds.
func (c *ClientConn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for writes.
func (c *ClientConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// WriteMessage sends p as one message; op is codec.OpText or codec.OpBinary.
// With permessage-deflate, a message of at least Compression.Threshold
// bytes is sent compressed when that makes it smaller.
func (c *ClientConn) WriteMessage(op codec.Opcode, p []byte) error {
	if op != codec.OpText && op != codec.OpBinary {
		return ErrInvalidOpcode
	}
	return c.writeMessage(op, p)
}

// WriteText sends p as a text message, compressed as WriteMessage does. p
// must be valid UTF-8.
func (c *ClientConn) WriteText(p []byte) error { return c.writeMessage(codec.OpText, p) }

// WriteBinary sends p as a binary message, compressed as WriteMessage does.
func (c *ClientConn) WriteBinary(p []byte) error { return c.writeMessage(codec.OpBinary, p) }

// WriteFrame sends one frame of a message: the first with OpText or
// OpBinary, then OpContinuation, the last with fin set. Frames are never
// compressed: they are sent as given.
func (c *ClientConn) WriteFrame(op codec.Opcode, p []byte, fin bool) error {
	if !op.IsData() || op.IsReserved() {
		return ErrInvalidOpcode
	}
	return c.writeFrame(op, fin, p)
}

// Ping sends a ping with payload p (at most 125 bytes).
func (c *ClientConn) Ping(p []byte) error {
	if len(p) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	return c.writeFrame(codec.OpPing, true, p)
}

// Pong sends an unsolicited pong (RFC 6455 §5.5.3: a heartbeat).
func (c *ClientConn) Pong(p []byte) error {
	if len(p) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	return c.writeFrame(codec.OpPong, true, p)
}

// Close starts the closing handshake, as Conn.Close does: it sends a Close
// frame with code and reason (cut to 123 bytes) and returns. The server's
// answer comes back from the next read as a *codec.CloseError, and the
// connection is closed then, or after DialOptions.CloseTimeout if the
// answer does not come (or nothing reads it). So a program that is done
// calls Close and reads until that error:
//
//	c.Close(codec.StatusNormalClosure, "")
//	_, _, err := c.ReadMessage() // the server's Close (*codec.CloseError)
//
// Writes after Close fail with ErrClosed; a second Close too. CloseNow
// drops the connection without a handshake.
func (c *ClientConn) Close(code codec.StatusCode, reason string) error {
	if code != codec.StatusNoStatusReceived && !code.IsValid() {
		return codec.ErrCloseCode
	}
	if err := c.writeClose(code, reason); err != nil {
		if err != ErrClosed {
			c.conn.Close()
		}
		return err
	}
	// Not a goroutine: a runtime timer that drops a connection whose
	// answer never comes, or that nobody reads any more.
	t := time.AfterFunc(c.closeTimeout, func() { c.conn.Close() })
	c.wmu.Lock()
	c.closeTimer = t
	c.wmu.Unlock()
	return nil
}

// CloseNow closes the connection at once, without a closing handshake.
func (c *ClientConn) CloseNow() error { return c.conn.Close() }

// writeClose sends a Close frame with code and reason.
func (c *ClientConn) writeClose(code codec.StatusCode, reason string) error {
	var buf [codec.MaxControlPayload]byte
	return c.writeFrame(codec.OpClose, true, codec.AppendClosePayload(buf[:0], code, reason))
}

func (c *ClientConn) writeFrame(op codec.Opcode, fin bool, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrClosed
	}
	return c.write(codec.Header{Fin: fin, Opcode: op}, p)
}

// writeMessage sends p as one message, compressed when permessage-deflate
// is in force, p is at least Threshold bytes and compression makes it
// smaller. The compressor is borrowed from the pool for this message
// only; under context takeover it is primed with the window of what we
// compressed before, which is extended once the message is written.
// Compressing under wmu keeps the window in the order messages go out.
func (c *ClientConn) writeMessage(op codec.Opcode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrClosed
	}
	if !c.dfl.on || len(p) < c.z.Threshold {
		return c.write(codec.Header{Fin: true, Opcode: op}, p)
	}
	var dict []byte
	if !c.dfl.txReset && c.txWin != nil {
		dict = *c.txWin
	}
	s := sinks.Get().(*sink)
	zp, ok := s.deflate(p, c.z.Level, c.dfl.txBits, dict)
	h := codec.Header{Fin: true, Opcode: op}
	if ok {
		h.Rsv = codec.Rsv1
	} else {
		zp = p
	}
	err := c.write(h, zp) // copies zp: the sink can go back at once
	s.trim()
	sinks.Put(s)
	if err == nil && ok && !c.dfl.txReset {
		c.txWin = pushWindow(c.txWin, p, 1<<c.dfl.txBits)
	}
	return err
}

// write sends one frame with header h (masked here) and payload p. c.wmu
// is held.
func (c *ClientConn) write(h codec.Header, p []byte) error {
	h.Masked, h.Mask = true, newMaskKey()
	c.wbuf = codec.AppendFrame(c.wbuf[:0], h, p)
	if h.Opcode == codec.OpClose {
		c.closeSent = true
	}
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return fmt.Errorf("gale: write: %w", err)
	}
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil // do not pin a huge buffer between messages
	}
	return nil
}

// ReadFrame reads the next frame, data or control. Pings are answered with
// a pong before they are returned. A Close is answered (echoing its code)
// unless we sent one first, and returned together with a *codec.CloseError
// holding the peer's code and reason. Protocol violations by the server fail
// the connection (a Close with the violation's code is sent) and return the
// *codec.ProtocolError; a timeout returns an error satisfying
// os.ErrDeadlineExceeded. A compressed message comes back whole and
// inflated, as one frame (see Frame). Payload is valid until the next read.
func (c *ClientConn) ReadFrame() (Frame, error) {
	if c.readErr != nil {
		return Frame{}, c.readErr
	}
	f, err := c.readFrame()
	if err != nil {
		// Reading has ended for good (a Close, a violation, the transport,
		// a deadline): nothing more can be received, so the socket goes.
		c.readErr = err
		c.conn.Close()
		c.wmu.Lock()
		if c.closeTimer != nil {
			c.closeTimer.Stop()
		}
		c.wmu.Unlock()
	}
	return f, err
}

// readFrame returns the next frame; the frames of a compressed message are
// gathered until its last one, and the message is returned inflated.
func (c *ClientConn) readFrame() (Frame, error) {
	for {
		h, err := c.readHeader()
		if err != nil {
			return Frame{}, err
		}
		if h.Opcode == codec.OpText || h.Opcode == codec.OpBinary {
			c.fragOp, c.msgLen = h.Opcode, 0
			c.utf8.Reset()
			c.compressed = h.Rsv&codec.Rsv1 != 0
			c.zin = c.zin[:0]
		}
		data := h.Opcode.IsData()
		// A compressed message's UTF-8 is checked once it is inflated.
		text := data && c.fragOp == codec.OpText && !c.compressed
		end := text && h.Fin

		// Read the payload as it arrives, growing with the bytes that come, not
		// with the declared length, and check a text message's UTF-8 on every
		// piece: an invalid byte fails the connection (1007) when it arrives,
		// not once a frame that may never complete has been read whole.
		c.rbuf = c.rbuf[:0]
		for remaining := h.Length; remaining > 0; {
			chunk := int(min(remaining, 64<<10))
			c.rbuf = slices.Grow(c.rbuf, chunk)
			start := len(c.rbuf)
			n, err := c.br.Read(c.rbuf[start : start+chunk])
			c.rbuf = c.rbuf[:start+n]
			remaining -= int64(n)
			if text && n > 0 && !textValid(&c.utf8, c.rbuf[start:], end && remaining == 0) {
				return Frame{}, c.fail(codec.ErrInvalidUTF8)
			}
			if err != nil && remaining > 0 {
				return Frame{}, readError(err)
			}
		}
		if end && h.Length == 0 && !c.utf8.Done() {
			return Frame{}, c.fail(codec.ErrInvalidUTF8) // an empty last frame ends a message cut mid-rune
		}
		f := Frame{Opcode: h.Opcode, Fin: h.Fin, Payload: c.rbuf}

		switch h.Opcode {
		case codec.OpText, codec.OpBinary, codec.OpContinuation:
			c.msgLen += h.Length
			if c.compressed {
				if !h.Fin || len(c.zin) > 0 {
					c.zin = append(c.zin, c.rbuf...)
				}
				if !h.Fin {
					continue // the pieces of a compressed message mean nothing alone
				}
				return c.inflated()
			}
			if h.Fin {
				c.fragOp, c.msgLen = 0, 0
			}
		case codec.OpPing:
			if err := c.writeFrame(codec.OpPong, true, f.Payload); err != nil && err != ErrClosed {
				return f, err
			}
		case codec.OpClose:
			code, reason, err := codec.ParseClosePayload(f.Payload)
			if err != nil {
				return Frame{}, c.fail(err)
			}
			c.writeClose(closeEchoCode(code), string(reason)) // ErrClosed when we closed first: nothing to echo
			return f, &codec.CloseError{Code: code, Reason: string(reason)}
		}
		return f, nil
	}
}

// inflated inflates the compressed message just completed, in c.zin or,
// when it came in one frame, in c.rbuf (no copy), and returns it as one
// frame. The output is capped at MaxMessageSize as it is produced
// (inflateLimited), so a compression bomb fails with 1009 having cost no
// more than the limit; data that does not inflate fails with 1007 as in
// the engine.
func (c *ClientConn) inflated() (Frame, error) {
	op := c.fragOp
	c.fragOp, c.msgLen, c.compressed = 0, 0, false
	in := &c.rbuf
	if len(c.zin) > 0 {
		in = &c.zin
	}
	*in = append(*in, deflateTail...)
	limit := int(min(c.maxMsg, math.MaxInt))
	out := c.zout
	c.zout = nil
	if out != nil && cap(*out) > maxSpare {
		pool.Put(out) // do not keep a big message's buffer for the next one
		out = nil
	}
	if out == nil {
		out = pool.Get(inflateHint(len(*in), limit))
	}
	var dict []byte
	if !c.dfl.rxReset && c.rxWin != nil {
		dict = *c.rxWin
	}
	c.zsrc.Reset(*in)
	fr := pool.GetFlateReader(&c.zsrc, dict)
	out, err := inflateLimited(fr, &c.zsrc, out, limit)
	pool.PutFlateReader(fr)
	c.zsrc.Reset(nil)
	c.zout = out
	if err == nil && op == codec.OpText && !(c.utf8.Write(*out) && c.utf8.Done()) {
		err = codec.ErrInvalidUTF8
	}
	if err != nil {
		return Frame{}, c.fail(err)
	}
	if !c.dfl.rxReset {
		c.rxWin = pushWindow(c.rxWin, *out, 1<<c.dfl.rxBits)
	}
	if cap(c.zin) > maxSpare {
		c.zin = nil
	}
	return Frame{Opcode: op, Fin: true, Compressed: true, Payload: *out}, nil
}

// readHeader reads and checks the next frame header with codec's decoder,
// waiting for as many bytes as it says it needs.
func (c *ClientConn) readHeader() (codec.Header, error) {
	for {
		p, _ := c.br.Peek(min(codec.MaxHeaderLen, c.br.Buffered()))
		h, n, err := codec.DecodeFrameHeader(p)
		if err == codec.ErrNeedMore {
			if _, err := c.br.Peek(len(p) + 1); err != nil { // wait for one more byte
				return codec.Header{}, readError(err)
			}
			continue
		}
		if err == nil {
			st := codec.StateClient
			if c.fragOp != 0 {
				st |= codec.StateFragmented
			}
			if c.dfl.on {
				st |= codec.StateDeflate // RSV1 allowed on a message's first frame only
			}
			err = checkFrame(h, st, c.msgLen, 0, c.maxMsg)
		}
		if err != nil {
			return codec.Header{}, c.fail(err)
		}
		c.br.Discard(n)
		return h, nil
	}
}

// ReadMessage reads the next whole message, answering pings and skipping
// pongs on the way; a compressed message is inflated, MaxMessageSize
// bounding its inflated size. A Close from the server is returned as a
// *codec.CloseError. The payload is valid until the next read.
func (c *ClientConn) ReadMessage() (codec.Opcode, []byte, error) {
	c.mbuf = c.mbuf[:0]
	var op codec.Opcode
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return 0, nil, err
		}
		if f.Opcode.IsControl() {
			continue
		}
		if f.Opcode != codec.OpContinuation {
			op = f.Opcode
		}
		if f.Fin && len(c.mbuf) == 0 {
			return op, f.Payload, nil // unfragmented: no copy
		}
		c.mbuf = append(c.mbuf, f.Payload...)
		if f.Fin {
			return op, c.mbuf, nil
		}
	}
}

// fail sends a Close with err's code and closes the connection: RFC 6455
// §7.1.7 "Fail the WebSocket Connection".
func (c *ClientConn) fail(err error) error {
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.writeClose(failCode(err), "")
	c.conn.Close()
	return err
}

func readError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("gale: read: %w", err)
}
