package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// rawTLS is a client connection whose ciphertext the test can hold back,
// corrupt or write itself.
type rawTLS struct {
	net.Conn // the TCP socket
	mu       sync.Mutex
	hold     bool   // keep what crypto/tls writes in held instead of sending it
	held     []byte // records held back
	flip     bool   // corrupt the next record sent
}

func (r *rawTLS) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold {
		r.held = append(r.held, p...)
		return len(p), nil
	}
	if r.flip {
		r.flip = false
		p = bytes.Clone(p)
		p[len(p)-1] ^= 0x80 // in the AEAD tag: the record cannot authenticate
	}
	return r.Conn.Write(p)
}

// dialRawTLS opens a TLS connection to srv over a rawTLS and upgrades it.
func dialRawTLS(t *testing.T, srv *Server) (*tls.Conn, *rawTLS) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := &rawTLS{Conn: nc}
	tc := tls.Client(r, testCerts(t).client())
	t.Cleanup(func() { nc.Close() })
	wsOver(t, tc)
	return tc, r
}

// waitClosed waits until the server closes nc: a read ends (EOF, reset).
func waitClosed(t *testing.T, nc net.Conn, what string) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(testTimeout))
	got, err := io.ReadAll(nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server did not close the connection", what)
	}
	return got
}

// TestTLSBadInput: garbage before a ClientHello, plain HTTP, a handshake
// that stalls, a record that does not authenticate, an oversized record
// and a peer vanishing mid-record each end their connection promptly,
// with one log line where the server decided; a bystander keeps echoing
// throughout, and the server shuts down cleanly.
func TestTLSBadInput(t *testing.T) {
	var log lockedBuffer
	rec := newRecorder()
	srv := startTLSServer(t, rec, Config{HandshakeTimeout: 500 * time.Millisecond, Logger: slogTo(&log)})
	bystander := dialTLS(t, srv, nil)
	recv(t, rec.opens, "bystander open")
	alive := func(what string) {
		t.Helper()
		echoRoundTrip(t, bystander, codec.OpText, []byte("still here after "+what))
	}
	logged := func(what, line string, want int) {
		t.Helper()
		deadline := time.Now().Add(testTimeout)
		for strings.Count(log.String(), line) < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := strings.Count(log.String(), line); n != want {
			t.Errorf("%s: %q logged %d times, want %d:\n%s", what, line, n, want, log.String())
		}
	}

	t.Run("garbage", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64))
		waitClosed(t, nc, "garbage")
		logged("garbage", "tls handshake failed", 1)
		alive("garbage")
	})

	t.Run("plain HTTP", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n")
		got := waitClosed(t, nc, "plain HTTP")
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("answer %q: %v", got, err)
		}
		logged("plain HTTP", "tls handshake failed", 2)
		alive("plain HTTP")
	})

	t.Run("stalled handshake", func(t *testing.T) {
		for _, send := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00, 0x01}} { // nothing; half a ClientHello
			nc, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			nc.Write(send)
			waitClosed(t, nc, "stalled handshake") // at HandshakeTimeout
			nc.Close()
		}
		logged("stalled handshake", "tls handshake failed", 4)
		alive("stalled handshakes")
	})

	t.Run("record that does not authenticate", func(t *testing.T) {
		tc, r := dialRawTLS(t, srv)
		recv(t, rec.opens, "open")
		r.mu.Lock()
		r.flip = true
		r.mu.Unlock()
		tc.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText, Masked: true, Length: 1}, []byte("x")))
		waitClosed(t, r.Conn, "bad record")
		var te *TLSError
		if err := recv(t, rec.closes, "OnClose"); !errors.As(err, &te) {
			t.Errorf("OnClose got %v, want a *TLSError", err)
		}
		logged("bad record", "tls: closing the connection", 1)
		alive("a bad record")
	})

	t.Run("oversized record", func(t *testing.T) {
		_, r := dialRawTLS(t, srv)
		recv(t, rec.opens, "open")
		hdr := []byte{0x17, 0x03, 0x03, 0xff, 0xff} // 65535 bytes: more than any record may hold
		r.Conn.Write(append(hdr, make([]byte, 1024)...))
		waitClosed(t, r.Conn, "oversized record")
		var te *TLSError
		if err := recv(t, rec.closes, "OnClose"); !errors.As(err, &te) {
			t.Errorf("OnClose got %v, want a *TLSError", err)
		}
		logged("oversized record", "tls: closing the connection", 2)
		alive("an oversized record")
	})

	t.Run("peer vanishes mid-record", func(t *testing.T) {
		tc, r := dialRawTLS(t, srv)
		recv(t, rec.opens, "open")
		r.mu.Lock()
		r.hold = true
		r.mu.Unlock()
		tc.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpBinary, Masked: true, Length: 4096}, make([]byte, 4096)))
		r.mu.Lock()
		half := r.held[:len(r.held)/2]
		r.mu.Unlock()
		r.Conn.Write(half)
		r.Conn.Close()
		recv(t, rec.closes, "OnClose") // the half record is dropped with the socket
		alive("a peer vanished mid-record")
	})

	if st := srv.Stats(); st.TLSHandshakeErrors != 4 {
		t.Errorf("Stats.TLSHandshakeErrors = %d, want 4", st.TLSHandshakeErrors)
	}
}

// TestTLSShutdownDuringHandshake: Shutdown does not wait for a handshake
// that stalls (it is cut at once), and returns.
func TestTLSShutdownDuringHandshake(t *testing.T) {
	srv, err := NewServer(echo{}, Config{TLS: testCerts(t).server(), HandshakeTimeout: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{0x16, 0x03, 0x01}) // a record header begun
	time.Sleep(50 * time.Millisecond)  // let the handshake start; not a timing assertion
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, nc, "handshake at shutdown")
}
