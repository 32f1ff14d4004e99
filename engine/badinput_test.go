package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// Bad input from one peer must cost that peer its connection, with the
// right HTTP status or close code, and nothing else: each test keeps a
// bystander connected on the same loop and echoes through it after every
// case.

// draft76Request is a hixie-76 handshake as old browsers sent it, with the
// 8-byte key3 after the head.
const draft76Request = "GET /demo HTTP/1.1\r\n" +
	"Host: gale.test\r\n" +
	"Connection: Upgrade\r\n" +
	"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n" +
	"Sec-WebSocket-Protocol: sample\r\n" +
	"Upgrade: WebSocket\r\n" +
	"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n" +
	"Origin: http://gale.test\r\n" +
	"\r\n" +
	"^n:ds[4U"

func TestHandshakeRejected(t *testing.T) {
	tests := []struct {
		name   string
		req    string
		status int
		header map[string]string // response fields that must be present
	}{
		{name: "bad key", req: rawRequest("Sec-WebSocket-Key: c2hvcnQ="), status: 400},
		{name: "missing key", req: rawRequest("Sec-WebSocket-Key:"), status: 400},
		{name: "missing Host", req: rawRequest("Host:"), status: 400},
		{name: "Connection without upgrade", req: rawRequest("Connection: keep-alive"), status: 400},
		{name: "HTTP/1.0", req: rawRequest("GET / HTTP/1.0"), status: 400},
		{name: "malformed request line", req: "GET\r\nHost: gale.test\r\n\r\n", status: 400},
		{name: "POST", req: rawRequest("POST / HTTP/1.1"), status: 405, header: map[string]string{"Allow": "GET"}},
		{name: "version 8", req: rawRequest("Sec-WebSocket-Version: 8"), status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"}},
		{name: "draft-76", req: draft76Request, status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "header block over MaxHeaderBytes", req: rawRequest("X-Pad: " + strings.Repeat("a", 2048)), status: 431},
		{name: "plain HTTP GET", req: "GET /index.html HTTP/1.1\r\nHost: gale.test\r\n\r\n", status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"}},
	}
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, MaxHeaderBytes: 1024, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rejected := srv.Stats().Rejected
			rc := dialRaw(t, srv.Addr())
			rc.write([]byte(tt.req))
			resp, body := rc.readResponse()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s (%q), want %d", resp.Status, body, tt.status)
			}
			for k, v := range tt.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if !resp.Close {
				t.Errorf("response lacks Connection: close")
			}
			rc.expectDropped()
			pollUntil(t, "Rejected to count it", func() bool { return srv.Stats().Rejected == rejected+1 })
			waitOpenCount(t, srv, 1)
			by.check(t)
		})
	}
	if n := tr.opened(); n != 1 {
		t.Errorf("OnOpen called for %d connections, want 1 (the bystander)", n)
	}
}

func TestHandshakeFallback(t *testing.T) {
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger(),
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Fallback", r.Method+" "+r.URL.Path)
			w.WriteHeader(http.StatusTeapot)
			fmt.Fprintf(w, "fallback for %s\n", r.Header.Get("X-Who"))
		}),
	})
	by := dialBystander(t, srv.Addr())

	rc := dialRaw(t, srv.Addr())
	rc.write([]byte("GET /health HTTP/1.1\r\nHost: gale.test\r\nX-Who: probe\r\n\r\n"))
	resp, body := rc.readResponse()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Fallback") != "GET /health" || body != "fallback for probe\n" {
		t.Fatalf("fallback answered %s %v %q", resp.Status, resp.Header, body)
	}
	rc.expectDropped()

	// An upgrade request, even a bad one, is not the fallback's.
	rc = dialRaw(t, srv.Addr())
	rc.write([]byte(rawRequest("Sec-WebSocket-Key: c2hvcnQ=")))
	if resp, body := rc.readResponse(); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad upgrade answered %s %q, want 400", resp.Status, body)
	}
	rc.expectDropped()

	pollUntil(t, "Rejected == 2", func() bool { return srv.Stats().Rejected == 2 })
	waitOpenCount(t, srv, 1)
	by.check(t)
}

