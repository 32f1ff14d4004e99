package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
)

// KeyLen is the length of a Sec-WebSocket-Key value.
const KeyLen = 24

// NewKey returns a fresh Sec-WebSocket-Key: 16 random bytes in base64
// (RFC 6455 §4.1), from crypto/rand as the RFC asks for unpredictable nonces.
func NewKey() (key [KeyLen]byte) {
	var nonce [16]byte
	rand.Read(nonce[:]) // never fails since Go 1.24
	base64.StdEncoding.Encode(key[:], nonce[:])
	return key
}

// ClientRequest describes the upgrade request a client sends.
type ClientRequest struct {
	Host       string      // Host header value: host, or host:port when not the scheme's default
	URI        string      // request target: path and query; "/" when empty
	Origin     string      // sent when not empty
	Protocols  []string    // subprotocols offered, in order of preference
	Extensions string      // Sec-WebSocket-Extensions offer, e.g. from AppendDeflateOffer
	Header     http.Header // extra fields
}

// AppendClientRequest appends the GET upgrade request for r with the given
// key (see NewKey). Spaces, controls and non-ASCII bytes in URI are
// percent-encoded, controls in header values made spaces, so no field can
// split the request. Fields of r.Header that the request already carries
// (Host, Upgrade, Connection, Sec-WebSocket-*, and Origin when r.Origin is
// set) are skipped.
func AppendClientRequest(dst []byte, r *ClientRequest, key []byte) []byte {
	uri := r.URI
	if uri == "" {
		uri = "/"
	}
	dst = append(dst, "GET "...)
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c >= 0x7F {
			const hex = "0123456789ABCDEF"
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		} else {
			dst = append(dst, c)
		}
	}
	dst = append(dst, " HTTP/1.1\r\n"...)
	dst = appendField(dst, "Host", r.Host)
	dst = append(dst, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"...)
	dst = appendField(dst, "Sec-WebSocket-Key", key)
	if r.Origin != "" {
		dst = appendField(dst, "Origin", r.Origin)
	}
	if len(r.Protocols) > 0 {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		for i, p := range r.Protocols {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendValue(dst, p)
		}
		dst = append(dst, "\r\n"...)
	}
	if r.Extensions != "" {
		dst = appendField(dst, "Sec-WebSocket-Extensions", r.Extensions)
	}
	dst = appendHeader(dst, r.Header, func(name string) bool {
		return clientRequestField(name) || r.Origin != "" && equalFold(name, "origin")
	})
	return append(dst, "\r\n"...)
}

func clientRequestField(name string) bool {
	if len(name) > 14 && equalFold(name[:14], "sec-websocket-") {
		return true
	}
	return equalFold(name, "host") || equalFold(name, "upgrade") || equalFold(name, "connection")
}

// Response is a zero-copy view of the server's answer to an upgrade request.
// Its slices alias the bytes given to Parse. The zero value is ready; Reset
// it before reuse.
type Response struct {
	Status int
	Reason []byte

	Upgrade    []byte
	Connection []byte
	Accept     []byte
	Protocol   []byte
	Extensions []byte // first Sec-WebSocket-Extensions field

	head head
}

// Reset clears r for another response.
func (r *Response) Reset() { *r = Response{} }

// Parse reads the response head at the start of p like Request.Parse:
// ErrNeedMore until the head is complete, ErrHeaderTooLarge past max bytes
// (0: DefaultMaxHeaderBytes), ErrMalformedResponse for bad syntax, else the
// head's length. Bytes after the head are the first frames.
func (r *Response) Parse(p []byte, max int) (n int, err error) {
	if n, err = r.head.complete(p, max); err != nil {
		return 0, err
	}
	*r = Response{head: head{scanned: r.head.scanned}} // a repeated Parse sees no stale views
	line, ok := r.head.split(p[:n])
	if !ok {
		return 0, ErrMalformedResponse
	}
	if r.Status, r.Reason, ok = parseStatusLine(line); !ok {
		r.Status, r.Reason = 0, nil
		return 0, ErrMalformedResponse
	}
	r.Upgrade, _ = r.head.lookup("upgrade")
	r.Connection, _ = r.head.lookup("connection")
	r.Accept, _ = r.head.lookup("sec-websocket-accept")
	r.Protocol, _ = r.head.lookup("sec-websocket-protocol")
	r.Extensions, _ = r.head.lookup("sec-websocket-extensions")
	return n, nil
}

