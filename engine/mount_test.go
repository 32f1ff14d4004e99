package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// Gale mounted on net/http (Server.ServeHTTP): a mux serves /health and
// Gale at /ws, and the clients go through net/http's listener.

// mountServer returns a server for h and an httptest server whose mux
// answers /health and mounts the server at /ws. The server is not started:
// the first request to /ws starts its loops. Both stop when the test ends.
func mountServer(t testing.TB, h Handler, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	srv, err := NewServer(h, cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	hs := httptest.NewServer(mountMux(srv))
	t.Cleanup(hs.Close)
	return srv, hs
}

func mountMux(srv *Server) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/ws", srv)
	return mux
}

// mountURL is the ws:// URL of the mount on hs.
func mountURL(hs *httptest.Server) string { return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws" }

func wantHealth(t testing.TB, hs *httptest.Server) {
	t.Helper()
	resp, err := hs.Client().Get(hs.URL + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("GET /health: %s %q", resp.Status, body)
	}
}

// TestMountEcho echoes through the mount with Gale's blocking client, with
// and without permessage-deflate, beside a plain route of the same net/http
// server; the hook sees the addresses of net/http's connection, and what it
// sets (subprotocol, user data) reaches the connection. (bench/interop
// does the same with gorilla's client and checks the response fields.)
func TestMountEcho(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", compress), func(t *testing.T) {
			rec := newRecorder()
			type seen struct{ remote, local string }
			hook := make(chan seen, 1)
			srv, hs := mountServer(t, rec, Config{
				Loops:        2,
				Subprotocols: []string{"chat"},
				Compression:  CompressionConfig{Enabled: compress},
				OnUpgrade: func(r *UpgradeRequest) error {
					offer(hook, seen{r.RemoteAddr.String(), r.LocalAddr.String()})
					r.ResponseHeader = http.Header{"X-Gale": {"mounted"}}
					r.UserData = "from the hook"
					return nil
				},
			})
			wantHealth(t, hs)
			ws, err := Dial(t.Context(), mountURL(hs), &DialOptions{
				Subprotocols: []string{"other", "chat"},
				Compression:  CompressionConfig{Enabled: compress},
			})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.CloseNow()
			if ws.Subprotocol() != "chat" {
				t.Errorf("subprotocol %q, want chat", ws.Subprotocol())
			}
			if ws.Compression() != compress {
				t.Errorf("client compression %v, want %v", ws.Compression(), compress)
			}
			s := recv(t, hook, "OnUpgrade")
			if s.remote != ws.LocalAddr().String() || s.local != hs.Listener.Addr().String() {
				t.Errorf("hook saw remote %s local %s; want %s and %s", s.remote, s.local, ws.LocalAddr(), hs.Listener.Addr())
			}
			c := recv(t, rec.opens, "OnOpen")
			if c.Compression() != compress || c.Subprotocol() != "chat" || c.UserData() != "from the hook" {
				t.Errorf("conn: compression %v subprotocol %q user data %v", c.Compression(), c.Subprotocol(), c.UserData())
			}
			if c.RemoteAddr().String() != ws.LocalAddr().String() || c.LocalAddr().String() != ws.RemoteAddr().String() {
				t.Errorf("Conn addresses %s←%s, want %s←%s", c.LocalAddr(), c.RemoteAddr(), ws.RemoteAddr(), ws.LocalAddr())
			}
			for i, msg := range [][]byte{[]byte("hello"), textPayload(100 << 10), nil} {
				ws.SetWriteDeadline(time.Now().Add(testTimeout))
				if err := ws.WriteText(msg); err != nil {
					t.Fatal(err)
				}
				ws.SetReadDeadline(time.Now().Add(testTimeout))
				op, p, err := ws.ReadMessage()
				if err != nil || op != codec.OpText || !bytes.Equal(p, msg) {
					t.Fatalf("echo %d: op %v, %d bytes, %v", i, op, len(p), err)
				}
			}
			wantHealth(t, hs) // the mux still serves its other routes
			ws.Close(1000, "bye")
			_, _, err = ws.ReadMessage()
			wantCloseError(t, err, 1000, ptr("bye"))
			wantCloseError(t, recv(t, rec.closes, "OnClose"), 1000, ptr("bye"))
			if st := srv.Stats(); st.Upgrades != 1 {
				t.Errorf("Stats.Upgrades %d, want 1", st.Upgrades)
			}
		})
	}
}

