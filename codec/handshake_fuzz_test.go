package codec

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unsafe"
)

// hsWithin reports whether inner is nil or lies inside outer, so a view
// aliases the parsed bytes instead of a copy or a constant.
func hsWithin(outer, inner []byte) bool {
	if inner == nil {
		return true
	}
	o := uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	i := uintptr(unsafe.Pointer(unsafe.SliceData(inner)))
	return o <= i && i+uintptr(len(inner)) <= o+uintptr(len(outer))
}

func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		hsChromium,
		strings.ReplaceAll(hsChromium, "\r\n", "\n"),
		hsMinimal("GET ws://example.com:9000/chat?x=1 HTTP/1.1", "Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Protocol: c"),
		hsMinimal("GET http://example.com?q HTTP/1.1", "Cookie: a=1; b=\"2\"", "Origin: null"),
		hsMinimal("POST / HTTP/1.0", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
		hsRequest("GET /demo HTTP/1.1", "Host: example.com", "Connection: Upgrade", "Upgrade: WebSocket", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5", "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00") + "^n:ds[4U",
		hsRequest("GET /index.html HTTP/1.1", "Host: example.com"),
		strings.Replace(hsChromium, "Host:", "Host :", 1),
		strings.Replace(hsChromium, "Pragma: no-cache\r\n", "Pragma: no-cache\r\n  folded\r\n", 1),
		"GET / HTTP/1.:\r\n\r\n",
		"\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n",
		hsChromium[:100],
		"\r\n" + hsChromium,
		"\n\r\n\n" + strings.ReplaceAll(hsChromium, "\r\n", "\n"),
		"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"\r\rGET / HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"\x00\x01\x02\x03\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\r\n\r\n",
		"GE(T / HTTP/1.1\r\n\r\n",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint(i*37))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint) {
		var r Request
		n, err := r.Parse(data, 0)
		var he *HandshakeError
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n=%d", err, n)
			}
			if err != ErrNeedMore && !errors.As(err, &he) {
				t.Fatalf("error %v is not a *HandshakeError", err)
			}
		} else {
			if n <= 0 || n > len(data) || n > DefaultMaxHeaderBytes {
				t.Fatalf("n=%d for %d bytes", n, len(data))
			}
			head := data[:n]
			for _, v := range [][]byte{r.Method, r.URI, r.Path, r.Query, r.Host, r.Upgrade, r.Connection,
				r.Key, r.Version, r.Protocol, r.Extensions, r.Origin} {
				if !hsWithin(head, v) {
					t.Fatalf("view %q is not inside the head", v)
				}
			}
			if r.Method == nil || r.URI == nil || r.Path == nil {
				t.Fatalf("request line views missing: %+v", hsViewOf(&r))
			}
			s := r.Headers()
			for {
				k, v, ok := s.Next()
				if !ok {
					break
				}
				if len(k) == 0 || !hsWithin(head, k) || !hsWithin(head, v) {
					t.Fatalf("field %q: %q outside the head", k, v)
				}
			}
			r.Protocols(func(p []byte) bool {
				if len(p) == 0 || !hsWithin(head, p) {
					t.Fatalf("protocol %q", p)
				}
				return true
			})
			r.SelectProtocol([]string{"chat", "superchat"})
			r.SameOrigin()
			r.Header("Cookie")
			r.Cookie("session")
			// The head alone parses the same.
			var alone Request
			if n2, err := alone.Parse(head, 0); n2 != n || err != nil || hsViewOf(&alone) != hsViewOf(&r) {
				t.Fatalf("head alone: %d, %v", n2, err)
			}
			switch err := r.Validate(); {
			case err == nil:
				if string(r.Method) != http.MethodGet || string(r.Version) != "13" || len(r.Host) == 0 || !validKey(r.Key) {
					t.Fatalf("Validate accepted %+v", hsViewOf(&r))
				}
				AppendUpgradeResponse(nil, r.Key, r.Protocol, nil, nil)
			case errors.As(err, &he):
				if he.Status != 400 && he.Status != 405 && he.Status != 426 {
					t.Fatalf("Validate: %v with status %d", err, he.Status)
				}
				AppendHandshakeError(nil, he)
			default:
				t.Fatalf("Validate: %v is not a *HandshakeError", err)
			}
		}

		// The same bytes in two pieces.
		k := int(split % uint(len(data)+1))
		var r2 Request
		r2.Parse(data[:k], 0)
		n2, err2 := r2.Parse(data, 0)
		if n2 != n || err2 != err {
			t.Fatalf("split at %d: %d, %v; whole: %d, %v", k, n2, err2, n, err)
		}
		if err == nil {
			if hsViewOf(&r2) != hsViewOf(&r) {
				t.Fatalf("split at %d: view %+v, whole %+v", k, hsViewOf(&r2), hsViewOf(&r))
			}
			if r2.Validate() != r.Validate() {
				t.Fatalf("split at %d: Validate differs", k)
			}
		}
	})
}

func FuzzResponseValidate(f *testing.F) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	offer := &ClientRequest{
		Host:       "example.com",
		Protocols:  []string{"chat", "superchat"},
		Extensions: "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
	}
	seeds := []string{
		string(AppendUpgradeResponse(nil, []byte(key), nil, nil, nil)),
		string(AppendUpgradeResponse(nil, []byte(key), []byte("chat"), []byte("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"), nil)) + "\x81\x02hi",
		strings.ReplaceAll(string(AppendUpgradeResponse(nil, []byte(key), []byte("superchat"), nil, nil)), "\r\n", "\n"),
		string(AppendHandshakeError(nil, ErrVersion)),
		hsResponse("HTTP/1.1 101", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Extensions: permessage-deflate, x-webkit-deflate-frame"),
		hsResponse("HTTP/1.1 101 OK", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", `Sec-WebSocket-Extensions: permessage-deflate; a="x,y", permessage-deflate`),
		hsResponse("HTTP/1.1 0:1 Switching Protocols"),
		hsResponse("HTTP/1.1 200 OK", "Content-Length: 0"),
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Response
		n, err := r.Parse(data, 0)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n=%d", err, n)
			}
			return
		}
		if n <= 0 || n > len(data) {
			t.Fatalf("n=%d for %d bytes", n, len(data))
		}
		head := data[:n]
		for _, v := range [][]byte{r.Reason, r.Upgrade, r.Connection, r.Accept, r.Protocol, r.Extensions} {
			if !hsWithin(head, v) {
				t.Fatalf("view %q is not inside the head", v)
			}
		}
		if r.Status < 100 || r.Status > 999 {
			t.Fatalf("status %d", r.Status)
		}
		err = r.Validate([]byte(key), offer)
		var he *HandshakeError
		switch {
		case err == nil:
			if r.Status != 101 || string(r.Accept) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				t.Fatalf("Validate accepted status %d accept %q", r.Status, r.Accept)
			}
			if len(r.Protocol) > 0 && string(r.Protocol) != "chat" && string(r.Protocol) != "superchat" {
				t.Fatalf("Validate accepted protocol %q", r.Protocol)
			}
		case !errors.As(err, &he):
			t.Fatalf("Validate: %v is not a *HandshakeError", err)
		}
		r.Validate([]byte(key), nil)
	})
}