func TestHandshakeOrigin(t *testing.T) {
	// CheckOrigin replaces the whole policy: this one lets the bystander
	// (no Origin) in.
	byOrigin := func(r *UpgradeRequest) bool { return r.Origin == nil || string(r.Origin) == "https://checked.test" }
	tests := []struct {
		name    string
		allowed []string
		check   func(*UpgradeRequest) bool
		origin  string // "" sends none
		status  int
	}{
		{name: "same host: no Origin", status: 101},
		{name: "same host: same", origin: "http://gale.test", status: 101},
		{name: "same host: other scheme and case", origin: "https://GALE.test", status: 101},
		{name: "same host: cross-origin", origin: "http://evil.test", status: 403},
		{name: "same host: other port", origin: "http://gale.test:8080", status: 403},
		{name: "same host: null", origin: "null", status: 403},
		{name: "allowed: listed", allowed: []string{"https://app.test"}, origin: "https://app.test", status: 101},
		{name: "allowed: other scheme", allowed: []string{"https://app.test"}, origin: "http://app.test", status: 403},
		{name: "allowed: same host not listed", allowed: []string{"https://app.test"}, origin: "http://gale.test", status: 403},
		{name: "allowed: no Origin", allowed: []string{"https://app.test"}, status: 101},
		{name: "allowed: star", allowed: []string{"*"}, origin: "http://evil.test", status: 101},
		{name: "check: accepted", check: byOrigin, origin: "https://checked.test", status: 101},
		{name: "check: refused", check: byOrigin, origin: "http://gale.test", status: 403},
		{name: "check overrides allowed", allowed: []string{"*"}, check: byOrigin, origin: "http://evil.test", status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t)
			srv := startServer(t, tr, Config{Loops: 1, AllowedOrigins: tt.allowed, CheckOrigin: tt.check, Logger: discardLogger()})
			by := dialBystander(t, srv.Addr())
			rc := dialRaw(t, srv.Addr())
			var extra []string
			if tt.origin != "" {
				extra = append(extra, "Origin: "+tt.origin)
			}
			rc.write([]byte(rawRequest(extra...)))
			resp, body := rc.readResponse()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s (%q), want %d", resp.Status, body, tt.status)
			}
			if tt.status == http.StatusSwitchingProtocols {
				rc.write(rawFrame(codec.OpText, true, []byte("hi")))
				if op, p := rc.readMessage(); op != codec.OpText || string(p) != "hi" {
					t.Fatalf("echo: %v %q", op, p)
				}
			} else {
				rc.expectDropped()
				waitOpenCount(t, srv, 1)
			}
			by.check(t)
		})
	}
}

// upgradeSeen is what Config.OnUpgrade copied out of a request.
type upgradeSeen struct {
	method, path, query, custom, cookie, remote, preselected string
}

