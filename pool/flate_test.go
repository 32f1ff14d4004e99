package pool

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestFlateRoundTrip(t *testing.T) {
	dict := []byte(strings.Repeat("the window of earlier messages; ", 100))
	msg := []byte(strings.Repeat("the window of earlier messages; and a new one. ", 50))
	tests := []struct {
		name  string
		level int
		dict  []byte
	}{
		{name: "level 1", level: MinFlateLevel},
		{name: "level 9", level: MaxFlateLevel},
		{name: "level 1 with a dictionary", level: MinFlateLevel, dict: dict},
		{name: "level 6 with a dictionary", level: 6, dict: dict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range 3 { // again with pooled writers and readers
				var z bytes.Buffer
				fw := GetFlateWriter(&z, tt.level, tt.dict)
				fw.Write(msg)
				fw.Close()
				PutFlateWriter(fw, tt.level)
				fr := GetFlateReader(bytes.NewReader(z.Bytes()), tt.dict)
				got, err := io.ReadAll(fr)
				PutFlateReader(fr)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("round %d: %d bytes (%v), want %d", round, len(got), err, len(msg))
				}
				if tt.dict != nil && z.Len() > 100 {
					t.Errorf("round %d: %d compressed bytes: the dictionary was not used", round, z.Len())
				}
			}
		})
	}
}

// A writer that was primed with a dictionary must not keep priming with
// it once given back.
func TestFlateWriterForgetsDictionary(t *testing.T) {
	dict := []byte(strings.Repeat("abcdefgh", 64))
	var z bytes.Buffer
	fw := GetFlateWriter(&z, 1, dict)
	fw.Write(dict)
	fw.Close()
	PutFlateWriter(fw, 1)
	z.Reset()
	fw = GetFlateWriter(&z, 1, nil)
	fw.Write(dict)
	fw.Close()
	PutFlateWriter(fw, 1)
	got, err := io.ReadAll(GetFlateReader(bytes.NewReader(z.Bytes()), nil))
	if err != nil || !bytes.Equal(got, dict) {
		t.Fatalf("inflated without a dictionary: %v", err)
	}
}

func TestFlateWriterLevel(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("level 0 did not panic")
		}
	}()
	GetFlateWriter(io.Discard, 0, nil)
}

// randomBytes returns n bytes with no redundancy a compressor could find.
func randomBytes(n int, seed uint64) []byte {
	p := make([]byte, n)
	x := seed | 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x >> 32)
	}
	return p
}

// compressedLen compresses p with a pooled writer at level and bits, primed
// with dict, checks that it inflates back and returns the compressed size.
func compressedLen(t *testing.T, level, bits int, dict, p []byte) int {
	t.Helper()
	var z bytes.Buffer
	fw := GetFlateWriterWindow(&z, level, bits, dict)
	fw.Write(p)
	fw.Close()
	PutFlateWriterWindow(fw, level, bits)
	fr := GetFlateReader(bytes.NewReader(z.Bytes()), dict)
	got, err := io.ReadAll(fr)
	PutFlateReader(fr)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("level %d, bits %d: inflated %d bytes (%v), want %d", level, bits, len(got), err, len(p))
	}
	return z.Len()
}

// A writer with a 2^bits window finds a repeat 2^bits-64 bytes back and none
// 2^bits+64 bytes back, in the data and in the dictionary; pooled writers of
// other windows, given back in between, never stand in for it.
func TestFlateWriterWindow(t *testing.T) {
	for bits := MinFlateWindowBits; bits <= MaxFlateWindowBits; bits++ {
		for _, level := range []int{MinFlateLevel, 5, MaxFlateLevel} {
			w := 1 << bits
			for round := range 2 {
				// Return writers of the neighbouring windows to the pool.
				for _, other := range []int{MinFlateWindowBits, MaxFlateWindowBits} {
					if other != bits {
						PutFlateWriterWindow(GetFlateWriterWindow(io.Discard, level, other, nil), level, other)
					}
				}
				near := randomBytes(w-64, uint64(bits*100+round))
				far := randomBytes(w+64, uint64(bits*100+round+50))
				if n := compressedLen(t, level, bits, nil, append(near[:len(near):len(near)], near...)); n > len(near)+len(near)/4 {
					t.Errorf("bits %d, level %d: a repeat %d bytes back cost %d bytes: the window was not used", bits, level, len(near), n)
				}
				if n := compressedLen(t, level, bits, near, near); n > len(near)/4 {
					t.Errorf("bits %d, level %d: a dictionary of %d bytes repeated cost %d bytes", bits, level, len(near), n)
				}
				if bits == MaxFlateWindowBits {
					continue // no repeat lies beyond a 32 KiB window's reach that another window could take
				}
				if n := compressedLen(t, level, bits, nil, append(far[:len(far):len(far)], far...)); n < 2*len(far) {
					t.Errorf("bits %d, level %d: a repeat %d bytes back cost only %d bytes: the window was exceeded", bits, level, len(far), n)
				}
				// The start of a dictionary longer than the window is out of reach.
				if n := compressedLen(t, level, bits, append(far[:len(far):len(far)], randomBytes(w, 7)...), far); n < len(far) {
					t.Errorf("bits %d, level %d: %d bytes from beyond the window cost only %d bytes", bits, level, len(far), n)
				}
			}
		}
	}
}

func TestFlateWriterWindowBits(t *testing.T) {
	for _, bits := range []int{7, 16} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("bits %d did not panic", bits)
				}
			}()
			GetFlateWriterWindow(io.Discard, 1, bits, nil)
		}()
	}
}
