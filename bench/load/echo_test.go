package load

import (
	"errors"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

func TestEchoParse(t *testing.T) {
	fs := newFrameSet(codec.OpBinary, 10, 8)
	want := fs.payloads[0]
	frame := func(op codec.Opcode, fin bool, p []byte) []byte {
		return codec.AppendFrame(nil, codec.Header{Fin: fin, Opcode: op, Length: int64(len(p))}, p)
	}
	bad := append([]byte(nil), want...)
	bad[9] ^= 1
	for _, tc := range []struct {
		name    string
		in      []byte
		done    int
		wantErr error
	}{
		{name: "whole", in: frame(codec.OpBinary, true, want), done: 1},
		{name: "fragmented", in: append(frame(codec.OpBinary, false, want[:3]), frame(codec.OpContinuation, true, want[3:])...), done: 1},
		{name: "ping between fragments", in: append(append(frame(codec.OpBinary, false, want[:3]), frame(codec.OpPing, true, nil)...), frame(codec.OpContinuation, true, want[3:])...), done: 1},
		{name: "partial", in: frame(codec.OpBinary, true, want)[:8], done: 0},
		{name: "corrupt", in: frame(codec.OpBinary, true, bad), wantErr: errEchoMismatch},
		{name: "longer", in: frame(codec.OpBinary, true, append(want, 0)), wantErr: errEchoLength},
		{name: "shorter", in: frame(codec.OpBinary, true, want[:9]), wantErr: errEchoLength},
		{name: "next message", in: frame(codec.OpBinary, true, fs.payloads[1]), wantErr: errEchoMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := echoConn{fs: fs, size: 10, buf: make([]byte, 64), sent: make([]time.Duration, 1), sn: 1}
			c.w = copy(c.buf, tc.in)
			done, err := c.parse(0, true)
			if !errors.Is(err, tc.wantErr) || (err == nil && done != tc.done) {
				t.Fatalf("parse = %d, %v; want %d, %v", done, err, tc.done, tc.wantErr)
			}
		})
	}
}
