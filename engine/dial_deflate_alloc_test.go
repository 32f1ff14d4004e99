//go:build !race

package engine

import (
	"bufio"
	"net"
	"testing"

	"github.com/galews/gale/codec"
)

// Not under -race: the race detector makes sync.Pool drop what is put
// back, so pooled compressors are rebuilt at random.

// TestDialDeflateWriteAllocs: a compressed WriteMessage on a long-lived
// ClientConn allocates nothing once warm, with and without context
// takeover: the compressor and its output come from pools, the frame
// buffer and the window are the connection's and reused.
func TestDialDeflateWriteAllocs(t *testing.T) {
	for _, tc := range []struct {
		ext      string
		takeover bool
	}{
		{deflateExt, false},
		{"permessage-deflate", true},
		{"permessage-deflate; client_max_window_bits=10", true},
	} {
		t.Run(tc.ext, func(t *testing.T) {
			url, _ := deflateRawServer(t, tc.ext, func(nc net.Conn, br *bufio.Reader) {
				buf := make([]byte, 64<<10)
				for {
					if _, err := br.Read(buf); err != nil {
						return
					}
				}
			})
			c, err := Dial(t.Context(), url, &DialOptions{Compression: CompressionConfig{Enabled: true, ContextTakeover: tc.takeover}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if !c.Compression() {
				t.Fatal("permessage-deflate not in force")
			}
			msgs := [][]byte{jsonLines(4096, 1), jsonLines(4096, 2)}
			i := 0
			write := func() {
				if err := c.WriteMessage(codec.OpText, msgs[i%2]); err != nil {
					t.Fatal(err)
				}
				i++
			}
			for range 10 {
				write()
			}
			if a := testing.AllocsPerRun(200, write); a > 0 {
				t.Errorf("%.2f allocations per compressed WriteMessage, want 0", a)
			}
		})
	}
}
