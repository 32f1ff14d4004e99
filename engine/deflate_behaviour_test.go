package engine

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
)

// streamReader inflates what a server sends under context takeover: one
// decompressor across messages, as a client keeps it.
type streamReader struct {
	in bytes.Buffer
	fr io.ReadCloser
}

func newStreamReader() *streamReader {
	s := &streamReader{}
	s.fr = flate.NewReader(&s.in)
	return s
}

// message inflates one compressed message of n bytes.
func (s *streamReader) message(t testing.TB, z []byte, n int) []byte {
	t.Helper()
	s.in.Write(z)
	s.in.Write(deflateTail)
	p := make([]byte, n)
	if _, err := io.ReadFull(s.fr, p); err != nil {
		t.Fatalf("inflate %d bytes: %v", n, err)
	}
	return p
}

// readAs reads one server frame and returns its message: inflated through
// sr when compressed.
func readAs(t testing.TB, rc *rawClient, sr *streamReader, want []byte) codec.Header {
	t.Helper()
	h, p := rc.readFrame()
	if h.Rsv == codec.Rsv1 {
		p = sr.message(t, p, len(want))
	}
	if !bytes.Equal(p, want) {
		t.Fatalf("frame %+v: message of %d bytes differs from the %d sent", h, len(p), len(want))
	}
	return h
}

// TestDeflateWrites: the threshold, the per-message opt-out, writes from
// other goroutines and prepared messages, on connections with and without
// context takeover. The client inflates the server's messages with one
// stream, as a takeover client does, so a window that fell out of step
// with what was sent shows as corrupt data.
func TestDeflateWrites(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("takeover %v", takeover), func(t *testing.T) {
			rec := newRecorder()
			srv := startServer(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: takeover, Threshold: 100}})
			rc, _ := upgradeDeflate(t, srv, "permessage-deflate")
			plain := upgradeRaw(t, srv.Addr()) // no offer: gets the plain prepared frame
			sc := recv(t, rec.opens, "OnOpen")
			recv(t, rec.opens, "OnOpen")
			sr := newStreamReader()
			msg := jsonLines(5000, 1)

			// On the loop (an echo), twice: with takeover the second refers
			// back into the first.
			var sizes []int64
			for range 2 {
				rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, msg)))
				h := readAs(t, rc, sr, msg)
				if h.Rsv != codec.Rsv1 {
					t.Fatalf("echo not compressed: %+v", h)
				}
				sizes = append(sizes, h.Length)
			}
			if takeover != (sizes[1] < sizes[0]/4) {
				t.Errorf("takeover %v, yet the echoes took %v bytes", takeover, sizes)
			}
			// Below the threshold: plain.
			small := msg[:99]
			rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, small)))
			if h := readAs(t, rc, sr, small); h.Rsv != 0 {
				t.Errorf("99 bytes under a threshold of 100 compressed: %+v", h)
			}
			// From another goroutine: compressed without the window.
			if err := sc.WriteText(msg); err != nil {
				t.Fatal(err)
			}
			if h := readAs(t, rc, sr, msg); h.Rsv != codec.Rsv1 {
				t.Errorf("queued write not compressed: %+v", h)
			}
			// Opted out.
			if err := sc.WriteMessageUncompressed(codec.OpText, msg); err != nil {
				t.Fatal(err)
			}
			if h := readAs(t, rc, sr, msg); h.Rsv != 0 {
				t.Errorf("WriteMessageUncompressed sent %+v", h)
			}
			// Incompressible: sent plain.
			noise := binaryPayload(3000)
			for i := range noise {
				noise[i] ^= byte(i * 7919 >> 3)
			}
			if err := sc.WriteBinary(noise); err != nil {
				t.Fatal(err)
			}
			readAs(t, rc, sr, noise)
			// An echo, so the window (if any) is not empty, then a
			// broadcast: compressed once for every compressing receiver,
			// plain for the other.
			rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, msg)))
			readAs(t, rc, sr, msg)
			big := jsonLines(20000, 2)
			pm, err := NewPreparedMessage(codec.OpText, big)
			if err != nil {
				t.Fatal(err)
			}
			srv.Broadcast(pm)
			if h := readAs(t, rc, sr, big); h.Rsv != codec.Rsv1 || h.Length > 5000 {
				t.Errorf("prepared frame %+v, want compressed", h)
			}
			if h, p := plain.readFrame(); h.Rsv != 0 || !bytes.Equal(p, big) {
				t.Errorf("prepared frame for a plain connection: %+v", h)
			}
			// Back on the loop after all that: the window (if any) must
			// still match what the client inflated.
			for range 2 {
				rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, msg)))
				readAs(t, rc, sr, msg)
			}
		})
	}
}

