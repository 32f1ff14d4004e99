//go:build !race

package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// TestDeflateEchoAllocations is TestEchoAllocations with permessage-deflate:
// the client sends pre-built compressed frames (whole or fragmented) and
// reads the compressed echoes into a fixed buffer, so what is counted is the
// server's inflating, compressing and echoing.
func TestDeflateEchoAllocations(t *testing.T) {
	tests := []struct {
		name     string
		op       codec.Opcode
		size     int
		frames   int
		takeover bool
		msgs     int
	}{
		{name: "1KiB text", op: codec.OpText, size: 1 << 10, frames: 1, msgs: 10000},
		{name: "16KiB binary", op: codec.OpBinary, size: 16 << 10, frames: 1, msgs: 3000},
		{name: "64KiB text", op: codec.OpText, size: 64 << 10, frames: 1, msgs: 2000},
		{name: "64KiB binary fragmented", op: codec.OpBinary, size: 64 << 10, frames: 4, msgs: 2000},
		{name: "1KiB text, context takeover", op: codec.OpText, size: 1 << 10, frames: 1, takeover: true, msgs: 3000},
		{name: "64KiB text, context takeover", op: codec.OpText, size: 64 << 10, frames: 1, takeover: true, msgs: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, echo{}, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: tt.takeover}})
			conn, br := rawUpgradeDeflate(t, srv.Addr().String())
			defer conn.Close()
			payload := jsonLines(tt.size, 3)
			if tt.op == codec.OpBinary {
				payload = binaryRecords(tt.size, 3)
			}
			// One pre-built message serves for all: under context takeover
			// too, since a client may always compress a message alone. The
			// server still primes its inflater with the receive window and
			// its compressor with the send window, and keeps both.
			z := deflateRaw(t, nil, payload)
			var frames []byte
			chunk := (len(z) + tt.frames - 1) / tt.frames
			for i := 0; i < tt.frames; i++ {
				lo, hi := min(i*chunk, len(z)), min((i+1)*chunk, len(z))
				h := codec.Header{Fin: i == tt.frames-1, Opcode: codec.OpContinuation, Masked: true, Mask: [4]byte{9, 8, 7, byte(i)}}
				if i == 0 {
					h.Opcode, h.Rsv = tt.op, codec.Rsv1
				}
				frames = codec.AppendFrame(frames, h, z[lo:hi])
			}
			reply := make([]byte, tt.size+codec.MaxHeaderLen)
			var wire int
			echoOnce := func() {
				if _, err := conn.Write(frames); err != nil {
					t.Fatal(err)
				}
				wire = readDeflatedEcho(t, br, reply)
			}
			for range 200 { // warm the pools
				echoOnce()
			}
			// A collection empties every sync.Pool into its victim cache;
			// the first uses after it allocate the pools' per-P arrays. Warm
			// up again so that is not counted.
			runtime.GC()
			for range 50 {
				echoOnce()
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range tt.msgs {
				echoOnce()
			}
			runtime.ReadMemStats(&after)
			perMsg := float64(after.Mallocs-before.Mallocs) / float64(tt.msgs)
			t.Logf("%d messages of %d bytes (%d compressed in, %d out): %d allocations, %.4f per message, %d GCs",
				tt.msgs, tt.size, len(z), wire, after.Mallocs-before.Mallocs, perMsg, after.NumGC-before.NumGC)
			if perMsg >= 0.01 {
				t.Fatalf("%.4f allocations per echoed message, want < 0.01", perMsg)
			}
		})
	}
}

