package codec

import (
	"bytes"

	"github.com/gobwas/httphead"
)

// head finds and walks an HTTP/1.1 message head (start line and header
// fields) in bytes that arrive piecemeal. It remembers how far it has looked
// for the blank line, so feeding a head one byte at a time costs O(n), not
// O(n²): a slowloris peer must not make the loop rescan its bytes.
type head struct {
	scanned int    // p[:scanned] holds no end of head
	fields  []byte // header lines after the start line, up to the blank line
}

// end returns the length of the head at the start of p (blank line included)
// or -1 when the blank line has not arrived. Lines may end in CRLF or, as RFC
// 9112 §2.2 lets recipients accept, a bare LF.
func (h *head) end(p []byte) int {
	if h.scanned > len(p) {
		h.scanned = 0 // not the same bytes grown: a caller forgot Reset
	}
	for {
		j := bytes.IndexByte(p[h.scanned:], '\n')
		if j < 0 {
			h.scanned = len(p)
			return -1
		}
		i := h.scanned + j
		if i+1 >= len(p) {
			h.scanned = i
			return -1
		}
		switch p[i+1] {
		case '\n':
			return i + 2
		case '\r':
			if i+2 >= len(p) {
				h.scanned = i
				return -1
			}
			if p[i+2] == '\n' {
				return i + 3
			}
		}
		h.scanned = i + 1
	}
}

// complete returns the length of the head at the start of p once it has
// arrived whole: ErrNeedMore before that, ErrHeaderTooLarge past max bytes
// (0: DefaultMaxHeaderBytes), whether or not the head is complete.
func (h *head) complete(p []byte, max int) (int, error) {
	if max <= 0 {
		max = DefaultMaxHeaderBytes
	}
	n := h.end(p)
	switch {
	case n > max, n < 0 && len(p) > max:
		return 0, ErrHeaderTooLarge
	case n < 0:
		return 0, ErrNeedMore
	}
	return n, nil
}

// split cuts the head p (as measured by end) into its start line and checks
// the syntax of every header field line, keeping them for later lookups.
func (h *head) split(p []byte) (start []byte, ok bool) {
	start, rest := nextLine(p)
	h.fields = rest
	for len(rest) > 0 {
		var line []byte
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the blank line
		}
		if _, _, ok := parseField(line); !ok {
			return nil, false
		}
	}
	return start, true
}

// nextLine returns the first line of p without its terminator, and the rest.
func nextLine(p []byte) (line, rest []byte) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return p, nil
	}
	line, rest = p[:i], p[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseField splits "Name: value" and validates it strictly (RFC 9110 §5,
// RFC 9112 §5): the name a token with the colon right after it, no obsolete
// line folding, no control characters but HTAB in the value.
func parseField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	for _, c := range name {
		if !httphead.OctetTypes[c].IsToken() {
			return nil, nil, false
		}
	}
	value = trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7F {
			return nil, nil, false
		}
	}
	return name, value, true
}

func trimOWS(p []byte) []byte {
	p = skipOWS(p)
	for len(p) > 0 && (p[len(p)-1] == ' ' || p[len(p)-1] == '\t') {
		p = p[:len(p)-1]
	}
	return p
}

func skipOWS[T string | []byte](p T) T {
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t') {
		p = p[1:]
	}
	return p
}

func isTokenByte(c byte) bool { return httphead.OctetTypes[c].IsToken() }

// tokenLen returns the length of the token at the start of p.
func tokenLen[T string | []byte](p T) int {
	n := 0
	for n < len(p) && isTokenByte(p[n]) {
		n++
	}
	return n
}

// quotedLen returns the length of the quoted-string at the start of p, or 0
// when p does not start with a complete one.
func quotedLen[T string | []byte](p T) int {
	if len(p) == 0 || p[0] != '"' {
		return 0
	}
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
	return 0
}

// MaxLeadingEmptyLines is how many empty lines Request.Parse skips before a
// request line (RFC 9112 §2.2 asks for at least one); more are malformed, so
// a peer cannot hold a connection open with them.
const MaxLeadingEmptyLines = 4

// skipEmptyLines returns the length of the empty lines (CRLF or bare LF) at
// the start of p once a byte that is not part of one follows them:
// ErrNeedMore until then, ErrMalformedRequest past MaxLeadingEmptyLines or
// for a CR not followed by LF.
func skipEmptyLines(p []byte) (int, error) {
	n := 0
	for lines := 0; ; lines++ {
		if n == len(p) {
			return 0, ErrNeedMore
		}
		if p[n] != '\r' && p[n] != '\n' {
			return n, nil
		}
		if lines == MaxLeadingEmptyLines {
			return 0, ErrMalformedRequest
		}
		if p[n] == '\r' {
			if n+1 == len(p) {
				return 0, ErrNeedMore
			}
			if p[n+1] != '\n' {
				return 0, ErrMalformedRequest
			}
			n++
		}
		n++
	}
}

