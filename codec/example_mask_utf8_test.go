package codec_test

import (
	"fmt"

	"github.com/galews/gale/codec"
)

func ExampleMask() {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d} // RFC 6455 §5.7's example key
	payload := []byte("Hello")

	codec.Mask(payload, key, 0) // what a client sends
	fmt.Printf("% x\n", payload)

	// The server unmasks the same payload as it arrives in two reads,
	// carrying the key position from one to the next.
	pos := codec.Mask(payload[:2], key, 0)
	codec.Mask(payload[2:], key, pos)
	fmt.Println(string(payload))
	// Output:
	// 7f 9f 4d 51 58
	// Hello
}

func ExampleUTF8Validator() {
	// "héllo" arrives in two fragments that split é (0xC3 0xA9).
	var v codec.UTF8Validator
	fmt.Println(v.Write([]byte("h\xc3")), v.Write([]byte("\xa9llo")), v.Done())

	// A surrogate half (U+D800) is refused on the fragment that starts it,
	// before the rest of it arrives.
	v.Reset()
	fmt.Println(v.Write([]byte("ok \xed\xa0")))
	// Output:
	// true true true
	// false
}
