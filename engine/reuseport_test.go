package engine

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"golang.org/x/sys/unix"
)

// opensCounter counts the connections a server opened.
type opensCounter struct {
	BaseHandler
	n atomic.Int64
}

func (h *opensCounter) OnOpen(*Conn) { h.n.Add(1) }

// Two servers with ReusePort listen on one port, and the kernel hands each
// of them some of the connections; without it the second bind fails.
func TestReusePortTwoServers(t *testing.T) {
	var ha, hb opensCounter
	a := startServer(t, &ha, Config{ReusePort: true})
	addr := a.Addr().String()

	plain, err := NewServer(&hb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Start(addr); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second listener without ReusePort: got %v, want EADDRINUSE", err)
	}

	b, err := NewServer(&hb, Config{ReusePort: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(addr); err != nil {
		t.Fatalf("second listener with ReusePort: %v", err)
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })

	// The kernel picks a listener by a hash of the source port, so 64
	// connections all landing on one of two is a 2^-63 chance.
	const n = 64
	var conns []*ClientConn
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		c, err := Dial(ctx, "ws://"+addr+"/", nil)
		cancel()
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	deadline := time.Now().Add(testTimeout)
	for ha.n.Load()+hb.n.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ha.n.Load() == 0 || hb.n.Load() == 0 || ha.n.Load()+hb.n.Load() != n {
		t.Fatalf("opens: first server %d, second %d; want both > 0, %d in all", ha.n.Load(), hb.n.Load(), n)
	}
}

// Drain closes every connection with 1012, spread over the period rather
// than all at once, and returns once they are all closed.
func TestDrainSpreads1012(t *testing.T) {
	srv := startServer(t, newRecorder(), Config{})
	const n = 40
	type closed struct {
		code codec.StatusCode
		at   time.Duration
	}
	got := make(chan closed, n)
	var conns []*ClientConn
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		c, err := Dial(ctx, wsURL(srv), nil)
		cancel()
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	start := time.Now()
	for _, c := range conns {
		go func() {
			defer c.CloseNow()
			c.SetReadDeadline(time.Now().Add(testTimeout))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					got <- closed{codec.CloseStatus(err), time.Since(start)}
					return
				}
			}
		}()
	}
	const spread = 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := srv.Drain(ctx, spread); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if open := srv.Stats().Open; open != 0 {
		t.Fatalf("Drain returned with %d connections open", open)
	}
	var first, last time.Duration = time.Hour, 0
	for range n {
		c := recv(t, got, "a close")
		if c.code != codec.StatusServiceRestart {
			t.Fatalf("close code %d, want 1012", c.code)
		}
		first, last = min(first, c.at), max(last, c.at)
	}
	// All at once would put first and last within a few milliseconds.
	if first > spread/3 || last < spread/2 {
		t.Fatalf("closes from %v to %v; want them spread over %v", first, last, spread)
	}
	if st := srv.Stats(); st.Closes[codec.StatusServiceRestart] != n {
		t.Fatalf("Stats.Closes[1012] = %d, want %d", st.Closes[codec.StatusServiceRestart], n)
	}
}

// A listening socket shared by two processes (here two descriptors of one
// socket): when the first server drains and closes its descriptor, the
// connections that arrive before the second server starts wait in the
// socket's queue and are all served by it. This is why gale serve -procs
// hands its workers listeners it keeps open itself.
func TestStartListenerQueueOutlivesServer(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File() // a second descriptor, as a child process inherits
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String() + "/"

	a, _ := NewServer(newRecorder(), Config{})
	if err := a.StartListener(ln); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial the first server: %v", err)
	}
	c.CloseNow()
	if err := a.Drain(ctx, 0); err != nil {
		t.Fatalf("Drain: %v", err)
	}

	// Nobody accepts now; the kernel completes the TCP handshakes and
	// queues them, and the upgrades wait for the second server.
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			c.CloseNow()
		}()
	}
	time.Sleep(100 * time.Millisecond)
	h := &opensCounter{}
	b, _ := NewServer(h, Config{})
	if err := b.StartListener(ln2); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a connection queued while no server accepted: %v", err)
	}
	for deadline := time.Now().Add(testTimeout); h.n.Load() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if h.n.Load() != n {
		t.Fatalf("the second server opened %d connections, want %d", h.n.Load(), n)
	}
}

// A handshake in progress when Drain starts is not cut off: it completes,
// and the new connection is then closed with 1012 like the others.
func TestDrainFinishesHandshakes(t *testing.T) {
	srv := startServer(t, newRecorder(), Config{})
	rc := dialRaw(t, srv.Addr())
	req := []byte(rawRequest())
	rc.write(req[:10]) // accepted, mid-request
	for deadline := time.Now().Add(testTimeout); srv.Stats().Open < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the connection never reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		drained <- srv.Drain(ctx, 200*time.Millisecond)
	}()
	time.Sleep(300 * time.Millisecond) // past the spread: only the sweep can close it now
	rc.write(req[10:])
	rc.readResponse() // 101, or the test fails
	rc.expectClose(codec.StatusServiceRestart)
	rc.write(rawFrame(codec.OpClose, true, rawClosePayload(1012, "")))
	if err := recv(t, drained, "Drain's return"); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}
