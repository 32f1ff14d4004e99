package codec

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/gobwas/httphead"
)

// DefaultMaxHeaderBytes caps an upgrade request's head (request line and
// header fields) when the caller passes no limit of its own.
const DefaultMaxHeaderBytes = 8 << 10

// keyGUID is appended to Sec-WebSocket-Key before hashing (RFC 6455 §1.3).
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptLen is the length of a Sec-WebSocket-Accept value.
const AcceptLen = 28

// Request is a zero-copy view of an HTTP upgrade request. Its slices alias
// the bytes given to Parse and are valid only as long as those bytes are.
// The zero value is ready to Parse; Reset it before reusing it.
type Request struct {
	Method []byte
	URI    []byte // request target as sent
	Path   []byte // URI without query; absolute-form targets are reduced to their path ("/" if none)
	Query  []byte // after '?', without it; nil when the URI has no '?'
	Minor  int    // HTTP/1.Minor

	// The fields the handshake needs, first occurrence each.
	Host       []byte
	Upgrade    []byte
	Connection []byte
	Key        []byte
	Version    []byte
	Protocol   []byte // first Sec-WebSocket-Protocol line; see Protocols for all
	Extensions []byte // first Sec-WebSocket-Extensions line; see Headers for all
	Origin     []byte

	head  head
	line  lineScan
	flags reqFlags
}

// reqFlags record, in Parse's single pass over the fields, what Validate
// needs beyond the first values: repeated fields and tokens found in any
// of several Upgrade or Connection lines.
type reqFlags uint8

const (
	upgradeWebSocket  reqFlags = 1 << iota // an Upgrade field lists "websocket"
	connectionUpgrade                      // a Connection field lists "upgrade"
	draft76Key                             // Sec-WebSocket-Key1 is present
	repeatedHost
	repeatedKey
	repeatedVersion
)

// Reset clears r for the next request.
func (r *Request) Reset() { *r = Request{} }

// Parse reads the request head at the start of p, the bytes received so far.
// It returns ErrNeedMore until the blank line ending the head has arrived
// (then call it again with the longer p, which must begin with the same
// bytes), ErrHeaderTooLarge once the head exceeds max bytes (0 means
// DefaultMaxHeaderBytes), ErrMalformedRequest for bad syntax; otherwise the
// head's length, to be consumed, and r filled in. Parse checks syntax only:
// Validate applies RFC 6455 §4.2.1.
//
// Up to MaxLeadingEmptyLines empty lines (CRLF or LF) before the request line
// are skipped, as RFC 9112 §2.2 asks; they count toward the head's length
// and max. The request line is checked as it arrives, so bytes that cannot
// begin one (a TLS ClientHello, binary, a method that is not a token) are
// ErrMalformedRequest at once rather than ErrNeedMore until a line ends.
func (r *Request) Parse(p []byte, max int) (n int, err error) {
	if max <= 0 {
		max = DefaultMaxHeaderBytes
	}
	skip, err := skipEmptyLines(p)
	if err != nil {
		return 0, err
	}
	p = p[skip:]
	if !r.line.check(p[:min(len(p), max)]) {
		return 0, ErrMalformedRequest
	}
	if max-skip <= 0 {
		return 0, ErrHeaderTooLarge
	}
	if n, err = r.head.complete(p, max-skip); err != nil {
		return 0, err
	}
	*r = Request{head: head{scanned: r.head.scanned}} // a repeated Parse sees no stale views
	line, rest := nextLine(p[:n])
	r.head.fields = rest
	var ok bool
	if r.Method, r.URI, r.Minor, ok = parseRequestLine(line); !ok {
		r.Method, r.URI = nil, nil
		return 0, ErrMalformedRequest
	}
	r.Path, r.Query = splitTarget(r.URI)
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the blank line
		}
		k, v, ok := parseField(line)
		if !ok {
			*r = Request{}
			return 0, ErrMalformedRequest
		}
		var dst *[]byte
		var repeated reqFlags
		switch len(k) {
		case 4:
			if equalFold(k, "host") {
				dst, repeated = &r.Host, repeatedHost
			}
		case 6:
			if equalFold(k, "origin") {
				dst = &r.Origin
			}
		case 7:
			if equalFold(k, "upgrade") {
				dst = &r.Upgrade
				if hasToken(v, "websocket") {
					r.flags |= upgradeWebSocket
				}
			}
		case 10:
			if equalFold(k, "connection") {
				dst = &r.Connection
				if hasToken(v, "upgrade") {
					r.flags |= connectionUpgrade
				}
			}
		case 17:
			if equalFold(k, "sec-websocket-key") {
				dst, repeated = &r.Key, repeatedKey
			}
		case 18:
			if equalFold(k, "sec-websocket-key1") {
				r.flags |= draft76Key
			}
		case 21:
			if equalFold(k, "sec-websocket-version") {
				dst, repeated = &r.Version, repeatedVersion
			}
		case 22:
			if equalFold(k, "sec-websocket-protocol") {
				dst = &r.Protocol
			}
		case 24:
			if equalFold(k, "sec-websocket-extensions") {
				dst = &r.Extensions
			}
		}
		if dst != nil {
			if *dst == nil {
				*dst = v
			} else {
				r.flags |= repeated
			}
		}
	}
	return skip + n, nil
}