// upgradeOver sends an upgrade request for /ws over nc and returns the
// answer with its body, for refusals whose body says why.
func upgradeOver(t testing.TB, nc net.Conn) (*http.Response, []byte) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(testTimeout))
	if _, err := nc.Write([]byte(rawRequest("GET /ws HTTP/1.1"))); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// wantStatus checks that a dial failed with the given HTTP status.
func wantStatus(t testing.TB, err error, status int) {
	t.Helper()
	if !errors.Is(err, codec.ErrResponseStatus) || !strings.Contains(err.Error(), fmt.Sprint(status)) {
		t.Fatalf("dial: %v, want a %d answer", err, status)
	}
}

// prefixProbe echoes, and reports at OnOpen how many bytes net/http had
// buffered behind the request (the prefix, still unread when the
// connection opens).
type prefixProbe struct {
	*recorder
	prefix chan int
}

func (p prefixProbe) OnOpen(c *Conn) {
	n := 0
	if v, ok := c.gc.(*prefixed); ok {
		n = len(v.prefix)
	}
	offer(p.prefix, n)
	p.recorder.OnOpen(c)
}

// TestMountPipelined sends the upgrade request and frames behind it in one
// write: net/http reads them with the request, and they must still arrive,
// in order, before anything read later. Frames that straddle what net/http
// read and what follows on the socket are joined.
func TestMountPipelined(t *testing.T) {
	big := binaryPayload(10 << 10) // past net/http's 4 KiB read buffer
	cases := []struct {
		name  string
		first []byte // written with the request
		later []byte // written once the 101 has arrived
		want  [][]byte
	}{
		{
			name:  "three frames",
			first: concat(rawFrame(codec.OpText, true, []byte("one")), rawFrame(codec.OpBinary, true, []byte{2, 2}), rawFrame(codec.OpText, true, []byte("three"))),
			want:  [][]byte{[]byte("one"), {2, 2}, []byte("three")},
		},
		{
			name:  "fragments and a ping",
			first: concat(rawFrame(codec.OpText, false, []byte("frag")), rawFrame(codec.OpPing, true, []byte("p")), rawFrame(codec.OpContinuation, true, []byte("mented"))),
			want:  [][]byte{[]byte("p"), []byte("fragmented")}, // the pong, then the message
		},
		{
			name:  "header split",
			first: concat(rawFrame(codec.OpText, true, []byte("whole")), rawFrame(codec.OpText, true, []byte("split"))[:1]),
			later: rawFrame(codec.OpText, true, []byte("split"))[1:],
			want:  [][]byte{[]byte("whole"), []byte("split")},
		},
		{
			name:  "payload split",
			first: rawFrame(codec.OpText, true, []byte("across the hand-over"))[:9],
			later: concat(rawFrame(codec.OpText, true, []byte("across the hand-over"))[9:], rawFrame(codec.OpText, true, []byte("after"))),
			want:  [][]byte{[]byte("across the hand-over"), []byte("after")},
		},
		{
			name:  "frame larger than net/http's buffer",
			first: concat(rawFrame(codec.OpText, true, []byte("small")), rawFrame(codec.OpBinary, true, big)),
			want:  [][]byte{[]byte("small"), big},
		},
	}
	rec := newRecorder()
	probe := prefixProbe{recorder: rec, prefix: make(chan int, 1)}
	_, hs := mountServer(t, probe, Config{Loops: 1})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, hs.Listener.Addr())
			rc.write(concat([]byte(rawRequest("GET /ws HTTP/1.1")), tc.first)) // one write
			resp, body := rc.readResponse()
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != rawAccept {
				t.Fatalf("upgrade: %s %q", resp.Status, body)
			}
			if n := recv(t, probe.prefix, "OnOpen"); n == 0 {
				t.Fatalf("net/http buffered nothing behind the request: the test does not reach the prefix")
			} else {
				t.Logf("%d bytes of %d pipelined were buffered by net/http", n, len(tc.first))
			}
			<-rec.opens
			if tc.later != nil {
				rc.write(tc.later)
			}
			for i, want := range tc.want {
				h, p := rc.readFrame()
				if !bytes.Equal(p, want) {
					t.Fatalf("frame %d: %v %d bytes %.20q, want %d bytes %.20q", i, h.Opcode, len(p), p, len(want), want)
				}
			}
			rc.write(rawFrame(codec.OpClose, true, rawClosePayload(1000, "")))
			rc.expectClose(1000)
			wantCloseError(t, recv(t, rec.closes, "OnClose"), 1000, nil)
		})
	}
}

