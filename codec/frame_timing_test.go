package codec

import "testing"

func BenchmarkDecodeFrameHeader(b *testing.B) {
	wire := AppendFrameHeader(nil, Header{Fin: true, Opcode: OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 1024})
	b.ReportAllocs()
	for b.Loop() {
		h, _, err := DecodeFrameHeader(wire)
		if err != nil || CheckFrameHeader(h, StateServer) != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrameHeader(b *testing.B) {
	h := Header{Fin: true, Opcode: OpBinary, Length: 1024}
	buf := make([]byte, 0, MaxHeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrameHeader(buf[:0], h)
	}
}
