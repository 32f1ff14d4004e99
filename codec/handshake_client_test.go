package codec

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestNewKey(t *testing.T) {
	seen := make(map[[KeyLen]byte]bool)
	for range 100 {
		key := NewKey()
		raw, err := base64.StdEncoding.DecodeString(string(key[:]))
		if err != nil || len(raw) != 16 {
			t.Fatalf("NewKey() = %q: decodes to %d bytes, %v", key, len(raw), err)
		}
		if !validKey(key[:]) {
			t.Fatalf("NewKey() = %q is not a valid key", key)
		}
		if seen[key] {
			t.Fatalf("NewKey() repeated %q", key)
		}
		seen[key] = true
	}
}

func TestAppendClientRequest(t *testing.T) {
	tests := []struct {
		name      string
		req       ClientRequest
		path      string // as the server sees it
		query     string
		netPath   string // as net/http decodes it
		origin    string
		protocols []string
		header    http.Header // fields the server must see, exactly
	}{
		{
			name: "minimal",
			req: ClientRequest{
				Host: "example.com",
			},
			path:    "/",
			netPath: "/",
		},
		{
			name: "everything",
			req: ClientRequest{
				Host:       "example.com:8080",
				URI:        "/chat?room=1&u=a%20b",
				Origin:     "http://example.com:8080",
				Protocols:  []string{"v2.chat", "chat"},
				Extensions: "permessage-deflate; client_max_window_bits",
				Header: http.Header{
					"Authorization": {"Bearer t0k3n"},
					"Cookie":        {"session=abc"},
					"X-Multi":       {"1", "2"},
				},
			},
			path:      "/chat",
			query:     "room=1&u=a%20b",
			netPath:   "/chat",
			origin:    "http://example.com:8080",
			protocols: []string{"v2.chat", "chat"},
			header: http.Header{
				"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"},
				"Authorization":            {"Bearer t0k3n"},
				"Cookie":                   {"session=abc"},
				"X-Multi":                  {"1", "2"},
			},
		},
		{
			name: "unsafe URI bytes percent-encoded",
			req: ClientRequest{
				Host: "example.com",
				URI:  "/a b\r\nX: y/caf\xc3\xa9",
			},
			path:    "/a%20b%0D%0AX:%20y/caf%C3%A9",
			netPath: "/a b\r\nX: y/caf\xc3\xa9",
		},
		{
			name: "CR LF injection in values neutralised",
			req: ClientRequest{
				Host:      "example.com\r\nX-Injected: 1",
				Protocols: []string{"chat\r\nX-Injected: 2"},
				Header: http.Header{
					"X-Evil": {"a\r\nX-Injected: 3"},
				},
			},
			path:      "/",
			netPath:   "/",
			protocols: []string{"chat  X-Injected: 2"},
			header: http.Header{
				"Host":   {"example.com  X-Injected: 1"},
				"X-Evil": {"a  X-Injected: 3"},
			},
		},
		{
			name: "extra header cannot repeat the handshake fields",
			req: ClientRequest{
				Host:   "example.com",
				Origin: "https://example.com",
				Header: http.Header{
					"Host":                  {"evil.example"},
					"Origin":                {"https://evil.example"},
					"Sec-Websocket-Version": {"8"},
					"sec-websocket-key":     {"AAAAAAAAAAAAAAAAAAAAAA=="},
					"Upgrade":               {"h2c"},
					"Connection":            {"close"},
				},
			},
			path:    "/",
			netPath: "/",
			origin:  "https://example.com",
			header: http.Header{
				"Host":                  {"example.com"},
				"Origin":                {"https://example.com"},
				"Sec-Websocket-Version": {"13"},
				"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
				"Upgrade":               {"websocket"},
				"Connection":            {"Upgrade"},
			},
		},
		{
			name: "origin from the extra header",
			req: ClientRequest{
				Host:   "example.com",
				Header: http.Header{"Origin": {"https://example.com"}},
			},
			path:    "/",
			netPath: "/",
			origin:  "https://example.com",
		},
	}
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := AppendClientRequest([]byte("keep"), &tt.req, []byte(key))
			if !bytes.HasPrefix(wire, []byte("keep")) {
				t.Fatalf("dst prefix lost: %q", wire)
			}
			wire = wire[4:]

			var r Request
			n, err := r.Parse(wire, 0)
			if err != nil || n != len(wire) {
				t.Fatalf("Request.Parse = %d, %v (len %d)\n%s", n, err, len(wire), wire)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("Request.Validate: %v\n%s", err, wire)
			}
			if string(r.Path) != tt.path || string(r.Query) != tt.query || string(r.Origin) != tt.origin || string(r.Key) != key {
				t.Errorf("server sees path %q query %q origin %q key %q", r.Path, r.Query, r.Origin, r.Key)
			}
			var protocols []string
			r.Protocols(func(p []byte) bool { protocols = append(protocols, string(p)); return true })
			if !slices.Equal(protocols, tt.protocols) {
				t.Errorf("server sees protocols %q, want %q", protocols, tt.protocols)
			}

			hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
			if err != nil {
				t.Fatalf("http.ReadRequest: %v\n%s", err, wire)
			}
			if hr.Method != "GET" || hr.URL.Path != tt.netPath || hr.Host != string(r.Host) || hr.ProtoMinor != 1 {
				t.Errorf("net/http sees %s %q host %q HTTP/1.%d", hr.Method, hr.URL.Path, hr.Host, hr.ProtoMinor)
			}
			if hr.Header.Get("Upgrade") != "websocket" || hr.Header.Get("Connection") != "Upgrade" || hr.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("net/http sees handshake fields %q", hr.Header)
			}
			hr.Header["Host"] = []string{hr.Host} // net/http moves Host out of Header
			for k, vs := range tt.header {
				if got := hr.Header.Values(k); !slices.Equal(got, vs) {
					t.Errorf("%s = %q, want %q", k, got, vs)
				}
			}
		})
	}
}