func concat(ps ...[]byte) []byte { return bytes.Join(ps, nil) }

// TestMountNoGoroutines opens 1,000 connections through the mount, many at
// once, and finds the goroutine count where it was before them: net/http's
// goroutine for each connection returned after the hand-over, and Gale
// runs none per connection.
func TestMountNoGoroutines(t *testing.T) {
	const conns, dialers = 1000, 16
	srv, hs := mountServer(t, echo{}, Config{Loops: 2})
	addr := hs.Listener.Addr()
	warm := upgradeMount(t, addr) // the loops, the ticker: what the first request starts
	warm.Close()
	waitOpenCount(t, srv, 0)
	before := settledGoroutines(0)

	clients := make([]net.Conn, conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range dialers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < conns; i = next.Add(1) - 1 {
				clients[i] = upgradeMount(t, addr)
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	if t.Failed() {
		return
	}
	waitOpenCount(t, srv, conns)
	after := settledGoroutines(before)
	t.Logf("goroutines: %d before, %d with %d connections open", before, after, conns)
	if after > before {
		t.Fatalf("%d goroutines with %d mounted connections open, %d before", after, conns, before)
	}
	// And they are live: a few echo.
	for _, c := range clients[:10] {
		c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := c.Write(rawFrame(codec.OpText, true, []byte("still here"))); err != nil {
			t.Fatal(err)
		}
		var buf [64]byte
		if n, err := io.ReadAtLeast(c, buf[:], 2+len("still here")); err != nil || string(buf[2:n]) != "still here" {
			t.Fatalf("echo: %q %v", buf[:n], err)
		}
	}
	if st := srv.Stats(); st.Upgrades != conns+1 {
		t.Errorf("Stats.Upgrades %d, want %d", st.Upgrades, conns+1)
	}
}

// upgradeMount upgrades a raw connection through the mount at addr.
func upgradeMount(t testing.TB, addr net.Addr) net.Conn {
	c, err := net.DialTimeout("tcp", addr.String(), testTimeout)
	if err != nil {
		t.Errorf("dial: %v", err)
		return nil
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, rawRequest("GET /ws HTTP/1.1")); err != nil {
		t.Errorf("write: %v", err)
		return c
	}
	// The server sends nothing after the 101 until the client does, so
	// the reader buffers nothing of the stream.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Errorf("read 101: %v", err)
		return c
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("upgrade: %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return c
}

// settledGoroutines polls runtime.NumGoroutine until it is at most target
// (when positive) or has stopped falling for a while, and returns it.
func settledGoroutines(target int) int {
	n, low, since := runtime.NumGoroutine(), 0, time.Now()
	low = n
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if target > 0 && n <= target {
			return n
		}
		if n < low {
			low, since = n, time.Now()
		} else if time.Since(since) > 300*time.Millisecond && target == 0 {
			return low
		}
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return min(n, low)
}

// rawExchange sends one raw request to addr and returns the response (body
// read), as a client on the wire sees it.
func rawExchange(t testing.TB, addr net.Addr, req string) (*http.Response, string) {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.write([]byte(req))
	return rc.readResponse()
}

// TestMountRefusals sends the same refused requests to Gale's own listener
// and to the mount and expects the same answer from both: status, the
// fields RFC 6455 asks for, body.
func TestMountRefusals(t *testing.T) {
	cfg := Config{
		Loops: 1,
		OnUpgrade: func(r *UpgradeRequest) error {
			if r.Header("X-Token") == nil {
				return &Reject{Status: http.StatusUnauthorized, Header: http.Header{"X-Why": {"token"}}, Body: "no token\n"}
			}
			return nil
		},
	}
	native := startServer(t, echo{}, cfg)
	mounted, hs := mountServer(t, echo{}, cfg)
	cases := []struct {
		name   string
		extra  []string
		status int
	}{
		{"missing key", []string{"X-Token: t", "Sec-WebSocket-Key:"}, http.StatusBadRequest},
		{"bad key", []string{"X-Token: t", "Sec-WebSocket-Key: short"}, http.StatusBadRequest},
		{"version 8", []string{"X-Token: t", "Sec-WebSocket-Version: 8"}, http.StatusUpgradeRequired},
		{"not an upgrade", []string{"X-Token: t", "Upgrade:", "Connection:", "Sec-WebSocket-Key:", "Sec-WebSocket-Version:"}, http.StatusUpgradeRequired},
		{"POST", []string{"POST %s HTTP/1.1", "X-Token: t", "Content-Length: 0"}, http.StatusMethodNotAllowed},
		{"HTTP/1.0", []string{"GET %s HTTP/1.0", "X-Token: t"}, http.StatusBadRequest},
		{"no Connection upgrade", []string{"X-Token: t", "Connection: keep-alive"}, http.StatusBadRequest},
		{"foreign origin", []string{"X-Token: t", "Origin: https://evil.test"}, http.StatusForbidden},
		{"hook rejects", nil, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			request := func(path string) string {
				extra := append([]string(nil), tc.extra...)
				line := "GET %s HTTP/1.1"
				if len(extra) > 0 && strings.Contains(extra[0], " HTTP/") {
					line, extra = extra[0], extra[1:]
				}
				return rawRequest(append([]string{fmt.Sprintf(line, path)}, extra...)...)
			}
			nresp, nbody := rawExchange(t, native.Addr(), request("/"))
			mresp, mbody := rawExchange(t, hs.Listener.Addr(), request("/ws"))
			if nresp.StatusCode != tc.status {
				t.Fatalf("native: %s %q, want %d", nresp.Status, nbody, tc.status)
			}
			if mresp.StatusCode != nresp.StatusCode || mbody != nbody {
				t.Fatalf("mount answered %s %q, native %s %q", mresp.Status, mbody, nresp.Status, nbody)
			}
			for _, f := range []string{"Content-Type", "Allow", "Upgrade", "Sec-WebSocket-Version", "X-Why"} {
				if m, n := mresp.Header.Values(f), nresp.Header.Values(f); fmt.Sprint(m) != fmt.Sprint(n) {
					t.Errorf("%s: mount %q, native %q", f, m, n)
				}
			}
			if !mresp.Close {
				t.Errorf("mount kept the connection after a refusal (Connection %q)", mresp.Header.Get("Connection"))
			}
			t.Logf("%s %q", mresp.Status, mbody)
		})
	}
	if st := mounted.Stats(); st.Rejected != uint64(len(cases)) || st.Upgrades != 0 || st.Open != 0 {
		t.Errorf("mount Stats: %d rejected (want %d), %d upgrades, %d open", st.Rejected, len(cases), st.Upgrades, st.Open)
	}
}

// TestMountFallback: a plain request to the mount goes to Config.Fallback,
// as on Gale's own listener, and is answered by net/http's connection.
func TestMountFallback(t *testing.T) {
	_, hs := mountServer(t, echo{}, Config{Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Fallback", r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})})
	resp, err := hs.Client().Get(hs.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Fallback") != "/ws" {
		t.Fatalf("%s %v", resp.Status, resp.Header)
	}
}

// TestMountTLSRefused: an https net/http server cannot hand its TLS
// connection over; the client gets 501 with the reason and what to do
// instead (Gale's own listener with Config.TLS and Config.Fallback), at once, and the reason is logged once however often it
// happens. An HTTP/2 request is refused with 505.
func TestMountTLSRefused(t *testing.T) {
	var log lockedBuffer
	srv, err := NewServer(echo{}, Config{Logger: slogTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	hs := httptest.NewUnstartedServer(mountMux(srv))
	hs.EnableHTTP2 = true
	hs.StartTLS()
	defer hs.Close()
	for range 2 {
		// HTTP/1.1 over TLS, as a WebSocket client asks.
		nc, err := tls.Dial("tcp", hs.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp, body := upgradeOver(t, nc)
		nc.Close()
		if resp.StatusCode != http.StatusNotImplemented || !bytes.Contains(body, []byte("own listener with Config.TLS")) ||
			!bytes.Contains(body, []byte("Config.Fallback")) || bytes.Contains(body, []byte("planned")) {
			t.Fatalf("got %s %q", resp.Status, body)
		}
	}
	if n := strings.Count(log.String(), "cannot take over a TLS connection"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, log.String())
	}

	// HTTP/2 (the test server's client negotiates it over TLS).
	req, _ := http.NewRequest("GET", hs.URL+"/ws", nil)
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusHTTPVersionNotSupported || !bytes.Contains(body, []byte("HTTP/2")) {
		t.Fatalf("HTTP/%d: %s %q", resp.ProtoMajor, resp.Status, body)
	}
	if st := srv.Stats(); st.Rejected != 3 || st.Upgrades != 0 {
		t.Errorf("Stats: %d rejected, %d upgrades", st.Rejected, st.Upgrades)
	}
}

// wrappedListener hands out connections that hide their *net.TCPConn, as a
// limiting or metrics listener does.
type wrappedListener struct{ net.Listener }

type wrappedConn struct{ net.Conn }

func (l wrappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// TestMountWrappedConnRefused: a connection gnet cannot duplicate (not a
// plain *net.TCPConn) is answered 501 on the hijacked connection and
// closed, never left hanging.
func TestMountWrappedConnRefused(t *testing.T) {
	srv, err := NewServer(echo{}, Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	hs := httptest.NewUnstartedServer(mountMux(srv))
	hs.Listener = wrappedListener{hs.Listener}
	hs.Start()
	defer hs.Close()
	nc, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	resp, body := upgradeOver(t, nc)
	if resp.StatusCode != http.StatusNotImplemented || !bytes.Contains(body, []byte("wrappedConn")) {
		t.Fatalf("got %s %q", resp.Status, body)
	}
}

// TestMountShutdown: Shutdown closes mounted connections with 1001, in
// each way of running the loops: started by the first request, by
// Start(""), and beside Gale's own listener; afterwards the mount answers
// 503.
func TestMountShutdown(t *testing.T) {
	for _, mode := range []string{"lazy", `Start("")`, "with listener"} {
		t.Run(mode, func(t *testing.T) {
			rec := newRecorder()
			srv, err := NewServer(rec, Config{Loops: 2})
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case `Start("")`:
				if err := srv.Start(""); err != nil {
					t.Fatal(err)
				}
				if srv.Addr() != nil {
					t.Errorf("Addr %v without a listener", srv.Addr())
				}
			case "with listener":
				if err := srv.Start("127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
			}
			hs := httptest.NewServer(mountMux(srv))
			defer hs.Close()
			var peers []*ClientConn
			for range 3 {
				ws, err := Dial(t.Context(), mountURL(hs), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer ws.CloseNow()
				peers = append(peers, ws)
			}
			if mode == "with listener" {
				ws, err := Dial(t.Context(), wsURL(srv), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer ws.CloseNow()
				peers = append(peers, ws)
			}
			waitOpenCount(t, srv, int64(len(peers)))
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				done <- srv.Shutdown(ctx)
			}()
			for i, ws := range peers {
				ws.SetReadDeadline(time.Now().Add(testTimeout))
				_, _, err := ws.ReadMessage() // the client answers the Close
				if codec.CloseStatus(err) != 1001 {
					t.Errorf("peer %d: %v, want Close 1001", i, err)
				}
			}
			if err := rawRecv(t, done, "Shutdown"); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for range peers {
				wantCloseError(t, recv(t, rec.closes, "OnClose"), 1001, nil)
			}
			_, err = Dial(t.Context(), mountURL(hs), nil)
			wantStatus(t, err, http.StatusServiceUnavailable)
			wantHealth(t, hs)
		})
	}
}

// TestMountShutdownBeforeUse: a server shut down before any request never
// starts its loops, and the mount answers 503.
func TestMountShutdownBeforeUse(t *testing.T) {
	srv, err := NewServer(echo{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(mountMux(srv))
	defer hs.Close()
	_, err = Dial(t.Context(), mountURL(hs), nil)
	wantStatus(t, err, http.StatusServiceUnavailable)
	if srv.live.Load() {
		t.Fatal("the loops started after Shutdown")
	}
	if err := srv.Start(""); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

// TestMountConcurrentShutdown races upgrades through the mount against
// Shutdown: every dial either upgrades and is then closed with 1001, or is
// refused or dropped; nothing hangs (the race detector watches the rest).
func TestMountConcurrentShutdown(t *testing.T) {
	srv, hs := mountServer(t, echo{}, Config{Loops: 2, Logger: discardLogger()})
	var wg sync.WaitGroup
	var upgraded, refused atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 20 {
				ws, err := Dial(context.Background(), mountURL(hs), &DialOptions{HandshakeTimeout: testTimeout})
				if err != nil {
					refused.Add(1)
					continue
				}
				upgraded.Add(1)
				ws.SetReadDeadline(time.Now().Add(testTimeout))
				go func() { defer ws.CloseNow(); ws.ReadMessage() }()
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	t.Logf("%d upgraded, %d refused", upgraded.Load(), refused.Load())
	if st := srv.Stats(); st.Open != 0 {
		t.Fatalf("%d open after Shutdown", st.Open)
	}
}

// TestMountPython and TestMountChromium: real clients through the mount.
func TestMountPython(t *testing.T) {
	needPeer(t, "python-websockets", "apt-get install -y --no-install-recommends python3-websockets (Debian's, for /usr/bin/python3)",
		[]string{"/usr/bin/python3", "-c", "import websockets"})
	for _, tc := range []struct {
		name   string
		script string
		deflat bool
	}{{"echo", "echo_client.py", false}, {"deflate", "deflate_client.py", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			_, hs := mountServer(t, rec, Config{Loops: 2, Compression: CompressionConfig{Enabled: tc.deflat, ContextTakeover: true}})
			ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
			defer cancel()
			out, err := command(ctx, []string{"/usr/bin/python3", tc.script, mountURL(hs)}).CombinedOutput()
			t.Logf("output:\n%s", out)
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			if c := recv(t, rec.opens, "OnOpen"); c.Compression() != tc.deflat {
				t.Fatalf("compression %v, want %v", c.Compression(), tc.deflat)
			}
			wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, nil)
			if tc.deflat {
				var r scriptResult
				_, line, _ := strings.Cut(string(out), "RESULT ")
				if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &r); err != nil || !strings.HasPrefix(r.Extensions, "permessage-deflate") {
					t.Errorf("the client reports %q (%v), want permessage-deflate", r.Extensions, err)
				}
			}
		})
	}
}

func TestMountChromium(t *testing.T) {
	needPeer(t, "chromium", "apt-get install -y --no-install-recommends chromium; npm ci in engine/testdata (playwright-core)",
		[]string{"node", "-e", "require.resolve('playwright-core'); require('fs').accessSync(process.env.CHROMIUM || '/usr/bin/chromium')"})
	page, err := os.ReadFile("testdata/deflate_page.html") // opens ws://host/ws
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	srv, err := NewServer(rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	mux := mountMux(srv)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 6*testTimeout)
	defer cancel()
	out, err := command(ctx, []string{"node", "chromium_client.js", hs.URL + "/"}).CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if !strings.Contains(string(out), "TITLE PASS") {
		t.Fatal("the page did not pass")
	}
	if !recv(t, rec.opens, "OnOpen").Compression() {
		t.Fatal("permessage-deflate not in force")
	}
	wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, nil)
}

// TestMountHandOverShed: when no descriptor is left for gnet's duplicate
// of the hijacked socket, the connection is closed and counted, and the
// server carries on. The server runs in a child process whose mount
// handler fills the descriptor table just before calling ServeHTTP when
// the request asks for it.
func TestMountHandOverShed(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMountChild$", "-test.v")
	cmd.Env = append(os.Environ(), mountChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v\n%s", err, stderr.String())
		}
	}()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "MOUNT_ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("child gave no address\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	tcp, _ := net.ResolveTCPAddr("tcp", addr)

	rc := dialRaw(t, tcp)
	rc.write([]byte(rawRequest("GET /ws HTTP/1.1", "X-Fill: 1")))
	rc.expectDropped() // no 101: the socket was closed, not left hanging
	// The child frees its descriptors just after the failed hand-over; a
	// dial before that would be shed too.
	pollUntil(t, "the child's descriptors freed", func() bool {
		resp, err := http.Get("http://" + addr + "/released")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	ws, err := Dial(t.Context(), "ws://"+addr+"/ws", nil) // the server carries on
	if err != nil {
		t.Fatalf("dial after the shed: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(testTimeout))
	ws.WriteText([]byte("after"))
	if _, p, err := ws.ReadMessage(); err != nil || string(p) != "after" {
		t.Fatalf("echo after the shed: %q %v", p, err)
	}
	ws.CloseNow()

	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.AcceptShed != 1 || st.Upgrades != 1 {
		t.Fatalf("child Stats: AcceptShed %d, Upgrades %d; want 1 and 1", st.AcceptShed, st.Upgrades)
	}
	if !strings.Contains(stderr.String(), "could not hand a connection") {
		t.Errorf("the shed was not logged:\n%s", stderr.String())
	}
}

const mountChildEnv = "GALE_TEST_MOUNT_CHILD"

// TestMountChild is the server of TestMountHandOverShed, in a child
// process with a small descriptor limit; run directly it skips.
func TestMountChild(t *testing.T) {
	if os.Getenv(mountChildEnv) == "" {
		t.Skip("the server of TestMountHandOverShed, run in a child process")
	}
	lim := syscall.Rlimit{Cur: 256, Max: 256}
	var cur syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
	lim.Max = cur.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(echo{}, Config{Loops: 1, Logger: slogTo(os.Stderr)})
	if err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool // the descriptors held for the shed are free again
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Fill") == "" {
			srv.ServeHTTP(w, r)
			return
		}
		srv.Start("") // the loops' descriptors first: only the hand-over is to fail
		var held []int
		for {
			fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				break
			}
			held = append(held, fd)
		}
		srv.ServeHTTP(w, r)
		for _, fd := range held {
			syscall.Close(fd)
		}
		released.Store(true)
	})
	mux.HandleFunc("/released", func(w http.ResponseWriter, r *http.Request) {
		if !released.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(srv.Stats()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	fmt.Printf("MOUNT_ADDR %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	hs.Close()
	srv.Shutdown(context.Background())
}

// TestMountReleaseAfterBurst: once a burst of hand-overs is over, the
// garbage net/http left behind is collected and returned to the operating
// system, once; a few hand-overs do not trigger it.
func TestMountReleaseAfterBurst(t *testing.T) {
	srv, hs := mountServer(t, echo{}, Config{Loops: 2})
	addr := hs.Listener.Addr()
	freed := func() uint64 {
		srv.mount.mu.Lock()
		defer srv.mount.mu.Unlock()
		return srv.mount.freedAt
	}
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for range 10 {
		clients = append(clients, upgradeMount(t, addr))
	}
	time.Sleep(3 * releaseQuiet)
	if n := freed(); n != 0 {
		t.Fatalf("released after %d hand-overs, fewer than %d", n, releaseHandOvers)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range releaseHandOvers / 8 {
				c := upgradeMount(t, addr)
				mu.Lock()
				clients = append(clients, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := uint64(10 + releaseHandOvers/8*8)
	pollUntil(t, "the release after the burst", func() bool { return freed() == total })
	var after runtime.MemStats
	pollUntil(t, "the forced collections", func() bool {
		runtime.ReadMemStats(&after)
		return after.NumForcedGC >= before.NumForcedGC+2 // runtime.GC, then FreeOSMemory's
	})
	t.Logf("after %d hand-overs: heap released to the OS %d → %d KiB", total, before.HeapReleased>>10, after.HeapReleased>>10)
}