// TestDeflateWritesConcurrent writes compressed messages from several
// goroutines while the client has others echoed through the loop, on a
// connection with context takeover: every message must inflate in one
// stream, so the loop's window must follow what really went out.
func TestDeflateWritesConcurrent(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, rec, Config{Loops: 1, Compression: CompressionConfig{Enabled: true, ContextTakeover: true}})
	rc, _ := upgradeDeflate(t, srv, "permessage-deflate")
	sc := recv(t, rec.opens, "OnOpen")
	const writers, each, echoes, size = 4, 50, 50, 3000
	want := map[string]bool{}
	var mu sync.Mutex
	expect := func(p []byte) {
		mu.Lock()
		want[string(p)] = true
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				msg := jsonLines(size, w*1000+i)
				expect(msg)
				if err := sc.WriteText(msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	sr := newStreamReader()
	for i := 0; i < writers*each+echoes; i++ {
		if i < echoes {
			msg := jsonLines(size, 9000+i)
			expect(msg)
			rc.write(zframe(codec.OpText, true, deflateRaw(t, nil, msg)))
		}
		h, p := rc.readFrame()
		if h.Rsv == codec.Rsv1 {
			p = sr.message(t, p, size)
		}
		mu.Lock()
		ok := want[string(p)]
		delete(want, string(p))
		mu.Unlock()
		if !ok {
			t.Fatalf("message %d (%+v) is none of those sent", i, h)
		}
	}
	wg.Wait()
}

// TestDeflateFrameHandler: a FrameHandler gets a compressed message whole,
// as one final frame, and plain messages frame by frame; with Workers the
// inflated message is copied to the worker.
func TestDeflateFrameHandler(t *testing.T) {
	for _, workers := range []int{0, 2} {
		t.Run(fmt.Sprintf("workers %d", workers), func(t *testing.T) {
			ft := &zframeTracker{frames: make(chan zframeEvent, 16)}
			srv := startServer(t, ft, Config{Loops: 1, Workers: workers, Compression: CompressionConfig{Enabled: true}})
			rc, _ := upgradeDeflate(t, srv, chrome)
			msg := jsonLines(4000, 3)
			z := deflateRaw(t, nil, msg)
			rc.write(zframe(codec.OpText, false, z[:50]), rawFrame(codec.OpContinuation, true, z[50:]))
			f := recv(t, ft.frames, "OnFrame")
			if f.op != codec.OpText || !f.fin || !bytes.Equal(f.p, msg) {
				t.Fatalf("OnFrame(%v, fin %v, %d bytes), want the whole message", f.op, f.fin, len(f.p))
			}
			rc.write(rawFrame(codec.OpBinary, false, []byte("ab")), rawFrame(codec.OpContinuation, true, []byte("c")))
			if f := recv(t, ft.frames, "OnFrame"); f.op != codec.OpBinary || f.fin || string(f.p) != "ab" {
				t.Fatalf("first plain frame: %+v", f)
			}
			if f := recv(t, ft.frames, "OnFrame"); f.op != codec.OpContinuation || !f.fin || string(f.p) != "c" {
				t.Fatalf("second plain frame: %+v", f)
			}
		})
	}
}

type zframeEvent struct {
	op  codec.Opcode
	fin bool
	p   []byte
}

type zframeTracker struct {
	BaseHandler
	frames chan zframeEvent
}

func (f *zframeTracker) OnFrame(c *Conn, op codec.Opcode, fin bool, p []byte) {
	f.frames <- zframeEvent{op, fin, clone(p)}
}