// hsResponse joins a status line and header lines into a response head.
func hsResponse(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

func TestResponseValidate(t *testing.T) {
	const (
		key    = "dGhlIHNhbXBsZSBub25jZQ=="
		accept = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	)
	offer := &ClientRequest{
		Host:       "example.com",
		Protocols:  []string{"chat", "superchat"},
		Extensions: "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
	}
	ok := func(extra ...string) string {
		return hsResponse(append([]string{"HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", accept}, extra...)...)
	}
	tests := []struct {
		name     string
		resp     string
		req      *ClientRequest
		want     *HandshakeError // nil: valid
		contains string          // in the error text
	}{
		{
			name: "AppendUpgradeResponse output",
			resp: string(AppendUpgradeResponse(nil, []byte(key), []byte("superchat"), []byte("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"), http.Header{"X-Server": {"gale"}})),
			req:  offer,
		},
		{
			name: "tokens in lists and other cases",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "upgrade: WebSocket", "CONNECTION: keep-alive, upgrade", "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
			req:  offer,
		},
		{
			name: "status line without reason",
			resp: strings.Replace(ok(), "101 Switching Protocols", "101", 1),
			req:  offer,
		},
		{
			name: "LF-only",
			resp: strings.ReplaceAll(ok("Sec-WebSocket-Protocol: chat"), "\r\n", "\n"),
			req:  offer,
		},
		{
			name: "two extensions over two fields",
			resp: ok("Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Extensions: x-webkit-deflate-frame"),
			req:  offer,
		},
		{
			name: "nothing offered, nothing chosen",
			resp: ok(),
			req:  nil,
		},
		{
			name:     "status 200",
			resp:     hsResponse("HTTP/1.1 200 OK", "Content-Length: 0"),
			req:      offer,
			want:     ErrResponseStatus,
			contains: "200 OK",
		},
		{
			name:     "status 403",
			resp:     hsResponse("HTTP/1.1 403 Forbidden", "Content-Length: 0"),
			req:      offer,
			want:     ErrResponseStatus,
			contains: "403 Forbidden",
		},
		{
			name:     "status 426",
			resp:     string(AppendHandshakeError(nil, ErrVersion)),
			req:      offer,
			want:     ErrResponseStatus,
			contains: "426",
		},
		{
			name: "missing Upgrade",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", accept),
			req:  offer,
			want: ErrResponseUpgrade,
		},
		{
			name: "Upgrade h2c",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Upgrade: h2c", "Connection: Upgrade", accept),
			req:  offer,
			want: ErrResponseUpgrade,
		},
		{
			name: "missing Connection",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", accept),
			req:  offer,
			want: ErrResponseConn,
		},
		{
			name: "Connection without upgrade",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: keep-alive", accept),
			req:  offer,
			want: ErrResponseConn,
		},
		{
			name: "wrong accept",
			resp: strings.Replace(ok(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", 1),
			req:  offer,
			want: ErrAccept,
		},
		{
			name: "missing accept",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"),
			req:  offer,
			want: ErrAccept,
		},
		{
			name: "duplicated accept",
			resp: ok(accept),
			req:  offer,
			want: ErrAccept,
		},
		{
			name:     "unoffered subprotocol",
			resp:     ok("Sec-WebSocket-Protocol: mqtt"),
			req:      offer,
			want:     ErrProtocolNotOffer,
			contains: `"mqtt"`,
		},
		{
			name: "subprotocol list instead of a choice",
			resp: ok("Sec-WebSocket-Protocol: chat, superchat"),
			req:  offer,
			want: ErrProtocolNotOffer,
		},
		{
			name: "two subprotocol fields",
			resp: ok("Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat"),
			req:  offer,
			want: ErrProtocolNotOffer,
		},
		{
			name: "subprotocol with nothing offered",
			resp: ok("Sec-WebSocket-Protocol: chat"),
			req:  nil,
			want: ErrProtocolNotOffer,
		},
		{
			name:     "unoffered extension",
			resp:     ok("Sec-WebSocket-Extensions: x-custom; a=1"),
			req:      offer,
			want:     ErrExtensionNotOffer,
			contains: `"x-custom"`,
		},
		{
			name:     "unoffered extension after an offered one",
			resp:     ok("Sec-WebSocket-Extensions: permessage-deflate, x-custom"),
			req:      offer,
			want:     ErrExtensionNotOffer,
			contains: `"x-custom"`,
		},
		{
			name: "extension with nothing offered",
			resp: ok("Sec-WebSocket-Extensions: permessage-deflate"),
			req:  &ClientRequest{Protocols: []string{"chat"}},
			want: ErrExtensionNotOffer,
		},
		{
			name:     "extension answered twice in one field",
			resp:     ok("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate; server_no_context_takeover"),
			req:      offer,
			want:     ErrExtensionParams,
			contains: "twice",
		},
		{
			name:     "extension answered twice over two fields",
			resp:     ok("Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Extensions: Permessage-Deflate"),
			req:      offer,
			want:     ErrExtensionParams,
			contains: "twice",
		},
		{
			name: "malformed extension parameters",
			resp: ok("Sec-WebSocket-Extensions: permessage-deflate; =10"),
			req:  offer,
			want: ErrExtensionParams,
		},
		{
			name: "unterminated quoted parameter",
			resp: ok(`Sec-WebSocket-Extensions: permessage-deflate; a="10`),
			req:  offer,
			want: ErrExtensionParams,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.resp + "\x81\x02hi") // a first frame (or a body) right behind
			headLen := strings.Index(tt.resp, "\r\n\r\n") + 4
			if headLen < 4 {
				headLen = strings.Index(tt.resp, "\n\n") + 2
			}
			var r Response
			n, err := r.Parse(in, 0)
			if err != nil || n != headLen {
				t.Fatalf("Parse = %d, %v; want %d", n, err, headLen)
			}
			err = r.Validate([]byte(key), tt.req)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q lacks %q", err, tt.contains)
			}
		})
	}
}

