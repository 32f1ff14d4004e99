package codec

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestAppendAccept(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want string
	}{
		{
			name: "RFC 6455 section 1.3",
			key:  "dGhlIHNhbXBsZSBub25jZQ==",
			want: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
		},
		{
			name: "RFC 6455 section 1.2 client key",
			key:  "x3JJHMbDL1EzLkh9GBhXDw==",
			want: "HSmrc0sMlYUkAGmm5OPpG2HaGWk=",
		},
		{
			name: "key longer than 28 bytes takes the streaming path",
			key:  strings.Repeat("k", 40),
			want: "GVvUU5IihR2eT0KQ2Ib+uuN3v3c=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendAccept([]byte("prefix:"), []byte(tt.key))
			if string(got) != "prefix:"+tt.want {
				t.Errorf("AppendAccept = %q, want %q", got, "prefix:"+tt.want)
			}
		})
	}
}

func hsReadResponse(t *testing.T, wire []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(wire)), nil)
	if err != nil {
		t.Fatalf("http.ReadResponse: %v\n%s", err, wire)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, body
}

func TestAppendUpgradeResponse(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	tests := []struct {
		name       string
		protocol   string
		extensions string
		extra      http.Header
		want       http.Header // fields that must be there, exactly
		absent     []string
	}{
		{
			name: "bare",
			want: http.Header{
				"Sec-Websocket-Accept": {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
			},
			absent: []string{"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"},
		},
		{
			name:       "protocol, extensions and extra headers",
			protocol:   "chat",
			extensions: "permessage-deflate; server_no_context_takeover",
			extra: http.Header{
				"X-Request-Id": {"42"},
				"Set-Cookie":   {"a=1", "b=2"},
			},
			want: http.Header{
				"Sec-Websocket-Accept":     {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
				"Sec-Websocket-Protocol":   {"chat"},
				"Sec-Websocket-Extensions": {"permessage-deflate; server_no_context_takeover"},
				"X-Request-Id":             {"42"},
				"Set-Cookie":               {"a=1", "b=2"},
			},
		},
		{
			name:     "CR LF injection neutralised",
			protocol: "chat\r\nX-Injected: 1",
			extra: http.Header{
				"X-Evil":   {"a\r\nInjected: yes\r\n\r\nbody"},
				"Bad Name": {"x"},
				"X-Nul":    {"a\x00b"},
			},
			want: http.Header{
				"Sec-Websocket-Protocol": {"chat  X-Injected: 1"},
				"X-Evil":                 {"a  Injected: yes    body"},
				"X-Nul":                  {"a b"},
			},
			absent: []string{"Injected", "X-Injected", "Bad Name"},
		},
		{
			name: "extra cannot repeat the handshake fields",
			extra: http.Header{
				"Sec-Websocket-Accept": {"forged"},
				"Upgrade":              {"h2c"},
				"connection":           {"close"},
			},
			want: http.Header{
				"Sec-Websocket-Accept": {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
				"Upgrade":              {"websocket"},
				"Connection":           {"Upgrade"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := AppendUpgradeResponse([]byte("keep"), []byte(key), []byte(tt.protocol), []byte(tt.extensions), tt.extra)
			if !bytes.HasPrefix(wire, []byte("keep")) {
				t.Fatalf("dst prefix lost: %q", wire)
			}
			wire = wire[4:]
			resp, _ := hsReadResponse(t, wire)
			if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Connection") != "Upgrade" {
				t.Errorf("status line or upgrade fields wrong:\n%s", wire)
			}
			for k, vs := range tt.want {
				if got := resp.Header.Values(k); !slices.Equal(got, vs) {
					t.Errorf("%s = %q, want %q", k, got, vs)
				}
			}
			for _, k := range tt.absent {
				if v, ok := resp.Header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("%s present: %q", k, v)
				}
			}
			if strings.ContainsAny(tt.protocol, "\r\n") {
				return // the client offered what the server did not echo
			}
			// Gale's own client accepts it.
			var r Response
			if n, err := r.Parse(wire, 0); err != nil || n != len(wire) {
				t.Fatalf("Response.Parse = %d, %v", n, err)
			}
			req := ClientRequest{Protocols: []string{tt.protocol}, Extensions: tt.extensions}
			if err := r.Validate([]byte(key), &req); err != nil {
				t.Errorf("Response.Validate: %v", err)
			}
		})
	}
}

func TestAppendHandshakeError(t *testing.T) {
	errs := []*HandshakeError{
		ErrHeaderTooLarge, ErrMalformedRequest, ErrNotUpgrade, ErrMethod, ErrHTTPVersion,
		ErrMissingHost, ErrConnectionHeader, ErrUpgradeHeader, ErrKey, ErrVersion, ErrDraft76,
		ErrDuplicateHeader, ErrForbiddenOrigin, ErrAccept,
	}
	for _, e := range errs {
		t.Run(e.Msg, func(t *testing.T) {
			wire := AppendHandshakeError(nil, e)
			resp, body := hsReadResponse(t, wire)
			want := max(e.Status, 400)
			if resp.StatusCode != want {
				t.Errorf("status %d, want %d", resp.StatusCode, want)
			}
			if string(body) != e.Msg+"\n" || resp.ContentLength != int64(len(body)) {
				t.Errorf("body %q with Content-Length %d", body, resp.ContentLength)
			}
			if !resp.Close {
				t.Error("response does not close the connection")
			}
			switch want {
			case 426:
				if !bytes.Contains(wire, []byte("\r\nSec-WebSocket-Version: 13\r\n")) {
					t.Errorf("426 lacks Sec-WebSocket-Version: 13:\n%s", wire)
				}
				// (net/http drops a Connection field holding "close", so look at the bytes.)
				if resp.Header.Get("Upgrade") != "websocket" || !bytes.Contains(wire, []byte("\r\nConnection: Upgrade, close\r\n")) {
					t.Errorf("426 lacks Upgrade or its Connection option:\n%s", wire)
				}
			case 405:
				if !bytes.Contains(wire, []byte("\r\nAllow: GET\r\n")) {
					t.Errorf("405 lacks Allow: GET:\n%s", wire)
				}
			}
		})
	}
}

func TestAppendRejectResponse(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		extra       http.Header
		body        string
		contentType string
	}{
		{
			name:        "403 with a header",
			status:      403,
			extra:       http.Header{"X-Reason": {"origin"}},
			body:        "forbidden\n",
			contentType: "text/plain; charset=utf-8",
		},
		{
			name:        "own content type, framing fields ignored",
			status:      401,
			extra:       http.Header{"Content-Type": {"application/json"}, "Content-Length": {"1"}, "Transfer-Encoding": {"chunked"}, "Connection": {"keep-alive"}, "Www-Authenticate": {"Bearer"}},
			body:        `{"error":"token"}`,
			contentType: "application/json",
		},
		{
			name:        "empty body",
			status:      404,
			contentType: "text/plain; charset=utf-8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := hsReadResponse(t, AppendRejectResponse(nil, tt.status, tt.extra, []byte(tt.body)))
			if resp.StatusCode != tt.status || string(body) != tt.body || !resp.Close {
				t.Errorf("got %d %q close=%v", resp.StatusCode, body, resp.Close)
			}
			if got := resp.Header.Values("Content-Type"); len(got) != 1 || got[0] != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			for k, vs := range tt.extra {
				switch k {
				case "Content-Type", "Content-Length", "Transfer-Encoding", "Connection":
					continue
				}
				if got := resp.Header.Values(k); !slices.Equal(got, vs) {
					t.Errorf("%s = %q, want %q", k, got, vs)
				}
			}
		})
	}
}
