package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameHeaderRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		wire []byte
	}{
		{
			name: "empty text",
			h:    Header{Fin: true, Opcode: OpText},
			wire: []byte{0x81, 0x00},
		},
		{
			name: "125 bytes, 7-bit length",
			h:    Header{Fin: true, Opcode: OpBinary, Length: 125},
			wire: []byte{0x82, 125},
		},
		{
			name: "126 bytes, 16-bit length",
			h:    Header{Fin: true, Opcode: OpBinary, Length: 126},
			wire: []byte{0x82, 126, 0x00, 126},
		},
		{
			name: "65535 bytes, 16-bit length",
			h:    Header{Fin: false, Opcode: OpText, Length: 0xFFFF},
			wire: []byte{0x01, 126, 0xFF, 0xFF},
		},
		{
			name: "65536 bytes, 64-bit length",
			h:    Header{Fin: true, Opcode: OpBinary, Length: 0x10000},
			wire: []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0},
		},
		{
			name: "largest length",
			h:    Header{Fin: true, Opcode: OpBinary, Length: 1<<63 - 1},
			wire: []byte{0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		},
		{
			name: "masked ping",
			h:    Header{Fin: true, Opcode: OpPing, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 5},
			wire: []byte{0x89, 0x85, 1, 2, 3, 4},
		},
		{
			name: "masked 64-bit with rsv1",
			h:    Header{Fin: true, Rsv: Rsv1, Opcode: OpText, Masked: true, Mask: [4]byte{9, 8, 7, 6}, Length: 70000},
			wire: []byte{0xC1, 0xFF, 0, 0, 0, 0, 0, 1, 0x11, 0x70, 9, 8, 7, 6},
		},
		{
			name: "continuation, all rsv bits",
			h:    Header{Rsv: Rsv1 | Rsv2 | Rsv3, Opcode: OpContinuation, Length: 3},
			wire: []byte{0x70, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendFrameHeader([]byte("x"), tt.h)
			if !bytes.Equal(got[1:], tt.wire) {
				t.Fatalf("AppendFrameHeader = % x, want % x", got[1:], tt.wire)
			}
			if tt.h.Len() != len(tt.wire) {
				t.Errorf("Len = %d, want %d", tt.h.Len(), len(tt.wire))
			}
			// Trailing payload bytes must not change the decoding.
			h, n, err := DecodeFrameHeader(append(tt.wire, 0xAA, 0xBB))
			if err != nil || n != len(tt.wire) || h != tt.h {
				t.Fatalf("DecodeFrameHeader = %+v, %d, %v; want %+v, %d", h, n, err, tt.h, len(tt.wire))
			}
			// Every strict prefix needs more, at every split point.
			for i := range len(tt.wire) {
				if _, n, err := DecodeFrameHeader(tt.wire[:i]); err != ErrNeedMore || n != 0 {
					t.Fatalf("prefix %d: n=%d err=%v, want 0, ErrNeedMore", i, n, err)
				}
			}
		})
	}
}

func TestDecodeFrameHeaderLengthOverflow(t *testing.T) {
	wire := []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}
	_, n, err := DecodeFrameHeader(wire)
	if err != ErrLengthOverflow || n != 0 {
		t.Fatalf("got n=%d err=%v, want ErrLengthOverflow", n, err)
	}
	if CloseStatus(err) != StatusProtocolError {
		t.Fatalf("CloseStatus = %d, want 1002", CloseStatus(err))
	}
}

func TestAppendFrameMasksCopyOnly(t *testing.T) {
	payload := []byte("Hello")
	h := Header{Fin: true, Opcode: OpText, Masked: true, Mask: [4]byte{0x37, 0xfa, 0x21, 0x3d}}
	got := AppendFrame(nil, h, payload)
	// RFC 6455 §5.7: a masked "Hello".
	want := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = % x, want % x", got, want)
	}
	if string(payload) != "Hello" {
		t.Fatalf("payload changed to %q", payload)
	}
	unmasked := AppendFrame(nil, Header{Fin: true, Opcode: OpText}, payload)
	if want := []byte{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}; !bytes.Equal(unmasked, want) {
		t.Fatalf("AppendFrame unmasked = % x, want % x", unmasked, want)
	}
}