// Header returns the value of the first header field called name, ignoring
// ASCII case, or nil.
func (r *Request) Header(name string) []byte {
	v, _ := r.head.lookup(name)
	return v
}

// Headers returns a scanner over all header fields in order.
func (r *Request) Headers() HeaderScanner { return HeaderScanner{rest: r.head.fields} }

// Cookie returns the value of the named cookie from the Cookie header fields.
func (r *Request) Cookie(name string) (value []byte, ok bool) {
	s := r.Headers()
	for !ok {
		k, v, more := s.Next()
		if !more {
			break
		}
		if !equalFold(k, "cookie") {
			continue
		}
		httphead.ScanCookie(v, func(k, v []byte) bool {
			if string(k) == name {
				value, ok = v, true
				return false
			}
			return true
		})
	}
	return value, ok
}

// Protocols calls fn with each subprotocol the client offered, in order,
// across all Sec-WebSocket-Protocol fields, until fn returns false.
func (r *Request) Protocols(fn func(protocol []byte) bool) {
	s := r.Headers()
	for {
		k, v, ok := s.Next()
		if !ok {
			return
		}
		if !equalFold(k, "sec-websocket-protocol") {
			continue
		}
		for len(v) > 0 {
			var elem []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				elem, v = v[:i], v[i+1:]
			} else {
				elem, v = v, nil
			}
			if elem = trimOWS(elem); len(elem) > 0 && !fn(elem) {
				return
			}
		}
	}
}

// SelectProtocol returns the first subprotocol the client offered that is in
// supported (the client's order of preference wins), or "".
func (r *Request) SelectProtocol(supported []string) (protocol string) {
	r.Protocols(func(p []byte) bool {
		for _, s := range supported {
			if string(p) == s {
				protocol = s
				return false
			}
		}
		return true
	})
	return protocol
}

// Validate applies RFC 6455 §4.2.1 to a parsed request and returns nil for a
// valid version-13 upgrade or the *HandshakeError to answer it with:
// ErrNotUpgrade when it is not a WebSocket request at all (plain HTTP, which
// a server may hand to a fallback handler), ErrMethod (405), ErrDraft76 and
// ErrVersion (426), or a 400.
func (r *Request) Validate() error {
	isWS := r.flags&upgradeWebSocket != 0
	key1 := r.flags&draft76Key != 0
	if !isWS && r.Key == nil && r.Version == nil && !key1 {
		return ErrNotUpgrade
	}
	if string(r.Method) != http.MethodGet {
		return ErrMethod
	}
	if r.Minor < 1 {
		return ErrHTTPVersion
	}
	switch {
	case r.Version == nil && key1:
		return ErrDraft76
	case r.flags&repeatedVersion != 0:
		return ErrDuplicateHeader
	case string(r.Version) != "13":
		return ErrVersion
	}
	if !isWS {
		return ErrUpgradeHeader
	}
	if r.flags&connectionUpgrade == 0 {
		return ErrConnectionHeader
	}
	if r.flags&repeatedHost != 0 || len(r.Host) == 0 {
		return ErrMissingHost
	}
	if r.flags&repeatedKey != 0 || !validKey(r.Key) {
		return ErrKey
	}
	return nil
}

// validKey reports whether k is the base64 form of 16 bytes (RFC 6455 §4.1):
// 22 significant characters and "==".
func validKey(k []byte) bool {
	if len(k) != 24 || k[22] != '=' || k[23] != '=' {
		return false
	}
	var raw [18]byte
	n, err := base64.StdEncoding.Decode(raw[:], k)
	return err == nil && n == 16
}

// SameOrigin reports whether the request's Origin names the host it was
// sent to (scheme ignored, host and port compared ignoring ASCII case), or
// carries no Origin at all, as non-browser clients do. This is the
// same-origin default a browser-facing server wants against cross-site
// WebSocket hijacking.
func (r *Request) SameOrigin() bool {
	if r.Origin == nil {
		return true
	}
	h := OriginHost(r.Origin)
	return h != nil && equalFold(h, string(r.Host))
}

// OriginHost returns the host[:port] part of an Origin value such as
// "https://example.com:8443", or nil when it has none ("null").
func OriginHost(origin []byte) []byte {
	i := bytes.Index(origin, []byte("://"))
	if i <= 0 {
		return nil
	}
	h := origin[i+3:]
	if j := bytes.IndexAny(h, "/?#"); j >= 0 {
		h = h[:j]
	}
	return h
}

