package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// startTLSServer starts a server speaking TLS with the test certificate.
func startTLSServer(t testing.TB, h Handler, cfg Config) *Server {
	t.Helper()
	if cfg.TLS == nil {
		cfg.TLS = testCerts(t).server()
	}
	return startServer(t, h, cfg)
}

func wssURL(srv *Server) string { return "wss://" + srv.Addr().String() + "/" }

// dialTLS opens a blocking client over wss:// that trusts the test CA.
func dialTLS(t testing.TB, srv *Server, opts *DialOptions) *ClientConn {
	t.Helper()
	if opts == nil {
		opts = &DialOptions{}
	}
	if opts.TLSConfig == nil {
		opts.TLSConfig = testCerts(t).client()
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, wssURL(srv), opts)
	if err != nil {
		t.Fatalf("dial %s: %v", wssURL(srv), err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// echoRoundTrip sends p and wants it back.
func echoRoundTrip(t testing.TB, c *ClientConn, op codec.Opcode, p []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	c.SetWriteDeadline(time.Now().Add(testTimeout))
	if err := c.WriteMessage(op, p); err != nil {
		t.Fatalf("write: %v", err)
	}
	gop, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gop != op || !bytes.Equal(got, p) {
		t.Fatalf("echo of %d bytes: got op %v, %d bytes", len(p), gop, len(got))
	}
}

// TestTLSEcho: the blocking client over wss://, messages from empty to
// several records and several fills (tlsFillMax), plain and compressed,
// and fragmented; the close handshake ends it.
func TestTLSEcho(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			z := CompressionConfig{Enabled: deflate}
			srv := startTLSServer(t, echo{}, Config{Compression: z})
			c := dialTLS(t, srv, &DialOptions{Compression: z})
			if c.Compression() != deflate {
				t.Fatalf("Compression() = %v", c.Compression())
			}
			for _, n := range []int{0, 1, 125, 1 << 10, 16 << 10, 17 << 10, 100 << 10, 1 << 20} {
				echoRoundTrip(t, c, codec.OpBinary, binaryPayload(n))
				echoRoundTrip(t, c, codec.OpText, textPayload(n))
			}
			// A fragmented message.
			c.SetReadDeadline(time.Now().Add(testTimeout))
			c.SetWriteDeadline(time.Now().Add(testTimeout))
			for i, part := range []string{"frag", "ment", "ed"} {
				op := codec.OpContinuation
				if i == 0 {
					op = codec.OpText
				}
				if err := c.WriteFrame(op, []byte(part), i == 2); err != nil {
					t.Fatal(err)
				}
			}
			if _, p, err := c.ReadMessage(); err != nil || string(p) != "fragmented" {
				t.Fatalf("fragmented: %q, %v", p, err)
			}
			if err := c.Close(codec.StatusNormalClosure, "bye"); err != nil {
				t.Fatal(err)
			}
			_, _, err := c.ReadMessage()
			wantCloseError(t, err, codec.StatusNormalClosure, ptr("bye"))
		})
	}
}

// TestTLSPipelined: many messages written at once arrive in one or a few
// reads of many records; every echo comes back, in order.
func TestTLSPipelined(t *testing.T) {
	srv := startTLSServer(t, echo{}, Config{})
	c := dialTLS(t, srv, nil)
	const n = 2000
	go func() {
		for i := range n {
			c.WriteMessage(codec.OpText, fmt.Appendf(nil, "message %d", i))
		}
	}()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	for i := range n {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := fmt.Sprintf("message %d", i); string(p) != want {
			t.Fatalf("got %q, want %q", p, want)
		}
	}
}

// pusher writes from another goroutine (the queue) on every message.
type pusher struct{ BaseHandler }

func (pusher) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	msg := bytes.Clone(p)
	go func() {
		for range 3 {
			c.WriteMessage(op, msg)
		}
	}()
}

// TestTLSQueuedWrites: writes from other goroutines go through the queue
// and are encrypted on the loop.
func TestTLSQueuedWrites(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			z := CompressionConfig{Enabled: deflate}
			srv := startTLSServer(t, pusher{}, Config{Compression: z})
			c := dialTLS(t, srv, &DialOptions{Compression: z})
			msg := textPayload(4 << 10)
			c.WriteMessage(codec.OpText, msg)
			c.SetReadDeadline(time.Now().Add(testTimeout))
			for i := range 3 {
				_, p, err := c.ReadMessage()
				if err != nil || !bytes.Equal(p, msg) {
					t.Fatalf("copy %d: %d bytes, %v", i, len(p), err)
				}
			}
		})
	}
}