func TestOnUpgrade(t *testing.T) {
	seen := make(chan upgradeSeen, 8)
	logs := &lockedBuffer{}
	tr := newTracker(t)
	srv := startServer(t, tr, Config{
		Loops:        1,
		Subprotocols: []string{"chat.v1", "chat.v2"},
		Logger:       slogTo(logs),
		OnUpgrade: func(r *UpgradeRequest) error {
			switch string(r.Path) {
			case "/deny":
				return &Reject{Status: http.StatusUnauthorized, Header: http.Header{"Www-Authenticate": {`Basic realm="gale"`}}, Body: "who are you?\n"}
			case "/forbid":
				return errors.New("no")
			case "/panic":
				panic("upgrade hook exploded")
			}
			cookie, _ := r.Cookie("session")
			seen <- upgradeSeen{
				method: string(r.Method), path: string(r.Path), query: string(r.Query),
				custom: string(r.Request.Header("X-Custom")), cookie: string(cookie),
				remote: r.RemoteAddr.String(), preselected: r.Subprotocol,
			}
			r.Subprotocol = "chat.v2"
			r.ResponseHeader = http.Header{"X-Gale": {"yes"}}
			r.UserData = "ctx:" + string(r.Query)
			return nil
		},
	})
	// The hook picks chat.v2 for every connection, the bystander's too.
	by := dialBystander(t, srv.Addr(), "chat.v2")
	rawRecv(t, seen, "the bystander's OnUpgrade")

	t.Run("accepted", func(t *testing.T) {
		rc := dialRaw(t, srv.Addr())
		rc.write([]byte(rawRequest("GET /chat?room=1 HTTP/1.1", "X-Custom: custom value",
			"Cookie: theme=dark; session=abc123", "Sec-WebSocket-Protocol: chat.v1, chat.v2")))
		resp, _ := rc.readResponse()
		if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != "chat.v2" || resp.Header.Get("X-Gale") != "yes" {
			t.Fatalf("response %s %v", resp.Status, resp.Header)
		}
		want := upgradeSeen{method: "GET", path: "/chat", query: "room=1", custom: "custom value",
			cookie: "abc123", remote: rc.addr(), preselected: "chat.v1"}
		if got := rawRecv(t, seen, "OnUpgrade"); got != want {
			t.Errorf("OnUpgrade saw %+v, want %+v", got, want)
		}
		l := tr.find(t, rc.addr())
		if l.ctx != "ctx:room=1" || l.conn.Subprotocol() != "chat.v2" {
			t.Errorf("OnOpen saw Context %v, Subprotocol %q", l.ctx, l.conn.Subprotocol())
		}
		rc.write(rawFrame(codec.OpText, true, []byte("hi")))
		if op, p := rc.readMessage(); op != codec.OpText || string(p) != "hi" {
			t.Fatalf("echo: %v %q", op, p)
		}
	})

	rejects := []struct {
		name   string
		path   string
		status int
		header map[string]string
		body   string // "" to skip
	}{
		{name: "Reject", path: "/deny", status: 401,
			header: map[string]string{"Www-Authenticate": `Basic realm="gale"`}, body: "who are you?\n"},
		{name: "plain error", path: "/forbid", status: 403},
		{name: "panic", path: "/panic", status: 500},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, srv.Addr())
			rc.write([]byte(rawRequest("GET " + tt.path + " HTTP/1.1")))
			resp, body := rc.readResponse()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d", resp.Status, tt.status)
			}
			for k, v := range tt.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			rc.expectDropped()
			by.check(t)
		})
	}
	if !strings.Contains(logs.String(), "upgrade hook exploded") {
		t.Errorf("the OnUpgrade panic was not logged: %q", logs.String())
	}
	if n := tr.opened(); n != 2 {
		t.Errorf("OnOpen called %d times, want 2", n)
	}
}

func TestHandshakeByteByByte(t *testing.T) {
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
	rc := dialRaw(t, srv.Addr())
	for _, b := range []byte(rawRequest("Origin: http://gale.test", "X-Filler: some more bytes to parse")) {
		rc.write([]byte{b})
		time.Sleep(time.Millisecond) // each byte its own segment, its own OnTraffic
	}
	if resp, body := rc.readResponse(); resp.StatusCode != 101 {
		t.Fatalf("status %s %q", resp.Status, body)
	}
	rc.write(rawFrame(codec.OpText, true, []byte("slowly")))
	if op, p := rc.readMessage(); op != codec.OpText || string(p) != "slowly" {
		t.Fatalf("echo: %v %q", op, p)
	}
}

// TestHandshakePipelined: frames sent right behind the request, in the
// same segment, are read as frames.
func TestHandshakePipelined(t *testing.T) {
	srv := startServer(t, newTracker(t), Config{Loops: 1, Logger: discardLogger()})
	rc := dialRaw(t, srv.Addr())
	rc.write(append([]byte(rawRequest()), append(rawFrame(codec.OpText, true, []byte("one")), rawFrame(codec.OpText, true, []byte("two"))...)...))
	if resp, body := rc.readResponse(); resp.StatusCode != 101 {
		t.Fatalf("status %s %q", resp.Status, body)
	}
	for _, want := range []string{"one", "two"} {
		if _, p := rc.readMessage(); string(p) != want {
			t.Fatalf("echo %q, want %q", p, want)
		}
	}
}

func TestHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	req := []byte(rawRequest())
	tests := []struct {
		name string
		send func(rc *rawClient) // starts the never-finished request
	}{
		{name: "silent", send: func(*rawClient) {}},
		{name: "half a request", send: func(rc *rawClient) { rc.write(req[:len(req)/2]) }},
		{name: "dribbling", send: func(rc *rawClient) {
			// A slowloris: a byte every 20 ms keeps the socket busy but
			// never finishes the head. Runs until the server drops it.
			go func() {
				for _, b := range req[:len(req)-2] {
					if _, err := rc.conn.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}},
	}
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, HandshakeTimeout: timeout, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			rc := dialRaw(t, srv.Addr())
			tt.send(rc)
			rc.expectDropped()
			// Lenient: the wheel fires within a tick or two of the
			// deadline, earlier if the loop's ticks ran late.
			if d := time.Since(start); d < timeout/2 {
				t.Errorf("dropped after %v, before the %v handshake timeout", d, timeout)
			}
			waitOpenCount(t, srv, 1)
			by.check(t)
		})
	}
	if n := tr.opened(); n != 1 {
		t.Errorf("OnOpen called for %d connections, want 1 (the bystander)", n)
	}
}

// TestHandshakeAfterIdleLoop: a loop with no connection gets no ticks, so
// its wheel stands still; the first connection after a long idle spell
// must still get its whole handshake timeout, not a deadline already past.
// The idle spell (2 h) is made by startIdleServer, and the test waits for
// the loop to process ticks with the request half sent: a deadline armed on
// the stale wheel would fire on the first of them, the right one is an
// hour away.
func TestHandshakeAfterIdleLoop(t *testing.T) {
	const timeout = time.Hour
	srv := startIdleServer(t, newTracker(t), Config{Loops: 1, HandshakeTimeout: timeout, CloseTimeout: time.Second,
		Logger: discardLogger()}, 2*timeout)
	rc := dialRaw(t, srv.Addr())
	req := []byte(rawRequest())
	rc.write(req[:10])
	waitWheelAdvanced(t, srv)
	rc.write(req[10:])
	if resp, body := rc.readResponse(); resp.StatusCode != 101 {
		t.Fatalf("status %s %q", resp.Status, body)
	}
}

// split cuts p in two at i, for sending in two writes.
func split(p []byte, i int) [][]byte { return [][]byte{p[:i:i], p[i:]} }

