package pool

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Flate compressors and decompressors (klauspost/compress/flate), borrowed
// for one message at a time. A flate.Writer holds about 0.8 to 1.4 MiB
// (level 1 to 9) and a reader about 40 KiB, whatever the message and the
// window: one per connection would cost more than everything else a
// connection has, so none is kept by a connection.
//
// Writers are pooled by level and LZ77 window. A window under 32 KiB
// (window bits 8 to 14, for permessage-deflate's server_max_window_bits and
// client_max_window_bits) takes klauspost's custom-window compressor
// (flate.NewWriterWindow), which has no level of its own: it is its level 5
// encoder with matches bounded by the window, about 1 MiB. So below 15 bits
// the pool is keyed by the window alone and the level is ignored. A reader
// needs no such key: a 32 KiB window inflates streams made with any smaller
// one.

// MinFlateLevel and MaxFlateLevel bound the levels of GetFlateWriter:
// flate.BestSpeed to flate.BestCompression.
const (
	MinFlateLevel = flate.BestSpeed
	MaxFlateLevel = flate.BestCompression
)

// MinFlateWindowBits and MaxFlateWindowBits bound the windows of
// GetFlateWriterWindow: 2^8 (256 B) to 2^15 (32 KiB) bytes, the range of
// RFC 7692's window bits.
const (
	MinFlateWindowBits = 8
	MaxFlateWindowBits = 15
)

var (
	flateReaders sync.Pool                    // io.ReadCloser that implement flate.Resetter
	flateWriters [MaxFlateLevel + 1]sync.Pool // *flate.Writer with a 32 KiB window, by level
	// *flate.Writer with a smaller window, by window bits (level ignored)
	flateWindowWriters [MaxFlateWindowBits]sync.Pool
	noInput            = bytes.NewReader(nil) // what a pooled reader reads while idle
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
// MaxFlateLevel) with a 32 KiB window writing to w, primed with dict as the
// data that came before (nil for none): its output may refer back into
// dict, which must not change until the writer is given back with
// PutFlateWriter. Priming costs about as much as compressing dict.
func GetFlateWriter(w io.Writer, level int, dict []byte) *flate.Writer {
	return GetFlateWriterWindow(w, level, MaxFlateWindowBits, dict)
}

// PutFlateWriter returns a compressor from GetFlateWriter at the same level,
// dropping its references to the output and the dictionary; fw must not be
// used afterwards.
func PutFlateWriter(fw *flate.Writer, level int) {
	PutFlateWriterWindow(fw, level, MaxFlateWindowBits)
}

// GetFlateWriterWindow is GetFlateWriter with an LZ77 window of 2^bits
// bytes (MinFlateWindowBits to MaxFlateWindowBits): the output never refers
// further back than that, into dict or into what was written before. Under
// 15 bits the level is checked but not used (see the package's flate
// notes), and only the last 2^bits bytes of dict matter. Give the writer
// back with PutFlateWriterWindow and the same level and bits.
func GetFlateWriterWindow(w io.Writer, level, bits int, dict []byte) *flate.Writer {
	if level < MinFlateLevel || level > MaxFlateLevel {
		panic(fmt.Sprintf("pool: flate level %d out of range", level))
	}
	if bits < MinFlateWindowBits || bits > MaxFlateWindowBits {
		panic(fmt.Sprintf("pool: flate window bits %d out of range", bits))
	}
	p := flateWriterPool(level, bits)
	if bits < MaxFlateWindowBits && len(dict) > 1<<bits {
		dict = dict[len(dict)-1<<bits:] // what lies further back cannot be referred to
	}
	if v := p.Get(); v != nil {
		fw := v.(*flate.Writer)
		if len(dict) > 0 {
			fw.ResetDict(w, dict)
		} else {
			fw.Reset(w)
		}
		return fw
	}
	var fw *flate.Writer
	var err error
	if bits == MaxFlateWindowBits {
		fw, err = flate.NewWriterDict(w, level, dict)
	} else if fw, err = flate.NewWriterWindow(w, 1<<bits); err == nil && len(dict) > 0 {
		fw.ResetDict(w, dict)
	}
	if err != nil {
		panic(err) // unreachable: the level and the window were checked
	}
	return fw
}

// PutFlateWriterWindow returns a compressor from GetFlateWriterWindow with
// the same level and bits, dropping its references to the output and the
// dictionary; fw must not be used afterwards.
func PutFlateWriterWindow(fw *flate.Writer, level, bits int) {
	fw.ResetDict(nil, nil)
	flateWriterPool(level, bits).Put(fw)
}

// flateWriterPool is the pool of writers at level with a 2^bits window.
func flateWriterPool(level, bits int) *sync.Pool {
	if bits == MaxFlateWindowBits {
		return &flateWriters[level]
	}
	return &flateWindowWriters[bits]
}
