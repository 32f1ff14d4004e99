package codec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// hsRequest joins header lines into a request head ending in a blank line.
func hsRequest(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

// hsChromium is what Chrome sends for new WebSocket("ws://example.com:8080/chat?room=1").
var hsChromium = hsRequest(
	"GET /chat?room=1 HTTP/1.1",
	"Host: example.com:8080",
	"Connection: Upgrade",
	"Pragma: no-cache",
	"Cache-Control: no-cache",
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"Upgrade: websocket",
	"Origin: http://example.com:8080",
	"Sec-WebSocket-Version: 13",
	"Accept-Encoding: gzip, deflate, br",
	"Accept-Language: en-US,en;q=0.9",
	"Cookie: session=abc123; theme=dark",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
)

// hsMinimal builds a valid request from the lines that differ from a minimal
// one: the request line, then header lines.
func hsMinimal(requestLine string, extra ...string) string {
	return hsRequest(append([]string{
		requestLine,
		"Host: example.com",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version: 13",
	}, extra...)...)
}

// hsView is a Request's view as strings, nil slices as "".
type hsView struct {
	Method, URI, Path, Query string
	HasQuery                 bool
	Minor                    int
	Host, Upgrade            string
	Connection               string
	Key, Version             string
	Protocol, Extensions     string
	Origin                   string
}

func hsViewOf(r *Request) hsView {
	return hsView{
		Method:     string(r.Method),
		URI:        string(r.URI),
		Path:       string(r.Path),
		Query:      string(r.Query),
		HasQuery:   r.Query != nil,
		Minor:      r.Minor,
		Host:       string(r.Host),
		Upgrade:    string(r.Upgrade),
		Connection: string(r.Connection),
		Key:        string(r.Key),
		Version:    string(r.Version),
		Protocol:   string(r.Protocol),
		Extensions: string(r.Extensions),
		Origin:     string(r.Origin),
	}
}

// hsFields lists a scanner's fields as "name: value".
func hsFields(s HeaderScanner) []string {
	var out []string
	for {
		k, v, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, string(k)+": "+string(v))
	}
}

func hsStatus(err error) int {
	var he *HandshakeError
	if !errors.As(err, &he) {
		return -1
	}
	return he.Status
}

