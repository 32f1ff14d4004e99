package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// galeEcho starts Gale's echo server with a subprotocol ("chat") and a
// 16 KiB message limit. With secure set, the URL it returns is wss:// to a
// TLS terminator in front of the server (Gale's server speaks plain TCP),
// and roots holds that terminator's certificate.
func galeEcho(t *testing.T, secure bool) (url string, roots *x509.CertPool) {
	t.Helper()
	srv := startServer(t, echo{}, Config{Loops: 1, Subprotocols: []string{"chat"}, MaxMessageSize: 16 << 10, Logger: discardLogger()})
	if !secure {
		return wsURL(srv), nil
	}
	// httptest's certificate (for 127.0.0.1), borrowed from a TLS server
	// started for that only.
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	hs.StartTLS()
	cfg := hs.TLS.Clone()
	roots = hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	hs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			}()
		}
	}()
	return "wss://" + ln.Addr().String() + "/", roots
}

// closeWalkthrough is an acceptance scenario for a client:
// one message as three frames (FIN 0, 0, 1), the echo read frame by frame
// until FIN, then Close 1000 with a reason and the echoed code checked.
func closeWalkthrough(t *testing.T, c *ClientConn, echoesReason bool) {
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
	if err := c.Close(codec.StatusNormalClosure, "Closing this websocket."); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	var ce *codec.CloseError
	if _, _, err := c.ReadMessage(); !errors.As(err, &ce) {
		t.Fatalf("read after Close: %v, want the server's Close", err)
	}
	if ce.Code != codec.StatusNormalClosure {
		t.Fatalf("server answered close %v, want 1000", ce)
	}
	if echoesReason && ce.Reason != "Closing this websocket." {
		t.Fatalf("server answered reason %q, want the one sent", ce.Reason)
	}
	t.Logf("close answered: %d %q", ce.Code, ce.Reason)
}

// TestClientWalkthroughGorilla (against gorilla's server, which answers
// a Close with the code only) is in bench/interop.

func TestClientWalkthroughGale(t *testing.T) {
	srv, err := NewServer(echo{}, Config{MaxMessageSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c, err := Dial(t.Context(), "ws://"+srv.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	closeWalkthrough(t, c, true)
}

// TestClientMessagesAndTLS: Dial against Gale's server, plain and through
// TLS, with a subprotocol and the server's message limit. bench/interop
// runs the same against gorilla's server.
func TestClientMessagesAndTLS(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "ws", true: "wss"}[secure]
		t.Run(name, func(t *testing.T) {
			url, roots := galeEcho(t, secure)
			opts := &DialOptions{Subprotocols: []string{"x", "chat"}}
			if secure {
				opts.TLSConfig = &tls.Config{RootCAs: roots}
			}
			c, err := Dial(t.Context(), url, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
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
			// The server's 16 KiB limit: it closes with 1009.
			c.WriteMessage(codec.OpBinary, make([]byte, 20<<10))
			_, _, err = c.ReadMessage()
			if codec.CloseStatus(err) != codec.StatusMessageTooBig {
				t.Fatalf("oversize: %v, want close 1009", err)
			}
		})
	}
}

func TestClientReadTimeout(t *testing.T) {
	url, _ := galeEcho(t, false)
	c, err := Dial(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
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
	serverErr := make(chan error, 1)
	url := rawServer(t, func(c net.Conn) {
		upgradeAccept(c)
		c.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, []byte("hi")))
		// The client must answer with Close 1002 before dropping.
		code, err := readClientClose(c)
		if err == nil && code != codec.StatusProtocolError {
			err = fmt.Errorf("client sent Close %d, want 1002", code)
		}
		serverErr <- err
	})
	c, err := Dial(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	if !errors.Is(err, codec.ErrMaskUnexpected) || codec.CloseStatus(err) != codec.StatusProtocolError {
		t.Fatalf("got %v, want ErrMaskUnexpected (1002)", err)
	}
	select {
	case err := <-serverErr:
		if err != nil {
			t.Errorf("server side: %v", err)
		}
	case <-time.After(rawWait):
		t.Error("server side: no verdict on the client's Close")
	}
}

// upgradeAccept answers the client's request on c with a valid 101.
func upgradeAccept(c net.Conn) {
	key := readKey(c)
	c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(codec.AppendAccept(nil, key)) + "\r\n\r\n"))
}

