package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/galews/gale/engine"
)

// TestGorillaClientOverTLS: gorilla's client, with a tls.Config trusting
// the server's certificate, against Gale serving wss:// (Config.TLS), with
// and without permessage-deflate.
func TestGorillaClientOverTLS(t *testing.T) {
	// httptest's certificate (127.0.0.1, ::1, example.com) and a pool
	// that trusts it.
	ts := httptest.NewTLSServer(nil)
	cert := ts.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()

	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			srv, err := engine.NewServer(echo{}, engine.Config{
				TLS:         &tls.Config{Certificates: []tls.Certificate{cert}},
				Compression: engine.CompressionConfig{Enabled: deflate},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots}, EnableCompression: deflate, HandshakeTimeout: 10 * time.Second}
			ws, resp, err := d.Dial("wss://"+srv.Addr().String()+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != deflate {
				t.Errorf("permessage-deflate negotiated: %v, want %v", got, deflate)
			}
			ws.EnableWriteCompression(deflate)
			ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			for _, n := range []int{0, 1, 125, 4 << 10, 70 << 10, 1 << 20} {
				msg := bytes.Repeat([]byte("gale over tls "), n/14+1)[:n]
				if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
					t.Fatal(err)
				}
				op, got, err := ws.ReadMessage()
				if err != nil || op != websocket.TextMessage || !bytes.Equal(got, msg) {
					t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", n, op, len(got), err)
				}
			}
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "gorilla done"))
			if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, 1000) {
				t.Errorf("close: %v", err)
			}
		})
	}
}
