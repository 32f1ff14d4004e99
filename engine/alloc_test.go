//go:build !race

package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// TestEchoAllocations echoes many messages through a Gale server and counts
// the process's heap allocations per message. The client writes pre-built
// masked frames and reads into a fixed buffer, so it allocates nothing per
// message itself: what is counted is the server's.
func TestEchoAllocations(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		frames int // the message is sent as this many frames
		msgs   int
	}{
		{name: "1KiB", size: 1 << 10, frames: 1, msgs: 20000},
		{name: "64KiB", size: 64 << 10, frames: 1, msgs: 2000},
		{name: "64KiB fragmented", size: 64 << 10, frames: 4, msgs: 2000},
		{name: "1KiB text fragmented", size: 1 << 10, frames: 3, msgs: 20000},
	}
	srv, err := NewServer(echo{}, Config{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(t.Context()) })

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := rawUpgrade(t, srv.Addr().String())
			defer conn.Close()
			op := codec.OpBinary
			if tt.frames == 3 {
				op = codec.OpText
			}
			frames := buildMessage(op, tt.size, tt.frames)
			reply := make([]byte, tt.size+codec.MaxHeaderLen)
			echoOnce := func() {
				if _, err := conn.Write(frames); err != nil {
					t.Fatal(err)
				}
				readEcho(t, br, reply, tt.size)
			}
			for range 200 { // warm the pools
				echoOnce()
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range tt.msgs {
				echoOnce()
			}
			runtime.ReadMemStats(&after)
			perMsg := float64(after.Mallocs-before.Mallocs) / float64(tt.msgs)
			t.Logf("%d messages: %d allocations, %.4f per message", tt.msgs, after.Mallocs-before.Mallocs, perMsg)
			if perMsg >= 0.01 {
				t.Fatalf("%.4f allocations per echoed message, want < 0.01", perMsg)
			}
		})
	}
}

// buildMessage returns a masked message of size bytes split into n frames.
func buildMessage(op codec.Opcode, size, n int) []byte {
	payload := bytes.Repeat([]byte("gale"), size/4+1)[:size]
	var out []byte
	chunk := (size + n - 1) / n
	for i := 0; i < n; i++ {
		lo, hi := min(i*chunk, size), min((i+1)*chunk, size)
		fop := op
		if i > 0 {
			fop = codec.OpContinuation
		}
		out = codec.AppendFrame(out, codec.Header{Fin: i == n-1, Opcode: fop, Masked: true, Mask: [4]byte{1, 2, 3, byte(i)}}, payload[lo:hi])
	}
	return out
}

// rawUpgrade dials addr and upgrades with a fixed request.
func rawUpgrade(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReaderSize(conn, 128<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// readEcho reads one unfragmented server frame of want bytes into buf.
func readEcho(t testing.TB, br *bufio.Reader, buf []byte, want int) {
	if h, _ := readServerFrame(t, br, buf); !h.Fin || int(h.Length) != want {
		t.Fatalf("echo header %+v, want %d bytes", h, want)
	}
}