// lineScan checks a request line as its bytes arrive, against the grammar
// parseRequestLine applies to the whole line, and stops at the first byte
// no valid request line can have there. It remembers how far it got, so
// feeding the line one byte at a time costs O(n) in all.
type lineScan struct {
	pos  int   // p[:pos] is a valid beginning of a request line
	part uint8 // the part pos is in: linePartMethod …
	n    int   // bytes of that part before pos
}

const (
	linePartMethod uint8 = iota
	linePartTarget
	linePartVersion
	linePartDone // the line ended well; the rest is parseField's
)

// check reports whether p, the bytes of the head after any empty lines,
// may still begin a valid request line. p must begin with the bytes of the
// previous call, as for Parse; shorter bytes start the scan again.
func (s *lineScan) check(p []byte) bool {
	if s.pos > len(p) {
		*s = lineScan{} // not the same bytes grown: a caller forgot Reset
	}
	const version = "HTTP/1."
	for ; s.pos < len(p) && s.part != linePartDone; s.pos++ {
		c := p[s.pos]
		switch s.part {
		case linePartMethod: // token SP
			switch {
			case isTokenByte(c):
				s.n++
			case c == ' ' && s.n > 0:
				s.part, s.n = linePartTarget, 0
			default:
				return false
			}
		case linePartTarget: // no spaces or controls, then SP
			switch {
			case c > ' ' && c != 0x7F:
				s.n++
			case c == ' ' && s.n > 0:
				s.part, s.n = linePartVersion, 0
			default:
				return false
			}
		case linePartVersion: // "HTTP/1." DIGIT, then CRLF or LF
			switch {
			case s.n < len(version):
				if c != version[s.n] {
					return false
				}
			case s.n == len(version):
				if c < '0' || c > '9' {
					return false
				}
			case c == '\n':
				s.part = linePartDone
			case c != '\r' || s.n > len(version)+1:
				return false
			}
			s.n++
		}
	}
	return true
}

// parseRequestLine splits "method SP request-target SP HTTP/1.x" (RFC 9112
// §3). The method must be a token and the target free of spaces and
// controls; the form of the target is left to splitTarget.
func parseRequestLine(line []byte) (method, target []byte, minor int, ok bool) {
	n := tokenLen(line)
	if n == 0 || n == len(line) || line[n] != ' ' {
		return nil, nil, 0, false
	}
	method, line = line[:n], line[n+1:]
	n = bytes.IndexByte(line, ' ')
	if n <= 0 {
		return nil, nil, 0, false
	}
	target = line[:n]
	for _, c := range target {
		if c < '!' || c == 0x7F {
			return nil, nil, 0, false
		}
	}
	minor, ok = parseVersion(line[n+1:])
	return method, target, minor, ok
}

// parseStatusLine splits "HTTP/1.x SP 3DIGIT SP reason" (RFC 9112 §4). Like
// net/http it also takes a status line that stops after the code.
func parseStatusLine(line []byte) (status int, reason []byte, ok bool) {
	if len(line) < 12 || line[8] != ' ' {
		return 0, nil, false
	}
	if _, ok := parseVersion(line[:8]); !ok {
		return 0, nil, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		status = status*10 + int(c-'0')
	}
	switch {
	case status < 100:
		return 0, nil, false
	case len(line) == 12:
		reason = line[12:]
	case line[12] == ' ':
		reason = line[13:]
	default:
		return 0, nil, false
	}
	for _, c := range reason {
		if c < ' ' && c != '\t' || c == 0x7F {
			return 0, nil, false
		}
	}
	return status, reason, true
}

// parseVersion reads "HTTP/1.x", one digit on each side of the dot (RFC 9112
// §2.3), and returns x. Other major versions do not speak this syntax.
func parseVersion(p []byte) (minor int, ok bool) {
	if len(p) != 8 || string(p[:7]) != "HTTP/1." || p[7] < '0' || p[7] > '9' {
		return 0, false
	}
	return int(p[7] - '0'), true
}

