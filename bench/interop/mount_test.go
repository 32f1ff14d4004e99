package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/galews/gale/engine"
)

// TestMountGorilla: gorilla's client echoes through Gale mounted on a
// net/http server (Server.ServeHTTP) beside another route, with and
// without permessage-deflate; the response carries the hook's field, the
// chosen subprotocol and the negotiated extension, and the close handshake
// reaches the handler.
func TestMountGorilla(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", compress), func(t *testing.T) {
			rec := newRecorder()
			srv, err := engine.NewServer(rec, engine.Config{
				Loops:        2,
				Subprotocols: []string{"chat"},
				Compression:  engine.CompressionConfig{Enabled: compress},
				OnUpgrade: func(r *engine.UpgradeRequest) error {
					r.ResponseHeader = http.Header{"X-Gale": {"mounted"}}
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
			mux.Handle("/ws", srv)
			hs := httptest.NewServer(mux)
			defer hs.Close()

			d := websocket.Dialer{EnableCompression: compress, Subprotocols: []string{"other", "chat"}, HandshakeTimeout: testTimeout}
			ws, resp, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.Close()
			if got := resp.Header.Get("X-Gale"); got != "mounted" {
				t.Errorf("response field X-Gale %q", got)
			}
			if ws.Subprotocol() != "chat" {
				t.Errorf("subprotocol %q, want chat", ws.Subprotocol())
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); strings.HasPrefix(ext, "permessage-deflate") != compress {
				t.Errorf("extensions %q with compression %v", ext, compress)
			}
			for i, msg := range [][]byte{[]byte("hello"), textPayload(100 << 10), {}} {
				ws.SetWriteDeadline(time.Now().Add(testTimeout))
				if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
					t.Fatal(err)
				}
				ws.SetReadDeadline(time.Now().Add(testTimeout))
				op, p, err := ws.ReadMessage()
				if err != nil || op != websocket.TextMessage || !bytes.Equal(p, msg) {
					t.Fatalf("echo %d: op %d, %d bytes, %v", i, op, len(p), err)
				}
			}
			got, err := hs.Client().Get(hs.URL + "/health")
			if err != nil || got.StatusCode != http.StatusOK {
				t.Fatalf("GET /health beside the mount: %v %v", got, err)
			}
			got.Body.Close()
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(testTimeout))
			bye := "bye"
			wantCloseError(t, recv(t, rec.closes, "OnClose"), 1000, &bye)
		})
	}
}
