package codec

import (
	"bytes"
	"testing"
	"unicode/utf8"
	"unsafe"
)

var utf8Cases = []struct {
	name  string
	in    []byte
	valid bool
}{
	{
		name:  "empty",
		in:    []byte{},
		valid: true,
	},
	{
		name:  "ascii",
		in:    []byte("Hello, WebSocket! 0123456789 abcdefghijklmnopqrstuvwxyz"),
		valid: true,
	},
	{
		name:  "nul and del",
		in:    []byte{0x00, 0x7F},
		valid: true,
	},
	{
		name:  "two-byte",
		in:    []byte("héllo ©"),
		valid: true,
	},
	{
		name:  "three-byte",
		in:    []byte("日本語 €"),
		valid: true,
	},
	{
		name:  "four-byte",
		in:    []byte("😀 𝄞"),
		valid: true,
	},
	{
		name:  "mixed",
		in:    []byte("κόσμε – ünïcödé 日本 🎉 end"),
		valid: true,
	},
	{
		name:  "U+0080",
		in:    []byte{0xC2, 0x80},
		valid: true,
	},
	{
		name:  "U+07FF",
		in:    []byte{0xDF, 0xBF},
		valid: true,
	},
	{
		name:  "U+0800",
		in:    []byte{0xE0, 0xA0, 0x80},
		valid: true,
	},
	{
		name:  "U+D7FF before surrogates",
		in:    []byte{0xED, 0x9F, 0xBF},
		valid: true,
	},
	{
		name:  "U+E000 after surrogates",
		in:    []byte{0xEE, 0x80, 0x80},
		valid: true,
	},
	{
		name:  "U+FFFF",
		in:    []byte{0xEF, 0xBF, 0xBF},
		valid: true,
	},
	{
		name:  "U+10000",
		in:    []byte{0xF0, 0x90, 0x80, 0x80},
		valid: true,
	},
	{
		name:  "U+10FFFF",
		in:    []byte{0xF4, 0x8F, 0xBF, 0xBF},
		valid: true,
	},

	{
		name:  "overlong C0",
		in:    []byte{0xC0, 0x80},
		valid: false,
	},
	{
		name:  "overlong C1",
		in:    []byte{0xC1, 0xBF},
		valid: false,
	},
	{
		name:  "overlong three-byte",
		in:    []byte{0xE0, 0x80, 0xAF},
		valid: false,
	},
	{
		name:  "overlong three-byte max",
		in:    []byte{0xE0, 0x9F, 0xBF},
		valid: false,
	},
	{
		name:  "overlong four-byte",
		in:    []byte{0xF0, 0x80, 0x80, 0xAF},
		valid: false,
	},
	{
		name:  "overlong four-byte max",
		in:    []byte{0xF0, 0x8F, 0xBF, 0xBF},
		valid: false,
	},
	{
		name:  "surrogate low end",
		in:    []byte{0xED, 0xA0, 0x80},
		valid: false,
	},
	{
		name:  "surrogate high end",
		in:    []byte{0xED, 0xBF, 0xBF},
		valid: false,
	},
	{
		name:  "surrogate pair",
		in:    []byte{0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80},
		valid: false,
	},
	{
		name:  "above U+10FFFF",
		in:    []byte{0xF4, 0x90, 0x80, 0x80},
		valid: false,
	},
	{
		name:  "F5",
		in:    []byte{0xF5, 0x80, 0x80, 0x80},
		valid: false,
	},
	{
		name:  "F8 five-byte form",
		in:    []byte{0xF8, 0x88, 0x80, 0x80, 0x80},
		valid: false,
	},
	{
		name:  "FE",
		in:    []byte{0xFE},
		valid: false,
	},
	{
		name:  "FF",
		in:    []byte{0xFF},
		valid: false,
	},
	{
		name:  "stray continuation",
		in:    []byte{0x80},
		valid: false,
	},
	{
		name:  "stray continuation after ascii",
		in:    []byte{'a', 0xBF, 'b'},
		valid: false,
	},
	{
		name:  "extra continuation",
		in:    []byte{0xC2, 0x80, 0x80},
		valid: false,
	},
	{
		name:  "lead then ascii",
		in:    []byte{0xE2, 'a', 'b'},
		valid: false,
	},
	{
		name:  "lead then lead",
		in:    []byte{0xC2, 0xC2, 0x80},
		valid: false,
	},
	{
		name:  "truncated two-byte",
		in:    []byte{'a', 0xC2},
		valid: false,
	},
	{
		name:  "truncated three-byte",
		in:    []byte{'a', 0xE2, 0x82},
		valid: false,
	},
	{
		name:  "truncated four-byte",
		in:    []byte{'a', 0xF0, 0x9F, 0x98},
		valid: false,
	},
	{
		name:  "invalid in long ascii",
		in:    append(bytes.Repeat([]byte("x"), 100), 0xFF, 'y'),
		valid: false,
	},
}

