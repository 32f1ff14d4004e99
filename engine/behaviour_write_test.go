package engine

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// Writes and dispatch: concurrent writers, outbound limits, broadcast,
// frame-by-frame delivery, reassembly, workers.

// TestConcurrentWrites: many goroutines write to one connection at once;
// every message must arrive whole and, per goroutine, in order.
func TestConcurrentWrites(t *testing.T) {
	const writers, perWriter = 8, 200
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, MaxOutbound: 64 << 20, Logger: discardLogger()})
	rc := upgradeRaw(t, srv.Addr())
	c := tr.find(t, rc.addr()).conn

	// Message i of writer g: "g i " then a filler whose size varies with
	// i, so frames of all three length encodings interleave.
	msg := func(g, i int) []byte {
		n := i % 100
		switch {
		case i%25 == 0:
			n = 65536 + i
		case i%2 == 0:
			n = 126 + i*37%2000
		}
		return append([]byte(fmt.Sprintf("%d %d ", g, i)), bytes.Repeat([]byte{byte('a' + g)}, n)...)
	}
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				var err error
				if i%3 == 0 {
					var pm *PreparedMessage
					if pm, err = NewPreparedMessage(codec.OpBinary, msg(g, i)); err == nil {
						err = c.WritePrepared(pm)
					}
				} else {
					err = c.WriteBinary(msg(g, i))
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d message %d: %w", g, i, err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * perWriter {
		_, p := rc.readMessage()
		f := bytes.SplitN(p, []byte(" "), 3)
		g, _ := strconv.Atoi(string(f[0]))
		i, _ := strconv.Atoi(string(f[1]))
		if len(f) != 3 || g < 0 || g >= writers || i != next[g] || !bytes.Equal(p, msg(g, i)) {
			t.Fatalf("got message %.20q… (%d bytes); want writer %d's message %d", p, len(p), g, next[g])
		}
		next[g]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// smallReceiveBuffer shrinks a socket's receive buffer before it connects,
// so a client that stops reading pushes back on the server quickly.
func smallReceiveBuffer(fd uintptr) {
	syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
}

// floodResult counts the outcomes of a flood of writes.
type floodResult struct {
	ok    int
	first error // the first error, nil if none
	errs  map[error]int
}

func flood(c *Conn, n int, p []byte) floodResult {
	r := floodResult{errs: map[error]int{}}
	for range n {
		err := c.WriteBinary(p)
		if err == nil {
			r.ok++
			continue
		}
		if r.first == nil {
			r.first = err
		}
		r.errs[err]++
	}
	return r
}

func TestOutboundLimit(t *testing.T) {
	// On loopback the kernel takes a few MiB (send buffer autotuning)
	// before gnet buffers a byte, so the flood is 16 MiB of 1 KiB messages.
	const maxOutbound, msgs = 64 << 10, 16 << 10
	payload := bytes.Repeat([]byte("z"), 1<<10)
	tests := []struct {
		name     string
		policy   OutboundPolicy
		fromLoop bool // flood from OnMessage, else from the test goroutine
	}{
		{name: "reject, callback", policy: OutboundReject, fromLoop: true},
		{name: "reject, goroutine", policy: OutboundReject},
		{name: "close, callback", policy: OutboundClose, fromLoop: true},
		{name: "close, goroutine", policy: OutboundClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := make(chan floodResult, 1)
			tr := newTracker(t)
			tr.message = func(c *Conn, op codec.Opcode, p []byte) {
				if string(p) == "flood" {
					results <- flood(c, msgs, payload)
					return
				}
				c.WriteMessage(op, p)
			}
			srv := startServer(t, tr, Config{Loops: 1, MaxOutbound: maxOutbound, OutboundPolicy: tt.policy, Logger: discardLogger()})
			by := dialBystander(t, srv.Addr())
			rc := dialRawWith(t, srv.Addr(), smallReceiveBuffer)
			rc.upgrade()
			var res floodResult
			if tt.fromLoop {
				rc.write(rawFrame(codec.OpText, true, []byte("flood")))
				res = rawRecv(t, results, "the flood")
			} else {
				res = flood(tr.find(t, rc.addr()).conn, msgs, payload)
			}

			if tt.policy == OutboundReject {
				if res.ok == 0 || res.first != ErrOutboundFull || res.errs[ErrOutboundFull] != msgs-res.ok {
					t.Fatalf("flood: %d written, errors %v; want some written, the rest ErrOutboundFull", res.ok, res.errs)
				}
				if got := srv.Stats().WritesRefused; got != uint64(msgs-res.ok) {
					t.Errorf("Stats.WritesRefused = %d, want the %d refused", got, msgs-res.ok)
				}
				// The connection lives on: the client gets every accepted
				// message, whole and in order, then the echo.
				for i := range res.ok {
					if op, p := rc.readMessage(); op != codec.OpBinary || !bytes.Equal(p, payload) {
						t.Fatalf("message %d: %v of %d bytes", i, op, len(p))
					}
				}
				rc.write(rawFrame(codec.OpText, true, []byte("after")))
				if _, p := rc.readMessage(); string(p) != "after" {
					t.Fatalf("echo %q", p)
				}
			} else {
				if res.first != ErrSlowReader || res.errs[ErrSlowReader] != 1 || res.errs[ErrClosed] != msgs-res.ok-1 {
					t.Fatalf("flood: %d written, errors %v; want one ErrSlowReader, then ErrClosed", res.ok, res.errs)
				}
				if got := srv.Stats().WritesRefused; got != 0 {
					t.Errorf("Stats.WritesRefused = %d under OutboundClose, want 0", got)
				}
				rc.drainUntilDropped()
				if err := tr.closed(t, rc.addr()); err != ErrSlowReader {
					t.Errorf("OnClose got %v, want ErrSlowReader", err)
				}
			}
			by.check(t)
		})
	}
}

