package codec_test

import (
	"fmt"

	"github.com/galews/gale/codec"
)

// A server answers Chromium's offer. With its compressor keeping no state
// between messages, it says so; and of two offers it takes the first it can
// honour.
func ExampleNegotiateDeflate() {
	policy := codec.DeflatePolicy{ServerNoContextTakeover: true}

	p, ok := codec.NegotiateDeflate([]byte("permessage-deflate; client_max_window_bits"), policy)
	fmt.Printf("%v %s\n", ok, codec.AppendDeflateResponse(nil, p))

	// A 1 KiB server window is more than a fixed 32 KiB window can promise.
	two := []byte("permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits=12")
	p, ok = codec.NegotiateDeflate(two, policy)
	fmt.Printf("%v %s\n", ok, codec.AppendDeflateResponse(nil, p))
	// Output:
	// true permessage-deflate; server_no_context_takeover
	// true permessage-deflate; server_no_context_takeover; client_max_window_bits=12
}

// A client offers permessage-deflate and checks the server's answer.
func ExampleParseDeflateResponse() {
	offer := codec.DeflateParams{ClientMaxWindowBits: codec.WindowBitsNoValue}
	fmt.Printf("%s\n", codec.AppendDeflateOffer(nil, offer))

	p, err := codec.ParseDeflateResponse([]byte("permessage-deflate; client_max_window_bits=10"), offer)
	fmt.Printf("%+v %v\n", p, err)

	_, err = codec.ParseDeflateResponse([]byte("permessage-deflate; server_max_window_bits=16"), offer)
	fmt.Println(err)
	// Output:
	// permessage-deflate; client_max_window_bits
	// {ServerNoContextTakeover:false ClientNoContextTakeover:false ServerMaxWindowBits:0 ClientMaxWindowBits:10} <nil>
	// gale: server answered an extension with invalid parameters: invalid value for "server_max_window_bits"
}
