package codec

import (
	"cmp"
	"fmt"

	"github.com/gobwas/httphead"
)

// Negotiation of permessage-deflate (RFC 7692 §5, §7.1). Compression itself
// lives elsewhere; this file only decides which parameters are in force.
//
// Names are matched exactly. RFC 6455 §9.1 makes extension names and
// parameters plain tokens and, unlike the Upgrade and Connection tokens it
// marks "ASCII case-insensitive" (§4.2.1), says nothing of their case; RFC
// 7230 has no general rule for tokens either. Chromium, node ws, Python
// websockets and gobwas/ws all compare them byte for byte, so an offer of
// "Permessage-Deflate" is not ours and "Server_No_Context_Takeover" is an
// unknown parameter.

const (
	deflateName             = "permessage-deflate"
	serverNoContextTakeover = "server_no_context_takeover"
	clientNoContextTakeover = "client_no_context_takeover"
	serverMaxWindowBits     = "server_max_window_bits"
	clientMaxWindowBits     = "client_max_window_bits"
)

// WindowBitsNoValue in DeflateParams.ClientMaxWindowBits stands for
// client_max_window_bits offered without a value: the client can honour a
// limit the server sets in its response, and hints none (RFC 7692 §7.1.2.2).
// It appears in offers only.
const WindowBitsNoValue = -1

// DeflateParams are the permessage-deflate parameters of one offer or one
// response (RFC 7692 §7.1). A window of 0 means the parameter is absent: no
// limit, which is the same as 15 (a 32 KiB window).
type DeflateParams struct {
	ServerNoContextTakeover bool // the server resets its compressor after each message
	ClientNoContextTakeover bool // the client resets its compressor after each message
	ServerMaxWindowBits     int  // 8..15, or 0
	ClientMaxWindowBits     int  // 8..15, 0, or WindowBitsNoValue in an offer
}

// DeflatePolicy is what a server is willing to do. The zero value accepts any
// valid offer, whatever window sizes it asks for, and limits no window
// itself.
type DeflatePolicy struct {
	// ServerNoContextTakeover answers server_no_context_takeover even when
	// the client did not ask (RFC 7692 §7.1.1.1 allows it): the server then
	// keeps no compressor state between messages.
	ServerNoContextTakeover bool
	// ClientNoContextTakeover answers client_no_context_takeover even when
	// the client did not offer it (RFC 7692 §7.1.1.2 allows it): the server
	// then keeps no decompressor state between messages. When the client
	// offers it, it is answered regardless, since it costs the client
	// nothing it did not already promise.
	ClientNoContextTakeover bool
	// MinServerWindowBits is the smallest server_max_window_bits the
	// server's compressor can honour, 8..15; offers asking for less are
	// declined. 0 means 8: any valid value is honoured.
	MinServerWindowBits int
	// ServerMaxWindowBits, 8..15, caps the server's own window: the
	// response carries server_max_window_bits of at most this value, even
	// when the client did not ask for a limit (RFC 7692 §7.1.2.1 allows
	// it). 0 sets no cap.
	ServerMaxWindowBits int
	// ClientMaxWindowBits, 8..15, caps the client's window, which bounds
	// the history a server must keep to inflate with context takeover: when
	// the client offered client_max_window_bits (with or without a value),
	// the response carries client_max_window_bits of at most this value.
	// A client that did not offer the parameter cannot be limited (RFC 7692
	// §7.1.2.2) and is accepted with its 32 KiB window. 0 sets no cap.
	ClientMaxWindowBits int
}

