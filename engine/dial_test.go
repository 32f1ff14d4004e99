package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/galews/gale/codec"
)

// gorillaEcho is a third-party echo server: gorilla's Upgrader and a
// goroutine per connection, as its docs recommend.
func gorillaEcho(t *testing.T, tlsServer bool) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"chat"}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetReadLimit(16 << 10)
		for {
			op, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(op, p); err != nil {
				return
			}
		}
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

func testURL(s *httptest.Server) string {
	return "ws" + strings.TrimPrefix(s.URL, "http")
}

// seedWalkthrough is the acceptance scenario of the project's second seed:
// one message as three frames (FIN 0, 0, 1), the echo read frame by frame
// until FIN, then Close 1000 with a reason and the echoed code checked.
func seedWalkthrough(t *testing.T, c *ClientConn, echoesReason bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	lines := []string{"This is the 1st frame\r\n", "This is the 2nd frame\r\n", "This is the 3rd frame\r\n"}
	for i, line := range lines {
		op := codec.OpText
		if i > 0 {
			op = codec.OpContinuation
		}
		if err := c.WriteFrame(op, []byte(line), i == len(lines)-1); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	var msg []byte
	for {
		f, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		t.Logf("frame: opcode=%v fin=%v len=%d", f.Opcode, f.Fin, len(f.Payload))
		if f.Opcode.IsControl() {
			continue
		}
		msg = append(msg, f.Payload...)
		if f.Fin {
			break
		}
	}
	if got, want := string(msg), strings.Join(lines, ""); got != want {
		t.Fatalf("echo %q, want %q", got, want)
	}
	ce, err := c.CloseHandshake(codec.StatusNormalClosure, "Closing this websocket.", 5*time.Second)
	if err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	if ce.Code != codec.StatusNormalClosure {
		t.Fatalf("server answered close %v, want 1000", ce)
	}
	if echoesReason && ce.Reason != "Closing this websocket." {
		t.Fatalf("server answered reason %q, want the one sent", ce.Reason)
	}
	t.Logf("close answered: %d %q", ce.Code, ce.Reason)
}

func TestClientSeedWalkthroughGorilla(t *testing.T) {
	srv := gorillaEcho(t, false)
	c, err := Dial(t.Context(), testURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	seedWalkthrough(t, c, false) // gorilla answers with the code only
}

func TestClientSeedWalkthroughGale(t *testing.T) {
	srv, err := NewServer(echo{}, Config{MaxMessageSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c, err := Dial(t.Context(), "ws://"+srv.Addr().String()+"/wsChilkatEcho.ashx", nil)
	if err != nil {
		t.Fatal(err)
	}
	seedWalkthrough(t, c, true)
}

func TestClientMessagesAndTLS(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "ws", true: "wss"}[secure]
		t.Run(name, func(t *testing.T) {
			srv := gorillaEcho(t, secure)
			opts := &DialOptions{Subprotocols: []string{"x", "chat"}}
			if secure {
				opts.TLSConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			}
			c, err := Dial(t.Context(), testURL(srv), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Subprotocol() != "chat" {
				t.Fatalf("subprotocol %q", c.Subprotocol())
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for _, n := range []int{0, 1, 125, 126, 65535 % (16 << 10), 16 << 10} {
				msg := []byte(strings.Repeat("é", n/2) + strings.Repeat("a", n%2))
				if err := c.WriteMessage(codec.OpText, msg); err != nil {
					t.Fatal(err)
				}
				op, got, err := c.ReadMessage()
				if err != nil || op != codec.OpText || string(got) != string(msg) {
					t.Fatalf("n=%d: op=%v len=%d err=%v", n, op, len(got), err)
				}
			}
			// The server's 16 KiB limit: gorilla closes with 1009.
			c.WriteMessage(codec.OpBinary, make([]byte, 20<<10))
			_, _, err = c.ReadMessage()
			if codec.CloseStatus(err) != codec.StatusMessageTooBig {
				t.Fatalf("oversize: %v, want close 1009", err)
			}
		})
	}
}

func TestClientReadTimeout(t *testing.T) {
	srv := gorillaEcho(t, false)
	c, err := Dial(t.Context(), testURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err = c.ReadMessage()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

// rawServer accepts one connection and runs fn on it.
func rawServer(t *testing.T, fn func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fn(c)
	}()
	return "ws://" + ln.Addr().String() + "/"
}

// readKey reads the client's request head and returns its key.
func readKey(c net.Conn) []byte {
	buf := make([]byte, 0, 4096)
	var req codec.Request
	for {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if _, perr := req.Parse(buf, 0); perr == nil {
			return append([]byte(nil), req.Key...)
		}
		if err != nil {
			return nil
		}
	}
}

// badServer is a server that answers the upgrade request wrongly; both
// clients must fail their dial with want.
type badServer struct {
	name  string
	serve func(c net.Conn, key []byte)
	want  error // errMidHandshake: closed before the response was complete
	proto []string
}

var errMidHandshake = errors.New("closed mid-handshake")

func badServers() []badServer {
	accept := func(key []byte) string { return string(codec.AppendAccept(nil, key)) }
	upgrade := func(c net.Conn, extra string, key []byte) {
		c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + extra + "Sec-WebSocket-Accept: " + accept(key) + "\r\n\r\n"))
	}
	return []badServer{
		{
			name:  "200 instead of 101",
			serve: func(c net.Conn, _ []byte) { c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) },
			want:  codec.ErrResponseStatus,
		},
		{
			name:  "wrong accept key",
			serve: func(c net.Conn, _ []byte) { upgrade(c, "", []byte("not the key")) },
			want:  codec.ErrAccept,
		},
		{
			name:  "unoffered subprotocol",
			serve: func(c net.Conn, key []byte) { upgrade(c, "Sec-WebSocket-Protocol: evil\r\n", key) },
			proto: []string{"chat"},
			want:  codec.ErrProtocolNotOffer,
		},
		{
			name:  "unoffered extension",
			serve: func(c net.Conn, key []byte) { upgrade(c, "Sec-WebSocket-Extensions: permessage-deflate\r\n", key) },
			want:  codec.ErrExtensionNotOffer,
		},
		{
			name:  "closed mid-handshake",
			serve: func(c net.Conn, _ []byte) { c.Write([]byte("HTTP/1.1 101 Switching")) },
			want:  errMidHandshake,
		},
	}
}

// checkBadServerErr checks a failed dial's error against the case.
func checkBadServerErr(t *testing.T, tt badServer, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatal("Dial succeeded")
	case tt.want == errMidHandshake:
		if !strings.Contains(err.Error(), "closed") {
			t.Fatalf("got %v, want a closed-mid-handshake error", err)
		}
	case !errors.Is(err, tt.want):
		t.Fatalf("got %v, want %v", err, tt.want)
	}
}

func TestClientBadServer(t *testing.T) {
	for _, tt := range badServers() {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, func(c net.Conn) { tt.serve(c, readKey(c)) })
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := Dial(ctx, url, &DialOptions{Subprotocols: tt.proto})
			checkBadServerErr(t, tt, err)
		})
	}
}

func TestClientMaskedServerFrame(t *testing.T) {
	url := rawServer(t, func(c net.Conn) {
		key := readKey(c)
		c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(codec.AppendAccept(nil, key)) + "\r\n\r\n"))
		c.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, []byte("hi")))
		// The client must answer with Close 1002 before dropping.
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		h, hn, err := codec.DecodeFrameHeader(buf[:n])
		if err != nil || h.Opcode != codec.OpClose || n < hn+2 {
			return
		}
		payload := buf[hn : hn+int(h.Length)]
		codec.Mask(payload, h.Mask, 0)
		if code, _, _ := codec.ParseClosePayload(payload); code == codec.StatusProtocolError {
			c.Write([]byte("ok"))
		}
	})
	c, err := Dial(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	if !errors.Is(err, codec.ErrMaskUnexpected) || codec.CloseStatus(err) != codec.StatusProtocolError {
		t.Fatalf("got %v, want ErrMaskUnexpected (1002)", err)
	}
}