// splitTarget splits a request target into path and query (nil when there is
// no '?'). An absolute-form target (RFC 9112 §3.2.2) is reduced to its path,
// or to "/" when it has none (§3.3), that "/" being the one of its "://" so
// the result still aliases the input.
func splitTarget(t []byte) (path, query []byte) {
	if n := schemeLen(t); n > 0 && len(t) >= n+3 && string(t[n:n+3]) == "://" {
		root := t[n+1 : n+2 : n+2]
		t = t[n+3:]
		i := bytes.IndexAny(t, "/?")
		switch {
		case i < 0:
			return root, nil
		case t[i] == '?':
			return root, t[i+1:]
		}
		t = t[i:]
	}
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		return t[:i], t[i+1:]
	}
	return t, nil
}

// schemeLen returns the length of the URI scheme (RFC 3986 §3.1) at the
// start of t, or 0.
func schemeLen(t []byte) int {
	for i, c := range t {
		switch {
		case 'a' <= lower(c) && lower(c) <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return i
		}
	}
	return 0
}

// HeaderScanner walks the header fields of a parsed request or response in
// the order they came. Its slices alias the parsed bytes.
type HeaderScanner struct {
	rest []byte
}

// Next returns the next field; ok is false after the last one.
func (s *HeaderScanner) Next() (name, value []byte, ok bool) {
	for len(s.rest) > 0 {
		var line []byte
		line, s.rest = nextLine(s.rest)
		if len(line) == 0 {
			s.rest = nil
			break
		}
		if name, value, ok = parseField(line); ok {
			return name, value, true
		}
	}
	return nil, nil, false
}

// lookup returns the value of the first field called name (ASCII case
// insensitive) and how many fields have that name.
func (h *head) lookup(name string) (value []byte, count int) {
	s := HeaderScanner{rest: h.fields}
	for {
		k, v, ok := s.Next()
		if !ok {
			return value, count
		}
		if equalFold(k, name) {
			if count == 0 {
				value = v
			}
			count++
		}
	}
}

// equalFold reports whether b equals the ASCII string s, ignoring ASCII case.
func equalFold[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasToken reports whether the comma-separated list holds token, ignoring
// ASCII case and optional whitespace (RFC 9110 §5.6.1). httphead's token
// scanner would reject Upgrade's "product/version" elements, so the list is
// split here.
func hasToken(list []byte, token string) bool {
	for len(list) > 0 {
		var elem []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			elem, list = list[:i], list[i+1:]
		} else {
			elem, list = list, nil
		}
		if equalFold(trimOWS(elem), token) {
			return true
		}
	}
	return false
}

// extensionList walks a Sec-WebSocket-Extensions value (RFC 6455 §9.1):
// comma-separated elements, each a token name followed by ";" parameters,
// each a token with an optional "=" token or quoted string. T is string for
// the client's own offer and []byte for received fields, so neither needs a
// conversion. (httphead.ScanOptions, told to skip an element's parameters,
// also skips the element after a bare name, so it is not used here.)
type extensionList[T string | []byte] struct {
	rest T
	bad  bool // a syntax error ended the walk
}

// next returns the next element's name; ok is false at the end of the list
// or at a syntax error, which sets bad.
func (l *extensionList[T]) next() (name T, ok bool) {
	p := skipOWS(l.rest)
	for len(p) > 0 && p[0] == ',' { // empty elements are allowed (RFC 9110 §5.6.1)
		p = skipOWS(p[1:])
	}
	if len(p) == 0 {
		l.rest = p
		return name, false
	}
	n := tokenLen(p)
	if n == 0 {
		l.bad = true
		return name, false
	}
	name, p = p[:n], p[n:]
	for {
		p = skipOWS(p)
		if len(p) == 0 {
			l.rest = p
			return name, true
		}
		switch p[0] {
		case ',':
			l.rest = p[1:]
			return name, true
		case ';':
			p = skipOWS(p[1:])
			if n = tokenLen(p); n == 0 {
				l.bad = true
				return name, false
			}
			p = skipOWS(p[n:])
			if len(p) > 0 && p[0] == '=' {
				p = skipOWS(p[1:])
				if n = tokenLen(p); n == 0 {
					n = quotedLen(p)
				}
				if n == 0 {
					l.bad = true
					return name, false
				}
				p = p[n:]
			}
		default:
			l.bad = true
			return name, false
		}
	}
}

// fieldsHaveToken is hasToken over every field called name, since a list
// header may be split across several lines.
func (h *head) fieldsHaveToken(name, token string) bool {
	s := HeaderScanner{rest: h.fields}
	for {
		k, v, ok := s.Next()
		if !ok {
			return false
		}
		if equalFold(k, name) && hasToken(v, token) {
			return true
		}
	}
}