// readClientClose reads the Close frame the client sends on c and returns
// its code, or an error saying what came instead.
func readClientClose(c net.Conn) (codec.StatusCode, error) {
	buf := make([]byte, 0, 256)
	for {
		if h, hn, err := codec.DecodeFrameHeader(buf); err == nil && len(buf) >= hn+int(h.Length) {
			if h.Opcode != codec.OpClose || !h.Masked {
				return 0, fmt.Errorf("got a %v frame (masked %v), want a masked Close", h.Opcode, h.Masked)
			}
			payload := buf[hn : hn+int(h.Length)]
			codec.Mask(payload, h.Mask, 0)
			code, _, err := codec.ParseClosePayload(payload)
			return code, err
		} else if err != nil && err != codec.ErrNeedMore {
			return 0, err
		}
		if len(buf) == cap(buf) {
			return 0, fmt.Errorf("no Close frame in %q", buf)
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return 0, fmt.Errorf("after %q: %w", buf, err)
		}
	}
}

// TestClientInvalidUTF8FailsFast: a text frame declaring 1 MiB whose first
// bytes are not UTF-8, the rest never sent. The client must fail with 1007
// on the bytes that arrived, not wait for a frame that never completes.
func TestClientInvalidUTF8FailsFast(t *testing.T) {
	tests := []struct {
		name  string
		first string
	}{
		{"invalid byte", "ok \xff"},
		{"impossible rune prefix", "ab\xed\xa0"}, // a surrogate: no continuation can fix it
		{"invalid in a continuation", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverErr := make(chan error, 1)
			release := make(chan struct{})
			url := rawServer(t, func(c net.Conn) {
				upgradeAccept(c)
				var w []byte
				op, first := codec.OpText, tt.first
				if first == "" {
					w = codec.AppendFrame(w, codec.Header{Opcode: codec.OpText}, []byte("fine so far"))
					op, first = codec.OpContinuation, "\xc0\xaf" // an overlong '/'
				}
				w = codec.AppendFrameHeader(w, codec.Header{Fin: true, Opcode: op, Length: 1 << 20})
				w = append(w, first...)
				c.Write(w)
				// Stall: the rest of the frame never comes.
				code, err := readClientClose(c)
				if err == nil && code != codec.StatusInvalidPayloadData {
					err = fmt.Errorf("client sent Close %d, want 1007", code)
				}
				serverErr <- err
				<-release
			})
			defer close(release)
			c, err := Dial(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			// Generous for a slow machine; a correct client fails in milliseconds,
			// one that waits for the frame fails only at this deadline.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = c.ReadMessage()
			if !errors.Is(err, codec.ErrInvalidUTF8) {
				t.Fatalf("got %v, want ErrInvalidUTF8 (1007) before the frame completes", err)
			}
			if err := <-serverErr; err != nil {
				t.Error(err)
			}
		})
	}
}

// TestClientHugeContinuation: a continuation declaring 2⁶³-1 bytes after a
// first fragment. The message limit must hold even though the declared
// length plus the bytes already received overflows int64.
func TestClientHugeContinuation(t *testing.T) {
	serverErr := make(chan error, 1)
	url := rawServer(t, func(c net.Conn) {
		upgradeAccept(c)
		w := codec.AppendFrame(nil, codec.Header{Opcode: codec.OpBinary}, []byte("a"))
		w = codec.AppendFrameHeader(w, codec.Header{Fin: true, Opcode: codec.OpContinuation, Length: 1<<63 - 1})
		c.Write(w)
		code, err := readClientClose(c)
		if err == nil && code != codec.StatusMessageTooBig {
			err = fmt.Errorf("client sent Close %d, want 1009", code)
		}
		serverErr <- err
	})
	c, err := Dial(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	if !errors.Is(err, codec.ErrMessageTooBig) {
		t.Fatalf("got %v, want ErrMessageTooBig (1009)", err)
	}
	if err := <-serverErr; err != nil {
		t.Error(err)
	}
}