func TestCheckFrameHeader(t *testing.T) {
	masked := func(h Header) Header { h.Masked = true; return h }
	tests := []struct {
		name  string
		h     Header
		state State
		want  error
	}{
		{
			name:  "masked text to server",
			h:     masked(Header{Fin: true, Opcode: OpText, Length: 10}),
			state: StateServer,
		},
		{
			name:  "unmasked binary to client",
			h:     Header{Fin: true, Opcode: OpBinary, Length: 1 << 20},
			state: StateClient,
		},
		{
			name:  "unmasked to server",
			h:     Header{Fin: true, Opcode: OpText},
			state: StateServer,
			want:  ErrMaskRequired,
		},
		{
			name:  "masked to client",
			h:     masked(Header{Fin: true, Opcode: OpText}),
			state: StateClient,
			want:  ErrMaskUnexpected,
		},
		{
			name:  "reserved data opcode 3",
			h:     masked(Header{Fin: true, Opcode: 0x3}),
			state: StateServer,
			want:  ErrReservedOpcode,
		},
		{
			name:  "reserved control opcode 0xB",
			h:     masked(Header{Fin: true, Opcode: 0xB}),
			state: StateServer,
			want:  ErrReservedOpcode,
		},
		{
			name:  "rsv1 without extension",
			h:     masked(Header{Fin: true, Rsv: Rsv1, Opcode: OpText}),
			state: StateServer,
			want:  ErrReservedBits,
		},
		{
			name:  "rsv2 with deflate",
			h:     masked(Header{Fin: true, Rsv: Rsv2, Opcode: OpText}),
			state: StateServer | StateDeflate,
			want:  ErrReservedBits,
		},
		{
			name:  "rsv3 with deflate",
			h:     masked(Header{Fin: true, Rsv: Rsv3, Opcode: OpBinary}),
			state: StateServer | StateDeflate,
			want:  ErrReservedBits,
		},
		{
			name:  "rsv1 with deflate on first frame",
			h:     masked(Header{Fin: false, Rsv: Rsv1, Opcode: OpText}),
			state: StateServer | StateDeflate,
		},
		{
			name:  "rsv1 with deflate on continuation",
			h:     masked(Header{Fin: true, Rsv: Rsv1, Opcode: OpContinuation}),
			state: StateServer | StateDeflate | StateFragmented,
			want:  ErrReservedBits,
		},
		{
			name:  "rsv1 with deflate on ping",
			h:     masked(Header{Fin: true, Rsv: Rsv1, Opcode: OpPing}),
			state: StateServer | StateDeflate,
			want:  ErrReservedBits,
		},
		{
			name:  "ping of 125 bytes",
			h:     masked(Header{Fin: true, Opcode: OpPing, Length: 125}),
			state: StateServer,
		},
		{
			name:  "ping of 126 bytes",
			h:     masked(Header{Fin: true, Opcode: OpPing, Length: 126}),
			state: StateServer,
			want:  ErrControlTooLong,
		},
		{
			name:  "close of 126 bytes",
			h:     masked(Header{Fin: true, Opcode: OpClose, Length: 126}),
			state: StateServer,
			want:  ErrControlTooLong,
		},
		{
			name:  "fragmented pong",
			h:     masked(Header{Fin: false, Opcode: OpPong}),
			state: StateServer,
			want:  ErrControlFragmented,
		},
		{
			name:  "ping inside fragmented message",
			h:     masked(Header{Fin: true, Opcode: OpPing}),
			state: StateServer | StateFragmented,
		},
		{
			name:  "continuation with no message",
			h:     masked(Header{Fin: true, Opcode: OpContinuation}),
			state: StateServer,
			want:  ErrUnexpectedContinue,
		},
		{
			name:  "text inside fragmented message",
			h:     masked(Header{Fin: true, Opcode: OpText}),
			state: StateServer | StateFragmented,
			want:  ErrExpectedContinuation,
		},
		{
			name:  "continuation inside fragmented message",
			h:     masked(Header{Fin: false, Opcode: OpContinuation}),
			state: StateServer | StateFragmented,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFrameHeader(tt.h, tt.state)
			if err != tt.want {
				t.Fatalf("CheckFrameHeader = %v, want %v", err, tt.want)
			}
			if err != nil && CloseStatus(err) != StatusProtocolError {
				t.Fatalf("CloseStatus = %d, want 1002", CloseStatus(err))
			}
		})
	}
}

func TestOpcode(t *testing.T) {
	tests := []struct {
		op                      Opcode
		control, data, reserved bool
		str                     string
	}{
		{op: OpContinuation, data: true, str: "Continuation"},
		{op: OpText, data: true, str: "Text"},
		{op: OpBinary, data: true, str: "Binary"},
		{op: 0x3, data: true, reserved: true, str: "Opcode(3)"},
		{op: 0x7, data: true, reserved: true, str: "Opcode(7)"},
		{op: OpClose, control: true, str: "Close"},
		{op: OpPing, control: true, str: "Ping"},
		{op: OpPong, control: true, str: "Pong"},
		{op: 0xB, control: true, reserved: true, str: "Opcode(11)"},
		{op: 0xF, control: true, reserved: true, str: "Opcode(15)"},
	}
	for _, tt := range tests {
		if tt.op.IsControl() != tt.control || tt.op.IsData() != tt.data || tt.op.IsReserved() != tt.reserved {
			t.Errorf("%v: control=%v data=%v reserved=%v", tt.op, tt.op.IsControl(), tt.op.IsData(), tt.op.IsReserved())
		}
		if tt.op.String() != tt.str {
			t.Errorf("String(%d) = %q, want %q", tt.op, tt.op.String(), tt.str)
		}
	}
	if !errors.Is(ErrReservedOpcode, ErrReservedOpcode) {
		t.Fatal("sentinel identity")
	}
}
