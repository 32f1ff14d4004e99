//go:build !race

package codec

import "testing"

func TestHandshakeAllocs(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	chromium := []byte(hsChromium)
	var req Request
	if _, err := req.Parse(chromium, 0); err != nil {
		t.Fatal(err)
	}
	offer := &ClientRequest{Protocols: []string{"chat"}, Extensions: "permessage-deflate; client_max_window_bits; server_no_context_takeover"}
	resp := AppendUpgradeResponse(nil, []byte(key), []byte("chat"), []byte("permessage-deflate; server_no_context_takeover"), nil)
	leading := []byte("\r\n" + hsChromium)
	clientHello := []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
	buf := make([]byte, 0, 512)
	supported := []string{"superchat", "chat"}
	tests := []struct {
		name string
		fn   func()
	}{
		{
			name: "Request.Parse+Validate",
			fn: func() {
				var r Request
				if _, err := r.Parse(chromium, 0); err != nil {
					panic(err)
				}
				if err := r.Validate(); err != nil {
					panic(err)
				}
				r.Reset()
			},
		},
		{
			name: "Request.Parse byte by byte, after an empty line",
			fn: func() {
				var r Request
				for i := 1; i <= len(leading); i++ {
					r.Parse(leading[:i], 0)
				}
				if r.Method == nil {
					panic("not parsed")
				}
			},
		},
		{
			name: "Request.Parse of a TLS ClientHello",
			fn: func() {
				var r Request
				if _, err := r.Parse(clientHello, 0); err != ErrMalformedRequest {
					panic(err)
				}
			},
		},
		{
			name: "Request.Header",
			fn: func() {
				if req.Header("user-agent") == nil {
					panic("no User-Agent")
				}
			},
		},
		{
			name: "Request.SelectProtocol",
			fn:   func() { req.SelectProtocol(supported) },
		},
		{
			name: "Request.SameOrigin",
			fn:   func() { req.SameOrigin() },
		},
		{
			name: "AppendAccept",
			fn:   func() { buf = AppendAccept(buf[:0], req.Key) },
		},
		{
			name: "AppendUpgradeResponse",
			fn:   func() { buf = AppendUpgradeResponse(buf[:0], req.Key, []byte("chat"), nil, nil) },
		},
		{
			name: "AppendHandshakeError",
			fn:   func() { buf = AppendHandshakeError(buf[:0], ErrVersion) },
		},
		{
			name: "AppendRejectResponse",
			fn:   func() { buf = AppendRejectResponse(buf[:0], 403, nil, []byte("no")) },
		},
		{
			name: "Response.Parse+Validate",
			fn: func() {
				var r Response
				if _, err := r.Parse(resp, 0); err != nil {
					panic(err)
				}
				if err := r.Validate([]byte(key), offer); err != nil {
					panic(err)
				}
				r.Reset()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%v allocations per run, want 0", n)
			}
		})
	}
}
