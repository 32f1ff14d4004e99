package codec_test

import (
	"fmt"

	"github.com/galews/gale/codec"
)

// A server answers Chromium's offer. With its compressor keeping no state
// between messages, it says so; of two offers it takes the first it can
// honour; and it may cap the client's window when the client offered
// client_max_window_bits.
func ExampleNegotiateDeflate() {
	policy := codec.DeflatePolicy{ServerNoContextTakeover: true}

	p, ok := codec.NegotiateDeflate([]byte("permessage-deflate; client_max_window_bits"), policy)
	fmt.Printf("%v %s\n", ok, codec.AppendDeflateResponse(nil, p))

	// A server that cannot compress with less than 2 KiB declines the
	// first offer, which asks for a 1 KiB window, and takes the second.
	two := []byte("permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits=12")
	p, ok = codec.NegotiateDeflate(two, codec.DeflatePolicy{ServerNoContextTakeover: true, MinServerWindowBits: 11})
	fmt.Printf("%v %s\n", ok, codec.AppendDeflateResponse(nil, p))

	// By default it honours any window: the first offer is taken.
	p, ok = codec.NegotiateDeflate(two, codec.DeflatePolicy{})
	fmt.Printf("%v %s\n", ok, codec.AppendDeflateResponse(nil, p))

	// Capping the client's window at 1 KiB bounds what the server keeps to
	// inflate with context takeover; Chromium offered the parameter, so it
	// can be limited.
	p, ok = codec.NegotiateDeflate([]byte("permessage-deflate; client_max_window_bits"), codec.DeflatePolicy{ClientMaxWindowBits: 10})
	fmt.Printf("%v %s\n", ok, codec.AppendDeflateResponse(nil, p))
	// Output:
	// true permessage-deflate; server_no_context_takeover
	// true permessage-deflate; server_no_context_takeover; client_max_window_bits=12
	// true permessage-deflate; server_max_window_bits=10
	// true permessage-deflate; client_max_window_bits=10
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
