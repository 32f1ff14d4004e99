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
