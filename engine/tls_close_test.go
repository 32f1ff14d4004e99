package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// recordTap is the TCP socket under a crypto/tls endpoint of a test,
// noting the records that come in. crypto/tls's Read answers io.EOF both
// for a close_notify and for a bare FIN between records, so only the
// records tell a clean close from a truncation. With hold set, writes are
// gathered until flush, so that two records leave in one segment.
type recordTap struct {
	net.Conn
	mu       sync.Mutex
	hdr      []byte
	left     int
	lastType byte // the last whole record's
	lastLen  int
	hold     bool
	held     []byte
}

func (r *recordTap) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if r.left > 0 {
			k := min(r.left, len(b))
			r.left -= k
			b = b[k:]
			continue
		}
		k := min(recordHeaderLen-len(r.hdr), len(b))
		r.hdr = append(r.hdr, b[:k]...)
		b = b[k:]
		if len(r.hdr) == recordHeaderLen {
			r.lastType, r.lastLen = r.hdr[0], int(r.hdr[3])<<8|int(r.hdr[4])
			r.left, r.hdr = r.lastLen, r.hdr[:0]
		}
	}
	return n, err
}

func (r *recordTap) Write(p []byte) (int, error) {
	r.mu.Lock()
	if r.hold {
		r.held = append(r.held, p...)
		r.mu.Unlock()
		return len(p), nil
	}
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recordTap) flush() error {
	r.mu.Lock()
	b := r.held
	r.hold, r.held = false, nil
	r.mu.Unlock()
	r.Conn.SetWriteDeadline(time.Time{}) // crypto/tls's CloseWrite sets it to now
	_, err := r.Conn.Write(b)
	return err
}

// closedCleanly reports whether the last record before the FIN was a
// close_notify: in TLS 1.2 an alert record; in TLS 1.3 every record is
// application data on the wire, and an encrypted alert is 19 bytes (the
// alert's 2, the inner content type, a 16-byte tag, whatever the suite),
// which no WebSocket frame Gale sends encrypts to.
func (r *recordTap) closedCleanly(version uint16) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left != 0 || len(r.hdr) != 0 {
		return false
	}
	if version == tls.VersionTLS12 {
		return r.lastType == 21
	}
	return r.lastType == 23 && r.lastLen == 19
}

// readToEOF reads tc until it ends and returns the error that ended it.
func readToEOF(tc *tls.Conn) error {
	tc.SetReadDeadline(time.Now().Add(testTimeout))
	_, err := io.Copy(io.Discard, tc)
	if err == nil {
		err = io.EOF // io.Copy's way of saying so
	}
	return err
}

// tlsRaw dials srv over TLS (version pinned) through a recordTap and
// upgrades; the rawClient speaks frames over the tls.Conn.
func tlsRaw(t *testing.T, srv *Server, version uint16) (*rawClient, *tls.Conn, *recordTap) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tap := &recordTap{Conn: nc}
	cfg := testCerts(t).client()
	cfg.MinVersion, cfg.MaxVersion = version, version
	tc := tls.Client(tap, cfg)
	t.Cleanup(func() { nc.Close() })
	rc := &rawClient{t: t, conn: tc, br: bufio.NewReaderSize(tc, 64<<10)}
	rc.upgrade()
	return rc, tc, tap
}

var tlsVersions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// TestTLSCloseNotify: whenever Gale closes an established TLS connection
// (after the close handshake, either side beginning it, or at Shutdown),
// a close_notify precedes the FIN, so a crypto/tls peer reads a clean
// io.EOF after the last record.
func TestTLSCloseNotify(t *testing.T) {
	for _, v := range tlsVersions {
		for _, how := range []string{"client closes", "server closes", "shutdown"} {
			t.Run(fmt.Sprintf("%s/%s", tls.VersionName(v), how), func(t *testing.T) {
				rec := newRecorder()
				srv := startTLSServer(t, rec, Config{Loops: 1, Logger: discardLogger()})
				rc, tc, tap := tlsRaw(t, srv, v)
				c := recv(t, rec.opens, "OnOpen")
				rc.write(rawFrame(codec.OpText, true, []byte("hi")))
				if _, p := rc.readMessage(); string(p) != "hi" {
					t.Fatalf("echo: %q", p)
				}
				want := codec.StatusNormalClosure
				switch how {
				case "client closes":
					rc.write(rawFrame(codec.OpClose, true, rawClosePayload(1000, "")))
					rc.expectClose(want)
				case "server closes":
					c.Close(want, "")
					rc.expectClose(want)
					// Written off the callbacks (Writev): the frame's
					// header and payload share one record, 4 bytes
					// sealed into 21 in TLS 1.3.
					if tap.mu.Lock(); v == tls.VersionTLS13 && tap.lastLen != 21 {
						t.Errorf("the Close frame came in a record of %d bytes, want one of 21", tap.lastLen)
					}
					tap.mu.Unlock()
					rc.write(rawFrame(codec.OpClose, true, rawClosePayload(1000, "")))
				case "shutdown":
					done := make(chan error, 1)
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
						defer cancel()
						done <- srv.Shutdown(ctx)
					}()
					want = codec.StatusGoingAway
					rc.expectClose(want)
					rc.write(rawFrame(codec.OpClose, true, rawClosePayload(uint16(want), "")))
					defer func() {
						if err := recv(t, done, "Shutdown"); err != nil {
							t.Error(err)
						}
					}()
				}
				if err := readToEOF(tc); err != io.EOF {
					t.Fatalf("read after the close: %v, want io.EOF", err)
				}
				if !tap.closedCleanly(v) {
					t.Errorf("the stream ended without a close_notify (last record: type %d, %d bytes)", tap.lastType, tap.lastLen)
				}
				wantCloseError(t, recv(t, rec.closes, "OnClose"), want, nil)
			})
		}
	}
}

