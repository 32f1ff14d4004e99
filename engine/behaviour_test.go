package engine

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// Connection lifecycle: close handshakes both ways, timeouts, keepalive,
// panics, shutdown, counters. Writes and dispatch are in
// behaviour_write_test.go.

func TestPeerClose(t *testing.T) {
	tests := []struct {
		name    string
		before  []byte // sent ahead of the Close
		payload []byte // the Close's
		echo    codec.StatusCode
		code    codec.StatusCode // in OnClose's *codec.CloseError
		reason  string
	}{
		{name: "no payload", echo: 1000, code: 1005},
		{name: "1000 with reason", payload: rawClosePayload(1000, "bye"), echo: 1000, code: 1000, reason: "bye"},
		{name: "1001", payload: rawClosePayload(1001, ""), echo: 1001, code: 1001},
		{name: "private code", payload: rawClosePayload(4000, "über"), echo: 4000, code: 4000, reason: "über"},
		{name: "inside a fragmented message", before: rawFrame(codec.OpText, false, []byte("half")),
			payload: rawClosePayload(1000, ""), echo: 1000, code: 1000},
	}
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			rc.write(append(tt.before, rawFrame(codec.OpClose, true, tt.payload)...))
			if reason := rc.expectClose(tt.echo); reason != tt.reason {
				t.Errorf("echoed reason %q, want the peer's %q", reason, tt.reason)
			}
			rc.expectDropped()
			err := tr.closed(t, rc.addr())
			var ce *codec.CloseError
			if !errors.As(err, &ce) || ce.Code != tt.code || ce.Reason != tt.reason || codec.CloseStatus(err) != tt.code {
				t.Errorf("OnClose got %v, want CloseError %d %q", err, tt.code, tt.reason)
			}
			by.check(t)
		})
	}
}

func TestServerClose(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	tests := []struct {
		name     string
		fromLoop bool // Close in OnMessage, else from the test goroutine
		answer   bool // the peer answers our Close
	}{
		{name: "callback, peer answers", fromLoop: true, answer: true},
		{name: "callback, peer silent", fromLoop: true},
		{name: "goroutine, peer answers", answer: true},
		{name: "goroutine, peer silent"},
	}
	tr := newTracker(t)
	tr.message = func(c *Conn, op codec.Opcode, p []byte) {
		if string(p) == "close" {
			c.Close(4001, "x")
			return
		}
		c.WriteMessage(op, p)
	}
	srv := startServer(t, tr, Config{Loops: 1, CloseTimeout: closeTimeout, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := upgradeRaw(t, srv.Addr())
			if tt.fromLoop {
				rc.write(rawFrame(codec.OpText, true, []byte("close")))
			} else if err := tr.find(t, rc.addr()).conn.Close(4001, "x"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if reason := rc.expectClose(4001); reason != "x" {
				t.Errorf("reason %q, want x", reason)
			}
			start := time.Now()
			if tt.answer {
				rc.write(rawFrame(codec.OpClose, true, rawClosePayload(4001, "")))
			}
			rc.expectDropped()
			err := tr.closed(t, rc.addr())
			if tt.answer {
				if codec.CloseStatus(err) != 4001 {
					t.Errorf("OnClose got %v, want the peer's 4001", err)
				}
			} else {
				if !errors.Is(err, ErrCloseTimeout) {
					t.Errorf("OnClose got %v, want ErrCloseTimeout", err)
				}
				if d := time.Since(start); d < closeTimeout/2 {
					t.Errorf("dropped %v after Close, before the %v CloseTimeout", d, closeTimeout)
				}
			}
			by.check(t)
		})
	}
}

