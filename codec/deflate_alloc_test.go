//go:build !race

package codec

import "testing"

func TestDeflateAllocs(t *testing.T) {
	chromium := []byte(offerChromium)
	multiple := []byte(offerMultiple + ", x-foo; bar=\"baz\"")
	response := []byte("permessage-deflate; server_no_context_takeover; client_max_window_bits=10")
	offer := DeflateParams{ClientMaxWindowBits: WindowBitsNoValue}
	all := DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 10}
	buf := make([]byte, 0, 256)
	tests := []struct {
		name string
		fn   func()
	}{
		{
			name: "NegotiateDeflate chromium",
			fn: func() {
				if _, ok := NegotiateDeflate(chromium, DeflatePolicy{}); !ok {
					t.Fatal("declined")
				}
			},
		},
		{
			name: "NegotiateDeflate multiple offers",
			fn: func() {
				if _, ok := NegotiateDeflate(multiple, DeflatePolicy{ServerNoContextTakeover: true}); !ok {
					t.Fatal("declined")
				}
			},
		},
		{
			name: "AppendDeflateResponse",
			fn:   func() { buf = AppendDeflateResponse(buf[:0], all) },
		},
		{
			name: "AppendDeflateOffer",
			fn:   func() { buf = AppendDeflateOffer(buf[:0], offer) },
		},
		{
			name: "ParseDeflateResponse",
			fn: func() {
				if _, err := ParseDeflateResponse(response, offer); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%v allocations, want 0", n)
			}
		})
	}
}
