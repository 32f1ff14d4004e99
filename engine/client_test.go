package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// clientRecorder collects what the event-loop client's connections receive.
type clientRecorder struct {
	BaseHandler
	msgs   chan clientMsg
	closes chan error
	pings  atomic.Int64
}

type clientMsg struct {
	c       *Conn
	op      codec.Opcode
	payload []byte
}

func newClientRecorder() *clientRecorder {
	return &clientRecorder{msgs: make(chan clientMsg, 4096), closes: make(chan error, 4096)}
}

func (r *clientRecorder) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	r.msgs <- clientMsg{c: c, op: op, payload: bytes.Clone(p)}
}

func (r *clientRecorder) OnClose(_ *Conn, err error) { r.closes <- err }

func (r *clientRecorder) OnPong(*Conn, []byte) { r.pings.Add(1) }

func (r *clientRecorder) next(t *testing.T) clientMsg {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message within the timeout")
		return clientMsg{}
	}
}

func newTestClient(t *testing.T, h Handler, cfg Config) *Client {
	t.Helper()
	cl, err := NewClient(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		cl.Close(ctx)
	})
	return cl
}

// nodeEchoServer starts testdata/echo_server.js and returns its URL. The
// server greets each connection with a text message naming the extensions
// it negotiated.
func nodeEchoServer(t *testing.T) string { return nodeServer(t, false) }

func nodeServer(t *testing.T, deflate bool) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("testdata", "node_modules", "ws"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node ws is missing (run npm ci in engine/testdata): %v", err)
		}
		t.Skipf("node ws not installed: %v", err)
	}
	args := []string{"echo_server.js"}
	if deflate {
		args = append(args, "deflate")
	}
	cmd := exec.Command(node, args...)
	cmd.Dir = "testdata"
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	port, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("node server: %v", err)
	}
	return "ws://127.0.0.1:" + strings.TrimSpace(port) + "/"
}

// TestEventLoopClientInterop drives the event-loop client against node ws
// and Gale's own server: echoes of every size, a fragmented send, a ping,
// and a close with a code. (Against gorilla's server:
// TestEventLoopClientGorilla in bench/interop.)
func TestEventLoopClientInterop(t *testing.T) {
	servers := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{name: "gale", url: func(t *testing.T) string { return wsURL(startServer(t, echo{}, Config{})) }},
		{name: "node-ws", url: nodeEchoServer},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			url := srv.url(t)
			rec := newClientRecorder()
			cl := newTestClient(t, rec, Config{Loops: 2})
			c, err := cl.Dial(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if srv.name == "node-ws" {
				if m := rec.next(t); string(m.payload) != "extensions: none" {
					t.Fatalf("node greeting %q", m.payload)
				}
			}
			for _, n := range []int{0, 1, 125, 126, 4096, 16 << 10} {
				for _, op := range []codec.Opcode{codec.OpText, codec.OpBinary} {
					msg := bytes.Repeat([]byte("wé"), n/3+1)[:n-n%3+min(n%3, 0)]
					if op == codec.OpBinary {
						msg = bytes.Repeat([]byte{0, 0xFF, 7}, n/3+1)[:n]
					}
					if err := c.WriteMessage(op, msg); err != nil {
						t.Fatal(err)
					}
					m := rec.next(t)
					if m.op != op || !bytes.Equal(m.payload, msg) {
						t.Fatalf("n=%d op=%v: got %v with %d bytes", n, op, m.op, len(m.payload))
					}
				}
			}
			// One message as three frames, FIN 0, 0, 1.
			parts := []string{"This is the 1st frame\r\n", "This is the 2nd frame\r\n", "This is the 3rd frame\r\n"}
			for i, p := range parts {
				op := codec.OpText
				if i > 0 {
					op = codec.OpContinuation
				}
				if err := c.WriteFrame(op, []byte(p), i == 2); err != nil {
					t.Fatal(err)
				}
			}
			if m := rec.next(t); string(m.payload) != strings.Join(parts, "") {
				t.Fatalf("fragmented echo %q", m.payload)
			}
			if err := c.Ping([]byte("are you there")); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(4000, "done here"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-rec.closes:
				var ce *codec.CloseError
				if !errors.As(err, &ce) || ce.Code != 4000 {
					t.Fatalf("OnClose: %v, want the server's 4000 echo", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("no OnClose")
			}
			if rec.pings.Load() != 1 {
				t.Fatalf("pongs seen: %d, want 1", rec.pings.Load())
			}
		})
	}
}

// TestEventLoopClientMany opens a couple of thousand connections on two
// loops and echoes through every one.
func TestEventLoopClientMany(t *testing.T) {
	const conns = 2000
	srv := startServer(t, echo{}, Config{})
	rec := newClientRecorder()
	cl := newTestClient(t, rec, Config{Loops: 2})
	all := make([]*Conn, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cl.Dial(t.Context(), wsURL(srv), nil)
			if err != nil {
				errs <- err
				return
			}
			all[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := cl.Stats(); st.Open != conns || st.Upgrades != conns {
		t.Fatalf("client stats: %+v", st)
	}
	for i, c := range all {
		if err := c.WriteText([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range conns {
		seen[string(rec.next(t).payload)] = true
	}
	if len(seen) != conns {
		t.Fatalf("%d distinct echoes, want %d", len(seen), conns)
	}
}

func TestEventLoopClientBadServer(t *testing.T) {
	cl := newTestClient(t, newClientRecorder(), Config{Loops: 1, HandshakeTimeout: 2 * time.Second})
	for _, tt := range badServers() {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, func(c net.Conn) { tt.serve(c, readKey(c)) })
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := cl.Dial(ctx, url, &DialOptions{Subprotocols: tt.proto})
			checkBadServerErr(t, tt, err)
		})
	}
	if st := cl.Stats(); st.Open != 0 {
		t.Fatalf("connections left open: %d", st.Open)
	}
}

func TestEventLoopClientMaskedServerFrame(t *testing.T) {
	url := rawServer(t, func(c net.Conn) {
		key := readKey(c)
		c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(codec.AppendAccept(nil, key)) + "\r\n\r\n"))
		c.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, []byte("hi")))
		buf := make([]byte, 64)
		c.Read(buf)
	})
	rec := newClientRecorder()
	cl := newTestClient(t, rec, Config{Loops: 1})
	if _, err := cl.Dial(t.Context(), url, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rec.closes:
		if !errors.Is(err, codec.ErrMaskUnexpected) {
			t.Fatalf("OnClose: %v, want ErrMaskUnexpected", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("no OnClose")
	}
}

// TestEventLoopClientPrepared: a prepared message sent on a client
// connection goes out masked (the server would fail an unmasked frame).
func TestEventLoopClientPrepared(t *testing.T) {
	srv := startServer(t, echo{}, Config{})
	rec := newClientRecorder()
	cl := newTestClient(t, rec, Config{Loops: 1})
	c, err := cl.Dial(t.Context(), wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := NewPreparedMessage(codec.OpText, []byte("prepared once"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.WritePrepared(pm); err != nil {
			t.Fatal(err)
		}
		if m := rec.next(t); string(m.payload) != "prepared once" {
			t.Fatalf("echo %q", m.payload)
		}
	}
}