func TestFrameViolations(t *testing.T) {
	const maxMsg = 1024
	text := func(fin bool, p string) []byte { return rawFrame(codec.OpText, fin, []byte(p)) }
	cont := func(fin bool, p string) []byte { return rawFrame(codec.OpContinuation, fin, []byte(p)) }
	closeWith := func(p []byte) []byte { return rawFrame(codec.OpClose, true, p) }
	headerOnly := func(h codec.Header) []byte {
		h.Masked, h.Mask = true, rawMask
		return codec.AppendFrameHeader(nil, h)
	}
	withRsv := func(rsv byte) []byte {
		return codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: rsv, Opcode: codec.OpText, Masked: true, Mask: rawMask}, []byte("x"))
	}
	// "ab" then the first two bytes of "€" (E2 82 AC), then 'A' where AC belongs.
	const brokenRune = "ab\xe2\x82Acd"
	bigFirst := text(false, strings.Repeat("a", 600))
	overflow := []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}

	type tcase struct {
		name   string
		writes [][]byte // each in its own write
		code   codec.StatusCode
		err    error // the codec sentinel OnClose must wrap
	}
	tests := []tcase{
		{name: "reserved opcode 3", writes: [][]byte{rawFrame(3, true, nil)}, code: 1002, err: codec.ErrReservedOpcode},
		{name: "reserved opcode 0xB", writes: [][]byte{rawFrame(0xB, true, nil)}, code: 1002, err: codec.ErrReservedOpcode},
		{name: "RSV1", writes: [][]byte{withRsv(codec.Rsv1)}, code: 1002, err: codec.ErrReservedBits},
		{name: "RSV2", writes: [][]byte{withRsv(codec.Rsv2)}, code: 1002, err: codec.ErrReservedBits},
		{name: "RSV3", writes: [][]byte{withRsv(codec.Rsv3)}, code: 1002, err: codec.ErrReservedBits},
		{name: "unmasked", writes: [][]byte{codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText}, []byte("hi"))},
			code: 1002, err: codec.ErrMaskRequired},
		{name: "ping of 126 bytes", writes: [][]byte{rawFrame(codec.OpPing, true, make([]byte, 126))}, code: 1002, err: codec.ErrControlTooLong},
		{name: "fragmented ping", writes: [][]byte{rawFrame(codec.OpPing, false, []byte("p"))}, code: 1002, err: codec.ErrControlFragmented},
		{name: "continuation first", writes: [][]byte{cont(true, "x")}, code: 1002, err: codec.ErrUnexpectedContinue},
		{name: "text inside fragmented message", writes: [][]byte{text(false, "a"), text(true, "b")}, code: 1002, err: codec.ErrExpectedContinuation},
		{name: "invalid UTF-8", writes: [][]byte{text(true, "ok \xff")}, code: 1007, err: codec.ErrInvalidUTF8},
		{name: "UTF-8 truncated at message end", writes: [][]byte{text(true, "ab\xe2\x82")}, code: 1007, err: codec.ErrInvalidUTF8},
		{name: "invalid UTF-8 across frames", writes: [][]byte{append(text(false, brokenRune[:4]), cont(true, brokenRune[4:])...)},
			code: 1007, err: codec.ErrInvalidUTF8},
		{name: "invalid UTF-8 across frames and writes", writes: [][]byte{text(false, brokenRune[:4]), cont(true, brokenRune[4:])},
			code: 1007, err: codec.ErrInvalidUTF8},
		// The frame header is 6 bytes; cut after "ab\xe2\x82".
		{name: "invalid UTF-8 across TCP writes", writes: split(text(true, brokenRune), 6+4), code: 1007, err: codec.ErrInvalidUTF8},
		{name: "close payload of 1 byte", writes: [][]byte{closeWith([]byte{3})}, code: 1002, err: codec.ErrCloseTooShort},
		{name: "close reason not UTF-8", writes: [][]byte{closeWith(rawClosePayload(1000, "bye \xc0"))}, code: 1007, err: codec.ErrCloseReasonUTF8},
		// Only the header is sent: 1009 must not wait for the payload.
		{name: "frame over the limit", writes: [][]byte{headerOnly(codec.Header{Fin: true, Opcode: codec.OpBinary, Length: maxMsg + 1})},
			code: 1009, err: codec.ErrFrameTooBig},
		{name: "huge frame", writes: [][]byte{headerOnly(codec.Header{Fin: true, Opcode: codec.OpBinary, Length: 1 << 62})},
			code: 1009, err: codec.ErrFrameTooBig},
		{name: "fragments over the limit", writes: [][]byte{append(bigFirst, headerOnly(codec.Header{Fin: true, Opcode: codec.OpContinuation, Length: 600})...)},
			code: 1009, err: codec.ErrMessageTooBig},
		{name: "length with the top bit set", writes: [][]byte{overflow}, code: 1002, err: codec.ErrLengthOverflow},
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		tests = append(tests, tcase{name: fmt.Sprintf("close code %d", code),
			writes: [][]byte{closeWith(rawClosePayload(code, ""))}, code: 1002, err: codec.ErrCloseCode})
	}

	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, MaxMessageSize: maxMsg, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	wantCloses := map[codec.StatusCode]uint64{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			for i, w := range tt.writes {
				if i > 0 {
					// Let the server take the first part in a read of its
					// own; the outcome must not depend on it.
					time.Sleep(20 * time.Millisecond)
				}
				rc.write(w)
			}
			rc.expectClose(tt.code)
			rc.expectDropped()
			err := tr.closed(t, rc.addr())
			if got := codec.CloseStatus(err); got != tt.code || !errors.Is(err, tt.err) {
				t.Errorf("OnClose got %v (code %d), want %v (code %d)", err, got, tt.err, tt.code)
			}
			wantCloses[tt.code]++
			by.check(t)
		})
	}
	waitOpenCount(t, srv, 1)
	st := srv.Stats()
	for code, n := range wantCloses {
		if st.Closes[code] != n {
			t.Errorf("Stats().Closes[%d] = %d, want %d", code, st.Closes[code], n)
		}
	}
}

// TestMessageAtLimit: a message of exactly MaxMessageSize, whole or in
// fragments, is accepted.
func TestMessageAtLimit(t *testing.T) {
	const maxMsg = 1024
	p := bytes.Repeat([]byte("m"), maxMsg)
	tests := []struct {
		name   string
		frames []byte
	}{
		{name: "one frame", frames: rawFrame(codec.OpBinary, true, p)},
		{name: "fragments", frames: append(rawFrame(codec.OpBinary, false, p[:600]), rawFrame(codec.OpContinuation, true, p[600:])...)},
	}
	srv := startServer(t, newTracker(t), Config{Loops: 1, MaxMessageSize: maxMsg, Logger: discardLogger()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			rc.write(tt.frames)
			if _, got := rc.readMessage(); !bytes.Equal(got, p) {
				t.Fatalf("echo of %d bytes", len(got))
			}
		})
	}
}

