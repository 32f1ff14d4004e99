package engine

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/galews/gale/codec"
)

// stateRecorder reports the TLS state each connection shows in OnOpen,
// on the loop.
type stateRecorder struct {
	BaseHandler
	states chan tlsSeen
}

type tlsSeen struct {
	st tls.ConnectionState
	ok bool
	c  *Conn
}

func (h stateRecorder) OnOpen(c *Conn) {
	st, ok := c.ConnectionState()
	h.states <- tlsSeen{st, ok, c}
}

func (stateRecorder) OnMessage(c *Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

// TestTLSConnectionState: a server's Conn shows the TLS state in OnOpen
// and from another goroutine (SNI through GetCertificate, ALPN http/1.1,
// TLS 1.3, the session resumed by the second connection of a client with
// a session cache); the blocking client's connection shows its side; a
// plain connection says it has none.
func TestTLSConnectionState(t *testing.T) {
	pki := testCerts(t)
	h := stateRecorder{states: make(chan tlsSeen, 4)}
	srv := startTLSServer(t, h, Config{TLS: &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &pki.leaf, nil
		},
	}})
	cache := tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		cfg := pki.client()
		cfg.ClientSessionCache = cache
		c := dialTLS(t, srv, &DialOptions{TLSConfig: cfg})
		seen := recv(t, h.states, "OnOpen")
		if !seen.ok {
			t.Fatal("OnOpen: no TLS state")
		}
		st := seen.st
		if st.ServerName != "localhost" || st.NegotiatedProtocol != "http/1.1" || st.Version != tls.VersionTLS13 ||
			st.CipherSuite == 0 || !st.HandshakeComplete || st.DidResume != (i == 1) {
			t.Errorf("connection %d, server side in OnOpen: SNI %q ALPN %q version %x suite %x complete %v resumed %v",
				i, st.ServerName, st.NegotiatedProtocol, st.Version, st.CipherSuite, st.HandshakeComplete, st.DidResume)
		}
		// From another goroutine, while the loop echoes (the race
		// detector watches).
		done := make(chan tls.ConnectionState)
		go func() {
			st, _ := seen.c.ConnectionState()
			done <- st
		}()
		// TLS 1.3 delivers the session ticket after the handshake: an
		// echo reads it.
		echoRoundTrip(t, c, codec.OpText, []byte("hi"))
		if other := <-done; other.ServerName != "localhost" || other.DidResume != st.DidResume {
			t.Errorf("connection %d, from another goroutine: SNI %q resumed %v", i, other.ServerName, other.DidResume)
		}
		cst, ok := c.ConnectionState()
		if !ok || len(cst.PeerCertificates) == 0 || cst.NegotiatedProtocol != "http/1.1" || cst.DidResume != (i == 1) {
			t.Errorf("connection %d, blocking client: ok %v, %d certificates, ALPN %q, resumed %v",
				i, ok, len(cst.PeerCertificates), cst.NegotiatedProtocol, cst.DidResume)
		}
		c.Close(codec.StatusNormalClosure, "")
	}

	plain := startServer(t, h, Config{})
	c, err := Dial(context.Background(), wsURL(plain), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if seen := recv(t, h.states, "OnOpen"); seen.ok {
		t.Error("plain connection: TLS state reported")
	}
	if _, ok := c.ConnectionState(); ok {
		t.Error("plain blocking client: TLS state reported")
	}
}

// TestTLSEventLoopClientConnectionState: a wss:// connection of the
// event-loop client shows the server's certificate, ALPN and, on the
// second dial with a session cache, the resumed session.
func TestTLSEventLoopClientConnectionState(t *testing.T) {
	srv := startTLSServer(t, echo{}, Config{})
	got := make(chan []byte, 4)
	cl, err := NewClient(collector{got: got}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(context.Background())
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	cfg := testCerts(t).client()
	cfg.ServerName = ""
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		c, err := cl.Dial(ctx, "wss://localhost:"+port+"/", &DialOptions{TLSConfig: cfg})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteText([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		recv(t, got, "echo") // and the session ticket before it
		st, ok := c.ConnectionState()
		if !ok || len(st.PeerCertificates) == 0 || st.NegotiatedProtocol != "http/1.1" || st.ServerName != "localhost" || st.DidResume != (i == 1) {
			t.Errorf("dial %d: ok %v, %d certificates, ALPN %q, SNI %q, resumed %v",
				i, ok, len(st.PeerCertificates), st.NegotiatedProtocol, st.ServerName, st.DidResume)
		}
		c.Close(codec.StatusNormalClosure, "")
	}
}
