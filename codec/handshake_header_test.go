package codec

import (
	"bytes"
	"slices"
	"testing"
)

func hsParsed(t *testing.T, req string) *Request {
	t.Helper()
	var r Request
	if _, err := r.Parse([]byte(req), 0); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return &r
}

func TestRequestHeaderAccess(t *testing.T) {
	r := hsParsed(t, hsMinimal("GET / HTTP/1.1",
		"Cookie: session=abc123; theme=dark",
		`Cookie: lang=en; quoted="x y"; Empty=`,
		"X-Multi: one",
		"x-multi: two",
		"User-Agent: test/1.0",
	))
	t.Run("Header", func(t *testing.T) {
		tests := []struct {
			name  string
			field string
			want  []byte
		}{
			{name: "exact case", field: "User-Agent", want: []byte("test/1.0")},
			{name: "other case", field: "uSER-aGENT", want: []byte("test/1.0")},
			{name: "first of several", field: "X-Multi", want: []byte("one")},
			{name: "absent", field: "X-Missing", want: nil},
			{name: "handshake field", field: "sec-websocket-key", want: []byte("dGhlIHNhbXBsZSBub25jZQ==")},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := r.Header(tt.field); !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
					t.Errorf("Header(%q) = %q, want %q", tt.field, got, tt.want)
				}
			})
		}
	})
	t.Run("Headers", func(t *testing.T) {
		want := []string{
			"Host: example.com",
			"Upgrade: websocket",
			"Connection: Upgrade",
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
			"Sec-WebSocket-Version: 13",
			"Cookie: session=abc123; theme=dark",
			`Cookie: lang=en; quoted="x y"; Empty=`,
			"X-Multi: one",
			"x-multi: two",
			"User-Agent: test/1.0",
		}
		if got := hsFields(r.Headers()); !slices.Equal(got, want) {
			t.Errorf("Headers:\n got %q\nwant %q", got, want)
		}
	})
	t.Run("Cookie", func(t *testing.T) {
		tests := []struct {
			name   string
			cookie string
			want   string
			ok     bool
		}{
			{name: "first field", cookie: "session", want: "abc123", ok: true},
			{name: "second pair", cookie: "theme", want: "dark", ok: true},
			{name: "second field", cookie: "lang", want: "en", ok: true},
			{name: "quoted", cookie: "quoted", want: "x y", ok: true},
			{name: "empty value", cookie: "Empty", want: "", ok: true},
			{name: "names are case-sensitive", cookie: "Session", ok: false},
			{name: "absent", cookie: "nope", ok: false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, ok := r.Cookie(tt.cookie)
				if string(got) != tt.want || ok != tt.ok {
					t.Errorf("Cookie(%q) = %q, %v; want %q, %v", tt.cookie, got, ok, tt.want, tt.ok)
				}
			})
		}
	})
}

func TestRequestProtocols(t *testing.T) {
	r := hsParsed(t, hsMinimal("GET / HTTP/1.1",
		"Sec-WebSocket-Protocol: chat, ,superchat ",
		"X-Other: a, b",
		"sec-websocket-protocol: v2.chat",
	))
	var all []string
	r.Protocols(func(p []byte) bool { all = append(all, string(p)); return true })
	if want := []string{"chat", "superchat", "v2.chat"}; !slices.Equal(all, want) {
		t.Errorf("Protocols = %q, want %q", all, want)
	}
	var first []string
	r.Protocols(func(p []byte) bool { first = append(first, string(p)); return false })
	if len(first) != 1 {
		t.Errorf("Protocols did not stop: %q", first)
	}

	tests := []struct {
		name      string
		supported []string
		want      string
	}{
		{name: "client preference wins", supported: []string{"v2.chat", "superchat"}, want: "superchat"},
		{name: "only one supported", supported: []string{"v2.chat"}, want: "v2.chat"},
		{name: "case-sensitive", supported: []string{"CHAT"}, want: ""},
		{name: "none in common", supported: []string{"mqtt"}, want: ""},
		{name: "nothing supported", supported: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.SelectProtocol(tt.supported); got != tt.want {
				t.Errorf("SelectProtocol(%q) = %q, want %q", tt.supported, got, tt.want)
			}
		})
	}
	if got := hsParsed(t, hsChromium).SelectProtocol([]string{"chat"}); got != "" {
		t.Errorf("SelectProtocol without an offer = %q", got)
	}
}

func TestRequestSameOrigin(t *testing.T) {
	tests := []struct {
		name   string
		host   string
		origin string // "" for none
		want   bool
	}{
		{name: "no Origin", host: "example.com", want: true},
		{name: "same host", host: "example.com", origin: "https://example.com", want: true},
		{name: "same host and port", host: "example.com:8080", origin: "http://example.com:8080", want: true},
		{name: "different host", host: "example.com", origin: "https://evil.example", want: false},
		{name: "suffix host", host: "example.com", origin: "https://evilexample.com", want: false},
		{name: "different port", host: "example.com:8080", origin: "http://example.com:9090", want: false},
		{name: "port only on one side", host: "example.com:8080", origin: "http://example.com", want: false},
		{name: "case-insensitive", host: "Example.COM", origin: "HTTPS://EXAMPLE.com", want: true},
		{name: "null", host: "example.com", origin: "null", want: false},
		{name: "IPv6", host: "[::1]:8080", origin: "http://[::1]:8080", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := []string{"GET / HTTP/1.1", "Host: " + tt.host}
			if tt.origin != "" {
				lines = append(lines, "Origin: "+tt.origin)
			}
			if got := hsParsed(t, hsRequest(lines...)).SameOrigin(); got != tt.want {
				t.Errorf("SameOrigin = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOriginHost(t *testing.T) {
	tests := []struct {
		name   string
		origin string
		want   string
	}{
		{name: "host", origin: "https://example.com", want: "example.com"},
		{name: "host and port", origin: "http://example.com:8443", want: "example.com:8443"},
		{name: "trailing path", origin: "http://example.com/x?y#z", want: "example.com"},
		{name: "null", origin: "null", want: ""},
		{name: "no scheme", origin: "://example.com", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OriginHost([]byte(tt.origin)); string(got) != tt.want {
				t.Errorf("OriginHost(%q) = %q, want %q", tt.origin, got, tt.want)
			}
		})
	}
}
