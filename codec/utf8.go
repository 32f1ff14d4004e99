package codec

import (
	"encoding/binary"
	"unicode/utf8"
)

// UTF8Validator checks a text message that arrives in pieces (fragments,
// reads); a code point may straddle pieces. The zero value is ready; Reset
// before reuse.
//
// It keeps four bytes of state and no copy of the input: the bulk of every
// piece goes through [utf8.Valid], and only a rune cut by a piece's edge is
// carried over, as the number of continuation bytes it still needs and the
// range the next one must fall in. That range is what rejects an impossible
// prefix (an overlong, a surrogate, a value above U+10FFFF) on the Write that
// brings it, so a connection can be failed with 1007 ([ErrInvalidUTF8]) as
// soon as RFC 6455 §8.1 allows, without waiting for the rest of the rune.
type UTF8Validator struct {
	need   uint8 // continuation bytes the pending rune still needs; 0 at a rune boundary
	lo, hi uint8 // range the next continuation byte must fall in
	bad    bool  // the stream is invalid; sticky until Reset
}

// Write validates the next piece of the message and reports whether the
// stream is still valid UTF-8 or the beginning of it. Once it returns false
// every later Write and Done does too, until Reset.
func (v *UTF8Validator) Write(p []byte) bool {
	if v.bad {
		return false
	}
	// Finish the rune an earlier piece ended in.
	for v.need > 0 && len(p) > 0 {
		if !v.next(p[0]) {
			return false
		}
		p = p[1:]
	}
	p = p[asciiPrefix(p):]
	if len(p) == 0 {
		return true
	}
	i := pendingStart(p)
	if !utf8.Valid(p[:i]) {
		v.bad = true
		return false
	}
	if i == len(p) {
		return true
	}
	// p ends inside a rune: check what there is of it now, so an impossible
	// prefix fails this Write, and carry the rest over.
	v.need, v.lo, v.hi = leadRange(p[i])
	for _, b := range p[i+1:] {
		if !v.next(b) {
			return false
		}
	}
	return true
}

// next checks b as the pending rune's next continuation byte.
func (v *UTF8Validator) next(b byte) bool {
	if b < v.lo || b > v.hi {
		v.bad = true
		return false
	}
	v.need--
	v.lo, v.hi = 0x80, 0xBF // only the second byte of a rune has a narrower range
	return true
}

// Done reports whether the stream so far is valid and ends on a rune
// boundary. Call it at the end of the message: a rune cut off there makes the
// message invalid.
func (v *UTF8Validator) Done() bool {
	return !v.bad && v.need == 0
}

// Reset readies v for a new message.
func (v *UTF8Validator) Reset() {
	*v = UTF8Validator{}
}

// ValidUTF8 reports whether p, a whole message, is valid UTF-8.
func ValidUTF8(p []byte) bool {
	return utf8.Valid(p[asciiPrefix(p):])
}

// asciiPrefix returns the length of p's leading ASCII, checked a word of
// eight bytes at a time: len(p) if p is all ASCII, else the start of the
// first word that is not. Text messages are mostly ASCII, and utf8.Valid is
// slow to get into its own word loop and out of it, most of all on short
// pieces and on their last bytes (BenchmarkUTF8).
func asciiPrefix(p []byte) int {
	const hi = 0x8080808080808080
	if len(p) >= 8 && binary.LittleEndian.Uint64(p)&hi != 0 {
		return 0 // text that is not mostly ASCII: leave it all to utf8.Valid
	}
	q := p
	// Eight words per test while the text is ASCII: the ORs pipeline and
	// the loop keeps up with utf8.Valid's on long runs.
	for len(q) >= 64 {
		w := binary.LittleEndian.Uint64(q) | binary.LittleEndian.Uint64(q[8:]) |
			binary.LittleEndian.Uint64(q[16:]) | binary.LittleEndian.Uint64(q[24:])
		x := binary.LittleEndian.Uint64(q[32:]) | binary.LittleEndian.Uint64(q[40:]) |
			binary.LittleEndian.Uint64(q[48:]) | binary.LittleEndian.Uint64(q[56:])
		if (w|x)&hi != 0 {
			break
		}
		q = q[64:]
	}
	for len(q) >= 8 {
		if binary.LittleEndian.Uint64(q)&hi != 0 {
			return len(p) - len(q)
		}
		q = q[8:]
	}
	if len(p) >= 8 {
		// The last bytes as one word overlapping checked ones: reading a
		// byte twice is harmless and cheaper than a byte loop.
		if binary.LittleEndian.Uint64(p[len(p)-8:])&hi == 0 {
			return len(p)
		}
		return len(p) - len(q)
	}
	for i, b := range q {
		if b >= utf8.RuneSelf {
			return i
		}
	}
	return len(p)
}

// pendingStart returns the index of the rune p ends in the middle of, or
// len(p) when p ends on a rune boundary or with bytes that are invalid
// however the stream goes on (those are left for utf8.Valid to reject).
func pendingStart(p []byte) int {
	n := len(p)
	if n == 0 || p[n-1] < utf8.RuneSelf {
		return n // ends in ASCII, the common case for text
	}
	// A rune is at most four bytes, so an unfinished one starts in the last three.
	for i := n - 1; i >= 0 && i >= n-3; i-- {
		b := p[i]
		if b < 0x80 {
			return n // ASCII followed by continuation bytes: invalid
		}
		if b >= 0xC0 { // a lead byte, valid or not
			if need, _, _ := leadRange(b); need > 0 && i+1+int(need) > n {
				return i
			}
			return n
		}
	}
	return n
}

// leadRange returns how many continuation bytes lead b takes and the range
// the first of them must fall in (Unicode Table 3-7, RFC 3629 §4): the
// narrower ranges after E0, ED, F0 and F4 exclude overlongs, surrogates and
// values above U+10FFFF. need is 0 for a byte that cannot start a multibyte
// rune: ASCII, a continuation byte, C0, C1 (only overlongs) and F5–FF.
func leadRange(b byte) (need, lo, hi uint8) {
	switch {
	case b >= 0xC2 && b <= 0xDF:
		return 1, 0x80, 0xBF
	case b == 0xE0:
		return 2, 0xA0, 0xBF
	case b == 0xED:
		return 2, 0x80, 0x9F
	case b >= 0xE1 && b <= 0xEF:
		return 2, 0x80, 0xBF
	case b == 0xF0:
		return 3, 0x90, 0xBF
	case b >= 0xF1 && b <= 0xF3:
		return 3, 0x80, 0xBF
	case b == 0xF4:
		return 3, 0x80, 0x8F
	}
	return 0, 0, 0
}
