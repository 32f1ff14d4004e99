package codec

import "testing"

func BenchmarkParseRequest(b *testing.B) {
	in := []byte(hsChromium)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var r Request
	for b.Loop() {
		r.Reset()
		if _, err := r.Parse(in, 0); err != nil {
			b.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendAccept(b *testing.B) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	buf := make([]byte, 0, AcceptLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendAccept(buf[:0], key)
	}
}

func BenchmarkAppendUpgradeResponse(b *testing.B) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	protocol := []byte("chat")
	extensions := []byte("permessage-deflate; server_no_context_takeover")
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendUpgradeResponse(buf[:0], key, protocol, extensions, nil)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkResponseValidate(b *testing.B) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	in := AppendUpgradeResponse(nil, key, []byte("chat"), []byte("permessage-deflate"), nil)
	offer := &ClientRequest{Protocols: []string{"chat"}, Extensions: "permessage-deflate"}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var r Response
	for b.Loop() {
		r.Reset()
		if _, err := r.Parse(in, 0); err != nil {
			b.Fatal(err)
		}
		if err := r.Validate(key, offer); err != nil {
			b.Fatal(err)
		}
	}
}