// AppendAccept appends the Sec-WebSocket-Accept value for key (RFC 6455
// §4.2.2): base64(SHA-1(key + GUID)). It does not allocate for keys of up to
// 28 bytes, which every valid key is.
func AppendAccept(dst, key []byte) []byte {
	var sum [sha1.Size]byte
	var buf [28 + len(keyGUID)]byte
	if len(key) <= 28 {
		n := copy(buf[:], key)
		n += copy(buf[n:], keyGUID)
		sum = sha1.Sum(buf[:n])
	} else {
		h := sha1.New()
		h.Write(key)
		h.Write([]byte(keyGUID))
		h.Sum(sum[:0])
	}
	var out [AcceptLen]byte
	base64.StdEncoding.Encode(out[:], sum[:])
	return append(dst, out[:]...)
}

// AppendUpgradeResponse appends the 101 response accepting a request with the
// given key: the chosen subprotocol and extensions (omitted when empty) and
// any extra header fields, except those the response already carries
// (Upgrade, Connection, Sec-WebSocket-Accept/-Protocol/-Extensions).
func AppendUpgradeResponse(dst, key []byte, protocol, extensions []byte, extra http.Header) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = AppendAccept(dst, key)
	dst = append(dst, "\r\n"...)
	if len(protocol) > 0 {
		dst = appendField(dst, "Sec-WebSocket-Protocol", protocol)
	}
	if len(extensions) > 0 {
		dst = appendField(dst, "Sec-WebSocket-Extensions", extensions)
	}
	dst = appendHeader(dst, extra, upgradeResponseField)
	return append(dst, "\r\n"...)
}

func upgradeResponseField(name string) bool {
	switch len(name) {
	case 7, 10, 20, 22, 24:
		return equalFold(name, "upgrade") || equalFold(name, "connection") ||
			equalFold(name, "sec-websocket-accept") || equalFold(name, "sec-websocket-protocol") ||
			equalFold(name, "sec-websocket-extensions")
	}
	return false
}

// AppendRejectResponse appends a complete non-101 response: status line,
// extra header fields, a plain-text body and Connection: close, since the
// server closes the connection after a refused upgrade. Connection,
// Content-Length and Transfer-Encoding in extra are skipped: the framing is
// the function's.
func AppendRejectResponse(dst []byte, status int, extra http.Header, body []byte) []byte {
	dst = appendRejectHead(dst, status, "close", len(body))
	if extra.Get("Content-Type") == "" {
		dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\n"...)
	}
	dst = appendHeader(dst, extra, rejectResponseField)
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// AppendHandshakeError appends the response for a request that Parse or
// Validate refused: the error's status, the headers RFC 6455 asks for with it
// (426 carries Sec-WebSocket-Version: 13, 405 carries Allow: GET) and the
// error text as the body.
func AppendHandshakeError(dst []byte, err *HandshakeError) []byte {
	status := err.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	conn := "close"
	if status == http.StatusUpgradeRequired {
		conn = "Upgrade, close" // a sender of Upgrade lists it in Connection (RFC 9110 §7.8)
	}
	dst = appendRejectHead(dst, status, conn, len(err.Msg)+1)
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\n"...)
	switch status {
	case http.StatusUpgradeRequired:
		dst = append(dst, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"...)
	case http.StatusMethodNotAllowed:
		dst = append(dst, "Allow: GET\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, err.Msg...)
	return append(dst, '\n')
}

func rejectResponseField(name string) bool {
	return equalFold(name, "connection") || equalFold(name, "content-length") ||
		equalFold(name, "transfer-encoding")
}

func appendRejectHead(dst []byte, status int, conn string, bodyLen int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nConnection: "...)
	dst = append(dst, conn...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(bodyLen), 10)
	return append(dst, "\r\n"...)
}

// appendHeader appends h's fields but those for which owned reports true (the
// caller writes them itself). Names that are not tokens are skipped and CR,
// LF and other controls in values become spaces, so a header built from user
// data cannot split the message.
func appendHeader(dst []byte, h http.Header, owned func(name string) bool) []byte {
	for k, vs := range h {
		if !isToken(k) || owned(k) {
			continue
		}
		for _, v := range vs {
			dst = appendField(dst, k, v)
		}
	}
	return dst
}

func appendField[V []byte | string](dst []byte, name string, value V) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = appendValue(dst, value)
	return append(dst, "\r\n"...)
}

// appendValue appends a field value with controls but HTAB made spaces.
func appendValue[V []byte | string](dst []byte, value V) []byte {
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c < ' ' && c != '\t' || c == 0x7F {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}
