package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/galews/gale/codec"
)

// permessage-deflate against node ws, Python websockets and headless
// Chromium (testdata/). Without the peer the test fails under CI (CI set)
// and is skipped locally.

// needPeer runs probe and fails or skips the test when it does not exit 0.
func needPeer(t *testing.T, name, hint string, probe []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out, err := command(ctx, probe).CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s unavailable; install: %s\nprobe %q: %v\n%s", name, hint, probe, err, bytes.TrimSpace(out))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (skipped: CI unset)")
}

// wireCount is what a script counted on its socket.
type wireCount struct{ In, Out int64 }

// scriptResult is the "RESULT {json}" line of deflate_client.js and .py.
type scriptResult struct {
	Extensions    string
	Payload       int64     // bytes each way in the first messages
	Total         wireCount // their bytes on the wire
	First, Second wireCount // the same message twice
	RSV1          *int      // compressed frames received (Python only)
}

func TestDeflateScripts(t *testing.T) {
	node := []string{"node", "-e", "require.resolve('ws')"}
	python := []string{"/usr/bin/python3", "-c", "import websockets"}
	const nodeHint = "npm ci in engine/testdata (needs node and npm)"
	const pyHint = "apt-get install -y --no-install-recommends python3-websockets (Debian's, for /usr/bin/python3)"
	cases := []struct {
		name           string
		probe          []string
		hint           string
		run            []string
		serverTakeover bool // Config.Compression.ContextTakeover
		takeover       bool // both sides keep their window: the repeat is cheap
	}{
		{name: "node takeover", probe: node, hint: nodeHint, run: []string{"node", "deflate_client.js", "", "takeover"}, serverTakeover: true, takeover: true},
		{name: "node no-takeover", probe: node, hint: nodeHint, run: []string{"node", "deflate_client.js", "", "no-takeover"}, serverTakeover: true},
		// The client wants context takeover; the server imposes none.
		{name: "node takeover refused", probe: node, hint: nodeHint, run: []string{"node", "deflate_client.js", "", "takeover"}},
		{name: "python default", probe: python, hint: pyHint, run: []string{"/usr/bin/python3", "deflate_client.py", ""}, serverTakeover: true, takeover: true},
		{name: "python takeover refused", probe: python, hint: pyHint, run: []string{"/usr/bin/python3", "deflate_client.py", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			needPeer(t, tc.name, tc.hint, tc.probe)
			rec := newRecorder()
			srv := startServer(t, rec, Config{Loops: 2, Compression: CompressionConfig{Enabled: true, ContextTakeover: tc.serverTakeover}})
			argv := append([]string(nil), tc.run...)
			argv[2] = wsURL(srv)
			ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
			defer cancel()
			out, err := command(ctx, argv).CombinedOutput()
			t.Logf("output:\n%s", out)
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			if !recv(t, rec.opens, "OnOpen").Compression() {
				t.Fatal("server: permessage-deflate not in force")
			}
			wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, nil)
			var r scriptResult
			_, line, _ := strings.Cut(string(out), "RESULT ")
			if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &r); err != nil {
				t.Fatalf("no RESULT line: %v", err)
			}
			if !strings.HasPrefix(r.Extensions, "permessage-deflate") {
				t.Fatalf("negotiated %q", r.Extensions)
			}
			if hasNCT := strings.Contains(r.Extensions, "server_no_context_takeover") && strings.Contains(r.Extensions, "client_no_context_takeover"); hasNCT == tc.takeover {
				t.Errorf("negotiated %q, want context takeover %v", r.Extensions, tc.takeover)
			}
			t.Logf("negotiated %q; %d payload bytes each way: %d on the wire to the server (%.1f%%), %d back (%.1f%%)",
				r.Extensions, r.Payload, r.Total.Out, 100*float64(r.Total.Out)/float64(r.Payload), r.Total.In, 100*float64(r.Total.In)/float64(r.Payload))
			if r.Total.In > r.Payload/3 || r.Total.Out > r.Payload/3 {
				t.Errorf("wire %+v for %d payload bytes: not compressed", r.Total, r.Payload)
			}
			if r.RSV1 != nil && *r.RSV1 == 0 {
				t.Errorf("the client saw no compressed (RSV1) frame")
			}
			t.Logf("same message twice: first %+v, second %+v", r.First, r.Second)
			if tc.takeover && (r.Second.In > r.First.In/4 || r.Second.Out > r.First.Out/4) {
				t.Errorf("context takeover, yet the repeat cost %+v after %+v", r.Second, r.First)
			}
			if !tc.takeover && (r.Second.In < r.First.In*3/4 || r.Second.Out < r.First.Out*3/4) {
				t.Errorf("no context takeover, yet the repeat cost %+v after %+v", r.Second, r.First)
			}
		})
	}
}

