//go:build !race

package engine

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/galews/gale/codec"
)

// TestTLSEchoAllocations counts the heap allocations of the whole process
// per 1 KiB echo over TLS after warm-up: the server's decryption, frame
// parsing, echo and encryption on its loop, and the client's crypto/tls
// writing and reading (which the test keeps allocation-free itself: a
// pre-built frame, a fixed reply buffer).
//
// Gale's code allocates nothing; crypto/tls allocates one 32-byte object
// per record it reads (readFromUntil's atLeastReader escapes to the heap,
// conn.go:837 in Go 1.26), so each echo costs two: the server's read of
// the request record and the client's read of the reply. Sealing records
// allocates nothing (crypto/tls pools its output buffers). The loop's
// transport hands crypto/tls one record at a time, which spares a third:
// the read that would only find that nothing follows.
func TestTLSEchoAllocations(t *testing.T) {
	for _, v := range []struct {
		name string
		ver  uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			srv := startTLSServer(t, echo{}, Config{Loops: 1})
			nc, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			cfg := testCerts(t).client()
			cfg.MaxVersion = v.ver
			tc := tls.Client(nc, cfg)
			wsOver(t, tc)
			const size = 1 << 10
			frame := codec.AppendFrame(nil, codec.Header{Fin: true, Opcode: codec.OpBinary, Masked: true, Mask: [4]byte{9, 8, 7, 6}, Length: size}, make([]byte, size))
			reply := make([]byte, size+4)
			echoOnce := func() {
				if _, err := tc.Write(frame); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(tc, reply); err != nil {
					t.Fatal(err)
				}
			}
			for range 500 {
				echoOnce()
			}
			allocs := testing.AllocsPerRun(5000, echoOnce)
			t.Logf("%s: %.3f allocations per 1 KiB echo (server and client together)", v.name, allocs)
			if allocs > 2.05 {
				t.Errorf("%.3f allocations per echo, want at most 2 (crypto/tls's, one per record read on each side)", allocs)
			}
		})
	}
}
