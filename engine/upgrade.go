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
}

var handshakes = sync.Pool{New: func() any { return new(handshake) }}

func (c *Conn) releaseHandshake() {
	if c.hs != nil {
		c.hs.req.Reset()
		c.hs.ur = UpgradeRequest{}
		c.hs.resp.Reset()
		c.hs.dial = nil
		handshakes.Put(c.hs)
		c.hs = nil
	}
}

// readHandshake parses the request head as it arrives and answers it.
func (c *Conn) readHandshake() gnet.Action {
	srv := c.loop.srv
	avail := c.gc.InboundBuffered()
	p := c.peek(min(avail, srv.cfg.MaxHeaderBytes+1))
	req := &c.hs.req
	n, err := req.Parse(p, srv.cfg.MaxHeaderBytes)
	if err == codec.ErrNeedMore {
		return gnet.None
	}
	if err == nil {
		err = req.Validate()
	}
	if err == codec.ErrNotUpgrade && srv.cfg.Fallback != nil {
		// Without the empty lines Parse skipped: net/http takes none.
		return c.fallback(bytes.TrimLeft(p[:n], "\r\n"))
	}
	var he *codec.HandshakeError
	if errors.As(err, &he) {
		return c.reject(codec.AppendHandshakeError(c.loop.out[:0], he), err)
	}
	ur := &c.hs.ur
	*ur = UpgradeRequest{
		Request:     req,
		RemoteAddr:  c.raddr,
		LocalAddr:   c.gc.LocalAddr(),
		Subprotocol: req.SelectProtocol(srv.cfg.Subprotocols),
	}
	if !srv.originAllowed(ur) {
		return c.reject(codec.AppendHandshakeError(c.loop.out[:0], codec.ErrForbiddenOrigin), codec.ErrForbiddenOrigin)
	}
	if srv.cfg.OnUpgrade != nil {
		if err := srv.callUpgrade(ur); err != nil {
			var rj *Reject
			if !errors.As(err, &rj) {
				rj = &Reject{Status: http.StatusForbidden, Body: "forbidden\n"}
			}
			status := rj.Status
			if status < 400 || status > 599 {
				status = http.StatusForbidden
			}
			return c.reject(codec.AppendRejectResponse(c.loop.out[:0], status, rj.Header, []byte(rj.Body)), err)
		}
	}
	var extBuf [160]byte // the longest permessage-deflate response is 125 bytes
	var ext []byte
	dp, deflate := codec.DeflateParams{}, false
	if z := &srv.cfg.Compression; z.Enabled {
		if dp, deflate = negotiateDeflate(req, z.policy()); deflate {
			ext = codec.AppendDeflateResponse(extBuf[:0], dp)
		}
	}
	resp := codec.AppendUpgradeResponse(c.loop.out[:0], req.Key, []byte(ur.Subprotocol), ext, ur.ResponseHeader)
	c.loop.out = resp[:0]
	if _, err := c.gc.Write(resp); err != nil {
		return gnet.None // gnet closed the connection
	}
	if deflate {
		c.enableDeflate(dp)
	}
	if ur.Subprotocol != "" {
		c.extra().subprotocol = ur.Subprotocol
	}
	if srv.cfg.KeepRequest {
		c.extra().req = srv.keepRequest(req)
	}
	if ur.UserData != nil {
		c.SetUserData(ur.UserData)
	}
	c.gc.Discard(n)
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
	hr.RemoteAddr = c.raddr.String()
	hr.Body = http.NoBody
	w := &responseBuffer{header: http.Header{}}
	func() {
		defer func() {
			if v := recover(); v != nil {
				srv.cfg.Logger.Error("gale: Fallback handler panicked", "panic", v, "remote", c.raddr)
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