func TestRequestParseValid(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	tests := []struct {
		name string
		req  string
		want hsView
	}{
		{
			name: "chromium",
			req:  hsChromium,
			want: hsView{
				Method:     "GET",
				URI:        "/chat?room=1",
				Path:       "/chat",
				Query:      "room=1",
				HasQuery:   true,
				Minor:      1,
				Host:       "example.com:8080",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
				Extensions: "permessage-deflate; client_max_window_bits",
				Origin:     "http://example.com:8080",
			},
		},
		{
			name: "keep-alive, Upgrade and WebSocket",
			req: hsRequest(
				"GET /socket HTTP/1.1",
				"Host: 127.0.0.1:9001",
				"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
				"Sec-WebSocket-Version: 13",
				"Origin: null",
				"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
				"Connection: keep-alive, Upgrade",
				"Upgrade: WebSocket",
			),
			want: hsView{
				Method:     "GET",
				URI:        "/socket",
				Path:       "/socket",
				Minor:      1,
				Host:       "127.0.0.1:9001",
				Upgrade:    "WebSocket",
				Connection: "keep-alive, Upgrade",
				Key:        "x3JJHMbDL1EzLkh9GBhXDw==",
				Version:    "13",
				Origin:     "null",
			},
		},
		{
			name: "lower-case names",
			req: hsRequest(
				"GET / HTTP/1.1",
				"host: example.com",
				"upgrade: websocket",
				"connection: upgrade",
				"sec-websocket-key: "+key,
				"sec-websocket-version: 13",
				"sec-websocket-protocol: chat",
				"origin: https://example.com",
			),
			want: hsView{
				Method:     "GET",
				URI:        "/",
				Path:       "/",
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "upgrade",
				Key:        key,
				Version:    "13",
				Protocol:   "chat",
				Origin:     "https://example.com",
			},
		},
		{
			name: "upper-case names and tokens",
			req: hsRequest(
				"GET /UP HTTP/1.1",
				"HOST: EXAMPLE.COM",
				"UPGRADE: WEBSOCKET",
				"CONNECTION: UPGRADE",
				"SEC-WEBSOCKET-KEY: "+key,
				"SEC-WEBSOCKET-VERSION: 13",
				"SEC-WEBSOCKET-EXTENSIONS: x-foo",
			),
			want: hsView{
				Method:     "GET",
				URI:        "/UP",
				Path:       "/UP",
				Minor:      1,
				Host:       "EXAMPLE.COM",
				Upgrade:    "WEBSOCKET",
				Connection: "UPGRADE",
				Key:        key,
				Version:    "13",
				Extensions: "x-foo",
			},
		},
		{
			name: "LF-only line endings",
			req:  strings.ReplaceAll(hsMinimal("GET /lf HTTP/1.1"), "\r\n", "\n"),
			want: hsView{
				Method:     "GET",
				URI:        "/lf",
				Path:       "/lf",
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "mixed CRLF and LF",
			req:  "GET /mixed HTTP/1.1\nHost: example.com\r\nUpgrade: websocket\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\nSec-WebSocket-Version: 13\r\n\n",
			want: hsView{
				Method:     "GET",
				URI:        "/mixed",
				Path:       "/mixed",
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "absolute-form target",
			req:  hsMinimal("GET ws://example.com:9000/chat/room?x=1&y=2 HTTP/1.1"),
			want: hsView{
				Method:     "GET",
				URI:        "ws://example.com:9000/chat/room?x=1&y=2",
				Path:       "/chat/room",
				Query:      "x=1&y=2",
				HasQuery:   true,
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "absolute-form target without path",
			req:  hsMinimal("GET http://example.com HTTP/1.1"),
			want: hsView{
				Method:     "GET",
				URI:        "http://example.com",
				Path:       "/",
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "absolute-form target with query but no path",
			req:  hsMinimal("GET https://example.com?token=t HTTP/1.1"),
			want: hsView{
				Method:     "GET",
				URI:        "https://example.com?token=t",
				Path:       "/",
				Query:      "token=t",
				HasQuery:   true,
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "query string with escapes and empty value",
			req:  hsMinimal("GET /ws?token=a%20b&x=&path=http://x/y HTTP/1.1"),
			want: hsView{
				Method:     "GET",
				URI:        "/ws?token=a%20b&x=&path=http://x/y",
				Path:       "/ws",
				Query:      "token=a%20b&x=&path=http://x/y",
				HasQuery:   true,
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "empty query",
			req:  hsMinimal("GET /ws? HTTP/1.1"),
			want: hsView{
				Method:     "GET",
				URI:        "/ws?",
				Path:       "/ws",
				HasQuery:   true,
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "several Sec-WebSocket-Protocol lines",
			req: hsMinimal("GET /multi HTTP/1.1",
				"Sec-WebSocket-Protocol: chat, superchat",
				"Sec-WebSocket-Protocol: v2.chat",
			),
			want: hsView{
				Method:     "GET",
				URI:        "/multi",
				Path:       "/multi",
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
				Protocol:   "chat, superchat",
			},
		},
		{
			name: "Connection split over two lines, OWS and tabs trimmed",
			req: hsRequest(
				"GET / HTTP/1.1",
				"Host:\texample.com \t",
				"Upgrade:websocket",
				"Connection: keep-alive",
				"Connection:   Upgrade  ",
				"Sec-WebSocket-Key: "+key+" ",
				"Sec-WebSocket-Version:13",
			),
			want: hsView{
				Method:     "GET",
				URI:        "/",
				Path:       "/",
				Minor:      1,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "keep-alive",
				Key:        key,
				Version:    "13",
			},
		},
		{
			name: "empty line (CRLF) before the request line",
			req:  "\r\n" + hsMinimal("GET / HTTP/1.1"),
			want: hsView{Method: "GET", URI: "/", Path: "/", Minor: 1, Host: "example.com", Upgrade: "websocket",
				Connection: "Upgrade", Key: key, Version: "13"},
		},
		{
			name: "the most empty lines skipped, LF and CRLF",
			req:  "\n\r\n\n\r\n" + hsMinimal("GET / HTTP/1.1"),
			want: hsView{Method: "GET", URI: "/", Path: "/", Minor: 1, Host: "example.com", Upgrade: "websocket",
				Connection: "Upgrade", Key: key, Version: "13"},
		},
		{
			name: "HTTP/1.2 and obs-text in a value",
			req:  hsMinimal("GET / HTTP/1.2", "X-Name: caf\xc3\xa9"),
			want: hsView{
				Method:     "GET",
				URI:        "/",
				Path:       "/",
				Minor:      2,
				Host:       "example.com",
				Upgrade:    "websocket",
				Connection: "Upgrade",
				Key:        key,
				Version:    "13",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Bytes after the head (a first frame) must not be consumed.
			in := []byte(tt.req + "\x81\x85")
			var r Request
			n, err := r.Parse(in, 0)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n != len(tt.req) {
				t.Errorf("Parse consumed %d bytes, want %d", n, len(tt.req))
			}
			if got := hsViewOf(&r); got != tt.want {
				t.Errorf("view:\n got %+v\nwant %+v", got, tt.want)
			}
			if err := r.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestRequestValidateErrors(t *testing.T) {
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
	big := strings.Repeat("X-Padding: "+strings.Repeat("a", 100)+"\r\n", 80) // 9 KiB
	tests := []struct {
		name   string
		req    string
		max    int
		want   *HandshakeError
		status int
	}{
		{
			name:   "POST",
			req:    strings.Replace(hsChromium, "GET", "POST", 1),
			want:   ErrMethod,
			status: 405,
		},
		{
			name:   "HEAD",
			req:    hsMinimal("HEAD / HTTP/1.1"),
			want:   ErrMethod,
			status: 405,
		},
		{
			name:   "lower-case get",
			req:    hsMinimal("get / HTTP/1.1"),
			want:   ErrMethod,
			status: 405,
		},
		{
			name:   "HTTP/1.0",
			req:    hsMinimal("GET / HTTP/1.0"),
			want:   ErrHTTPVersion,
			status: 400,
		},
		{
			name:   "missing Host",
			req:    hsRequest("GET / HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade", key, "Sec-WebSocket-Version: 13"),
			want:   ErrMissingHost,
			status: 400,
		},
		{
			name:   "duplicate Host",
			req:    hsMinimal("GET / HTTP/1.1", "Host: evil.example"),
			want:   ErrMissingHost,
			status: 400,
		},
		{
			name:   "empty Host",
			req:    hsRequest("GET / HTTP/1.1", "Host:", "Upgrade: websocket", "Connection: Upgrade", key, "Sec-WebSocket-Version: 13"),
			want:   ErrMissingHost,
			status: 400,
		},
		{
			name:   "Connection without upgrade token",
			req:    strings.Replace(hsChromium, "Connection: Upgrade", "Connection: keep-alive", 1),
			want:   ErrConnectionHeader,
			status: 400,
		},
		{
			name:   "Connection token is only a prefix",
			req:    strings.Replace(hsChromium, "Connection: Upgrade", "Connection: Upgraded, close", 1),
			want:   ErrConnectionHeader,
			status: 400,
		},
		{
			name:   "no Connection",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", key, "Sec-WebSocket-Version: 13"),
			want:   ErrConnectionHeader,
			status: 400,
		},
		{
			name:   "no Upgrade but a key",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Connection: Upgrade", key, "Sec-WebSocket-Version: 13"),
			want:   ErrUpgradeHeader,
			status: 400,
		},
		{
			name:   "Upgrade h2c with a key",
			req:    strings.Replace(hsChromium, "Upgrade: websocket", "Upgrade: h2c", 1),
			want:   ErrUpgradeHeader,
			status: 400,
		},
		{
			name:   "plain HTTP GET",
			req:    hsRequest("GET /index.html HTTP/1.1", "Host: example.com", "Accept: text/html"),
			want:   ErrNotUpgrade,
			status: 426,
		},
		{
			name:   "plain HTTP/1.0 POST",
			req:    hsRequest("POST /form HTTP/1.0", "Content-Length: 0"),
			want:   ErrNotUpgrade,
			status: 426,
		},
		{
			name:   "version 8",
			req:    strings.Replace(hsChromium, "Version: 13", "Version: 8", 1),
			want:   ErrVersion,
			status: 426,
		},
		{
			name:   "version list",
			req:    strings.Replace(hsChromium, "Version: 13", "Version: 13, 8", 1),
			want:   ErrVersion,
			status: 426,
		},
		{
			name:   "missing version",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", key),
			want:   ErrVersion,
			status: 426,
		},
		{
			name:   "duplicate version",
			req:    hsMinimal("GET / HTTP/1.1", "Sec-WebSocket-Version: 13"),
			want:   ErrDuplicateHeader,
			status: 400,
		},
		{
			name: "draft-76",
			req: hsRequest(
				"GET /demo HTTP/1.1",
				"Host: example.com",
				"Connection: Upgrade",
				"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00",
				"Sec-WebSocket-Protocol: sample",
				"Upgrade: WebSocket",
				"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5",
				"Origin: http://example.com",
			) + "^n:ds[4U",
			want:   ErrDraft76,
			status: 426,
		},
		{
			name:   "key of 23 characters",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=", "Sec-WebSocket-Version: 13"),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "key not base64",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2!jZQ==", "Sec-WebSocket-Version: 13"),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "key decodes to 15 bytes",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j", "Sec-WebSocket-Version: 13"),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "key decodes to 17 bytes",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQA=", "Sec-WebSocket-Version: 13"),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "key with bad padding",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j====", "Sec-WebSocket-Version: 13"),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "missing key",
			req:    hsRequest("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "duplicated key",
			req:    hsMinimal("GET / HTTP/1.1", key),
			want:   ErrKey,
			status: 400,
		},
		{
			name:   "space before colon",
			req:    strings.Replace(hsChromium, "Host:", "Host :", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "obs-fold",
			req:    strings.Replace(hsChromium, "Pragma: no-cache\r\n", "Pragma: no-cache\r\n  , more\r\n", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "obs-fold with tab and colon",
			req:    strings.Replace(hsChromium, "Pragma: no-cache\r\n", "Pragma: no-cache\r\n\tX-A: b\r\n", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "control character in value",
			req:    strings.Replace(hsChromium, "no-cache", "no\x01cache", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "NUL in value",
			req:    strings.Replace(hsChromium, "no-cache", "no\x00cache", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "DEL in value",
			req:    strings.Replace(hsChromium, "no-cache", "no\x7fcache", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "bare CR in value",
			req:    strings.Replace(hsChromium, "no-cache", "no\rcache", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "no colon",
			req:    strings.Replace(hsChromium, "Pragma: no-cache", "Pragma no-cache", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "empty name",
			req:    strings.Replace(hsChromium, "Pragma: no-cache", ": no-cache", 1),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "request line without version",
			req:    hsMinimal("GET /chat"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "request line with four parts",
			req:    hsMinimal("GET /chat HTTP/1.1 x"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "request line with two spaces",
			req:    hsMinimal("GET  /chat HTTP/1.1"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "method not a token",
			req:    hsMinimal("G(T / HTTP/1.1"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "lower-case protocol",
			req:    hsMinimal("GET / http/1.1"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "version with a colon for a digit",
			req:    hsMinimal("GET / HTTP/1.:"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "two-digit minor version",
			req:    hsMinimal("GET / HTTP/1.10"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "HTTP/2.0",
			req:    hsMinimal("GET / HTTP/2.0"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "control character in target",
			req:    hsMinimal("GET /a\x01b HTTP/1.1"),
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "five empty lines before the request line",
			req:    "\r\n\r\n\n\r\n\r\n" + hsChromium,
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "CR without LF before the request line",
			req:    "\r" + hsChromium,
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "space before the request line",
			req:    " " + hsChromium,
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "HTTP/2 connection preface",
			req:    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			want:   ErrMalformedRequest,
			status: 400,
		},
		{
			name:   "head past the cap made by empty lines",
			req:    "\r\n\r\n" + hsChromium,
			max:    len(hsChromium) + 3,
			want:   ErrHeaderTooLarge,
			status: 431,
		},
		{
			name:   "head past the default cap, complete",
			req:    strings.Replace(hsChromium, "Pragma: no-cache\r\n", big, 1),
			want:   ErrHeaderTooLarge,
			status: 431,
		},
		{
			name:   "head past the default cap, incomplete",
			req:    "GET / HTTP/1.1\r\n" + big,
			want:   ErrHeaderTooLarge,
			status: 431,
		},
		{
			name:   "head one byte past a custom cap",
			req:    hsChromium,
			max:    len(hsChromium) - 1,
			want:   ErrHeaderTooLarge,
			status: 431,
		},
		{
			name:   "incomplete head past a custom cap",
			req:    hsChromium[:200],
			max:    100,
			want:   ErrHeaderTooLarge,
			status: 431,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			n, err := r.Parse([]byte(tt.req), tt.max)
			if err == nil {
				err = r.Validate()
			} else if n != 0 {
				t.Errorf("Parse failed but consumed %d bytes", n)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := hsStatus(err); got != tt.status {
				t.Errorf("status = %d, want %d", got, tt.status)
			}
		})
	}
}

func TestRequestParseCap(t *testing.T) {
	in := []byte(hsChromium)
	var r Request
	if _, err := r.Parse(in, len(in)); err != nil {
		t.Errorf("head exactly at the cap: %v", err)
	}
	r.Reset()
	if _, err := r.Parse(in[:len(in)-1], len(in)-1); err != ErrNeedMore {
		t.Errorf("incomplete head at the cap: %v, want ErrNeedMore", err)
	}
}

// TestRequestParseSplit feeds a request through every prefix of the bytes it
// arrives in, to one Request, as a server would between reads.
func TestRequestParseSplit(t *testing.T) {
	tests := []struct {
		name string
		req  string
	}{
		{
			name: "chromium",
			req:  hsChromium,
		},
		{
			name: "LF only",
			req:  strings.ReplaceAll(hsChromium, "\r\n", "\n"),
		},
		{
			name: "draft-76",
			req:  hsRequest("GET /demo HTTP/1.1", "Host: example.com", "Connection: Upgrade", "Upgrade: WebSocket", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5", "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00"),
		},
		{
			name: "malformed field",
			req:  strings.Replace(hsChromium, "Host:", "Host :", 1),
		},
		{
			name: "CR between lines",
			req:  "GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n",
		},
		{
			name: "empty lines first",
			req:  "\r\n\n" + hsChromium,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.req + "\x88\x80rest")
			var want Request
			wantN, wantErr := want.Parse(in, 0)
			wantValid := want.Validate()

			check := func(t *testing.T, r *Request, p []byte) {
				t.Helper()
				n, err := r.Parse(p, 0)
				if len(p) < len(tt.req) {
					if err != ErrNeedMore || n != 0 {
						t.Fatalf("Parse(p[:%d]) = %d, %v; want 0, ErrNeedMore", len(p), n, err)
					}
					return
				}
				if n != wantN || err != wantErr {
					t.Fatalf("Parse(p[:%d]) = %d, %v; want %d, %v", len(p), n, err, wantN, wantErr)
				}
				if err != nil {
					return
				}
				if got, want := hsViewOf(r), hsViewOf(&want); got != want {
					t.Fatalf("Parse(p[:%d]) view:\n got %+v\nwant %+v", len(p), got, want)
				}
				if got, want := hsFields(r.Headers()), hsFields(want.Headers()); !slices.Equal(got, want) {
					t.Fatalf("Parse(p[:%d]) fields %q, want %q", len(p), got, want)
				}
				if err := r.Validate(); err != wantValid {
					t.Fatalf("Validate after p[:%d] = %v, want %v", len(p), err, wantValid)
				}
			}

			t.Run("prefixes", func(t *testing.T) {
				var r Request
				for i := 0; i <= len(in); i++ {
					check(t, &r, in[:i])
				}
			})
			t.Run("byte by byte", func(t *testing.T) {
				var r Request
				var buf []byte // grows by append, so its array moves
				for _, c := range in {
					buf = append(buf, c)
					check(t, &r, buf)
				}
			})
		})
	}
}

// A head that never ends is scanned once, not once per byte.
func TestRequestParseScansOnce(t *testing.T) {
	in := []byte("GET / HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 100))
	var r Request
	for i := 1; i <= len(in); i++ {
		if _, err := r.Parse(in[:i], 0); err != ErrNeedMore {
			t.Fatal(err)
		}
		if r.head.scanned < i-3 {
			t.Fatalf("after %d bytes the scanner restarted at %d", i, r.head.scanned)
		}
	}
	// Reused without Reset on shorter bytes: no panic, a correct answer.
	if _, err := r.Parse([]byte(hsChromium), 0); err != nil {
		t.Fatal(err)
	}
}

// TestRequestParseNotHTTP: bytes that cannot begin a request line are
// refused on the byte that makes a valid one impossible, not after waiting
// for a line end that a TLS client or a binary protocol never sends.
func TestRequestParseNotHTTP(t *testing.T) {
	// The start of a TLS 1.3 ClientHello record: handshake, TLS 1.0 record version.
	clientHello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
	tests := []struct {
		name string
		in   string
		at   int // the length of the shortest prefix refused
	}{
		{"TLS ClientHello", clientHello, 1},
		{"NUL bytes", "\x00\x00\x00\x00", 1},
		{"WebSocket frame", "\x81\x85\x37\xfa\x21\x3d", 1},
		{"SSH banner", "SSH-2.0-OpenSSH_9.6\r\n", len("SSH-2.0-OpenSSH_9.6") + 1},
		{"method not a token", "GE(T / HTTP/1.1\r\n", 3},
		{"space first", " GET / HTTP/1.1\r\n", 1},
		{"two spaces after the method", "GET  / HTTP/1.1\r\n", 5},
		{"control in the target", "GET /a\x01b HTTP/1.1\r\n", 7},
		{"line ends after the method", "GET\r\n", 4},
		{"line ends in the target", "GET /chat\n", 10},
		{"lower-case protocol", "GET / http/1.1\r\n", 7},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n", 12},
		{"two-digit minor", "GET / HTTP/1.10\r\n", 15},
		{"CR CR LF", "GET / HTTP/1.1\r\r\n", 16},
		{"after an empty line", "\r\n\x16\x03\x01", 3},
		{"too many empty lines", "\r\n\r\n\r\n\r\n\r\n", 9},
		{"CR then not LF", "\r\x16", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			for i := 1; i <= len(tt.in); i++ {
				n, err := r.Parse([]byte(tt.in[:i]), 0)
				want := ErrNeedMore
				if i >= tt.at {
					want = ErrMalformedRequest
				}
				if n != 0 || err != want {
					t.Fatalf("Parse(in[:%d]) = %d, %v; want 0, %v", i, n, err, want)
				}
			}
		})
	}
}

// TestRequestParseValidPrefixes: every prefix of a valid request line (in
// each of its forms) waits for more, so the early refusal never cuts a
// request that would parse.
func TestRequestParseValidPrefixes(t *testing.T) {
	for _, line := range []string{
		"GET / HTTP/1.1\r\n",
		"GET /chat?x=caf\xc3\xa9 HTTP/1.0\n",
		"M-SEARCH * HTTP/1.9\r\n",
		"GET http://example.com:80/x HTTP/1.1\r\n",
		"\r\n\nGET / HTTP/1.1\r\n",
	} {
		var r Request
		for i := 0; i <= len(line); i++ {
			if _, err := r.Parse([]byte(line[:i]), 0); err != ErrNeedMore {
				t.Fatalf("%q: Parse(line[:%d]) = %v, want ErrNeedMore", line, i, err)
			}
		}
	}
}

// The request line is checked once as it arrives, not once per byte.
func TestRequestParseLineScansOnce(t *testing.T) {
	in := []byte("GET /" + strings.Repeat("a", 4000))
	var r Request
	for i := 1; i <= len(in); i++ {
		if _, err := r.Parse(in[:i], 0); err != ErrNeedMore {
			t.Fatal(err)
		}
		if r.line.pos != i {
			t.Fatalf("after %d bytes the line scan is at %d", i, r.line.pos)
		}
	}
}
