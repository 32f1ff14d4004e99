//go:build !race

package pool

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestFlateAllocs(t *testing.T) {
	msg := []byte(strings.Repeat("compressible message text ", 40))
	var z bytes.Buffer
	var src bytes.Reader
	out := make([]byte, len(msg))
	roundTrip := func() {
		z.Reset()
		fw := GetFlateWriter(&z, 1, nil)
		fw.Write(msg)
		fw.Flush()
		PutFlateWriter(fw, 1)
		src.Reset(z.Bytes())
		fr := GetFlateReader(&src, nil)
		io.ReadFull(fr, out)
		PutFlateReader(fr)
	}
	roundTrip()
	if a := testing.AllocsPerRun(100, roundTrip); a != 0 {
		t.Errorf("pooled flate round trip: %v allocs, want 0", a)
	}
	for _, bits := range []int{8, 12} {
		windowed := func() {
			z.Reset()
			fw := GetFlateWriterWindow(&z, 1, bits, msg)
			fw.Write(msg)
			fw.Flush()
			PutFlateWriterWindow(fw, 1, bits)
		}
		windowed()
		if a := testing.AllocsPerRun(100, windowed); a != 0 {
			t.Errorf("pooled %d-bit writer: %v allocs, want 0", bits, a)
		}
	}
}