// Header returns the value of the first header field called name, or nil.
func (r *Response) Header(name string) []byte {
	v, _ := r.head.lookup(name)
	return v
}

// Headers returns a scanner over all header fields in order.
func (r *Response) Headers() HeaderScanner { return HeaderScanner{rest: r.head.fields} }

// Validate checks the response against the request it answers (RFC 6455
// §4.1): status 101, the Upgrade and Connection tokens, the accept value for
// key, a subprotocol among those offered, and extensions among those
// offered (req may be nil when nothing was). Parameters of an accepted
// permessage-deflate are checked by ParseDeflateResponse. Errors wrap the Err*
// response sentinels. The success path does not allocate.
func (r *Response) Validate(key []byte, req *ClientRequest) error {
	var protocols []string
	var extensions string
	if req != nil {
		protocols, extensions = req.Protocols, req.Extensions
	}
	if r.Status != http.StatusSwitchingProtocols {
		return fmt.Errorf("%w: %d %s", ErrResponseStatus, r.Status, r.Reason)
	}
	if !r.head.fieldsHaveToken("upgrade", "websocket") {
		return ErrResponseUpgrade
	}
	if !r.head.fieldsHaveToken("connection", "upgrade") {
		return ErrResponseConn
	}
	var want [AcceptLen]byte
	if _, n := r.head.lookup("sec-websocket-accept"); n != 1 || !bytes.Equal(AppendAccept(want[:0], key), r.Accept) {
		return ErrAccept
	}
	if _, n := r.head.lookup("sec-websocket-protocol"); n > 1 {
		return fmt.Errorf("%w: several Sec-WebSocket-Protocol fields", ErrProtocolNotOffer)
	}
	if len(r.Protocol) > 0 && !offered(protocols, r.Protocol) {
		return fmt.Errorf("%w: %q", ErrProtocolNotOffer, r.Protocol)
	}
	return r.checkExtensions(extensions)
}

func offered(list []string, p []byte) bool {
	for _, s := range list {
		if s == string(p) {
			return true
		}
	}
	return false
}

// checkExtensions fails when the response names an extension the offer did
// not, or names one twice (RFC 6455 §9.1: a server accepts an extension at
// most once), across all its Sec-WebSocket-Extensions fields.
func (r *Response) checkExtensions(offer string) error {
	var seen [8][]byte
	nseen := 0
	s := r.Headers()
	for {
		k, v, ok := s.Next()
		if !ok {
			return nil
		}
		if !equalFold(k, "sec-websocket-extensions") {
			continue
		}
		l := extensionList[[]byte]{rest: v}
		for {
			name, ok := l.next()
			if !ok {
				break
			}
			if !offerHasExtension(offer, name) {
				return fmt.Errorf("%w: %q", ErrExtensionNotOffer, name)
			}
			for _, s := range seen[:nseen] {
				if bytes.EqualFold(s, name) {
					return fmt.Errorf("%w: %q answered twice", ErrExtensionParams, name)
				}
			}
			if nseen == len(seen) {
				return fmt.Errorf("%w: too many extensions", ErrExtensionParams)
			}
			seen[nseen] = name
			nseen++
		}
		if l.bad {
			return fmt.Errorf("%w: malformed Sec-WebSocket-Extensions", ErrExtensionParams)
		}
	}
}

func offerHasExtension(offer string, name []byte) bool {
	l := extensionList[string]{rest: offer}
	for {
		n, ok := l.next()
		if !ok {
			return false
		}
		if equalFold(name, n) {
			return true
		}
	}
}
