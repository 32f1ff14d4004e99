package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// wireFrame is a frame as the client saw it.
type wireFrame struct {
	op  codec.Opcode
	fin bool
	p   string
}

// mixedWrites writes every kind of frame through c's public API in one
// order: the wire must show exactly wantMixed.
func mixedWrites(c *Conn, pm *PreparedMessage, big []byte) error {
	steps := []func() error{
		func() error { return c.WriteMessage(codec.OpText, []byte("first")) },
		func() error { return c.WritePrepared(pm) },
		func() error { return c.WriteFrame(codec.OpText, []byte("f1"), false) },
		func() error { return c.Ping([]byte("p")) },
		func() error { return c.WriteFrame(codec.OpContinuation, []byte("f2"), true) },
		func() error { return c.WriteBinary(big) }, // too big to batch: written at once, after the batch
		func() error { return c.WritePrepared(pm) },
		func() error { return c.Pong([]byte("q")) },
		func() error { return c.WriteText([]byte("last")) },
		func() error { return c.Close(4000, "done") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

func wantMixed(big []byte) []wireFrame {
	return []wireFrame{
		{codec.OpText, true, "first"},
		{codec.OpText, true, "second"},
		{codec.OpText, false, "f1"},
		{codec.OpPing, true, "p"},
		{codec.OpContinuation, true, "f2"},
		{codec.OpBinary, true, string(big)},
		{codec.OpText, true, "second"},
		{codec.OpPong, true, "q"},
		{codec.OpText, true, "last"},
		{codec.OpClose, true, string(codec.AppendClosePayload(nil, 4000, "done"))},
	}
}

// TestWriteOrder mixes WriteMessage, WritePrepared, WriteFrame, Ping, Pong
// and Close in one callback, and from another goroutine, and checks the
// order on the wire: batched small frames, prepared frames and a frame too
// big to batch must not overtake one another. (TestWriteOrderGorilla, the
// case first reported, is in bench/interop.)
func TestWriteOrder(t *testing.T) {
	big := binaryPayload(batchMax + 1000)
	pm, err := NewPreparedMessage(codec.OpText, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fromLoop := range []bool{true, false} {
		name := map[bool]string{true: "callback", false: "goroutine"}[fromLoop]
		t.Run(name, func(t *testing.T) {
			errs := make(chan error, 1)
			tr := newTracker(t)
			tr.message = func(c *Conn, op codec.Opcode, p []byte) {
				if fromLoop {
					errs <- mixedWrites(c, pm, big)
					return
				}
				go func() { errs <- mixedWrites(c, pm, big) }()
			}
			srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
			rc := upgradeRaw(t, srv.Addr())
			rc.write(rawFrame(codec.OpText, true, []byte("go")))
			if err := rawRecv(t, errs, "the writes"); err != nil {
				t.Fatal(err)
			}
			for i, want := range wantMixed(big) {
				h, p := rc.readFrame()
				got := wireFrame{h.Opcode, h.Fin, string(p)}
				if got != want {
					t.Fatalf("frame %d: got %v fin=%v %.20q, want %v fin=%v %.20q", i, got.op, got.fin, got.p, want.op, want.fin, want.p)
				}
			}
		})
	}
}

// TestLargeMessageIsNotABacklog echoes messages far larger than
// MaxOutbound (the default 4 MiB), in one frame and in 64 KiB frames, to a
// peer that reads: the outbound cap is for backlogs, not message sizes.
// Both roles: a client against the server, and Gale's event-loop client
// echoing what the server sends.
func TestLargeMessageIsNotABacklog(t *testing.T) {
	const size = 16 << 20
	msg := binaryPayload(size)
	t.Run("server", func(t *testing.T) {
		srv := startServer(t, newTracker(t), Config{Logger: discardLogger()})
		rc := upgradeRaw(t, srv.Addr())
		for _, frame := range []int{size, 64 << 10} {
			go func() {
				for off := 0; off < size; off += frame {
					op := codec.OpContinuation
					if off == 0 {
						op = codec.OpBinary
					}
					rc.write(rawFrame(op, off+frame == size, msg[off:off+frame]))
				}
			}()
			if op, p := rc.readMessage(); op != codec.OpBinary || !bytes.Equal(p, msg) {
				t.Fatalf("frames of %d: echo %v of %d bytes", frame, op, len(p))
			}
		}
		waitOpenCount(t, srv, 1)
	})
	t.Run("client", func(t *testing.T) {
		got := make(chan []byte, 1)
		srvH := newTracker(t)
		srvH.open = func(c *Conn) { c.WriteBinary(msg) }
		srvH.message = func(c *Conn, op codec.Opcode, p []byte) { got <- clone(p) }
		srv := startServer(t, srvH, Config{Logger: discardLogger()})
		cl, err := NewClient(echoHandler{}, Config{Loops: 1, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), rawWait)
		defer cancel()
		if _, err := cl.Dial(ctx, wsURL(srv), nil); err != nil {
			t.Fatal(err)
		}
		if p := rawRecv(t, got, "the client's echo"); !bytes.Equal(p, msg) {
			t.Fatalf("echo of %d bytes", len(p))
		}
	})
}

type echoHandler struct{ BaseHandler }

func (echoHandler) OnMessage(c *Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

// TestSlowReaderGetsClose floods a peer that does not read until the cap
// closes it: once it reads, the last frame it finds is a Close 1008 (the
// closing handshake, not a bare TCP drop), and OnClose reports
// ErrSlowReader.
func TestSlowReaderGetsClose(t *testing.T) {
	payload := bytes.Repeat([]byte("z"), 1<<10)
	results := make(chan floodResult, 1)
	tr := newTracker(t)
	tr.message = func(c *Conn, op codec.Opcode, p []byte) {
		if string(p) != "flood" {
			c.WriteMessage(op, p)
			return
		}
		results <- flood(c, 16<<10, payload)
	}
	srv := startServer(t, tr, Config{Loops: 1, MaxOutbound: 64 << 10, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	rc := dialRawWith(t, srv.Addr(), smallReceiveBuffer)
	rc.upgrade()
	rc.write(rawFrame(codec.OpText, true, []byte("flood")))
	if res := rawRecv(t, results, "the flood"); res.first != ErrSlowReader {
		t.Fatalf("flood: %d written, errors %v; want ErrSlowReader", res.ok, res.errs)
	}
	for i := 0; ; i++ {
		h, p := rc.readFrame()
		if h.Opcode == codec.OpClose {
			code, reason, _ := codec.ParseClosePayload(p)
			if code != codec.StatusPolicyViolation || string(reason) != "slow reader" {
				t.Fatalf("Close %d %q, want 1008 \"slow reader\"", code, reason)
			}
			t.Logf("Close 1008 after %d messages", i)
			break
		}
	}
	rc.write(rawFrame(codec.OpClose, true, codec.AppendClosePayload(nil, codec.StatusPolicyViolation, "")))
	if err := tr.closed(t, rc.addr()); err != ErrSlowReader {
		t.Errorf("OnClose got %v, want ErrSlowReader", err)
	}
	by.check(t)
	waitOpenCount(t, srv, 1)
	pollUntil(t, "the memory held back to 0", func() bool { return srv.Stats().MemoryHeld == 0 })
}

// TestReadBackpressure pipelines messages without reading the echoes: the
// server stops reading the connection once its backlog passes half of
// MaxOutbound (Stats.Paused), does not drop it, and resumes when the peer
// reads: every echo arrives whole and in order, and the memory held goes
// back to zero.
func TestReadBackpressure(t *testing.T) {
	const (
		maxOutbound = 16 << 20
		size        = 256 << 10
		msgs        = 96 // 24 MiB: past the kernel's buffers plus half of MaxOutbound
	)
	srv := startServer(t, newTracker(t), Config{Loops: 1, MaxOutbound: maxOutbound, Logger: discardLogger()})
	rc := dialRawWith(t, srv.Addr(), smallReceiveBuffer)
	rc.upgrade()
	payload := func(i int) []byte {
		p := bytes.Repeat([]byte{byte(i)}, size)
		copy(p, fmt.Sprintf("message %d", i))
		return p
	}
	sent := make(chan error, 1)
	go func() {
		var err error
		for i := range msgs {
			rc.conn.SetWriteDeadline(time.Now().Add(rawWait))
			if _, err = rc.conn.Write(rawFrame(codec.OpBinary, true, payload(i))); err != nil {
				break
			}
		}
		sent <- err
	}()
	pollUntil(t, "the connection paused", func() bool { return srv.Stats().Paused == 1 })
	in := srv.Stats().MessagesIn
	if in >= msgs {
		t.Fatalf("paused after reading all %d messages", in)
	}
	for i := range msgs {
		op, p := rc.readMessage()
		if op != codec.OpBinary || !bytes.Equal(p, payload(i)) {
			t.Fatalf("echo %d: %v of %d bytes, starting %.12q", i, op, len(p), p)
		}
	}
	if err := rawRecv(t, sent, "the sender"); err != nil {
		t.Fatalf("send: %v", err)
	}
	st := srv.Stats()
	if st.Paused != 0 || st.Closes[codec.StatusPolicyViolation] != 0 {
		t.Fatalf("after draining: %d paused, %d slow-reader closes", st.Paused, st.Closes[codec.StatusPolicyViolation])
	}
	pollUntil(t, "the memory held back to 0", func() bool { return srv.Stats().MemoryHeld == 0 })
	t.Logf("paused after %d of %d messages read", in, msgs)
}

// TestMemoryBudget floods several peers that never read against a small
// budget: they are dropped with 1013 (ErrMemoryBudget) or 1008, the memory
// held stays near the budget, a bystander keeps echoing throughout, and
// everything held returns to zero.
func TestMemoryBudget(t *testing.T) {
	const (
		budget   = 8 << 20
		slow     = 8
		msgSize  = 256 << 10
		perConn  = 64 // 16 MiB each, 128 MiB in all: 16 times the budget
		maxQueue = 64 << 20
	)
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, MaxOutbound: maxQueue, MemoryBudget: budget, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	var wg sync.WaitGroup
	peak := make(chan int64, 1)
	stop := make(chan struct{})
	go func() {
		var m int64
		for {
			select {
			case <-stop:
				peak <- m
				return
			case <-time.After(time.Millisecond):
				m = max(m, srv.Stats().MemoryHeld)
			}
		}
	}()
	clients := make([]*rawClient, slow)
	for i := range clients {
		rc := dialRawWith(t, srv.Addr(), smallReceiveBuffer)
		rc.upgrade()
		clients[i] = rc
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := rawFrame(codec.OpBinary, true, make([]byte, msgSize))
			for range perConn {
				rc.conn.SetWriteDeadline(time.Now().Add(rawWait))
				if _, err := rc.conn.Write(frame); err != nil {
					return // dropped
				}
			}
		}()
	}
	for range 20 {
		by.check(t)
	}
	wg.Wait()
	for _, rc := range clients {
		rc.drainUntilDropped()
		err := tr.closed(t, rc.addr())
		if err != ErrMemoryBudget && err != ErrSlowReader {
			t.Errorf("OnClose got %v, want ErrMemoryBudget or ErrSlowReader", err)
		}
	}
	by.check(t)
	close(stop)
	m := <-peak
	st := srv.Stats()
	t.Logf("peak held %d KiB (budget %d KiB); closes %v", m>>10, budget>>10, st.Closes)
	if st.Closes[codec.StatusTryAgainLater] == 0 {
		t.Errorf("no connection was closed for the budget: closes %v", st.Closes)
	}
	// Over the budget a message to a connection with any backlog is refused,
	// so what is held passes the budget by the messages in flight only.
	if limit := int64(budget + slow*2*msgSize + 4<<20); m > limit {
		t.Errorf("peak held %d bytes, want at most %d", m, limit)
	}
	waitOpenCount(t, srv, 1)
	pollUntil(t, "the memory held back to 0", func() bool { return srv.Stats().MemoryHeld == 0 })
}

// TestWorkersNeverStallTheLoop queues 10,000 connections on a blocked
// worker, more than any fixed queue would hold: the loop must go on
// upgrading and answering pings, and every message must be handled once
// the worker is free. The clients run in a child process (the event-loop
// client), so the server's process holds only its own 10,000 sockets.
func TestWorkersNeverStallTheLoop(t *testing.T) {
	if url := os.Getenv("GALE_BLOCK_CHILD"); url != "" {
		blockingClients(t, url)
		return
	}
	conns := 10000
	if testing.Short() {
		conns = 2000
	}
	release := make(chan struct{})
	var handled sync.WaitGroup
	handled.Add(conns)
	tr := newTracker(t)
	tr.message = func(c *Conn, op codec.Opcode, p []byte) {
		if string(p) == "block" {
			<-release
			handled.Done()
			return
		}
		c.WriteMessage(op, p)
	}
	srv := startServer(t, tr, Config{Loops: 1, Workers: 1, Logger: discardLogger()})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkersNeverStallTheLoop$")
	cmd.Env = append(os.Environ(), "GALE_BLOCK_CHILD="+wsURL(srv), "GALE_BLOCK_CONNS="+strconv.Itoa(conns))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()

	// Every connection's message is queued behind the blocked worker; the
	// loop still upgrades a newcomer and answers its ping.
	deadline := time.Now().Add(2 * time.Minute)
	for srv.Stats().MessagesIn < uint64(conns) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages received", srv.Stats().MessagesIn, conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	by := dialBystander(t, srv.Addr())
	by.c.SetWriteDeadline(time.Now().Add(rawWait))
	if err := by.c.Ping([]byte("alive")); err != nil {
		t.Fatal(err)
	}
	if p := rawRecv(t, by.pongs, "the pong from a loop whose worker is blocked"); string(p) != "alive" {
		t.Fatalf("pong %q, want the ping's \"alive\"", p)
	}
	close(release)
	done := make(chan struct{})
	go func() { handled.Wait(); close(done) }()
	rawRecv(t, done, "every blocked message handled")
}

// blockingClients is TestWorkersNeverStallTheLoop's child: it opens the
// connections, each sends "block", and it holds them until its stdin
// closes.
func blockingClients(t *testing.T, url string) {
	n, _ := strconv.Atoi(os.Getenv("GALE_BLOCK_CONNS"))
	cl, err := NewClient(BaseHandler{}, Config{Loops: 1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range n {
		c, err := cl.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.WriteText([]byte("block"))
	}
	io.Copy(io.Discard, os.Stdin)
	cl.Close(context.Background())
}

// TestSubprotocolRace reads Subprotocol from another goroutine while the
// loop closes the connection (which creates its rarely used part): the
// race detector must find nothing.
func TestSubprotocolRace(t *testing.T) {
	opened := make(chan *Conn, 1)
	tr := newTracker(t)
	tr.open = func(c *Conn) { opened <- c }
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
	rc := upgradeRaw(t, srv.Addr())
	c := rawRecv(t, opened, "OnOpen")
	stop := make(chan struct{})
	read := make(chan string, 1)
	go func() {
		var s string
		for {
			select {
			case <-stop:
				read <- s
				return
			default:
				s += c.Subprotocol()
			}
		}
	}()
	rc.write(rawFrame(codec.OpClose, true, codec.AppendClosePayload(nil, 1000, "")))
	rc.expectClose(1000)
	tr.closed(t, rc.addr())
	close(stop)
	if s := <-read; strings.TrimSpace(s) != "" {
		t.Fatalf("Subprotocol returned %q", s)
	}
}

// TestQuietWatch: the burst release's notion of a server gone quiet — a
// second with no new connection and at most a sixteenth of the busiest
// second's bytes — sampled once a second.
func TestQuietWatch(t *testing.T) {
	var q quietWatch
	t0 := time.Unix(1000, 0)
	sec := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	steps := []struct {
		at       time.Time
		moved    uint64
		upgrades uint64
		quiet    bool
		ok       bool
	}{
		{sec(1), 0, 0, true, true},                               // nothing ever moved: quiet
		{sec(1).Add(500 * time.Millisecond), 0, 0, false, false}, // between samples
		{sec(2), 64 << 20, 10, false, true},                      // busy, and new connections
		{sec(3), 128 << 20, 10, false, true},                     // busy
		{sec(4), 130 << 20, 10, true, true},                      // 2 MiB after 64 MiB/s: quiet
		{sec(5), 131 << 20, 11, false, true},                     // a new connection
		{sec(6), 131 << 20, 11, true, true},
		{sec(7), 140 << 20, 11, false, true}, // 9 MiB: more than 64/16
	}
	for i, s := range steps {
		quiet, ok := q.sample(s.at, s.moved, s.upgrades)
		if quiet != s.quiet || ok != s.ok {
			t.Fatalf("step %d: quiet %v ok %v, want %v %v", i, quiet, ok, s.quiet, s.ok)
		}
	}
}

// TestReleaseAt: a quiet server gives memory back once its heap has grown
// by 4 MiB or an eighth since the last release, whichever is more — after
// a ramp of idle connections at any scale, not only past 32 MiB.
func TestReleaseAt(t *testing.T) {
	for _, c := range []struct{ kept, want uint64 }{
		{0, 4 << 20},
		{8 << 20, 12 << 20},
		{32 << 20, 36 << 20},
		{64 << 20, 72 << 20},
		{1 << 30, 1<<30 + 128<<20},
	} {
		if got := releaseAt(c.kept); got != c.want {
			t.Errorf("releaseAt(%d) = %d, want %d", c.kept, got, c.want)
		}
	}
}

// TestMemoryRelease: after a ramp of connections, once the server is
// quiet, it returns the freed memory to the system (Stats.MemoryReleases
// counts it); with KeepFreedMemory it leaves that to the runtime. The
// connections are unaffected either way.
func TestMemoryRelease(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("KeepFreedMemory=%v", keep), func(t *testing.T) {
			srv := startServer(t, echo{}, Config{KeepFreedMemory: keep})
			conns := make([]*rawClient, 0, 200)
			for range 200 {
				conns = append(conns, upgradeRaw(t, srv.Addr()))
			}
			// The first sample after the ramp sees new connections; the
			// next, a second later, sees a quiet server.
			// Without KeepFreedMemory that takes a few seconds; with it,
			// 4 s is twice as long as a release would have needed.
			wait := testTimeout
			if keep {
				wait = 4 * time.Second
			}
			for end := time.Now().Add(wait); time.Now().Before(end) && srv.Stats().MemoryReleases == 0; {
				time.Sleep(50 * time.Millisecond)
			}
			n := srv.Stats().MemoryReleases
			switch {
			case !keep && n == 0:
				t.Fatalf("no release %v after a ramp of %d connections", testTimeout, len(conns))
			case keep && n != 0:
				t.Fatalf("%d releases with KeepFreedMemory", n)
			}
			for _, c := range conns {
				c.write(rawFrame(codec.OpText, true, []byte("still here")))
				if op, p := c.readMessage(); op != codec.OpText || string(p) != "still here" {
					t.Fatalf("echo after the release: %v %q", op, p)
				}
			}
		})
	}
}