// NegotiateDeflate reads one Sec-WebSocket-Extensions field value, takes its
// permessage-deflate offers in order and returns the response parameters for
// the first one the policy accepts (feed them to AppendDeflateResponse). An
// offer is declined, never failed, when it is malformed (an unknown or
// repeated parameter, an invalid value) or asks for what the policy cannot
// do (RFC 7692 §5); other extensions are skipped. ok is false when no offer
// is accepted, and also when the value does not follow the RFC 6455 §9.1
// grammar, in which case nothing on the line is trusted.
//
// A request may carry the header on several lines: call NegotiateDeflate on
// each in order and stop at the first that accepts, which keeps the offers'
// order. NegotiateDeflate does not allocate.
//
// The response reflects the offer (RFC 7692 §7.1): server_no_context_takeover
// and server_max_window_bits are echoed, since that is how a server accepts
// them (server_max_window_bits lowered to policy.ServerMaxWindowBits when
// that is smaller, or added with that value when not offered);
// client_no_context_takeover is echoed; client_max_window_bits is echoed
// when offered with a value (the client promised that limit anyway) and
// left out when offered without one, as the window is then the client's
// choice up to 15, unless policy.ClientMaxWindowBits lowers it.
func NegotiateDeflate(header []byte, policy DeflatePolicy) (p DeflateParams, ok bool) {
	minBits := cmp.Or(policy.MinServerWindowBits, 8)
	l := newExtLexer(header)
	for {
		name, more := l.extension()
		if !more {
			break
		}
		if string(name) != deflateName {
			continue
		}
		offer, fault := l.deflateParams(true)
		if ok || fault.why != "" {
			continue // keep reading: a later syntax error voids the line
		}
		if offer.ServerMaxWindowBits != 0 && offer.ServerMaxWindowBits < minBits {
			continue
		}
		p = DeflateParams{
			ServerNoContextTakeover: offer.ServerNoContextTakeover || policy.ServerNoContextTakeover,
			ClientNoContextTakeover: offer.ClientNoContextTakeover || policy.ClientNoContextTakeover,
			ServerMaxWindowBits:     capWindowBits(offer.ServerMaxWindowBits, policy.ServerMaxWindowBits),
			ClientMaxWindowBits:     max(offer.ClientMaxWindowBits, 0),
		}
		if offer.ClientMaxWindowBits != 0 { // the client can take a limit
			p.ClientMaxWindowBits = capWindowBits(p.ClientMaxWindowBits, policy.ClientMaxWindowBits)
		}
		ok = true
	}
	if l.bad {
		return DeflateParams{}, false
	}
	return p, ok
}

// AppendDeflateResponse appends p as a server's Sec-WebSocket-Extensions
// value, e.g. "permessage-deflate; server_no_context_takeover". Windows
// outside 8..15 (WindowBitsNoValue included) are left out. It does not
// allocate when dst has room.
func AppendDeflateResponse(dst []byte, p DeflateParams) []byte {
	return appendDeflate(dst, p, false)
}

// AppendDeflateOffer appends offer as a client's Sec-WebSocket-Extensions
// value, e.g. "permessage-deflate; client_max_window_bits" for
// ClientMaxWindowBits == WindowBitsNoValue. Other windows outside 8..15 are
// left out.
func AppendDeflateOffer(dst []byte, offer DeflateParams) []byte {
	return appendDeflate(dst, offer, true)
}

func appendDeflate(dst []byte, p DeflateParams, offer bool) []byte {
	dst = append(dst, deflateName...)
	if p.ServerNoContextTakeover {
		dst = append(dst, "; "+serverNoContextTakeover...)
	}
	if p.ClientNoContextTakeover {
		dst = append(dst, "; "+clientNoContextTakeover...)
	}
	if validWindowBits(p.ServerMaxWindowBits) {
		dst = appendWindowBits(append(dst, "; "+serverMaxWindowBits+"="...), p.ServerMaxWindowBits)
	}
	if validWindowBits(p.ClientMaxWindowBits) {
		dst = appendWindowBits(append(dst, "; "+clientMaxWindowBits+"="...), p.ClientMaxWindowBits)
	} else if offer && p.ClientMaxWindowBits == WindowBitsNoValue {
		dst = append(dst, "; "+clientMaxWindowBits...)
	}
	return dst
}

func validWindowBits(n int) bool { return n >= 8 && n <= 15 }

// capWindowBits returns the window bits n (0 for no limit) lowered to limit
// when limit is valid and smaller.
func capWindowBits(n, limit int) int {
	if validWindowBits(limit) && (n == 0 || limit < n) {
		return limit
	}
	return n
}

func appendWindowBits(dst []byte, n int) []byte {
	if n >= 10 {
		return append(dst, '1', byte('0'+n-10))
	}
	return append(dst, byte('0'+n))
}

