package pool

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Flate compressors and decompressors (klauspost/compress/flate), borrowed
// for one message at a time. A flate.Writer holds about 1 MiB and a reader
// about 40 KiB, whatever the message: one per connection would cost more
// than everything else a connection has, so none is kept by a connection.

// MinFlateLevel and MaxFlateLevel bound the levels of GetFlateWriter:
// flate.BestSpeed to flate.BestCompression.
const (
	MinFlateLevel = flate.BestSpeed
	MaxFlateLevel = flate.BestCompression
)

var (
	flateReaders sync.Pool                    // io.ReadCloser that implement flate.Resetter
	flateWriters [MaxFlateLevel + 1]sync.Pool // *flate.Writer by level
	noInput      = bytes.NewReader(nil)       // what a pooled reader reads while idle
)

// GetFlateReader returns a decompressor of the raw DEFLATE stream in r,
// primed with dict as the output that came before (the LZ77 window of
// earlier messages; nil for none), which it copies. r should implement
// io.ByteReader (a *bytes.Reader is fastest) or the decompressor adds a
// buffer of its own. Give it back with PutFlateReader.
func GetFlateReader(r io.Reader, dict []byte) io.ReadCloser {
	if v := flateReaders.Get(); v != nil {
		fr := v.(io.ReadCloser)
		fr.(flate.Resetter).Reset(r, dict)
		return fr
	}
	return flate.NewReaderDict(r, dict)
}

// PutFlateReader returns a decompressor from GetFlateReader, dropping its
// reference to the input; fr must not be used afterwards.
func PutFlateReader(fr io.ReadCloser) {
	fr.(flate.Resetter).Reset(noInput, nil)
	flateReaders.Put(fr)
}

// GetFlateWriter returns a compressor at level (MinFlateLevel to
// MaxFlateLevel) writing to w, primed with dict as the data that came
// before (nil for none): its output may refer back into dict, which must
// not change until the writer is given back with PutFlateWriter. Priming
// costs about as much as compressing dict.
func GetFlateWriter(w io.Writer, level int, dict []byte) *flate.Writer {
	if level < MinFlateLevel || level > MaxFlateLevel {
		panic(fmt.Sprintf("pool: flate level %d out of range", level))
	}
	if v := flateWriters[level].Get(); v != nil {
		fw := v.(*flate.Writer)
		if len(dict) > 0 {
			fw.ResetDict(w, dict)
		} else {
			fw.Reset(w)
		}
		return fw
	}
	fw, err := flate.NewWriterDict(w, level, dict)
	if err != nil {
		panic(err) // unreachable: the level was checked
	}
	return fw
}

// PutFlateWriter returns a compressor from GetFlateWriter at the same level,
// dropping its references to the output and the dictionary; fw must not be
// used afterwards.
func PutFlateWriter(fw *flate.Writer, level int) {
	fw.ResetDict(nil, nil)
	flateWriters[level].Put(fw)
}