func TestUTF8Cases(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			if utf8.Valid(tc.in) != tc.valid {
				t.Fatalf(
					"bad case: utf8.Valid(%x) = %v",
					tc.in, !tc.valid,
				)
			}
			if got := ValidUTF8(tc.in); got != tc.valid {
				t.Errorf(
					"ValidUTF8(%x) = %v, want %v",
					tc.in, got, tc.valid,
				)
			}
			var v UTF8Validator
			if got := v.Write(tc.in) && v.Done(); got != tc.valid {
				t.Errorf(
					"one Write(%x) then Done = %v, want %v",
					tc.in, got, tc.valid,
				)
			}
			v.Reset()
			for _, b := range tc.in {
				v.Write([]byte{b})
			}
			if got := v.Done(); got != tc.valid {
				t.Errorf(
					"byte-by-byte Write(%x) then Done = %v, want %v",
					tc.in, got, tc.valid,
				)
			}
		})
	}
}

// utf8ValidPrefix reports whether p can be extended to valid UTF-8: p itself,
// or p followed by the start of a rune's remaining bytes. One of 0x80, 0x90,
// 0xA0 is a valid second byte after any lead, and 0x80 any later byte.
func utf8ValidPrefix(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	for k := 1; k <= 3; k++ {
		for _, c := range []byte{0x80, 0x90, 0xA0} {
			q := append(bytes.Clone(p), c)
			q = append(q, bytes.Repeat([]byte{0x80}, k-1)...)
			if utf8.Valid(q) {
				return true
			}
		}
	}
	return false
}

// checkUTF8Chunks writes chunks to a fresh validator and checks every Write
// against utf8ValidPrefix (which is exactly "fail fast") and Done against
// utf8.Valid of the whole.
func checkUTF8Chunks(t *testing.T, chunks ...[]byte) {
	t.Helper()
	var v UTF8Validator
	var seen []byte
	for i, c := range chunks {
		seen = append(seen, c...)
		got := v.Write(c)
		if want := utf8ValidPrefix(seen); got != want {
			t.Fatalf(
				"chunks %x: Write #%d = %v, want %v",
				chunks, i, got, want,
			)
		}
		if !got {
			if v.Done() || v.Write(nil) {
				t.Fatalf(
					"chunks %x: validator recovered after failing",
					chunks,
				)
			}
			return
		}
	}
	if got, want := v.Done(), utf8.Valid(seen); got != want {
		t.Fatalf(
			"chunks %x: Done = %v, want %v",
			chunks, got, want,
		)
	}
}

// TestUTF8SplitRunes splits every multibyte rune, between ASCII neighbours, at
// every byte boundary across two and three Writes.
func TestUTF8SplitRunes(t *testing.T) {
	if testing.Short() {
		t.Skip("walks all 1.1M code points")
	}
	buf := make([]byte, 0, 8)
	var v UTF8Validator
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		buf = append(buf[:0], 'a')
		buf = utf8.AppendRune(buf, r)
		buf = append(buf, 'z')
		for i := 1; i < len(buf); i++ {
			for j := i; j < len(buf); j++ {
				v.Reset()
				if !v.Write(buf[:i]) || !v.Write(buf[i:j]) || !v.Write(buf[j:]) || !v.Done() {
					t.Fatalf(
						"U+%04X %x split at %d and %d: rejected",
						r, buf, i, j,
					)
				}
			}
		}
	}
}

// TestUTF8SplitCases runs every named case through all two- and three-way
// splits, checking each Write for fail-fast.
func TestUTF8SplitCases(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i <= len(tc.in); i++ {
				checkUTF8Chunks(t, tc.in[:i], tc.in[i:])
				for j := i; j <= len(tc.in); j++ {
					checkUTF8Chunks(t, tc.in[:i], tc.in[i:j], tc.in[j:])
				}
			}
		})
	}
}

