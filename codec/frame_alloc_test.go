//go:build !race

package codec

import "testing"

func TestFrameAllocs(t *testing.T) {
	hdr := Header{Fin: true, Opcode: OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 70000}
	wire := AppendFrameHeader(nil, hdr)
	buf := make([]byte, 0, 256)
	payload := make([]byte, 100)
	closeWire := AppendClosePayload(nil, StatusGoingAway, "server restart")
	tests := []struct {
		name string
		fn   func()
	}{
		{
			name: "DecodeFrameHeader",
			fn: func() {
				h, _, err := DecodeFrameHeader(wire)
				if err != nil || CheckFrameHeader(h, StateServer) != nil {
					t.Fatal("decode")
				}
			},
		},
		{
			name: "AppendFrameHeader",
			fn:   func() { buf = AppendFrameHeader(buf[:0], hdr) },
		},
		{
			name: "AppendFrame",
			fn:   func() { buf = AppendFrame(buf[:0], hdr, payload) },
		},
		{
			name: "ParseClosePayload",
			fn: func() {
				if _, _, err := ParseClosePayload(closeWire); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "AppendClosePayload",
			fn:   func() { buf = AppendClosePayload(buf[:0], StatusGoingAway, "server restart") },
		},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations, want 0", tt.name, n)
		}
	}
}