// TestCloseInOnOpen: a Close from OnOpen starts the same handshake as
// anywhere else.
func TestCloseInOnOpen(t *testing.T) {
	tr := newTracker(t)
	tr.open = func(c *Conn) {
		if c.UserData() == nil { // all but the bystander
			c.Close(4002, "go away")
		}
	}
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger(),
		OnUpgrade: func(r *UpgradeRequest) error {
			if r.Request.Header("X-Bystander") != nil {
				r.UserData = "spare me"
			}
			return nil
		}})
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	ws, err := Dial(ctx, wsURL(srv), &DialOptions{Header: http.Header{"X-Bystander": {"1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	rc := upgradeRaw(t, srv.Addr())
	if reason := rc.expectClose(4002); reason != "go away" {
		t.Errorf("reason %q", reason)
	}
	rc.write(rawFrame(codec.OpClose, true, rawClosePayload(4002, "")))
	rc.expectDropped()
	if err := tr.closed(t, rc.addr()); codec.CloseStatus(err) != 4002 {
		t.Errorf("OnClose got %v, want the peer's 4002", err)
	}
	ws.SetReadDeadline(time.Now().Add(rawWait))
	if err := ws.WriteMessage(codec.OpText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := ws.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo %q %v", p, err)
	}
}

// allWrites tries every kind of write on c and returns their errors.
func allWrites(c *Conn) []error {
	pm, _ := NewPreparedMessage(codec.OpText, []byte("prepared"))
	return []error{
		c.WriteText([]byte("t")),
		c.WriteBinary([]byte("b")),
		c.WriteMessage(codec.OpText, []byte("m")),
		c.WriteFrame(codec.OpBinary, []byte("f"), true),
		c.WritePrepared(pm),
		c.Ping(nil),
		c.Pong(nil),
		c.Close(1000, ""),
	}
}

func wantAllClosed(t *testing.T, where string, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != ErrClosed {
			t.Errorf("%s: write %d returned %v, want ErrClosed", where, i, err)
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	fromCallback := make(chan []error, 1)
	tr := newTracker(t)
	tr.message = func(c *Conn, op codec.Opcode, p []byte) {
		if string(p) != "close" {
			c.WriteMessage(op, p)
			return
		}
		errs := []error{c.Close(4001, "x")}
		fromCallback <- append(errs, allWrites(c)...)
	}
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())

	t.Run("callback", func(t *testing.T) {
		rc := upgradeRaw(t, srv.Addr())
		rc.write(rawFrame(codec.OpText, true, []byte("close")))
		errs := rawRecv(t, fromCallback, "the callback's writes")
		if errs[0] != nil {
			t.Fatalf("Close: %v", errs[0])
		}
		wantAllClosed(t, "in the callback", errs[1:])
		rc.expectClose(4001)
		rc.write(rawFrame(codec.OpClose, true, nil))
		rc.expectDropped()
		c := tr.find(t, rc.addr()).conn
		tr.closed(t, rc.addr())
		wantAllClosed(t, "after OnClose", allWrites(c))
	})
	t.Run("goroutine", func(t *testing.T) {
		rc := upgradeRaw(t, srv.Addr())
		c := tr.find(t, rc.addr()).conn
		if err := c.Close(4001, "x"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		var wg sync.WaitGroup
		errs := make([][]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = allWrites(c) })
		}
		wg.Wait()
		for _, e := range errs {
			wantAllClosed(t, "from a goroutine", e)
		}
		rc.expectClose(4001) // nothing written after the Close reached the wire
		rc.write(rawFrame(codec.OpClose, true, nil))
		rc.expectDropped()
		tr.closed(t, rc.addr())
		wantAllClosed(t, "after OnClose", allWrites(c))
	})
	by.check(t)
}

// TestOnCloseOnceRacing closes each connection from three sides at once:
// a goroutine calls Close, another floods writes, the peer sends its own
// Close and drops the socket. OnClose must still run exactly once per
// connection (the tracker checks it when the test ends).
func TestOnCloseOnceRacing(t *testing.T) {
	const conns = 16
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 2, CloseTimeout: time.Second, Logger: discardLogger()})
	by := dialBystander(t, srv.Addr())
	var wg sync.WaitGroup
	for i := range conns {
		rc := upgradeRaw(t, srv.Addr())
		c := tr.find(t, rc.addr()).conn
		wg.Go(func() { c.Close(codec.StatusCode(3000+i), "") })
		wg.Go(func() {
			for c.WriteText([]byte("flood")) == nil {
			}
		})
		wg.Go(func() {
			rc.conn.Write(rawFrame(codec.OpClose, true, rawClosePayload(1000, "")))
			if i%2 == 0 {
				rc.conn.Close()
			}
		})
	}
	wg.Wait()
	waitOpenCount(t, srv, 1)
	// Open drops as the socket goes, just before OnClose runs on the loop.
	pollUntil(t, "every OnClose", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, l := range tr.conns {
			if l.addr != by.addr() && l.closes == 0 {
				return false
			}
		}
		return true
	})
	tr.mu.Lock()
	for _, l := range tr.conns {
		if l.addr != by.addr() && (l.closes != 1 || l.err == nil) {
			t.Errorf("%s: %d OnClose calls, err %v", l.addr, l.closes, l.err)
		}
	}
	tr.mu.Unlock()
	by.check(t)
}