func TestUTF8FailFast(t *testing.T) {
	tests := []struct {
		name   string
		chunks [][]byte
		failAt int // index of the Write that must return false; -1: none, but Done is false
	}{
		{
			name:   "surrogate prefix",
			chunks: [][]byte{{'a', 0xED, 0xA0}, {0x80}},
			failAt: 0,
		},
		{
			name:   "above max prefix",
			chunks: [][]byte{{0xF4, 0x90}, {0x80, 0x80}},
			failAt: 0,
		},
		{
			name:   "C0 alone",
			chunks: [][]byte{{'a', 0xC0}, {0x80}},
			failAt: 0,
		},
		{
			name:   "C1 alone",
			chunks: [][]byte{{0xC1}},
			failAt: 0,
		},
		{
			name:   "F5 alone",
			chunks: [][]byte{{0xF5}},
			failAt: 0,
		},
		{
			name:   "overlong three-byte prefix",
			chunks: [][]byte{{0xE0, 0x9F}, {0xBF}},
			failAt: 0,
		},
		{
			name:   "overlong four-byte prefix",
			chunks: [][]byte{{0xF0, 0x8F}, {0xBF, 0xBF}},
			failAt: 0,
		},
		{
			name:   "surrogate second byte in next chunk",
			chunks: [][]byte{{0xED}, {0xA0}, {0x80}},
			failAt: 1,
		},
		{
			name:   "above max second byte in next chunk",
			chunks: [][]byte{{0xF4}, {0x90, 0x80, 0x80}},
			failAt: 1,
		},
		{
			name:   "ascii where a continuation is due",
			chunks: [][]byte{{0xE2, 0x82}, {'a'}},
			failAt: 1,
		},
		{
			name:   "stray continuation at chunk start",
			chunks: [][]byte{{'a'}, {0x80, 'b'}},
			failAt: 1,
		},
		{
			name:   "truncated at message end",
			chunks: [][]byte{{'a', 0xF0, 0x9F}, {0x98}},
			failAt: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v UTF8Validator
			for i, c := range tc.chunks {
				if got, want := v.Write(c), i != tc.failAt && (tc.failAt < 0 || i < tc.failAt); got != want {
					t.Fatalf(
						"Write #%d (%x) = %v, want %v",
						i, c, got, want,
					)
				}
			}
			if v.Done() {
				t.Fatalf(
					"Done = true for %x",
					tc.chunks,
				)
			}
		})
	}
}

func TestUTF8Reset(t *testing.T) {
	var v UTF8Validator
	v.Write([]byte{0xFF})
	v.Reset()
	if !v.Write([]byte("ok")) || !v.Done() {
		t.Fatal("Reset did not clear a failure")
	}
	v.Write([]byte{0xE2})
	v.Reset()
	if !v.Write([]byte("ok")) || !v.Done() {
		t.Fatal("Reset did not clear a pending rune")
	}
}

// TestUTF8ValidatorSize keeps the state small: it lives in every connection.
func TestUTF8ValidatorSize(t *testing.T) {
	if n := unsafe.Sizeof(UTF8Validator{}); n > 8 {
		t.Fatalf(
			"UTF8Validator is %d bytes, want at most 8",
			n,
		)
	}
}

func FuzzUTF8Validator(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add(tc.in, []byte{1, 2, 3})
	}
	f.Add([]byte("κόσμε 日本 🎉"), []byte{0, 5, 1, 7})
	f.Add([]byte{0xED, 0xA0, 0x80}, []byte{2})
	f.Add([]byte{0xF4, 0x90, 0x80, 0x80}, []byte{1, 1})
	f.Add(utf8Text(300, true), bytes.Repeat([]byte{1}, 40))
	f.Add(utf8Text(300, true), []byte{3, 7, 100, 0, 61})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		want := utf8.Valid(data)
		if got := ValidUTF8(data); got != want {
			t.Fatalf(
				"ValidUTF8(%x) = %v, want %v",
				data, got, want,
			)
		}
		var v UTF8Validator
		if got := v.Write(data) && v.Done(); got != want {
			t.Fatalf(
				"one Write(%x) then Done = %v, want %v",
				data, got, want,
			)
		}
		// Chunk lengths are cuts' bytes, a 0 being an empty Write; whatever
		// is left after them is the last chunk. Each chunk is checked
		// against the whole prefix, so their number is capped to keep an
		// execution linear.
		var chunks [][]byte
		rest := data
		for _, c := range cuts[:min(len(cuts), 64)] {
			n := min(int(c), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		chunks = append(chunks, rest)
		checkUTF8Chunks(t, chunks...)
	})
}

// TestUTF8ASCIIEdges puts one non-ASCII byte at every position of ASCII runs
// of every length around the word and block sizes of the ASCII fast path.
func TestUTF8ASCIIEdges(t *testing.T) {
	for n := 1; n <= 140; n++ {
		for j := range n {
			p := bytes.Repeat([]byte{'a'}, n)
			p[j] = 0xFF
			var v UTF8Validator
			if ValidUTF8(p) || v.Write(p) {
				t.Fatalf(
					"0xFF at %d of %d ASCII bytes accepted",
					j, n,
				)
			}
			if j+1 < n {
				p[j], p[j+1] = 0xC3, 0xA9 // é
				v.Reset()
				if !ValidUTF8(p) || !v.Write(p) || !v.Done() {
					t.Fatalf(
						"é at %d of %d ASCII bytes rejected",
						j, n,
					)
				}
			}
		}
	}
}
