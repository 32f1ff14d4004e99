package engine

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
)

// UpgradeRequest is what Config.OnUpgrade and Config.CheckOrigin see of an
// upgrade request. The embedded codec.Request gives the method, path,
// query, headers (Header, Headers), cookies (Cookie) and offered
// subprotocols; its slices are valid during the call only.
type UpgradeRequest struct {
	*codec.Request
	RemoteAddr net.Addr
	LocalAddr  net.Addr

	// Set by the hook; sent or attached when the upgrade is accepted.
	Subprotocol    string      // preselected from Config.Subprotocols; "" for none
	ResponseHeader http.Header // extra fields for the 101 response
	UserData       any         // attached to the Conn (Conn.UserData)
}

// RequestInfo is what Config.KeepRequest keeps of an upgrade request for
// the life of the connection (Conn.Request).
type RequestInfo struct {
	Path     string      // the request target's path
	RawQuery string      // the query, without '?'; "" when none
	Header   http.Header // the fields named in Config.KeepHeaders that were sent
}

// keepRequest copies what Config.KeepRequest asks for out of r, whose
// bytes are about to be reused.
func (s *Server) keepRequest(r *codec.Request) *RequestInfo {
	ri := &RequestInfo{Path: string(r.Path), RawQuery: string(r.Query)}
	if len(s.cfg.KeepHeaders) == 0 {
		return ri
	}
	hs := r.Headers()
	for {
		name, value, ok := hs.Next()
		if !ok {
			break
		}
		for _, k := range s.cfg.KeepHeaders {
			if len(k) == len(name) && bytes.EqualFold([]byte(k), name) {
				if ri.Header == nil {
					ri.Header = make(http.Header, len(s.cfg.KeepHeaders))
				}
				ri.Header[k] = append(ri.Header[k], string(value))
				break
			}
		}
	}
	return ri
}

// Reject is an error for Config.OnUpgrade that refuses the upgrade with a
// chosen HTTP status, extra headers and body.
type Reject struct {
	Status int
	Header http.Header
	Body   string
}

func (r *Reject) Error() string {
	return "gale: upgrade rejected: " + strconv.Itoa(r.Status) + " " + http.StatusText(r.Status)
}

// handshake is a connection's state while it upgrades; pooled, so an
// upgraded connection keeps none of it.
type handshake struct {
	req codec.Request
	ur  UpgradeRequest

	// The client role.
	resp codec.Response
	dial *dialing

	// A connection handed over by ServeHTTP (mount.go): the upgrade it
	// accepted.
	mount *mounted

	// A request for an event stream, as OnEventStream sees it.
	es EventStreamRequest

	// raddr is the peer's address as gnet had it, which the Conn may keep
	// only as bytes (connAddrs): the upgrade's uses of it take this one
	// rather than build another.
	raddr net.Addr
}

// peerAddr is c's remote address; during the handshake, the one it came with.
// Loop only.
func (c *Conn) peerAddr() net.Addr {
	if c.hs != nil && c.hs.raddr != nil {
		return c.hs.raddr
	}
	return c.RemoteAddr()
}

var handshakes = sync.Pool{New: func() any { return new(handshake) }}

func (c *Conn) releaseHandshake() {
	if c.hs != nil {
		c.hs.req.Reset()
		c.hs.ur = UpgradeRequest{}
		c.hs.resp.Reset()
		c.hs.dial = nil
		c.hs.mount = nil
		c.hs.es = EventStreamRequest{}
		c.hs.raddr = nil
		handshakes.Put(c.hs)
		c.hs = nil
	}
}

// readHandshake parses the request head as it arrives and answers it.
func (c *Conn) readHandshake() gnet.Action {
	if m := c.hs.mount; m != nil {
		return c.acceptMounted(m) // judged by ServeHTTP
	}
	srv := c.loop.srv
	avail := c.inbound()
	p := c.peek(min(avail, srv.cfg.MaxHeaderBytes+1))
	req := &c.hs.req
	n, err := req.Parse(p, srv.cfg.MaxHeaderBytes)
	if err == codec.ErrNeedMore {
		return gnet.None
	}
	if err == nil {
		err = req.Validate()
	}
	if err == codec.ErrNotUpgrade && srv.acceptsStream(req) {
		return c.openStream(req, n)
	}
	if err == codec.ErrNotUpgrade && srv.cfg.Fallback != nil {
		// Without the empty lines Parse skipped: net/http takes none.
		return c.fallback(bytes.TrimLeft(p[:n], "\r\n"))
	}
	var he *codec.HandshakeError
	if errors.As(err, &he) {
		return c.reject(codec.AppendHandshakeError(c.loop.out[:0], he), err)
	}
	a, refusal, err := srv.judge(&c.hs.ur, req, c.peerAddr(), c.gc.LocalAddr(), c.loop.out[:0])
	if err != nil {
		return c.reject(refusal, err)
	}
	return c.accept(&a, n)
}

// accepted is an upgrade the server takes: what the 101 answers and what
// the connection starts with. judge decides it, on the loop for the
// native listener and on net/http's goroutine for ServeHTTP.
type accepted struct {
	key      []byte // Sec-WebSocket-Key, which the 101 answers
	protocol string
	header   http.Header  // the hook's extra response fields
	userData any          // the hook's value for Conn.UserData
	req      *RequestInfo // what Config.KeepRequest keeps, copied while the request's bytes are valid
	dp       codec.DeflateParams
	deflate  bool
}

