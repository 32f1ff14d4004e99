package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// Mounting on net/http. Server.ServeHTTP judges an upgrade request that
// net/http parsed by the same rules as the native listener, then hijacks
// the connection and hands its socket to a loop, where it continues as if
// Gale had accepted it: no goroutine stays behind.
//
// The request head is serialised back to bytes and run through the codec's
// Parse and Validate, so one piece of code judges both paths; the origin
// policy, OnUpgrade and the negotiation are the shared judge, and the loop
// sets the connection up with the shared accept (upgrade.go). Bytes
// net/http read past the request (frames the client pipelined behind it)
// travel with the socket and are read first (prefixed).

// Refusals that can only be explained, not fixed, by the client: logged
// once each, since every such request would log the same line.
const (
	warnHTTP2 = iota
	warnTLS
	warnHijack
	warnConn
	warnShed
	warnKinds
)

// mountState is the server's ServeHTTP bookkeeping; its counters are off
// the loops, so they are atomics of their own.
type mountState struct {
	rejected atomic.Uint64 // refusals answered by ServeHTTP (Stats.Rejected)
	shed     atomic.Uint64 // hijacked but not handed over (Stats.AcceptShed)
	warned   [warnKinds]atomic.Bool

	// After a burst of hand-overs (see handedOver).
	handed   atomic.Uint64 // connections handed to the loops
	watching atomic.Bool   // a quiet check is pending
	mu       sync.Mutex
	freedAt  uint64    // handed at the last release
	freedOn  time.Time // when
}

// Garbage after a burst of hand-overs. Each hijack leaves net/http's state
// for the connection behind as garbage (its two 4 KiB bufio buffers, the
// request, the conn: 10 KiB and more, against the 1 KiB an idle connection
// holds), so a burst of upgrades grows the heap to twice what the
// connections keep, and the runtime holds that memory from the operating
// system for as long as the server stays quiet. Once no hand-over came
// for releaseQuiet after at least releaseHandOvers of them, the server
// collects and returns the freed memory, as it does after a burst of
// messages (limits.go), at most every releaseEvery. Under a steady stream
// of upgrades nothing happens: the garbage is reused.
const (
	releaseQuiet     = 100 * time.Millisecond
	releaseHandOvers = 1024 // about 10 MiB of net/http's garbage
)

// mounted is an upgrade ServeHTTP accepted, carried to the loop as the
// gnet context of the handed-over socket.
type mounted struct {
	acc    accepted // acc.key unused: it pointed into ServeHTTP's buffer
	key    [24]byte // validated: exactly 24 bytes
	prefix []byte   // what net/http had read past the request head
}

// The bodies of the refusals peculiar to ServeHTTP.
const (
	bodyHTTP2 = "gale: WebSocket over HTTP/2 is not supported; connect over HTTP/1.1\n"
	bodyTLS   = "gale: cannot take over a TLS connection from net/http: its encryption state belongs to net/http's " +
		"tls.Conn. Serve wss:// on Gale's own listener with Config.TLS, and let Config.Fallback answer the " +
		"other HTTPS routes on the same port\n"
	bodyHijack   = "gale: the http.ResponseWriter cannot be hijacked, so the connection cannot be handed to Gale\n"
	bodyClosed   = "gale: server shutting down\n"
	bodyNotReady = "gale: server not running\n"
)