func TestResponseParseErrors(t *testing.T) {
	tests := []struct {
		name string
		resp string
		max  int
		want error
	}{
		{
			name: "digit-like status",
			resp: hsResponse("HTTP/1.1 0:1 Switching Protocols", "Upgrade: websocket"),
			want: ErrMalformedResponse,
		},
		{
			name: "four-digit status",
			resp: hsResponse("HTTP/1.1 1010 Switching Protocols"),
			want: ErrMalformedResponse,
		},
		{
			name: "status below 100",
			resp: hsResponse("HTTP/1.1 099 Odd"),
			want: ErrMalformedResponse,
		},
		{
			name: "HTTP/2",
			resp: hsResponse("HTTP/2 101 Switching Protocols"),
			want: ErrMalformedResponse,
		},
		{
			name: "not HTTP",
			resp: hsResponse("SSH-2.0-OpenSSH_9.6"),
			want: ErrMalformedResponse,
		},
		{
			name: "control character in reason",
			resp: hsResponse("HTTP/1.1 101 Switching\x01Protocols"),
			want: ErrMalformedResponse,
		},
		{
			name: "space before colon",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Upgrade : websocket"),
			want: ErrMalformedResponse,
		},
		{
			name: "obs-fold",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", " , h2c"),
			want: ErrMalformedResponse,
		},
		{
			name: "past the cap",
			resp: hsResponse("HTTP/1.1 101 Switching Protocols", "X-Pad: "+strings.Repeat("a", 9000)),
			want: ErrHeaderTooLarge,
		},
		{
			name: "incomplete past a custom cap",
			resp: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
			max:  40,
			want: ErrHeaderTooLarge,
		},
		{
			name: "incomplete",
			resp: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
			want: ErrNeedMore,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Response
			if n, err := r.Parse([]byte(tt.resp), tt.max); err != tt.want || n != 0 {
				t.Errorf("Parse = %d, %v; want 0, %v", n, err, tt.want)
			}
		})
	}
}

