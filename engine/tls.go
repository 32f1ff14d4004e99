package engine

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/pool"
)

// TLS on the event loops, with crypto/tls as it is.
//
// crypto/tls cannot pause a handshake midway, so the handshake runs on a
// goroutine: for the server on one of a bounded set (acceptor.handshake),
// for the event-loop client on the caller of Client.Dial. It runs over the
// accepted or dialled socket itself, under the handshake timeout. Then the
// socket is handed to a loop like any other, with the established
// *tls.Conn; from there on every record is decrypted and encrypted on that
// loop, and no goroutine or timer is left for the connection.
//
// What makes that possible is a transport under the tls.Conn that the loop
// controls (tlsTransport). Its Read hands over the ciphertext gnet holds
// and, when there is none, answers errWouldBlock, a net.Error whose
// Temporary() is true: crypto/tls (conn.go, readRecordOrCCS, Go 1.26)
// returns such an error from Read without recording it as the
// connection's permanent error, and keeps the part of a record it already
// has, so Read is simply called again when more bytes arrive. Its Write
// appends the records to the loop's buffer (loop.tlsOut), which the loop
// writes to gnet in one call per tls.Conn.Write, and never blocks or fails.
// TestTLSMechanism pins both properties.

// errWouldBlock is what the loop's transport answers when gnet holds no
// more ciphertext. Timeout() is true as well as Temporary(): should
// crypto/tls come to spare only timeouts, the transport still works
// (TestTLSMechanism says which of the two it relies on today).
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "gale: tls: no more ciphertext for now" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// tlsTransport is the net.Conn under a connection's tls.Conn: the socket
// during the handshake (nc), gnet's connection on the loop afterwards
// (conn.Conn, the loop conn.c.loop). The switch happens while nobody uses
// the tls.Conn: after the handshake returned and before the hand-over to
// the loop, which orders it before everything the loop does. Kept small,
// like tlsConn around it: an idle connection holds both.
type tlsTransport struct {
	nc   net.Conn // the socket until the hand-over
	conn *tlsConn // the view it is part of
	// Record boundaries (track): crypto/tls is handed one record at a
	// time on the loop. synced: it has found nothing more to read since
	// the hand-over, so what it read ahead during the handshake is gone.
	left   int
	hdr    [recordHeaderLen]byte
	hdrN   uint8
	synced bool
}

// gc is gnet's connection, nil until the hand-over.
func (t *tlsTransport) gc() gnet.Conn { return t.conn.Conn }