// TestTLSEventLoopClient: the event-loop client dials wss:// (ServerName
// from the URL's host, the CA from DialOptions.TLSConfig), against Gale's
// TLS server, with and without compression.
func TestTLSEventLoopClient(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			z := CompressionConfig{Enabled: deflate}
			srv := startTLSServer(t, echo{}, Config{Compression: z})
			got := make(chan []byte, 16)
			cl, err := NewClient(collector{got: got}, Config{Compression: z})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			_, port, _ := net.SplitHostPort(srv.Addr().String())
			cfg := testCerts(t).client()
			cfg.ServerName = "" // from the URL
			c, err := cl.Dial(ctx, "wss://localhost:"+port+"/", &DialOptions{TLSConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{5, 1 << 10, 70 << 10, 300 << 10} {
				msg := textPayload(n)
				if err := c.WriteText(msg); err != nil {
					t.Fatal(err)
				}
				if p := recv(t, got, "echo"); !bytes.Equal(p, msg) {
					t.Fatalf("echo of %d bytes: got %d", n, len(p))
				}
			}
			if err := c.Close(codec.StatusNormalClosure, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// collector is a client handler that passes every message on.
type collector struct {
	BaseHandler
	got chan []byte
}

func (h collector) OnMessage(c *Conn, op codec.Opcode, p []byte) { h.got <- bytes.Clone(p) }

// TestTLSEventLoopClientRefusesBadCert: without the CA the dial fails
// with crypto/tls's verification error.
func TestTLSEventLoopClientRefusesBadCert(t *testing.T) {
	srv := startTLSServer(t, echo{}, Config{})
	cl, err := NewClient(BaseHandler{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = cl.Dial(ctx, wssURL(srv), nil)
	var uerr x509UnknownAuthority
	if err == nil || !errors.As(err, &uerr) {
		t.Fatalf("dial without the CA: %v", err)
	}
}

// TestTLSConfigFeatures: SNI picks the certificate (GetCertificate), ALPN
// settles on http/1.1, and a second connection resumes the session.
func TestTLSConfigFeatures(t *testing.T) {
	pki := testCerts(t)
	var mu sync.Mutex
	var names []string
	srv := startTLSServer(t, echo{}, Config{TLS: &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			mu.Lock()
			names = append(names, hello.ServerName)
			mu.Unlock()
			return &pki.leaf, nil
		},
	}})
	cache := tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		cfg := pki.client()
		cfg.ClientSessionCache = cache
		cfg.NextProtos = []string{"h2", "http/1.1"}
		raw, err := tls.Dial("tcp", srv.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		st := raw.ConnectionState()
		if st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("ALPN: %q", st.NegotiatedProtocol)
		}
		if resumed := st.DidResume; resumed != (i == 1) {
			t.Errorf("connection %d: DidResume = %v", i, resumed)
		}
		// TLS 1.3 delivers the ticket after the handshake: an upgrade and
		// an echo read it.
		wsOver(t, raw)
		raw.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) == 0 || names[0] != "localhost" {
		t.Errorf("SNI: GetCertificate saw %q", names)
	}
}

// wsOver upgrades over an established connection and echoes one message.
func wsOver(t testing.TB, nc net.Conn) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(testTimeout))
	key := codec.NewKey()
	req := codec.AppendClientRequest(nil, &codec.ClientRequest{Host: "localhost", URI: "/"}, key[:])
	if _, err := nc.Write(req); err != nil {
		t.Fatal(err)
	}
	var resp codec.Response
	buf := make([]byte, 0, 4096)
	for {
		n, err := nc.Read(buf[len(buf):cap(buf)])
		if err != nil {
			t.Fatalf("reading the 101: %v", err)
		}
		buf = buf[:len(buf)+n]
		if _, err := resp.Parse(buf, 4096); err == nil {
			break
		}
	}
	if resp.Status != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.Status)
	}
	frame := codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 2}, []byte("hi"))
	nc.Write(frame)
	got := make([]byte, 4)
	if _, err := io.ReadFull(nc, got); err != nil || string(got[2:]) != "hi" {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// TestTLSFallback: a plain HTTPS request on the TLS port goes to
// Config.Fallback, with the request's TLS state.
func TestTLSFallback(t *testing.T) {
	srv := startTLSServer(t, echo{}, Config{Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.ServerName != "localhost" {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "health ok over TLS")
	})})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: testCerts(t).client()}, Timeout: testTimeout}
	defer hc.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	resp, err := hc.Get("https://localhost:" + port + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "health ok over TLS" {
		t.Fatalf("%s %q", resp.Status, body)
	}
}

// TestTLSConfigChecks: a TLS config that cannot serve is refused.
func TestTLSConfigChecks(t *testing.T) {
	for _, cfg := range []*tls.Config{
		{},
		{Certificates: []tls.Certificate{testCerts(t).leaf}, NextProtos: []string{"h2", "http/1.1"}},
	} {
		if _, err := NewServer(echo{}, Config{TLS: cfg}); err == nil {
			t.Errorf("NewServer accepted %+v", cfg)
		}
	}
	if _, err := NewClient(echo{}, Config{TLS: testCerts(t).server()}); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("NewClient with Config.TLS: %v", err)
	}
}

type x509UnknownAuthority = x509.UnknownAuthorityError