func TestBroadcast(t *testing.T) {
	const clients = 16
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 2, Logger: discardLogger()})
	var bys []*bystander
	for range clients {
		bys = append(bys, dialBystander(t, srv.Addr()))
	}
	// A connection still upgrading must not get the broadcast.
	upgrading := dialRaw(t, srv.Addr())
	waitOpenCount(t, srv, clients+1)

	pm, err := NewPreparedMessage(codec.OpText, []byte("to everyone"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Broadcast(pm); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	for i, by := range bys {
		if p := rawRecv(t, by.msgs, fmt.Sprintf("client %d's broadcast", i)); string(p) != "to everyone" {
			t.Fatalf("client %d got %q", i, p)
		}
		by.check(t)
	}
	upgrading.upgrade()
	upgrading.write(rawFrame(codec.OpText, true, []byte("late")))
	if _, p := upgrading.readMessage(); string(p) != "late" {
		t.Fatalf("late client got %q first", p)
	}
	if got := srv.Stats().MessagesOut; got < clients {
		t.Errorf("Stats().MessagesOut = %d, want at least %d", got, clients)
	}
}

// frameTracker reports frames and pings as strings, in arrival order.
type frameTracker struct {
	*connTracker
	events chan string
}

func (f *frameTracker) OnFrame(c *Conn, op codec.Opcode, fin bool, p []byte) {
	f.events <- fmt.Sprintf("%v fin=%v %q", op, fin, p)
}

func (f *frameTracker) OnPing(c *Conn, p []byte) { f.events <- fmt.Sprintf("ping %q", p) }

func TestFrameHandler(t *testing.T) {
	stream := bytes.Join([][]byte{
		rawFrame(codec.OpText, false, []byte("ab")),
		rawFrame(codec.OpPing, true, []byte("p")),
		rawFrame(codec.OpContinuation, false, []byte("c\xe2\x82")), // "€" split across frames
		rawFrame(codec.OpContinuation, true, []byte("\xac")),
		rawFrame(codec.OpBinary, true, []byte("xyz")),
		rawFrame(codec.OpBinary, false, nil),
		rawFrame(codec.OpContinuation, true, bytes.Repeat([]byte{7}, 300)),
	}, nil)
	want := []string{
		`Text fin=false "ab"`,
		`ping "p"`,
		`Continuation fin=false "c\xe2\x82"`,
		`Continuation fin=true "\xac"`,
		`Binary fin=true "xyz"`,
		`Binary fin=false ""`,
		fmt.Sprintf("Continuation fin=true %q", bytes.Repeat([]byte{7}, 300)),
	}
	tests := []struct {
		name  string
		chunk int // bytes per write; 0: all at once
	}{
		{name: "one write"},
		{name: "byte by byte", chunk: 1},
		{name: "7-byte writes", chunk: 7},
	}
	ft := &frameTracker{connTracker: newTracker(t), events: make(chan string, 64)}
	srv := startServer(t, ft, Config{Loops: 1, Logger: discardLogger()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			if tt.chunk == 0 {
				rc.write(stream)
			} else {
				for p := stream; len(p) > 0; p = p[min(tt.chunk, len(p)):] {
					rc.write(p[:min(tt.chunk, len(p))])
				}
			}
			for i, w := range want {
				if got := rawRecv(t, ft.events, w); got != w {
					t.Fatalf("event %d: %s, want %s", i, got, w)
				}
			}
			if h, p := rc.readFrame(); h.Opcode != codec.OpPong || string(p) != "p" {
				t.Errorf("got %v %q, want the pong", h.Opcode, p)
			}
			// UTF-8 is checked across the frames of a message.
			rc.write(rawFrame(codec.OpText, false, []byte("\xe2\x82")), rawFrame(codec.OpContinuation, true, []byte("A")))
			if got := rawRecv(t, ft.events, "first frame"); got != `Text fin=false "\xe2\x82"` {
				t.Fatalf("got %s", got)
			}
			rc.expectClose(codec.StatusInvalidPayloadData)
			rc.expectDropped()
			if err := ft.closed(t, rc.addr()); err != codec.ErrInvalidUTF8 {
				t.Errorf("OnClose got %v, want ErrInvalidUTF8", err)
			}
		})
	}
}