func (t *tlsTransport) Read(p []byte) (int, error) {
	gc := t.gc()
	if gc == nil {
		if t.nc == nil {
			return 0, net.ErrClosed
		}
		n, err := t.nc.Read(p)
		t.track(p[:n])
		return n, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	avail := gc.InboundBuffered()
	if t.left == 0 && t.hdrN == 0 {
		// At a record boundary: hand over the next record only, so that
		// crypto/tls never holds a record beyond the one it reads (see
		// tlsConn.fill).
		if avail < recordHeaderLen {
			t.synced = true
			return 0, errWouldBlock
		}
		h, _ := gc.Peek(recordHeaderLen)
		t.left = recordHeaderLen + (int(h[3])<<8 | int(h[4]))
	}
	if avail == 0 {
		t.synced = true
		return 0, errWouldBlock
	}
	k := min(len(p), avail)
	if t.left > 0 {
		k = min(k, t.left)
	} else {
		k = min(k, recordHeaderLen-int(t.hdrN)) // the rest of a header the handshake began
	}
	n, _ := gc.Read(p[:k])
	t.track(p[:n])
	return n, nil
}

// recordHeaderLen is a TLS record header's length: type, version, length.
const recordHeaderLen = 5

// track follows the record boundaries in the ciphertext handed to
// crypto/tls: left is what remains of the current record, hdr a header
// begun.
func (t *tlsTransport) track(b []byte) {
	for len(b) > 0 {
		if t.left > 0 {
			k := min(t.left, len(b))
			t.left -= k
			b = b[k:]
			continue
		}
		k := copy(t.hdr[t.hdrN:], b)
		t.hdrN += uint8(k)
		b = b[k:]
		if t.hdrN == recordHeaderLen {
			t.left, t.hdrN = int(t.hdr[3])<<8|int(t.hdr[4]), 0
		}
	}
}

// drained reports whether crypto/tls holds no ciphertext it has not
// read: it was handed whole records only, one at a time, since it last
// found none left. Loop only.
func (t *tlsTransport) drained() bool {
	return t.synced && t.left == 0 && t.hdrN == 0
}

func (t *tlsTransport) Write(p []byte) (int, error) {
	if t.gc() == nil {
		if t.nc == nil {
			return 0, net.ErrClosed
		}
		return t.nc.Write(p)
	}
	l := t.conn.c.loop
	l.tlsOut = append(l.tlsOut, p...)
	return len(p), nil
}

// Close closes the socket during the handshake; afterwards the socket is
// gnet's, closed through the loop.
func (t *tlsTransport) Close() error {
	if t.gc() == nil && t.nc != nil {
		return t.nc.Close()
	}
	return nil
}

func (t *tlsTransport) LocalAddr() net.Addr {
	if t.nc != nil {
		return t.nc.LocalAddr()
	}
	if gc := t.gc(); gc != nil {
		return gc.LocalAddr()
	}
	return nil
}

func (t *tlsTransport) RemoteAddr() net.Addr {
	if t.nc != nil {
		return t.nc.RemoteAddr()
	}
	if c := t.conn.c; c != nil {
		return c.RemoteAddr() // gnet's copy may be gone (takeAddrs)
	}
	return nil
}

func (t *tlsTransport) SetDeadline(d time.Time) error {
	if t.gc() == nil && t.nc != nil {
		return t.nc.SetDeadline(d)
	}
	return nil
}

func (t *tlsTransport) SetReadDeadline(d time.Time) error {
	if t.gc() == nil && t.nc != nil {
		return t.nc.SetReadDeadline(d)
	}
	return nil
}

func (t *tlsTransport) SetWriteDeadline(d time.Time) error {
	if t.gc() == nil && t.nc != nil {
		return t.nc.SetWriteDeadline(d)
	}
	return nil
}

// tlsConn is a TLS connection's gnet.Conn as the rest of the engine sees
// it (Conn.gc): the read side's InboundBuffered, Peek and Discard serve
// decrypted bytes, Write and Writev encrypt, and everything else is gnet's
// connection (embedded). Loop only, like every use of Conn.gc. It is also
// the gnet context that carries the established connection to the loop.
type tlsConn struct {
	gnet.Conn // the socket; set on the loop
	c         *Conn
	tc        *tls.Conn
	tr        tlsTransport
	// in holds decrypted bytes not read yet, in[off:]; borrowed from pool
	// while there are any, so an idle connection holds none.
	in   *[]byte
	off  int
	more bool // fill stopped at tlsFillMax, not for want of ciphertext
	// broken: crypto/tls failed for good (it sent its alert, or could not
	// write), so no close_notify follows.
	broken bool
	// closing: the socket closes when this OnTraffic returns, so the
	// close_notify goes out with the batch's records, in the same write.
	closing bool
	// client: a dial's state, carried to the loop with the connection.
	dial *dialing
}

// Decrypting: at most tlsFillMax bytes of plaintext are held at once, so a
// connection whose reading is paused leaves the rest as ciphertext in gnet
// (counted by Conn.unread), and a peer cannot make the loop decrypt
// without bound in one go.
const (
	tlsFillMin = 16 << 10 // a whole record's plaintext
	tlsFillMax = 64 << 10
)

func newTLSConn(nc net.Conn) *tlsConn {
	t := &tlsConn{}
	t.tr = tlsTransport{nc: nc, conn: t}
	return t
}

// attach makes gc, on c's loop, the transport of an established connection.
// Loop only.
func (t *tlsConn) attach(gc gnet.Conn, c *Conn) {
	t.Conn, t.c = gc, c
	t.tr.nc = nil
	c.gc = t
	c.extra().tls = t
}

func (t *tlsConn) InboundBuffered() int {
	if t.in == nil {
		return 0
	}
	return len(*t.in) - t.off
}

func (t *tlsConn) Peek(n int) ([]byte, error) {
	if n <= 0 {
		n = t.InboundBuffered()
	}
	if n > t.InboundBuffered() {
		return nil, io.ErrShortBuffer
	}
	return (*t.in)[t.off : t.off+n], nil
}

func (t *tlsConn) Discard(n int) (int, error) {
	avail := t.InboundBuffered()
	if n <= 0 || n > avail {
		n = avail
	}
	t.off += n
	return n, nil
}

// fill decrypts what gnet holds into in, up to tlsFillMax bytes pending.
// It returns the bytes added, and the error that ends the connection:
// crypto/tls's (an alert it sent, a bad record, a close_notify as io.EOF),
// never errWouldBlock. Loop only.
func (t *tlsConn) fill() (int, error) {
	if t.in == nil {
		t.in = pool.Get(tlsFillMin)
		*t.in = (*t.in)[:0]
		t.off = 0
	}
	b := *t.in
	if t.off > 0 {
		b = b[:copy(b, b[t.off:])]
		t.off = 0
	}
	added := 0
	var err error
	t.more = true
	for len(b) < tlsFillMax {
		if cap(b)-len(b) < 512 {
			*t.in = b
			t.in = pool.Grow(t.in, len(b)+tlsFillMin)
			b = (*t.in)[:len(b)]
		}
		var n int
		room := cap(b) - len(b)
		n, err = t.tc.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		added += n
		if err == nil && n < room && t.tr.drained() && t.Conn.InboundBuffered() == 0 {
			// The record was read whole and nothing follows it: asking
			// again would only cost crypto/tls an allocation to learn so.
			t.more = false
			break
		}
		if err != nil {
			t.more = false
			if err == errWouldBlock {
				err = nil
			}
			break
		}
	}
	*t.in = b
	// Reading can make crypto/tls write: a KeyUpdate answered, an alert
	// for a bad record.
	if ferr := t.flushOut(); err == nil {
		err = ferr
	}
	return added, err
}

// release returns the read buffer once everything in it was read, so an
// idle connection holds none. Loop only.
func (t *tlsConn) release() {
	if t.in != nil && t.off == len(*t.in) {
		pool.Put(t.in)
		t.in, t.off = nil, 0
	}
}

// Write encrypts p into records and hands them to gnet in one write.
func (t *tlsConn) Write(p []byte) (int, error) {
	if _, err := t.tc.Write(p); err != nil {
		t.c.loop.tlsOut = t.c.loop.tlsOut[:0]
		return 0, t.failed(err)
	}
	if t.closing {
		t.sealCloseNotify()
	}
	return len(p), t.flushOut()
}

// Writev encrypts the buffers (a frame's header and its payload) and
// hands all the records to gnet in one write. crypto/tls makes at least
// one record per Write, so the buffers are gathered into records of up to
// tlsRecordMax bytes first: one record for a small frame rather than a
// header record of a few bytes beside the payload's, each with its own
// header, tag and sealing.
func (t *tlsConn) Writev(bs [][]byte) (int, error) {
	l := t.c.loop
	g := l.mbuf[:0] // free here: writeDirect uses it for masked frames, which take Write
	n := 0
	for _, b := range bs {
		n += len(b)
		if len(g)+len(b) <= tlsRecordMax {
			g = append(g, b...)
			continue
		}
		k := tlsRecordMax - len(g)
		g = append(g, b[:k]...)
		if err := t.seal(g); err != nil {
			return 0, err
		}
		g = g[:0]
		if err := t.seal(b[k:]); err != nil { // whole records, straight from b
			return 0, err
		}
	}
	if err := t.seal(g); err != nil {
		return 0, err
	}
	l.mbuf = g[:0]
	return n, t.flushOut()
}

// tlsRecordMax is the most plaintext a TLS record carries.
const tlsRecordMax = 16 << 10

// seal encrypts p into the loop's buffer. Loop only.
func (t *tlsConn) seal(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := t.tc.Write(p); err != nil {
		t.c.loop.tlsOut = t.c.loop.tlsOut[:0]
		return t.failed(err)
	}
	return nil
}

// flushOut writes the records crypto/tls produced to gnet. Loop only.
func (t *tlsConn) flushOut() error {
	l := t.c.loop
	if len(l.tlsOut) == 0 {
		return nil
	}
	_, err := t.Conn.Write(l.tlsOut)
	l.tlsOut = l.tlsOut[:0]
	if cap(l.tlsOut) > maxSpare {
		l.tlsOut = nil
	}
	return err
}

// failed drops the connection after crypto/tls refused to write (which it
// does only once it has failed for good), as gnet does after a failed
// write, and returns err.
func (t *tlsConn) failed(err error) error {
	t.broken = true
	t.c.abort(err)
	return err
}

// closeNotify sends a close_notify alert, so the peer can tell the end
// of the stream from a truncation, when Gale closes the socket: gnet's
// OnClose without an error (a close Gale asked for: the close handshake
// done, a timeout, Shutdown), where gnet still writes what the loop hands
// it before closing. crypto/tls writes the alert through the transport
// into the loop's buffer (its write deadline is a no-op there), so
// nothing blocks; the record goes out with gnet's last flush. Not after
// crypto/tls failed: it sent its own alert then. Loop only.
func (t *tlsConn) closeNotify() {
	t.sealCloseNotify()
	t.flushOut()
}

// sealCloseNotify puts the close_notify in the loop's buffer, behind the
// records there: once, and not after crypto/tls failed. Loop only.
func (t *tlsConn) sealCloseNotify() {
	if t.broken {
		return
	}
	t.broken = true
	l := t.c.loop
	n := len(l.tlsOut)
	if t.tc.CloseWrite() != nil {
		l.tlsOut = l.tlsOut[:n]
	}
}

// tlsFailed ends a connection whose records could not be read: crypto/tls
// has answered with an alert (flushed by fill) when there was one to send.
// A close_notify (io.EOF) is the peer leaving and is not logged. Loop only.
func (c *Conn) tlsFailed(err error) {
	if t, ok := c.gc.(*tlsConn); ok && err != io.EOF {
		t.broken = true
	}
	if err != io.EOF {
		c.loop.srv.cfg.Logger.Info("gale: tls: closing the connection", "remote", c.RemoteAddr(), "err", err)
		err = &TLSError{Err: err}
	}
	c.abort(err)
}

// TLSError is why a TLS connection was dropped when its records could not
// be read or written (a record that fails to decrypt, an oversized record,
// an alert from the peer); OnClose receives it.
type TLSError struct{ Err error }

func (e *TLSError) Error() string { return "gale: tls: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// unread is what c has received and not read yet: for TLS, the decrypted
// bytes and the ciphertext gnet still holds. Loop only.
func (c *Conn) unread() int {
	if t, ok := c.gc.(*tlsConn); ok {
		return t.InboundBuffered() + t.Conn.InboundBuffered()
	}
	return c.inbound()
}

// ConnectionState returns the TLS state of a connection that came over
// TLS (a server's Config.TLS, or a wss:// dial of the event-loop Client):
// the version, cipher suite, SNI server name, ALPN protocol, the peer's
// certificates, whether the session was resumed. ok is false for a plain
// connection. Like every Conn method it may be called from any goroutine,
// in the callbacks as well (OnOpen included).
func (c *Conn) ConnectionState() (st tls.ConnectionState, ok bool) {
	x := c.ext.Load()
	if x == nil || x.tls == nil {
		return st, false
	}
	// crypto/tls guards the handshake's results with a mutex of its own
	// that the loop's reads and writes do not take once the handshake is
	// done, so this neither races with nor waits for the loop.
	return x.tls.tc.ConnectionState(), true
}

// tlsState returns the connection's TLS state, or nil.
func (c *Conn) tlsState() *tls.ConnectionState {
	if st, ok := c.ConnectionState(); ok {
		return &st
	}
	return nil
}

// serverTLS returns the server's TLS configuration: cfg cloned (so later
// changes by the caller do not reach live connections), offering
// http/1.1 by ALPN unless it names its protocols. h2 is refused: a browser
// would choose it and then speak HTTP/2, which Gale does not.
func serverTLS(cfg *tls.Config) (*tls.Config, error) {
	cfg = cfg.Clone()
	for _, p := range cfg.NextProtos {
		if p == "h2" {
			return nil, errors.New("TLS.NextProtos offers h2, which Gale does not speak: offer http/1.1 (the default when NextProtos is empty)")
		}
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	if cfg.Certificates == nil && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, errors.New("TLS has no certificate: set Certificates, GetCertificate or GetConfigForClient")
	}
	return cfg, nil
}

// plainHTTPOnTLS answers a plain HTTP request that reached the TLS
// listener, as net/http does, before the connection is closed.
const plainHTTPOnTLS = "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" +
	"Client sent an HTTP request to an HTTPS server.\n"

// handshake runs the TLS handshake of an accepted socket on a goroutine
// of its own, one of at most Config.TLSHandshakeWorkers at a time (the
// accept goroutine waits for a slot, leaving new connections in the
// listen backlog), and hands the socket to a loop once it is established.
// A handshake that fails or outlasts HandshakeTimeout closes the socket
// with one log line.
func (a *acceptor) handshake(nc net.Conn) error {
	select {
	case a.hsSlots <- struct{}{}:
	case <-a.quit:
		nc.Close()
		return net.ErrClosed
	}
	a.hsWG.Add(1)
	go func() {
		defer func() { <-a.hsSlots; a.hsWG.Done() }()
		s := a.s
		t := newTLSConn(nc)
		t.tc = tls.Server(&t.tr, s.tlsCfg)
		// The timeout is the socket's deadline rather than a context's:
		// with a context crypto/tls starts a goroutine per handshake to
		// watch it, and the context needs a timer of its own.
		nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
		err := net.ErrClosed
		if a.handshaking(nc, true) {
			err = t.tc.Handshake()
			a.handshaking(nc, false)
		}
		if err != nil {
			a.tlsFailures.Add(1)
			var rh tls.RecordHeaderError
			if errors.As(err, &rh) && rh.Conn != nil {
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				io.WriteString(nc, plainHTTPOnTLS)
			}
			s.cfg.Logger.Info("gale: tls handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			nc.Close()
			return
		}
		t.tr.nc = nil // the socket is gnet's from here on
		s.handing.RLock()
		defer s.handing.RUnlock()
		if s.stopping.Load() {
			nc.Close()
			return
		}
		compactAddrs(nc)
		if _, err := a.gcli.EnrollContext(nc, t); err != nil {
			a.shed.Add(1)
			s.cfg.Logger.Warn("gale: could not hand a TLS connection to an event loop; it was closed",
				"err", err, "resource", isResourceErr(err))
		}
	}()
	return nil
}

// handshaking adds nc to the handshakes in flight, or removes it, under
// hsMu; adding fails once stop has cut them.
func (a *acceptor) handshaking(nc net.Conn, in bool) bool {
	a.hsMu.Lock()
	defer a.hsMu.Unlock()
	if !in {
		delete(a.hsLive, nc)
		return true
	}
	if a.hsStopped {
		return false
	}
	a.hsLive[nc] = struct{}{}
	return true
}

// cutHandshakes makes every handshake in flight fail at once (its read or
// write times out), and those that have yet to begin fail before it.
func (a *acceptor) cutHandshakes() {
	a.hsMu.Lock()
	defer a.hsMu.Unlock()
	a.hsStopped = true
	past := time.Unix(1, 0)
	for nc := range a.hsLive {
		nc.SetDeadline(past)
	}
}

// openTLS is OnOpen for a socket whose TLS handshake is done (server
// side). Bytes the client sent behind its Finished may already be in the
// tls.Conn, with nothing left for gnet to report, so they are read now.
// Loop only.
func (s *Server) openTLS(gc gnet.Conn, t *tlsConn) ([]byte, gnet.Action) {
	l := s.loopFor(gc.EventLoop())
	l.enter()
	if s.stopping.Load() {
		return nil, gnet.Close
	}
	// EnrollContext put t in gnet's safe context too, for the connection's
	// life; trimGnetConn clears it.
	addrs, raddr := takeAddrs(gc, true)
	c := &Conn{loop: l, addrs: addrs, hs: handshakes.Get().(*handshake)}
	c.hs.raddr = raddr
	t.attach(gc, c)
	gc.SetContext(c)
	s.register(l, c)
	c.lastRead = l.stamp()
	return nil, c.process()
}
