package engine

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// TestEventLoopClientLeavesTCPCloseToServer: once the close handshake is
// done, the event-loop client waits for the server to close the TCP
// connection (RFC 6455 §7.1.1), so that TIME_WAIT stays on the server and
// the client's address and port are free at once; CloseTimeout bounds the
// wait for a server that never closes. OnClose reports the server's Close
// in every case, and bytes after it are ignored.
func TestEventLoopClientLeavesTCPCloseToServer(t *testing.T) {
	const hold = 300 * time.Millisecond // how long the server keeps its end open
	tests := []struct {
		name        string
		clientFirst bool // the client sends the first Close
		trailing    bool // the server sends a frame after its Close
		neverClose  bool // the server never closes: CloseTimeout ends it
		want        codec.StatusCode
	}{
		{name: "server closes first", want: codec.StatusServiceRestart},
		{name: "client closes first", clientFirst: true, want: codec.StatusNormalClosure},
		{name: "frame after the server's Close", trailing: true, want: codec.StatusServiceRestart},
		{name: "server never closes the socket", neverClose: true, want: codec.StatusServiceRestart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverSaw := make(chan error, 1) // the client's end while the server held its own
			url := rawServer(t, func(c net.Conn) {
				key := readKey(c)
				c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(codec.AppendAccept(nil, key)) + "\r\n\r\n"))
				br := bufio.NewReader(c)
				if !tt.clientFirst {
					c.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpClose}, codec.AppendClosePayload(nil, tt.want, "restart")))
				}
				h, p, err := readMaskedFrame(br)
				if err != nil || h.Opcode != codec.OpClose {
					serverSaw <- errors.Join(errors.New("no Close from the client"), err)
					return
				}
				if tt.clientFirst {
					c.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpClose}, p)) // the echo
				}
				if tt.trailing {
					c.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpText}, []byte("late")))
				}
				// The client must keep its end open now: a read sees
				// neither EOF nor data until the deadline.
				c.SetReadDeadline(time.Now().Add(hold))
				_, err = br.ReadByte()
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					err = nil
				} else if err == nil {
					err = errors.New("data after the client's Close")
				} else {
					err = errors.Join(errors.New("the client closed the socket first"), err)
				}
				serverSaw <- err
				if tt.neverClose {
					c.SetReadDeadline(time.Now().Add(testTimeout))
					io.Copy(io.Discard, c) // until the client gives up
				}
			})
			rec := newClientRecorder()
			cfg := Config{Loops: 1}
			if tt.neverClose {
				cfg.CloseTimeout = time.Second
			}
			cl := newTestClient(t, rec, cfg)
			conn, err := cl.Dial(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.clientFirst {
				if err := conn.Close(tt.want, "bye"); err != nil {
					t.Fatal(err)
				}
			}
			if err := recv(t, serverSaw, "the server's view"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-rec.closes:
				wantCloseError(t, err, tt.want, nil)
			case <-time.After(testTimeout):
				t.Fatal("no OnClose after the server closed (or CloseTimeout)")
			}
			select {
			case m := <-rec.msgs:
				t.Fatalf("message after the Close delivered: %q", m.payload)
			default:
			}
			if st := cl.Stats(); st.Open != 0 {
				t.Fatalf("connections left open: %d", st.Open)
			}
		})
	}
}

// readMaskedFrame reads one client frame and returns it unmasked. It
// returns errors rather than failing the test, for server goroutines.
func readMaskedFrame(br *bufio.Reader) (codec.Header, []byte, error) {
	hdr := make([]byte, 0, codec.MaxHeaderLen)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return codec.Header{}, nil, err
		}
		hdr = append(hdr, b)
		h, _, err := codec.DecodeFrameHeader(hdr)
		if err == codec.ErrNeedMore {
			continue
		}
		if err != nil {
			return h, nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			return h, nil, err
		}
		if h.Masked {
			codec.Mask(p, h.Mask, 0)
		}
		return h, p, nil
	}
}