func TestPeerVanishes(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 1000)
	whole := rawFrame(codec.OpBinary, true, payload)
	tail := rawFrame(codec.OpContinuation, true, payload)
	tests := []struct {
		name string
		sent []byte // then the socket is closed
	}{
		{name: "between frames", sent: nil},
		{name: "mid header", sent: whole[:3]},
		{name: "mid payload", sent: whole[:500]},
		{name: "mid fragmented message", sent: append(rawFrame(codec.OpBinary, false, payload), tail[:500]...)},
		{name: "mid close frame", sent: rawFrame(codec.OpClose, true, rawClosePayload(1000, "bye"))[:5]},
	}
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			if len(tt.sent) > 0 {
				rc.write(tt.sent)
			}
			addr := rc.addr()
			tr.find(t, addr)
			rc.conn.Close()
			err := tr.closed(t, addr)
			if err == nil || codec.CloseStatus(err) != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("OnClose got %v, want a transport error", err)
			}
			waitOpenCount(t, srv, 1)
			by.check(t)
		})
	}
	if got := srv.Stats().Closes[codec.StatusAbnormalClosure]; got != uint64(len(tests)) {
		t.Errorf("Stats().Closes[1006] = %d, want %d", got, len(tests))
	}
}

// TestHandshakeNotHTTP: a peer speaking something else on a plain port (a
// TLS client, a binary protocol) is answered 400 and dropped on its first
// bytes, not left until the handshake timeout waiting for a line end that
// never comes.
func TestHandshakeNotHTTP(t *testing.T) {
	const timeout = 10 * time.Second
	srv := startServer(t, newTracker(t), Config{Loops: 1, HandshakeTimeout: timeout, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	tests := []struct {
		name  string
		bytes string
	}{
		// A TLS 1.2+ ClientHello record header and the start of its body.
		{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
		{"binary", "\x00\x01\x02\x03\xff\xfe"},
		{"method not a token", "GE(T / HTTP/1.1"},
		{"HTTP/2 preface", "PRI * HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, srv.Addr())
			start := time.Now()
			rc.write([]byte(tt.bytes))
			// Far under the handshake timeout, generous for a slow machine.
			rc.conn.SetReadDeadline(start.Add(timeout / 4))
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil {
				t.Fatalf("after %v: %v, want a 400 well before the %v handshake timeout", time.Since(start), err, timeout)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || string(body) != codec.ErrMalformedRequest.Msg+"\n" {
				t.Fatalf("answered %s %q, want 400 %q", resp.Status, body, codec.ErrMalformedRequest.Msg)
			}
			rc.expectDropped()
		})
	}
	by.check(t)
}

// TestHandshakeEmptyLinesFirst: empty lines before the request line are
// skipped (RFC 9112 §2.2), for an upgrade and for the fallback handler.
func TestHandshakeEmptyLinesFirst(t *testing.T) {
	srv := startServer(t, newTracker(t), Config{Loops: 1, Logger: discardLogger(),
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Fallback", r.Method+" "+r.URL.Path)
			w.WriteHeader(http.StatusTeapot)
		}),
	})
	for _, first := range []string{"\r\n", "\n", "\r\n\n"} {
		rc := dialRaw(t, srv.Addr())
		rc.write([]byte(first + rawRequest()))
		if resp, body := rc.readResponse(); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%q first: upgrade answered %s %q", first, resp.Status, body)
		}
		rc.write(rawFrame(codec.OpText, true, []byte("after empty lines")))
		if _, p := rc.readMessage(); string(p) != "after empty lines" {
			t.Fatalf("%q first: echo %q", first, p)
		}

		rc = dialRaw(t, srv.Addr())
		rc.write([]byte(first + "GET /health HTTP/1.1\r\nHost: gale.test\r\n\r\n"))
		if resp, body := rc.readResponse(); resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Fallback") != "GET /health" {
			t.Fatalf("%q first: fallback answered %s %v %q", first, resp.Status, resp.Header, body)
		}
	}
}