// judge applies to a request that parsed and validated the rules both
// paths share: the origin policy, Config.OnUpgrade (which sees ur, filled
// here) and the subprotocol and permessage-deflate negotiation. It returns
// the accepted upgrade, or the refusal to send (appended to dst) and why.
func (s *Server) judge(ur *UpgradeRequest, req *codec.Request, raddr, laddr net.Addr, dst []byte) (accepted, []byte, error) {
	*ur = UpgradeRequest{
		Request:     req,
		RemoteAddr:  raddr,
		LocalAddr:   laddr,
		Subprotocol: req.SelectProtocol(s.cfg.Subprotocols),
	}
	if !s.originAllowed(ur) {
		return accepted{}, codec.AppendHandshakeError(dst, codec.ErrForbiddenOrigin), codec.ErrForbiddenOrigin
	}
	if s.cfg.OnUpgrade != nil {
		if err := s.callUpgrade(ur); err != nil {
			return accepted{}, appendRefusal(dst, err), err
		}
	}
	a := accepted{key: req.Key, protocol: ur.Subprotocol, header: ur.ResponseHeader, userData: ur.UserData}
	if s.cfg.KeepRequest {
		a.req = s.keepRequest(req)
	}
	if z := &s.cfg.Compression; z.Enabled {
		a.dp, a.deflate = negotiateDeflate(req, z.policy())
	}
	return a, nil, nil
}

// accept completes an accepted upgrade, for the native listener and
// ServeHTTP alike: it writes the 101, consumes the request head (head
// bytes; none when net/http read it), puts the negotiated subprotocol,
// permessage-deflate and the hook's value in force, opens the connection
// and reads what followed the request. Whatever a later feature sets up
// per upgrade belongs here, so both paths get it. Loop only.
func (c *Conn) accept(a *accepted, head int) gnet.Action {
	var extBuf [160]byte // the longest permessage-deflate response is 125 bytes
	var ext []byte
	if a.deflate {
		ext = codec.AppendDeflateResponse(extBuf[:0], a.dp)
	}
	resp := codec.AppendUpgradeResponse(c.loop.out[:0], a.key, []byte(a.protocol), ext, a.header)
	c.loop.out = resp[:0]
	if _, err := c.gc.Write(resp); err != nil {
		return gnet.None // gnet closed the connection
	}
	if a.deflate {
		c.enableDeflate(a.dp)
	}
	if a.protocol != "" {
		c.extra().subprotocol = a.protocol
	}
	if a.req != nil {
		c.extra().req = a.req
	}
	if a.userData != nil {
		c.SetUserData(a.userData)
	}
	if head > 0 {
		c.skip(head) // a.key pointed into it
	}
	c.open()
	// A Close from OnOpen leaves stateClosing: wait for the peer's answer.
	if c.closing() {
		return gnet.Close
	}
	return c.readFrames()
}

// reject writes a refusal and closes the connection.
func (c *Conn) reject(resp []byte, err error) gnet.Action {
	c.loop.out = resp[:0]
	c.gc.Write(resp)
	c.loop.stats.rejected.Add(1)
	c.setCloseErr(err)
	return gnet.Close
}

func (s *Server) originAllowed(r *UpgradeRequest) bool {
	if s.cfg.CheckOrigin != nil {
		return s.cfg.CheckOrigin(r)
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		return r.SameOrigin()
	}
	if r.Origin == nil {
		return true // not a browser: Origin is a browser's promise, nothing else sends it
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || len(o) == len(r.Origin) && bytes.EqualFold([]byte(o), r.Origin) {
			return true
		}
	}
	return false
}

// callUpgrade runs the hook, turning a panic into a refusal.
func (s *Server) callUpgrade(r *UpgradeRequest) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.cfg.Logger.Error("gale: OnUpgrade panicked", "panic", v, "remote", r.RemoteAddr)
			err = &Reject{Status: http.StatusInternalServerError, Body: "internal error\n"}
		}
	}()
	return s.cfg.OnUpgrade(r)
}

// fallback answers a plain HTTP request with Config.Fallback. The request is
// rebuilt with net/http's own parser (a cold path), its body is not read,
// and the connection closes after the response.
func (c *Conn) fallback(head []byte) gnet.Action {
	srv := c.loop.srv
	hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return c.reject(codec.AppendHandshakeError(c.loop.out[:0], codec.ErrMalformedRequest), err)
	}
	hr.RemoteAddr = c.peerAddr().String()
	hr.TLS = c.tlsState()
	hr.Body = http.NoBody
	w := &responseBuffer{header: http.Header{}}
	func() {
		defer func() {
			if v := recover(); v != nil {
				srv.cfg.Logger.Error("gale: Fallback handler panicked", "panic", v, "remote", c.RemoteAddr())
				w = &responseBuffer{header: http.Header{}, status: http.StatusInternalServerError}
			}
		}()
		srv.cfg.Fallback.ServeHTTP(w, hr)
	}()
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	w.header.Del("Content-Length")
	w.header.Del("Connection")
	w.header.Del("Transfer-Encoding")
	resp := codec.AppendRejectResponse(c.loop.out[:0], status, w.header, w.body.Bytes())
	c.loop.out = resp[:0]
	c.gc.Write(resp)
	c.loop.stats.rejected.Add(1) // Stats.Rejected counts fallback answers
	c.setCloseErr(codec.ErrNotUpgrade)
	return gnet.Close
}

// responseBuffer is the http.ResponseWriter given to Config.Fallback.
type responseBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }

func (w *responseBuffer) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseBuffer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