// ParseDeflateResponse checks a server's Sec-WebSocket-Extensions value
// against the single permessage-deflate offer the client sent and returns
// the parameters in force, failing as RFC 7692 §7 requires: with
// ErrExtensionNotOffer when the value names another extension or
// permessage-deflate twice, with ErrExtensionParams when it is malformed or
// empty, a parameter is unknown, repeated or invalid, client_max_window_bits
// was not offered or exceeds the offered value, or an offered
// server_no_context_takeover or server_max_window_bits is missing or
// exceeded. client_no_context_takeover, and server_no_context_takeover and
// server_max_window_bits when not offered, may be imposed by the server and
// are returned for the client to honour.
//
// ext is one field value: a response that carries the header on several
// lines answers more than the one extension offered. The success path does
// not allocate; errors wrap the sentinels with details.
func ParseDeflateResponse(ext []byte, offer DeflateParams) (DeflateParams, error) {
	var p DeflateParams
	l := newExtLexer(ext)
	n := 0
	for {
		name, more := l.extension()
		if !more {
			break
		}
		if string(name) != deflateName {
			return DeflateParams{}, fmt.Errorf("%w: %q", ErrExtensionNotOffer, name)
		}
		if n++; n > 1 {
			return DeflateParams{}, fmt.Errorf("%w: %s answered twice", ErrExtensionNotOffer, deflateName)
		}
		var fault paramFault
		if p, fault = l.deflateParams(false); fault.why != "" {
			return DeflateParams{}, fmt.Errorf("%w: %s %q", ErrExtensionParams, fault.why, fault.name)
		}
	}
	if l.bad || n == 0 {
		return DeflateParams{}, fmt.Errorf("%w: malformed Sec-WebSocket-Extensions %q", ErrExtensionParams, ext)
	}
	var why string
	switch {
	case p.ClientMaxWindowBits != 0 && offer.ClientMaxWindowBits == 0:
		why = clientMaxWindowBits + " not offered" // §7.1.2.2: MUST NOT
	case offer.ClientMaxWindowBits > 0 && p.ClientMaxWindowBits > offer.ClientMaxWindowBits:
		why = clientMaxWindowBits + " above the offer"
	case offer.ServerMaxWindowBits != 0 && p.ServerMaxWindowBits == 0:
		why = serverMaxWindowBits + " offered but not answered" // §7.1.2.1: echoing it is how a server accepts
	case offer.ServerMaxWindowBits != 0 && p.ServerMaxWindowBits > offer.ServerMaxWindowBits:
		why = serverMaxWindowBits + " above the offer"
	case offer.ServerNoContextTakeover && !p.ServerNoContextTakeover:
		why = serverNoContextTakeover + " offered but not answered" // §7.1.1.1
	}
	if why != "" {
		return DeflateParams{}, fmt.Errorf("%w: %s", ErrExtensionParams, why)
	}
	return p, nil
}

// paramFault names the first parameter that makes an offer or response
// invalid, and why.
type paramFault struct {
	why  string
	name []byte
}

// deflateParams reads the parameters of a permessage-deflate element and
// checks them against RFC 7692 §7.1: each of the four at most once, the two
// no_context_takeover without a value, window bits a decimal 8..15 without
// leading zeros (quoted or not, §7.1 and RFC 6455 §9.1), and
// client_max_window_bits without a value only in an offer. It reads every
// parameter even after a fault so the lexer stays in step.
//
// gobwas/ws's wsflate.Parameters.Parse would do most of this, but it accepts
// a repeated value-less client_max_window_bits (it returns before its
// duplicate check) and wants an httphead.Option, whose parameter list
// allocates; so the rules are checked here.
func (l *extLexer) deflateParams(offer bool) (p DeflateParams, fault paramFault) {
	const (
		seenSNCT = 1 << iota
		seenCNCT
		seenSMWB
		seenCMWB
	)
	var seen int
	for {
		q, more := l.param()
		if !more {
			return p, fault
		}
		if fault.why != "" {
			continue
		}
		var bit int
		valid := true
		switch string(q.name) {
		case serverNoContextTakeover:
			bit, valid = seenSNCT, !q.hasValue
			p.ServerNoContextTakeover = true
		case clientNoContextTakeover:
			bit, valid = seenCNCT, !q.hasValue
			p.ClientNoContextTakeover = true
		case serverMaxWindowBits:
			bit = seenSMWB
			p.ServerMaxWindowBits = parseWindowBits(q.value, q.quoted)
			valid = p.ServerMaxWindowBits != 0
		case clientMaxWindowBits:
			bit = seenCMWB
			if q.hasValue {
				p.ClientMaxWindowBits = parseWindowBits(q.value, q.quoted)
				valid = p.ClientMaxWindowBits != 0
			} else {
				p.ClientMaxWindowBits, valid = WindowBitsNoValue, offer
			}
		default:
			fault = paramFault{"unknown parameter", q.name}
			continue
		}
		switch {
		case seen&bit != 0:
			fault = paramFault{"repeated parameter", q.name}
		case !valid:
			fault = paramFault{"invalid value for", q.name}
		}
		seen |= bit
	}
}