// TestReassembly: messages split across frames and TCP writes, with runes
// straddling both, arrive whole.
func TestReassembly(t *testing.T) {
	text := textPayload(3000)
	tests := []struct {
		name   string
		writes [][]byte
		op     codec.Opcode
		want   []byte
	}{
		{name: "rune across frames", op: codec.OpText, want: []byte("a€b"),
			writes: [][]byte{append(rawFrame(codec.OpText, false, []byte("a\xe2")), rawFrame(codec.OpContinuation, true, []byte("\x82\xacb"))...)}},
		{name: "rune across frames and writes", op: codec.OpText, want: []byte("a€b"),
			writes: [][]byte{rawFrame(codec.OpText, false, []byte("a\xe2\x82")), rawFrame(codec.OpContinuation, true, []byte("\xacb"))}},
		{name: "rune across writes", op: codec.OpText, want: []byte("a€b"), writes: split(rawFrame(codec.OpText, true, []byte("a€b")), 6+2)},
		{name: "ping between fragments", op: codec.OpText, want: text, writes: [][]byte{
			rawFrame(codec.OpText, false, text[:1001]), rawFrame(codec.OpPing, true, nil),
			rawFrame(codec.OpContinuation, false, text[1001:2002]), rawFrame(codec.OpContinuation, true, text[2002:]),
		}},
		{name: "empty fragments", op: codec.OpBinary, want: []byte("xy"), writes: [][]byte{
			rawFrame(codec.OpBinary, false, nil), rawFrame(codec.OpContinuation, false, []byte("x")),
			rawFrame(codec.OpContinuation, false, nil), rawFrame(codec.OpContinuation, true, []byte("y")),
		}},
		{name: "big frame in small writes", op: codec.OpText, want: text, writes: chunks(rawFrame(codec.OpText, true, text), 100)},
	}
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			rc.write(tt.writes...)
			if op, p := rc.readMessage(); op != tt.op || !bytes.Equal(p, tt.want) {
				t.Fatalf("got %v %q, want %v %q", op, p, tt.op, tt.want)
			}
		})
	}
}

// chunks cuts p into pieces of n bytes.
func chunks(p []byte, n int) [][]byte {
	var out [][]byte
	for len(p) > 0 {
		k := min(n, len(p))
		out = append(out, p[:k:k])
		p = p[k:]
	}
	return out
}

// TestWorkers: with Config.Workers a blocked handler holds up only its own
// connection, and each connection's messages stay in order.
func TestWorkers(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	tr := newTracker(t)
	tr.message = func(c *Conn, op codec.Opcode, p []byte) {
		switch p[0] {
		case 'b':
			<-gate // "block"
		case 'a':
			time.Sleep(2 * time.Millisecond) // a slow handler: order must hold anyway
		}
		c.WriteMessage(op, p)
	}
	srv := startServer(t, tr, Config{Loops: 1, Workers: 4, Logger: discardLogger()})
	t.Cleanup(release) // before Shutdown, which waits for the workers

	blocked := upgradeRaw(t, srv.Addr())
	blocked.write(rawFrame(codec.OpText, true, []byte("block")))
	for i := range 20 {
		blocked.write(rawFrame(codec.OpText, true, []byte("a"+strconv.Itoa(i))))
	}
	// Other connections, on the same loop, go on meanwhile.
	for range 3 {
		rc := upgradeRaw(t, srv.Addr())
		for i := range 20 {
			msg := "c" + strconv.Itoa(i)
			rc.write(rawFrame(codec.OpText, true, []byte(msg)))
			if _, p := rc.readMessage(); string(p) != msg {
				t.Fatalf("got %q, want %q", p, msg)
			}
		}
	}
	release()
	if _, p := blocked.readMessage(); string(p) != "block" {
		t.Fatalf("got %q, want block", p)
	}
	for i := range 20 {
		if _, p := blocked.readMessage(); string(p) != "a"+strconv.Itoa(i) {
			t.Fatalf("got %q, want a%d", p, i)
		}
	}
}

// TestWorkerQueueFull: a connection whose events outrun a blocked worker
// is closed with 1013; OnClose still comes, once, after its queued events.
func TestWorkerQueueFull(t *testing.T) {
	const queue = 4
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	tr := newTracker(t)
	tr.message = func(c *Conn, op codec.Opcode, p []byte) {
		if string(p) == "block" {
			<-gate
		}
		c.WriteMessage(op, p)
	}
	srv := startServer(t, tr, Config{Loops: 1, Workers: 2, WorkerQueue: queue, Logger: discardLogger()})
	t.Cleanup(release)
	by := dialBystander(t, srv.Addr())

	rc := upgradeRaw(t, srv.Addr())
	rc.write(rawFrame(codec.OpText, true, []byte("block")))
	var burst []byte
	for range 4 * queue {
		burst = append(burst, rawFrame(codec.OpText, true, []byte("more"))...)
	}
	rc.write(burst)
	rc.expectClose(codec.StatusTryAgainLater)
	rc.expectDropped()
	by.check(t)
	release()
	if err := tr.closed(t, rc.addr()); err != ErrWorkerQueueFull {
		t.Errorf("OnClose got %v, want ErrWorkerQueueFull", err)
	}
}