// ServeHTTP makes the server an http.Handler, so it can be mounted on any
// net/http server: mux.Handle("/ws", srv).
//
// The request is judged exactly as on Gale's own listener: the same
// validation (refused with the same status and body), Config.Fallback for a
// request that is not an upgrade, the origin policy, Config.OnUpgrade with
// the same UpgradeRequest (RemoteAddr and LocalAddr those of net/http's
// connection) and the same subprotocol and permessage-deflate negotiation.
// On this path CheckOrigin, OnUpgrade and Fallback run on net/http's
// goroutine for the request, not on an event loop, and may block it.
//
// An accepted upgrade is hijacked and its socket handed to one of the
// server's event loops, which writes the 101 and runs the connection from
// then on; the handler goroutine returns, and net/http keeps nothing of
// the connection. Frames the client sent behind its request that net/http
// had already read are passed on and read first. The event loops start
// with the first request unless Start started them; Shutdown closes
// mounted connections like the others (1001), and ServeHTTP answers 503
// from then on.
//
// What cannot be handed over is refused before the hijack where it can be
// seen, each kind logged once: HTTP/2 requests (505), requests over TLS
// (501: the TLS state cannot leave net/http; use Gale's own listener
// with Config.TLS and Config.Fallback), a ResponseWriter that cannot be hijacked
// (501), and a connection that is not a plain *net.TCPConn or
// *net.UnixConn, such as one wrapped by a listener (501, written on the
// hijacked connection). A hand-over that fails, for want of a descriptor
// for gnet's duplicate, closes the connection and counts it in
// Stats.AcceptShed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		s.refuse(w, http.StatusHTTPVersionNotSupported, bodyHTTP2, warnHTTP2)
		return
	}
	if s.stopping.Load() {
		s.refuse(w, http.StatusServiceUnavailable, bodyClosed, -1)
		return
	}
	hs := handshakes.Get().(*handshake)
	buf := pool.Get(1024)
	defer func() {
		hs.req.Reset()
		hs.ur = UpgradeRequest{}
		handshakes.Put(hs)
		pool.Put(buf)
	}()
	*buf = appendRequestHead((*buf)[:0], r)
	req := &hs.req
	_, err := req.Parse(*buf, s.cfg.MaxHeaderBytes)
	if err == codec.ErrNeedMore {
		err = codec.ErrMalformedRequest // unreachable: the head ends with its blank line
	}
	if err == nil {
		err = req.Validate()
	}
	if err == codec.ErrNotUpgrade && s.cfg.Fallback != nil {
		s.mount.rejected.Add(1) // as on the listener: Rejected counts fallback answers
		s.cfg.Fallback.ServeHTTP(w, r)
		return
	}
	var he *codec.HandshakeError
	if errors.As(err, &he) {
		s.refuseWith(w, codec.AppendHandshakeError(nil, he))
		return
	}
	if r.TLS != nil {
		s.refuse(w, http.StatusNotImplemented, bodyTLS, warnTLS)
		return
	}
	laddr, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	a, refusal, err := s.judge(&hs.ur, req, remoteAddr(r.RemoteAddr, laddr), laddr, nil)
	if err != nil {
		s.refuseWith(w, refusal)
		return
	}
	m := &mounted{acc: a}
	copy(m.key[:], a.key)
	m.acc.key = nil
	if !s.live.Load() {
		if err := s.boot(); err != nil {
			body := bodyClosed
			if !errors.Is(err, ErrServerClosed) {
				body = bodyNotReady
				s.cfg.Logger.Error("gale: ServeHTTP could not start the event loops", "err", err)
			}
			s.refuse(w, http.StatusServiceUnavailable, body, -1)
			return
		}
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.refuse(w, http.StatusNotImplemented, bodyHijack, warnHijack, "err", err)
		return
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		// A wrapper (a limiting listener, a metrics conn) hides the socket
		// gnet must duplicate; the request line was read, so answer it.
		body := fmt.Sprintf("gale: cannot take over a %T from net/http: only a plain *net.TCPConn or *net.UnixConn can be handed to an event loop\n", nc)
		s.refuseHijacked(nc, http.StatusNotImplemented, body, warnConn)
		return
	}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		m.prefix = bytes.Clone(p) // net/http's buffer is not ours to keep
	}
	s.handOver(nc, m)
}

// handOver gives nc to a loop, where OnOpen continues it (openMounted).
// gnet duplicates the descriptor and closes nc, whatever the outcome.
func (s *Server) handOver(nc net.Conn, m *mounted) {
	s.handing.RLock()
	defer s.handing.RUnlock()
	if s.stopping.Load() {
		s.refuseHijacked(nc, http.StatusServiceUnavailable, bodyClosed, -1)
		return
	}
	compactAddrs(nc)
	if _, err := s.gcli.EnrollContext(nc, m); err != nil {
		s.mount.shed.Add(1)
		s.warnOnce(warnShed, "gale: ServeHTTP could not hand a connection to an event loop; it was closed (Stats.AcceptShed counts them)",
			"err", err, "resource", isResourceErr(err))
		return
	}
	s.handedOver()
}