func TestKeepalive(t *testing.T) {
	const ping, idle = 100 * time.Millisecond, 500 * time.Millisecond
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, PingInterval: ping, IdleTimeout: idle, Logger: discardLogger()})
	// The bystander's reader answers pings, so it must outlive the test.
	by := dialBystander(t, srv.Addr())

	t.Run("pings a quiet peer that answers", func(t *testing.T) {
		rc := upgradeRaw(t, srv.Addr())
		start := time.Now()
		for range 5 {
			h, p := rc.readFrame()
			if h.Opcode != codec.OpPing {
				t.Fatalf("got %v frame %q, want a ping", h.Opcode, p)
			}
			rc.write(rawFrame(codec.OpPong, true, p))
		}
		if d := time.Since(start); d < 3*ping {
			t.Errorf("5 pings in %v: more often than every %v", d, ping)
		}
		rc.write(rawFrame(codec.OpText, true, []byte("still here")))
		if _, p := rc.readMessage(); string(p) != "still here" {
			t.Fatalf("echo %q", p)
		}
	})
	t.Run("half-open peer reaped", func(t *testing.T) {
		rc := upgradeRaw(t, srv.Addr())
		start := time.Now()
		pings := 0
		for {
			h, p := rc.readFrame()
			if h.Opcode == codec.OpPing {
				pings++
				continue
			}
			if code, _, _ := codec.ParseClosePayload(p); h.Opcode != codec.OpClose || code != codec.StatusGoingAway {
				t.Fatalf("got %v frame %q, want Close 1001", h.Opcode, p)
			}
			break
		}
		d := time.Since(start)
		rc.expectDropped()
		if pings == 0 || d < idle/2 {
			t.Errorf("reaped after %v and %d pings; want pings first and %v idle", d, pings, idle)
		}
		if err := tr.closed(t, rc.addr()); !errors.Is(err, ErrIdleTimeout) {
			t.Errorf("OnClose got %v, want ErrIdleTimeout", err)
		}
	})
	by.check(t)
}

// TestKeepaliveAfterIdleLoop: the first connection after the loop had none
// for a while must get its full idle timeout. The idle spell (2 h) is made
// by startIdleServer; with an idle timeout of an hour, keepalive armed on
// the stale wheel would close at the first tick, so the pings that come
// instead (each an observable event, awaited under a generous deadline)
// show the deadline counts from the upgrade.
func TestKeepaliveAfterIdleLoop(t *testing.T) {
	const ping, idle = 200 * time.Millisecond, time.Hour
	srv := startIdleServer(t, newTracker(t), Config{Loops: 1, PingInterval: ping, IdleTimeout: idle, Logger: discardLogger()}, 2*idle)
	rc := upgradeRaw(t, srv.Addr())
	for range 2 {
		h, p := rc.readFrame()
		if h.Opcode != codec.OpPing {
			t.Fatalf("got %v frame %q, want a ping", h.Opcode, p)
		}
		rc.write(rawFrame(codec.OpPong, true, p))
	}
	rc.write(rawFrame(codec.OpText, true, []byte("alive")))
	if _, p := rc.readMessage(); string(p) != "alive" {
		t.Fatalf("echo %q", p)
	}
}

