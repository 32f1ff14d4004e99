package codec

import (
	"strconv"
	"testing"
	"unicode/utf8"
)

// utf8Text returns n bytes of valid UTF-8: ASCII only, or a mix of one- to
// four-byte runes such as a chat message in several scripts.
func utf8Text(n int, mixed bool) []byte {
	src := "The quick brown fox jumps over the lazy dog. "
	if mixed {
		src = "Grüße, κόσμε! 日本語のテキスト 😀👍 — naïve café. "
	}
	p := make([]byte, 0, n)
	for len(p) < n {
		for _, r := range src {
			if len(p)+utf8.RuneLen(r) > n {
				break
			}
			p = utf8.AppendRune(p, r)
		}
		if len(p)+utf8.UTFMax > n {
			for len(p) < n {
				p = append(p, '.') // pad to exactly n with ASCII
			}
		}
	}
	return p
}

func BenchmarkUTF8(b *testing.B) {
	for _, text := range []struct {
		name  string
		mixed bool
	}{
		{
			name:  "ascii",
			mixed: false,
		},
		{
			name:  "mixed",
			mixed: true,
		},
	} {
		for _, n := range []int{64, 1024, 65536} {
			p := utf8Text(n, text.mixed)
			if !utf8.Valid(p) || len(p) != n {
				b.Fatalf(
					"bad benchmark input: %d bytes, valid %v",
					len(p), utf8.Valid(p),
				)
			}
			name := text.name + "/" + strconv.Itoa(n)
			b.Run("Validator/"+name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				var v UTF8Validator
				for b.Loop() {
					v.Reset()
					if !v.Write(p) || !v.Done() {
						b.Fatal("rejected valid input")
					}
				}
			})
			// The same message in 100-byte reads, so runes straddle Writes.
			b.Run("Chunked/"+name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				var v UTF8Validator
				for b.Loop() {
					v.Reset()
					for q := p; len(q) > 0; {
						c := q[:min(100, len(q))]
						q = q[len(c):]
						v.Write(c)
					}
					if !v.Done() {
						b.Fatal("rejected valid input")
					}
				}
			})
			b.Run("ValidUTF8/"+name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if !ValidUTF8(p) {
						b.Fatal("rejected valid input")
					}
				}
			})
			b.Run("utf8.Valid/"+name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if !utf8.Valid(p) {
						b.Fatal("rejected valid input")
					}
				}
			})
		}
	}
}