// parseWindowBits returns the window bits in v, a token or the inside of a
// quoted-string (still escaped), or 0 when v is not a decimal 8..15 without
// leading zeros.
func parseWindowBits(v []byte, quoted bool) int {
	n, digits := 0, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if quoted && c == '\\' { // quoted-pair: RFC 7230 §3.2.6
			if i++; i == len(v) {
				return 0
			}
			c = v[i]
		}
		if c < '0' || c > '9' || digits == 2 || (digits == 0 && c == '0') {
			return 0
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if !validWindowBits(n) {
		return 0
	}
	return n
}

// extLexer walks a Sec-WebSocket-Extensions value (RFC 6455 §9.1)
//
//	extension-list  = 1#extension
//	extension       = extension-token *( ";" extension-param )
//	extension-param = token [ "=" (token | quoted-string) ]
//
// element by element. httphead's Scanner lexes tokens and separators; the
// rest works around httphead v0.1.0:
//
//   - ScanOptions is not used: it takes "foo permessage-deflate" for a
//     permessage-deflate element, accepts a trailing ";" and a trailing "a="
//     (as a value-less a), and its ControlSkip misnumbers the elements that
//     follow or, called at a comma, skips the next element whole.
//   - Quoted strings end where httphead ends them (at the first '"' not
//     preceded by '\') but are read here, escapes left in: Scanner.Next
//     copies them to drop backslashes, an allocation, and loses the byte
//     after the last one ("10\0" reads "10", not "100").
//   - White space is skipped by lws, since httphead does not know HTAB.
//
// The lexer never allocates.
type extLexer struct {
	s    httphead.Scanner
	data []byte
	sep  byte // what ended the last item read: ';', ',', or 0 at the end
	bad  bool // the value does not follow the grammar
}

// extParam is one extension-param. value is a token, or a quoted-string's
// content with its escapes still in.
type extParam struct {
	name, value      []byte
	hasValue, quoted bool
}

func newExtLexer(data []byte) extLexer {
	return extLexer{s: *httphead.NewScanner(data), data: data, sep: ','}
}

// extension skips what is left of the current element and returns the next
// element's name. It reports false at the end of the list and on a syntax
// error, which sets bad.
func (l *extLexer) extension() (name []byte, ok bool) {
	for l.sep == ';' && !l.bad {
		l.param()
	}
	for l.sep == ',' && !l.bad {
		t, b := l.item()
		switch {
		case t == httphead.ItemUndef:
			return nil, false
		case t == httphead.ItemSeparator && b[0] == ',':
			// An empty element, which recipients must accept (RFC 7230 §7).
		case t == httphead.ItemToken:
			l.separator()
			return b, !l.bad
		default:
			l.bad = true
		}
	}
	return nil, false
}

// param returns the current element's next parameter; false when the
// element has no more (or on a syntax error, which sets bad).
func (l *extLexer) param() (p extParam, ok bool) {
	if l.sep != ';' || l.bad {
		return p, false
	}
	t, b := l.item()
	if t != httphead.ItemToken {
		l.bad = true
		return p, false
	}
	p.name = b
	if !l.more() || l.s.Peek() != '=' {
		l.separator()
		return p, !l.bad
	}
	l.s.Advance(1)
	p.hasValue = true
	if l.more() && l.s.Peek() == '"' {
		rest := l.data[len(l.data)-l.s.Buffered()+1:]
		n := httphead.ScanUntil(rest, '"')
		if n < 0 {
			l.bad = true
			return p, false
		}
		p.value, p.quoted = rest[:n], true
		l.s.Advance(n + 2)
	} else if t, b = l.item(); t == httphead.ItemToken {
		p.value = b
	} else {
		l.bad = true
		return p, false
	}
	l.separator()
	return p, !l.bad
}

// separator reads what must follow a name or a value: ';', ',' or the end.
func (l *extLexer) separator() {
	t, b := l.item()
	switch {
	case t == httphead.ItemUndef:
		l.sep = 0
	case t == httphead.ItemSeparator && (b[0] == ';' || b[0] == ','):
		l.sep = b[0]
	default:
		l.bad = true
	}
}

// item lexes the next token or separator; ItemUndef at the end of data and
// on an error, which sets bad. A quoted-string or a comment is an error here:
// only a parameter value may be quoted, and param reads those itself.
func (l *extLexer) item() (httphead.ItemType, []byte) {
	if l.bad || !l.more() {
		return httphead.ItemUndef, nil
	}
	if c := l.s.Peek(); c == '"' || c == '(' {
		l.bad = true
		return httphead.ItemUndef, nil
	}
	if !l.s.Next() {
		l.bad = true
		return httphead.ItemUndef, nil
	}
	return l.s.Type(), l.s.Bytes()
}

// more skips linear white space and reports whether anything is left. Doing
// it before Scanner.Next tells the end of data from an error, which Next
// reports alike.
func (l *extLexer) more() bool {
	pos := len(l.data) - l.s.Buffered()
	n := lws(l.data[pos:])
	l.s.Advance(n)
	return pos+n < len(l.data)
}

// lws returns the length of the linear white space at the start of p: SP,
// HTAB, and CRLF followed by either (obs-fold). httphead.SkipSpace would do
// but for HTAB, which its octet table leaves unclassified (it only fills in
// bytes from 32 up), so its Scanner takes a tab for an invalid byte.
func lws(p []byte) int {
	n := 0
	for n < len(p) {
		switch {
		case p[n] == ' ' || p[n] == '\t':
			n++
		case p[n] == '\r' && n+2 < len(p) && p[n+1] == '\n' && (p[n+2] == ' ' || p[n+2] == '\t'):
			n += 3
		default:
			return n
		}
	}
	return n
}
