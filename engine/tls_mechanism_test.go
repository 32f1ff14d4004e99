package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fedConn is a transport like the loop's (tls.go), driven by the test: the
// handshake runs over a real socket, then Read serves only the ciphertext
// the test feeds and answers err when there is none, and Write collects
// records without ever blocking.
type fedConn struct {
	nc  net.Conn // until the handshake is done
	in  bytes.Buffer
	out bytes.Buffer
	err error // what Read answers when in is empty
}

func (f *fedConn) Read(p []byte) (int, error) {
	if f.nc != nil {
		return f.nc.Read(p)
	}
	if f.in.Len() == 0 {
		return 0, f.err
	}
	return f.in.Read(p)
}

func (f *fedConn) Write(p []byte) (int, error) {
	if f.nc != nil {
		return f.nc.Write(p)
	}
	return f.out.Write(p)
}

func (f *fedConn) Close() error                     { return nil }
func (f *fedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fedConn) SetDeadline(time.Time) error      { return nil }
func (f *fedConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fedConn) SetWriteDeadline(time.Time) error { return nil }

// timeoutOnly is a net.Error that is a timeout but not temporary.
type timeoutOnly struct{}

func (timeoutOnly) Error() string   { return "timeout only" }
func (timeoutOnly) Timeout() bool   { return true }
func (timeoutOnly) Temporary() bool { return false }

// fedPair returns a server tls.Conn over a fedConn, established, and the
// client's tls.Conn with the raw socket under the server: the test moves
// ciphertext from raw into the fedConn itself.
func fedPair(t *testing.T, wouldBlock error, version uint16) (srv *tls.Conn, f *fedConn, cli *tls.Conn, raw net.Conn) {
	t.Helper()
	pki := testCerts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); raw.Close() })
	ccfg := pki.client()
	ccfg.MaxVersion = version
	cli = tls.Client(cc, ccfg)
	f = &fedConn{nc: raw, err: wouldBlock}
	srv = tls.Server(f, pki.server())
	done := make(chan error, 1)
	go func() { done <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.nc = nil // from now on the test feeds it, as the loop does
	return srv, f, cli, raw
}

// TestTLSMechanism pins what Gale's TLS on the event loops relies on in
// crypto/tls (Go 1.26, conn.go): a tls.Conn whose transport answers a
// net.Error with Temporary() true ("nothing more yet") returns that error
// from Read without keeping it as its permanent error (readRecordOrCCS
// stores only errors that are not Temporary, via halfConn.setErrorLocked),
// keeps the part of a record it already read, and reads on when called
// again with more bytes; and its Write only calls the transport's Write,
// whose records the peer reads. Should a Go release change this, this
// test fails and tls.go must be revisited.
func TestTLSMechanism(t *testing.T) {
	for _, v := range []struct {
		name string
		ver  uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			srv, f, cli, raw := fedPair(t, errWouldBlock, v.ver)
			buf := make([]byte, 64)

			// Nothing there: the would-block error comes back as is.
			n, err := srv.Read(buf)
			if n != 0 || err != errWouldBlock {
				t.Fatalf("empty transport: Read = %d, %v; want 0, errWouldBlock", n, err)
			}

			// One record, fed in two halves: the first half is kept, the
			// second completes it.
			if _, err := cli.Write([]byte("hello over the loop")); err != nil {
				t.Fatal(err)
			}
			rec := readSome(t, raw)
			f.in.Write(rec[:len(rec)/2])
			if n, err := srv.Read(buf); n != 0 || err != errWouldBlock {
				t.Fatalf("half a record: Read = %d, %v; want 0, errWouldBlock", n, err)
			}
			f.in.Write(rec[len(rec)/2:])
			n, err = srv.Read(buf)
			if err != nil || string(buf[:n]) != "hello over the loop" {
				t.Fatalf("after the rest: Read = %q, %v", buf[:n], err)
			}
			if n, err := srv.Read(buf); n != 0 || err != errWouldBlock {
				t.Fatalf("drained: Read = %d, %v; want 0, errWouldBlock", n, err)
			}

			// Write: the records land in the transport's buffer, in one
			// call, and the peer reads them.
			if _, err := srv.Write([]byte("and back")); err != nil {
				t.Fatal(err)
			}
			if f.out.Len() == 0 {
				t.Fatal("Write produced no records")
			}
			if _, err := raw.Write(f.out.Bytes()); err != nil {
				t.Fatal(err)
			}
			f.out.Reset()
			cli.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err = cli.Read(buf)
			if err != nil || string(buf[:n]) != "and back" {
				t.Fatalf("peer read %q, %v", buf[:n], err)
			}

			// Many rounds: the connection is never poisoned.
			for i := range 100 {
				msg := []byte{byte(i), 1, 2, 3}
				cli.Write(msg)
				if n, err := srv.Read(buf); err != errWouldBlock {
					t.Fatalf("round %d: Read before feeding = %d, %v", i, n, err)
				}
				f.in.Write(readSome(t, raw))
				if n, err := srv.Read(buf); err != nil || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("round %d: Read = %x, %v", i, buf[:n], err)
				}
			}
		})
	}

	// What is spared is Temporary(), not Timeout(): a timeout that is not
	// temporary is kept, and every later Read fails with it. errWouldBlock
	// answers true to both, so it survives a change either way; this
	// case says which one Go 1.26 reads.
	t.Run("timeout only poisons", func(t *testing.T) {
		srv, f, cli, raw := fedPair(t, timeoutOnly{}, tls.VersionTLS13)
		buf := make([]byte, 64)
		if _, err := srv.Read(buf); !errors.Is(err, timeoutOnly{}) {
			t.Fatalf("Read = %v", err)
		}
		cli.Write([]byte("x"))
		f.in.Write(readSome(t, raw))
		if n, err := srv.Read(buf); err == nil {
			t.Fatalf("a non-temporary timeout did not stick: Read = %q; crypto/tls changed (see tls.go)", buf[:n])
		}
	})

	// The error's two answers, as tls.go documents them.
	if !errWouldBlock.Temporary() || !errWouldBlock.Timeout() {
		t.Fatal("errWouldBlock must be both temporary and a timeout")
	}
}

// readSome reads what the peer wrote to raw (whole records: the test
// writes little, and loopback delivers it at once).
func readSome(t *testing.T, raw net.Conn) []byte {
	t.Helper()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64<<10)
	n, err := raw.Read(b)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b[:n]
}