// TestTLSPeerCloseNotify: a peer that sends its Close frame and its
// close_notify together (one segment) has its Close read first: OnClose
// gets the Close, not the end of the stream, nothing is logged, and the
// echo and Gale's own close_notify still go out.
func TestTLSPeerCloseNotify(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			rec := newRecorder()
			logs := &lockedBuffer{}
			srv := startTLSServer(t, rec, Config{Loops: 1, Logger: slogTo(logs)})
			rc, tc, tap := tlsRaw(t, srv, v)
			recv(t, rec.opens, "OnOpen")
			tap.mu.Lock()
			tap.hold = true
			tap.mu.Unlock()
			rc.write(rawFrame(codec.OpClose, true, rawClosePayload(1000, "bye")))
			if err := tc.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if err := tap.flush(); err != nil {
				t.Fatal(err)
			}
			reason := "bye"
			wantCloseError(t, recv(t, rec.closes, "OnClose"), codec.StatusNormalClosure, &reason)
			rc.expectClose(codec.StatusNormalClosure)
			if err := readToEOF(tc); err != io.EOF {
				t.Fatalf("read after the close: %v, want io.EOF", err)
			}
			if !tap.closedCleanly(v) {
				t.Errorf("no close_notify from Gale (last record: type %d, %d bytes)", tap.lastType, tap.lastLen)
			}
			if s := logs.String(); s != "" {
				t.Errorf("logged: %s", s)
			}
		})
	}
}

// TestTLSPeerCloseNotifyAlone: a close_notify without a Close frame ends
// the connection as the peer leaving (OnClose gets io.EOF), unlogged.
func TestTLSPeerCloseNotifyAlone(t *testing.T) {
	rec := newRecorder()
	logs := &lockedBuffer{}
	srv := startTLSServer(t, rec, Config{Loops: 1, Logger: slogTo(logs)})
	_, tc, _ := tlsRaw(t, srv, tls.VersionTLS13)
	recv(t, rec.opens, "OnOpen")
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, rec.closes, "OnClose"); !errors.Is(err, io.EOF) {
		t.Fatalf("OnClose: %v, want io.EOF", err)
	}
	if err := readToEOF(tc); err != io.EOF {
		t.Fatalf("read after the close: %v, want io.EOF", err)
	}
	if s := logs.String(); s != "" {
		t.Errorf("logged: %s", s)
	}
}

// TestTLSClientCloseNotify: the event-loop client's close toward a
// crypto/tls server ends with a close_notify too.
func TestTLSClientCloseNotify(t *testing.T) {
	pki := testCerts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	verdict := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			verdict <- err
			return
		}
		defer nc.Close()
		tap := &recordTap{Conn: nc}
		tc := tls.Server(tap, pki.server())
		tc.SetDeadline(time.Now().Add(testTimeout))
		upgradeAccept(tc)
		if code, err := readClientClose(tc); err != nil || code != codec.StatusNormalClosure {
			verdict <- fmt.Errorf("client's Close: %d, %v", code, err)
			return
		}
		tc.Write(codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpClose, Length: 2}, rawClosePayload(1000, "")))
		if err := readToEOF(tc); err != io.EOF {
			verdict <- fmt.Errorf("read after the close: %v, want io.EOF", err)
			return
		}
		if !tap.closedCleanly(tls.VersionTLS13) {
			verdict <- fmt.Errorf("no close_notify from the client (last record: type %d, %d bytes)", tap.lastType, tap.lastLen)
			return
		}
		verdict <- nil
	}()
	closed := make(chan error, 1)
	cl, err := NewClient(closeWatcher{closed: closed}, Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c, err := cl.Dial(ctx, "wss://localhost:"+port+"/", &DialOptions{TLSConfig: pki.client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(codec.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, verdict, "the server's verdict"); err != nil {
		t.Error(err)
	}
	wantCloseError(t, recv(t, closed, "OnClose"), codec.StatusNormalClosure, nil)
}

type closeWatcher struct {
	BaseHandler
	closed chan error
}

func (h closeWatcher) OnClose(c *Conn, err error) { h.closed <- err }
