package codec_test

import (
	"fmt"

	"github.com/galews/gale/codec"
)

// A server decodes a client frame's header from the bytes it has, checks it,
// and unmasks the payload in place.
func ExampleDecodeFrameHeader() {
	frame := codec.AppendFrame(nil, codec.Header{
		Fin: true, Opcode: codec.OpText, Masked: true, Mask: [4]byte{0x37, 0xfa, 0x21, 0x3d},
	}, []byte("Hello"))

	h, n, err := codec.DecodeFrameHeader(frame)
	if err != nil {
		panic(err)
	}
	if err := codec.CheckFrameHeader(h, codec.StateServer); err != nil {
		panic(err)
	}
	payload := frame[n : n+int(h.Length)]
	codec.Mask(payload, h.Mask, 0)
	fmt.Println(h.Opcode, h.Fin, string(payload))

	_, _, err = codec.DecodeFrameHeader(frame[:1])
	fmt.Println(err == codec.ErrNeedMore)
	// Output:
	// Text true Hello
	// true
}

func ExampleParseClosePayload() {
	payload := codec.AppendClosePayload(nil, codec.StatusNormalClosure, "done")
	code, reason, err := codec.ParseClosePayload(payload)
	fmt.Println(code, int(code), string(reason), err)

	_, _, err = codec.ParseClosePayload([]byte{0x03, 0xED}) // 1005 may not be sent
	fmt.Println(err, codec.CloseStatus(err))
	// Output:
	// NormalClosure 1000 done <nil>
	// gale: invalid close status code ProtocolError
}