// TestResponseParseSplit feeds a response through every prefix of its bytes.
func TestResponseParseSplit(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	head := AppendUpgradeResponse(nil, []byte(key), []byte("chat"), []byte("permessage-deflate"), nil)
	in := append(head[:len(head):len(head)], "\x81\x05hello"...)
	req := &ClientRequest{Protocols: []string{"chat"}, Extensions: "permessage-deflate"}
	var r Response
	for i := 0; i <= len(in); i++ {
		n, err := r.Parse(in[:i], 0)
		if i < len(head) {
			if err != ErrNeedMore || n != 0 {
				t.Fatalf("Parse(p[:%d]) = %d, %v; want 0, ErrNeedMore", i, n, err)
			}
			continue
		}
		if err != nil || n != len(head) {
			t.Fatalf("Parse(p[:%d]) = %d, %v; want %d", i, n, err, len(head))
		}
		if r.Status != 101 || string(r.Reason) != "Switching Protocols" || string(r.Protocol) != "chat" ||
			string(r.Extensions) != "permessage-deflate" || string(r.Accept) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
			string(r.Upgrade) != "websocket" || string(r.Connection) != "Upgrade" {
			t.Fatalf("Parse(p[:%d]) view %+v", i, r)
		}
		if err := r.Validate([]byte(key), req); err != nil {
			t.Fatalf("Validate after p[:%d]: %v", i, err)
		}
	}
	if got := string(r.Header("sec-websocket-protocol")); got != "chat" {
		t.Errorf("Header = %q", got)
	}
	if got := len(hsFields(r.Headers())); got != 5 {
		t.Errorf("Headers has %d fields, want 5", got)
	}
}
