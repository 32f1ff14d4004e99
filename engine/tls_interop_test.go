package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/galews/gale/codec"
)

// localhostURL is srv's address under the name its test certificate
// carries, with scheme.
func localhostURL(srv *Server, scheme string) string {
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	return scheme + "://localhost:" + port + "/"
}

// TestTLSInteropScripts: Python websockets (with an ssl context trusting
// the test CA) and node ws (with ca, and with and without
// permessage-deflate) run their echo scripts against Gale over wss://.
func TestTLSInteropScripts(t *testing.T) {
	ca, _, _ := testCerts(t).files(t)
	cases := []struct {
		name    string
		probe   []string
		run     []string
		reason  string
		deflate bool
		hint    string
	}{
		{"python-websockets", []string{"/usr/bin/python3", "-c", "import websockets"}, []string{"/usr/bin/python3", "echo_client.py"}, "python done", false,
			"apt-get install -y --no-install-recommends python3-websockets"},
		{"node-ws", []string{"node", "-e", "require.resolve('ws')"}, []string{"node", "echo_client.js"}, "node done", false,
			"npm ci in engine/testdata"},
		{"node-ws-deflate", []string{"node", "-e", "require.resolve('ws')"}, []string{"node", "echo_client.js"}, "node done", true,
			"npm ci in engine/testdata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			needPeer(t, tc.name, tc.hint, tc.probe)
			rec := newRecorder()
			srv := startTLSServer(t, rec, Config{Loops: 2, Compression: CompressionConfig{Enabled: tc.deflate}})
			ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
			defer cancel()
			cmd := command(ctx, append(tc.run, localhostURL(srv, "wss")))
			cmd.Env = append(os.Environ(), "GALE_CA="+ca)
			out, err := cmd.CombinedOutput()
			t.Logf("%s output:\n%s", tc.name, out)
			if err != nil {
				t.Fatalf("%s client: %v", tc.name, err)
			}
			if c := recv(t, rec.opens, "OnOpen"); c.Compression() != tc.deflate {
				t.Errorf("permessage-deflate negotiated: %v, want %v", c.Compression(), tc.deflate)
			}
			wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, &tc.reason)
		})
	}
}

// TestTLSChromium: headless Chromium, trusting only the test certificate
// (by its public key hash), loads a page over https from Config.Fallback
// and echoes text and binary over wss:// on the same port, with and
// without permessage-deflate.
func TestTLSChromium(t *testing.T) {
	needPeer(t, "chromium", "apt-get install -y --no-install-recommends chromium; npm ci in engine/testdata (playwright-core)",
		[]string{"node", "-e", "require.resolve('playwright-core'); require('fs').accessSync(process.env.CHROMIUM || '/usr/bin/chromium')"})
	page, err := os.ReadFile("testdata/deflate_page.html")
	if err != nil {
		t.Fatal(err)
	}
	pki := testCerts(t)
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			rec := newRecorder()
			srv := startTLSServer(t, rec, Config{
				Loops:       1,
				Compression: CompressionConfig{Enabled: deflate},
				Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					w.Write(page)
				}),
			})
			ctx, cancel := context.WithTimeout(context.Background(), 6*testTimeout)
			defer cancel()
			cmd := command(ctx, []string{"node", "chromium_client.js", localhostURL(srv, "https")})
			cmd.Env = append(os.Environ(), "GALE_SPKI="+pki.spki)
			out, err := cmd.CombinedOutput()
			t.Logf("output:\n%s", out)
			if err != nil {
				t.Fatalf("chromium: %v", err)
			}
			_, title, _ := strings.Cut(string(out), "TITLE PASS ")
			var r struct{ Extensions string }
			if err := json.Unmarshal([]byte(strings.TrimSpace(title)), &r); err != nil {
				t.Fatalf("page result: %v", err)
			}
			if c := recv(t, rec.opens, "OnOpen"); c.Compression() != deflate || strings.HasPrefix(r.Extensions, "permessage-deflate") != deflate {
				t.Errorf("permessage-deflate: server %v, page %q; want %v", c.Compression(), r.Extensions, deflate)
			}
			wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, nil)
		})
	}
}
