//go:build !race

package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/galews/gale/codec"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// The two paths a server's CPU goes to, end to end over loopback: a message
// echoed (read, unmask, dispatch, write) and a connection's life (accept,
// upgrade, close handshake). The client writes pre-built frames and reads
// into fixed buffers, so the per-message allocations reported are the
// server's; the handshake's include the client's dial (a net.Conn and its
// addresses), which the server's own share can be told from by comparing
// with BenchmarkDialOnly.

// BenchmarkEcho echoes depth messages per round trip through one
// connection; one op is one message.
func BenchmarkEcho(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		depth int
	}{
		{"64B", 64, 16},
		{"1KiB", 1 << 10, 16},
		{"16KiB", 16 << 10, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := startServer(b, echo{}, Config{Loops: 1})
			conn, br := rawUpgrade(b, srv.Addr().String())
			defer conn.Close()
			one := buildMessage(codec.OpBinary, bc.size, 1)
			batch := make([]byte, 0, len(one)*bc.depth)
			for range bc.depth {
				batch = append(batch, one...)
			}
			reply := make([]byte, bc.size+codec.MaxHeaderLen)
			round := func() {
				if _, err := conn.Write(batch); err != nil {
					b.Fatal(err)
				}
				for range bc.depth {
					readEcho(b, br, reply, bc.size)
				}
			}
			for range 100 { // warm the pools
				round()
			}
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += bc.depth {
				round()
			}
		})
	}
}

// BenchmarkHandshake: dial, upgrade, a Close from the client and the
// server's answer, then the socket closed. One op is one connection.
func BenchmarkHandshake(b *testing.B) {
	srv := startServer(b, echo{}, Config{})
	addr := srv.Addr().String()
	req := []byte(fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr))
	closeFrame := codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpClose, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, rawClosePayload(1000, ""))
	buf := make([]byte, 512)
	once := func() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReaderSize(conn, 512)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			b.Fatalf("upgrade: %v %v", resp, err)
		}
		if _, err := conn.Write(closeFrame); err != nil {
			b.Fatal(err)
		}
		if h, _ := readServerFrame(b, br, buf); h.Opcode != codec.OpClose {
			b.Fatalf("answer to Close: %+v", h)
		}
		if _, err := br.Read(buf); err != io.EOF {
			b.Fatalf("after the Close: %v, want EOF", err)
		}
	}
	for range 50 {
		once()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		once()
	}
}

// BenchmarkDialOnly is BenchmarkHandshake's client side alone against a
// plain listener: what the handshake figures include that is not Gale's.
func BenchmarkDialOnly(b *testing.B) {
	addr := serveEach(b, func(c net.Conn) { c.Close() })
	b.ReportAllocs()
	for range b.N {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
}

// BenchmarkSmallSegments: a 1 MiB message whose bytes arrive a few at a
// time (the client writes it in 128-byte pieces, each a TCP segment with
// Nagle off; with NAGLE=1 in the environment the client's kernel coalesces
// them while an ACK is outstanding, as most clients do), echoed back whole,
// by Gale and by a goroutine-per-connection server on gobwas/ws (the shape
// of gorilla's). One op is one message; the time is the client's wall time
// from the first piece to the end of the echo.
func BenchmarkSmallSegments(b *testing.B) {
	const size, piece = 1 << 20, 128
	run := func(b *testing.B, addr string) {
		conn, br := rawUpgrade(b, addr)
		defer conn.Close()
		if os.Getenv("NAGLE") != "" {
			conn.(*net.TCPConn).SetNoDelay(false)
		}
		msg := buildMessage(codec.OpBinary, size, 1)
		reply := make([]byte, size+codec.MaxHeaderLen)
		b.SetBytes(size)
		b.ReportAllocs()
		for range b.N {
			for p := msg; len(p) > 0; {
				n := min(piece, len(p))
				if _, err := conn.Write(p[:n]); err != nil {
					b.Fatal(err)
				}
				p = p[n:]
			}
			readEcho(b, br, reply, size)
		}
	}
	b.Run("gale", func(b *testing.B) {
		srv := startServer(b, echo{}, Config{Loops: 1})
		run(b, srv.Addr().String())
	})
	b.Run("goroutine", func(b *testing.B) {
		run(b, serveEach(b, func(c net.Conn) {
			defer c.Close()
			if _, err := ws.Upgrade(c); err != nil {
				return
			}
			for {
				msg, op, err := wsutil.ReadClientData(c)
				if err != nil {
					return
				}
				if wsutil.WriteServerMessage(c, op, msg) != nil {
					return
				}
			}
		}))
	})
}

// serveEach listens on loopback and runs serve on a goroutine of its own
// for each connection accepted, until the benchmark ends; it returns the
// address.
func serveEach(b *testing.B, serve func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}