func TestHandlerPanic(t *testing.T) {
	tests := []struct {
		name    string
		workers int
	}{
		{name: "on the loop"},
		{name: "on a worker", workers: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			tr := newTracker(t)
			tr.message = func(c *Conn, op codec.Opcode, p []byte) {
				if string(p) == "panic" {
					panic("handler exploded")
				}
				c.WriteMessage(op, p)
			}
			srv := startServer(t, tr, Config{Loops: 1, Workers: tt.workers, Logger: slogTo(logs)})
			by := dialBystander(t, srv.Addr())
			rc := upgradeRaw(t, srv.Addr())
			rc.write(rawFrame(codec.OpText, true, []byte("panic")))
			rc.expectClose(codec.StatusInternalError)
			// Answer as a peer would; the server may already be gone.
			rc.conn.Write(rawFrame(codec.OpClose, true, rawClosePayload(1011, "")))
			rc.expectDropped()
			if err := tr.closed(t, rc.addr()); !errors.Is(err, ErrHandlerPanic) {
				t.Errorf("OnClose got %v, want ErrHandlerPanic", err)
			}
			if l := logs.String(); !strings.Contains(l, "handler panicked") || !strings.Contains(l, "handler exploded") {
				t.Errorf("panic not logged: %q", l)
			}
			by.check(t)
			rc = upgradeRaw(t, srv.Addr())
			rc.write(rawFrame(codec.OpText, true, []byte("after")))
			if _, p := rc.readMessage(); string(p) != "after" {
				t.Fatalf("echo %q", p)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	const clients = 8
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 2, CloseTimeout: 300 * time.Millisecond, Logger: discardLogger()})
	var bys []*bystander
	for range clients {
		by := dialBystander(t, srv.Addr())
		by.check(t)
		bys = append(bys, by)
	}
	upgrading := dialRaw(t, srv.Addr()) // connected, request not sent yet
	silent := upgradeRaw(t, srv.Addr()) // never answers our Close
	waitOpenCount(t, srv, clients+2)

	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, by := range bys {
		var ce *codec.CloseError
		if err := by.ended(t); !errors.As(err, &ce) || ce.Code != codec.StatusGoingAway {
			t.Errorf("client %d ended with %v, want Close 1001", i, err)
		}
	}
	upgrading.expectDropped()
	silent.expectClose(codec.StatusGoingAway)
	silent.expectDropped()
	if err := tr.closed(t, silent.addr()); !errors.Is(err, ErrCloseTimeout) {
		t.Errorf("silent peer: OnClose got %v, want ErrCloseTimeout", err)
	}
	if st := srv.Stats(); st.Open != 0 || st.Closes[codec.StatusGoingAway] != clients+1 { // the silent peer counts under the 1001 it was sent
		t.Errorf("after Shutdown: Open %d, Closes %v", st.Open, st.Closes)
	}
	tr.mu.Lock()
	for _, l := range tr.conns {
		if l.addr != silent.addr() && codec.CloseStatus(l.err) != codec.StatusGoingAway {
			t.Errorf("%s: OnClose got %v, want 1001", l.addr, l.err)
		}
	}
	tr.mu.Unlock()
	if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		t.Errorf("server still accepts after Shutdown")
	}
}

func TestStats(t *testing.T) {
	tr := newTracker(t)
	srv := startServer(t, tr, Config{Loops: 1, Logger: discardLogger()})

	bad := dialRaw(t, srv.Addr())
	bad.write([]byte(rawRequest("Sec-WebSocket-Version: 8")))
	bad.readResponse()

	a := upgradeRaw(t, srv.Addr())
	a.write(rawFrame(codec.OpText, true, []byte("hello")),
		rawFrame(codec.OpBinary, true, make([]byte, 1000)),
		append(rawFrame(codec.OpText, false, []byte("abc")), rawFrame(codec.OpContinuation, true, []byte("defg"))...))
	for _, n := range []int{5, 1000, 7} {
		if _, p := a.readMessage(); len(p) != n {
			t.Fatalf("echo of %d bytes, want %d", len(p), n)
		}
	}
	a.write(rawFrame(codec.OpClose, true, rawClosePayload(1000, "")))
	a.expectClose(1000)

	b := upgradeRaw(t, srv.Addr())
	b.write(rawFrame(3, true, nil))
	b.expectClose(1002)

	c := upgradeRaw(t, srv.Addr())
	c.conn.Close()

	want := Stats{Upgrades: 3, Rejected: 1, MessagesIn: 3, MessagesOut: 3, BytesIn: 1012, BytesOut: 1012,
		Closes: map[codec.StatusCode]uint64{1000: 1, 1002: 1, 1006: 1}}
	var got Stats
	match := func() bool {
		got = srv.Stats()
		if got.Open != 0 || got.Upgrades != want.Upgrades || got.Rejected != want.Rejected ||
			got.MessagesIn != want.MessagesIn || got.MessagesOut != want.MessagesOut ||
			got.BytesIn != want.BytesIn || got.BytesOut != want.BytesOut || len(got.Closes) != len(want.Closes) {
			return false
		}
		for code, n := range want.Closes {
			if got.Closes[code] != n {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(rawWait)
	for !match() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if !match() {
		t.Errorf("Stats() = %+v\nwant        %+v", got, want)
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gale.sock")
	tr := newTracker(t)
	srv, err := NewServer(tr, Config{Loops: 1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("unix://" + path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), rawWait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	if a, ok := srv.Addr().(*net.UnixAddr); !ok || a.Name != path {
		t.Fatalf("Addr() = %#v, want unix %s", srv.Addr(), path)
	}
	by := dialBystander(t, srv.Addr())
	by.check(t)

	rc := upgradeRaw(t, srv.Addr())
	rc.write(rawFrame(codec.OpBinary, true, []byte("over unix")))
	if _, p := rc.readMessage(); string(p) != "over unix" {
		t.Fatalf("echo %q", p)
	}
	rc.write(rawFrame(codec.OpText, true, []byte("\xff")))
	rc.expectClose(codec.StatusInvalidPayloadData)
	rc.expectDropped()
	waitOpenCount(t, srv, 1)
	by.check(t)
}