// handedOver counts a hand-over and watches for the end of the burst.
func (s *Server) handedOver() {
	n := s.mount.handed.Add(1)
	if s.mount.watching.CompareAndSwap(false, true) {
		s.watchHandOvers(n)
	}
}

// watchHandOvers checks after releaseQuiet whether hand-overs have stopped
// since seen of them, and if so releases their garbage. One chain of
// timers at a time (mount.watching), none while nothing is handed over.
func (s *Server) watchHandOvers(seen uint64) {
	time.AfterFunc(releaseQuiet, func() {
		n := s.mount.handed.Load()
		if n != seen {
			s.watchHandOvers(n) // still coming
			return
		}
		s.mount.watching.Store(false)
		if s.mount.handed.Load() != n && s.mount.watching.CompareAndSwap(false, true) {
			s.watchHandOvers(s.mount.handed.Load()) // one slipped in meanwhile
			return
		}
		s.mount.mu.Lock()
		release := n-s.mount.freedAt >= releaseHandOvers && time.Since(s.mount.freedOn) >= releaseEvery
		if release {
			s.mount.freedAt, s.mount.freedOn = n, time.Now()
		}
		s.mount.mu.Unlock()
		if release {
			runtime.GC() // a first cycle moves pooled buffers to the victim caches
			debug.FreeOSMemory()
		}
	})
}

// openMounted is OnOpen for a socket from ServeHTTP: the connection is
// created as the listener's are, then upgraded at once (readHandshake finds
// hs.mount), and the bytes net/http had read are parsed. Loop only.
func (s *Server) openMounted(gc gnet.Conn, m *mounted) ([]byte, gnet.Action) {
	l := s.loopFor(gc.EventLoop())
	l.enter()
	if s.stopping.Load() {
		return nil, gnet.Close
	}
	// EnrollContext put m in gnet's safe context too, which would keep it
	// for the connection's life; trimGnetConn clears it.
	addrs, raddr := takeAddrs(gc, true)
	c := &Conn{gc: gc, loop: l, addrs: addrs, hs: handshakes.Get().(*handshake)}
	c.hs.raddr = raddr
	c.hs.mount = m
	gc.SetContext(c)
	if len(m.prefix) > 0 {
		c.gc = &prefixed{Conn: gc, c: c, prefix: m.prefix}
		m.prefix = nil
	}
	s.register(l, c)
	c.lastRead = l.stamp()
	return nil, c.process()
}

// acceptMounted completes on the loop an upgrade ServeHTTP judged.
func (c *Conn) acceptMounted(m *mounted) gnet.Action {
	a := m.acc
	a.key = m.key[:]
	return c.accept(&a, 0)
}

// prefixed is a mounted connection's gnet.Conn while bytes net/http had
// read past the request are pending: the read side's three calls see them
// before gnet's own bytes, and once they are read the connection's c.gc is
// gnet's again. Loop only, like every use of c.gc.
type prefixed struct {
	gnet.Conn
	c      *Conn
	prefix []byte
}

func (p *prefixed) InboundBuffered() int { return len(p.prefix) + p.Conn.InboundBuffered() }

// Peek copies bytes that straddle the prefix and gnet's buffer: that
// happens at most a few times in a connection's life, for the frame the
// prefix ends in.
func (p *prefixed) Peek(n int) ([]byte, error) {
	if n > 0 && n <= len(p.prefix) {
		return p.prefix[:n], nil
	}
	rest, err := p.Conn.Peek(n - len(p.prefix))
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(p.prefix)+len(rest)), p.prefix...), rest...), nil
}