// rawUpgradeDeflate dials addr and upgrades offering permessage-deflate as
// Chromium does.
func rawUpgradeDeflate(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: %s\r\n\r\n", addr, chrome)
	br := bufio.NewReaderSize(conn, 128<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") == "" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// readDeflatedEcho reads one unfragmented compressed server frame into buf
// and returns its payload length.
func readDeflatedEcho(t testing.TB, br *bufio.Reader, buf []byte) int {
	h, p := readServerFrame(t, br, buf)
	if !h.Fin || h.Rsv != codec.Rsv1 {
		t.Fatalf("echo header %+v, want a compressed frame", h)
	}
	return len(p)
}

// TestDeflateConnMemory opens many idle connections in each mode and
// reports the heap per connection (server and raw client together; the
// client's share is the same in every mode, so the differences are the
// server's). Each connection first echoes one 40 KiB message, which fills
// both windows under context takeover. Without context takeover a
// compressed connection must cost what a plain one does.
func TestDeflateConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of sockets")
	}
	if os.Getenv("GALE_MEMORY_CHILD") == "" {
		// Measure in a process of its own: what other tests leave behind
		// (servers stopping, sockets closing) is freed at times of its
		// own choosing and would blur the heap.
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeflateConnMemory$", "-test.v")
		cmd.Env = append(os.Environ(), "GALE_MEMORY_CHILD=1")
		out, err := cmd.CombinedOutput()
		t.Logf("measured in a child process:\n%s", out)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	const conns = 1000
	modes := []struct {
		name string
		cfg  CompressionConfig
		ext  string
	}{
		{name: "plain", ext: ""},
		{name: "deflate, no context takeover", cfg: CompressionConfig{Enabled: true}, ext: chrome},
		{name: "deflate, context takeover", cfg: CompressionConfig{Enabled: true, ContextTakeover: true}, ext: chrome},
	}
	msg := jsonLines(40<<10, 9)
	z := deflateRaw(t, nil, msg)
	perConn := map[string]float64{}
	for _, m := range modes {
		srv := startServer(t, echo{}, Config{Loops: 2, Compression: m.cfg})
		addr := srv.Addr().String()
		req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", addr)
		if m.ext != "" {
			req += "Sec-WebSocket-Extensions: " + m.ext + "\r\n"
		}
		req += "\r\n"
		frame := rawFrame(codec.OpText, true, msg)
		if m.ext != "" {
			frame = zframe(codec.OpText, true, z)
		}
		// Warm the loops (their scratch space, compressor and
		// decompressor are per loop, not per connection).
		warm := make([]net.Conn, 0, 8)
		for range 8 {
			warm = append(warm, memDial(t, addr, req, frame))
		}
		for _, c := range warm {
			c.Close()
		}
		waitOpenCount(t, srv, 0)
		before := settledHeap()
		open := make([]net.Conn, 0, conns)
		for range conns {
			open = append(open, memDial(t, addr, req, frame))
		}
		perConn[m.name] = float64(settledHeap()-before) / conns
		t.Logf("%-30s %7.0f B of heap per idle connection (server and client)", m.name, perConn[m.name])
		for _, c := range open {
			c.Close()
		}
		waitOpenCount(t, srv, 0)
	}
	plain := perConn["plain"]
	if d := perConn["deflate, no context takeover"] - plain; d > 256 {
		t.Errorf("no context takeover costs %.0f B more per idle connection than plain, want about 0", d)
	}
	if d := perConn["deflate, context takeover"] - plain; d > 72<<10 || d < 60<<10 {
		t.Errorf("context takeover costs %.0f B more per idle connection than plain, want 64 KiB (two full windows)", d)
	}
}

// settledHeap returns the heap in use once it stops shrinking: two
// collections each time (the first moves what the pools hold into their
// victim caches, the second frees it), until what earlier tests left
// behind (closing sockets, exiting goroutines) is gone.
func settledHeap() int64 {
	var ms runtime.MemStats
	last := int64(-1)
	for range 50 {
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if n := int64(ms.HeapInuse); last >= 0 && n > last-32<<10 {
			return n
		} else {
			last = n
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// memDial opens a connection with req, sends frame and reads the echo
// without keeping any buffer.
func memDial(t testing.TB, addr, req string, frame []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var buf [64 << 10]byte
	n := 0
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) { // the 101 comes alone
		m, err := c.Read(buf[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += m
	}
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101")) {
		t.Fatalf("upgrade: %q", buf[:n])
	}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	// The echo: a header, then its length.
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		t.Fatal(err)
	}
	hn := map[byte]int{126: 2, 127: 8}[buf[1]&0x7F]
	if _, err := io.ReadFull(c, buf[2:2+hn]); err != nil {
		t.Fatal(err)
	}
	h, _, err := codec.DecodeFrameHeader(buf[:2+hn])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, c, h.Length); err != nil {
		t.Fatal(err)
	}
	return c
}