// TestDeflateChromium serves a page whose script opens a WebSocket with
// Chromium's own offer (permessage-deflate; client_max_window_bits) and
// echoes compressible text and binary; a counting proxy between the
// browser and the server proves the bytes on the wire were compressed.
func TestDeflateChromium(t *testing.T) {
	needPeer(t, "chromium", "apt-get install -y --no-install-recommends chromium; npm ci in engine/testdata (playwright-core)",
		[]string{"node", "-e", "require.resolve('playwright-core'); require('fs').accessSync(process.env.CHROMIUM || '/usr/bin/chromium')"})
	page, err := os.ReadFile("testdata/deflate_page.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("server takeover %v", takeover), func(t *testing.T) {
			rec := newRecorder()
			srv := startServer(t, rec, Config{
				Loops:       1,
				Compression: CompressionConfig{Enabled: true, ContextTakeover: takeover},
				Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					w.Write(page)
				}),
			})
			px := startWireProxy(t, srv.Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), 6*testTimeout)
			defer cancel()
			out, err := command(ctx, []string{"node", "chromium_client.js", "http://" + px.addr() + "/"}).CombinedOutput()
			t.Logf("output:\n%s", out)
			if err != nil {
				t.Fatalf("chromium: %v", err)
			}
			_, title, _ := strings.Cut(string(out), "TITLE PASS ")
			var r struct {
				Extensions string
				Payload    int64
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(title)), &r); err != nil {
				t.Fatalf("page result: %v", err)
			}
			if !recv(t, rec.opens, "OnOpen").Compression() || !strings.HasPrefix(r.Extensions, "permessage-deflate") {
				t.Fatalf("permessage-deflate not negotiated: %q", r.Extensions)
			}
			wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, nil)
			in, out2 := px.ws.in.Load(), px.ws.out.Load()
			t.Logf("negotiated %q; %d payload bytes each way: %d on the wire to the server (%.1f%%), %d back (%.1f%%)",
				r.Extensions, r.Payload, out2, 100*float64(out2)/float64(r.Payload), in, 100*float64(in)/float64(r.Payload))
			if in == 0 || in > r.Payload/3 || out2 > r.Payload/3 {
				t.Errorf("wire %d in, %d out for %d payload bytes each way: not compressed", in, out2, r.Payload)
			}
		})
	}
}

// wireProxy forwards TCP connections to a server and counts, in ws, the
// bytes of those that carry an upgrade request (out: to the server, in:
// back), handshake included.
type wireProxy struct {
	ln net.Listener
	ws struct{ in, out atomic.Int64 }
	wg sync.WaitGroup
}

func startWireProxy(t *testing.T, target string) *wireProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &wireProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); px.wg.Wait() })
	px.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			px.wg.Go(func() { px.serve(c, target) })
		}
	})
	return px
}

func (px *wireProxy) addr() string { return px.ln.Addr().String() }

func (px *wireProxy) serve(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	br := bufio.NewReader(c)
	br.Peek(1) // the first read: a browser sends the request head in one piece
	head, _ := br.Peek(br.Buffered())
	var in, out *atomic.Int64
	if bytes.Contains(bytes.ToLower(head), []byte("upgrade: websocket")) {
		in, out = &px.ws.in, &px.ws.out
	} else {
		in, out = new(atomic.Int64), new(atomic.Int64)
	}
	done := make(chan struct{})
	go func() {
		io.Copy(countWriter{s, out}, br)
		s.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(countWriter{c, in}, s)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (cw countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n.Add(int64(n))
	return n, err
}