func (p *prefixed) Discard(n int) (int, error) {
	if n <= 0 { // gnet's meaning: everything
		p.c.gc = p.Conn
		m, err := p.Conn.Discard(n)
		return len(p.prefix) + m, err
	}
	k := min(n, len(p.prefix))
	p.prefix = p.prefix[k:]
	if len(p.prefix) > 0 {
		return k, nil
	}
	p.c.gc = p.Conn
	if n == k {
		return k, nil
	}
	m, err := p.Conn.Discard(n - k)
	return k + m, err
}

// refuse answers through w with Gale's plain-text refusal of status.
func (s *Server) refuse(w http.ResponseWriter, status int, body string, warn int, args ...any) {
	if warn >= 0 {
		s.warnOnce(warn, "gale: ServeHTTP refused a request: "+body[:len(body)-1], args...)
	}
	s.refuseWith(w, codec.AppendRejectResponse(nil, status, nil, []byte(body)))
}

// refuseWith answers through w with the response the native listener
// would write (raw, built by the codec): the same status, fields and body.
func (s *Server) refuseWith(w http.ResponseWriter, raw []byte) {
	s.mount.rejected.Add(1)
	// Read with textproto, not http.ReadResponse, which would drop the
	// Connection field (net/http honours its close token, and a 426 also
	// lists Upgrade there).
	br := bufio.NewReader(bytes.NewReader(raw))
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	var status int
	if err == nil {
		_, err = fmt.Sscanf(line, "HTTP/1.1 %d", &status)
	}
	var fields textproto.MIMEHeader
	if err == nil {
		fields, err = tp.ReadMIMEHeader()
	}
	if err != nil { // the codec's own output: cannot happen
		http.Error(w, "gale: internal error", http.StatusInternalServerError)
		return
	}
	maps.Copy(w.Header(), http.Header(fields))
	w.WriteHeader(status)
	io.Copy(w, br)
}

// refuseHijacked writes a refusal on a hijacked connection and closes it.
func (s *Server) refuseHijacked(nc net.Conn, status int, body string, warn int) {
	if warn >= 0 {
		s.warnOnce(warn, "gale: ServeHTTP refused a request: "+body[:len(body)-1])
	}
	s.mount.rejected.Add(1)
	nc.SetWriteDeadline(time.Now().Add(time.Second)) // a peer that does not read cannot hold us
	nc.Write(codec.AppendRejectResponse(nil, status, nil, []byte(body)))
	nc.Close()
}

func (s *Server) warnOnce(kind int, msg string, args ...any) {
	if s.mount.warned[kind].CompareAndSwap(false, true) {
		s.cfg.Logger.Warn(msg, args...)
	}
}

// appendRequestHead serialises the head of a request net/http parsed, for
// the codec to judge. net/http has already refused control characters in
// the request line and fields; they are blanked all the same, so that the
// head cannot say more than net/http saw.
func appendRequestHead(dst []byte, r *http.Request) []byte {
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	dst = appendText(dst, r.Method)
	dst = append(dst, ' ')
	dst = appendText(dst, uri)
	dst = append(dst, ' ')
	dst = appendText(dst, r.Proto)
	dst = append(dst, "\r\n"...)
	if r.Host != "" { // net/http moves Host out of the header map
		dst = append(dst, "Host: "...)
		dst = appendText(dst, r.Host)
		dst = append(dst, "\r\n"...)
	}
	// A stable order, so that OnUpgrade's Headers() does not change from
	// one request to the next; the order within a name is the client's.
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[k] {
			dst = appendText(dst, k)
			dst = append(dst, ": "...)
			dst = appendText(dst, v)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}

func appendText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// remoteAddr turns net/http's RemoteAddr string back into an address for
// UpgradeRequest: TCP when it is host:port, a unix address on a unix
// socket.
func remoteAddr(s string, laddr net.Addr) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	if _, ok := laddr.(*net.UnixAddr); ok {
		return &net.UnixAddr{Name: s, Net: "unix"}
	}
	return textAddr(s)
}

// textAddr is a remote address net/http gave in a form Gale cannot parse
// (a custom listener's connection).
type textAddr string

func (a textAddr) Network() string { return "unknown" }
func (a textAddr) String() string  { return string(a) }
