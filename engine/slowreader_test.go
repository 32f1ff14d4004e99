package engine

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

var (
	slowFull   = flag.Bool("slowfull", false, "TestSlowReaders: the full figures (200 clients, 1 MiB messages, 256 MiB budget, 20 s flood) instead of the short CI version")
	slowPolicy = flag.String("slowpolicy", "reject", "TestSlowReaders: the child's OutboundPolicy, reject or close")
)

// TestSlowReaders floods a child echo server, run with a memory budget,
// from clients that send 1 MiB messages and never read their echoes, while
// a slowBystander echoes 64 B every 10 ms. The child's RSS must stay under
// baseline + budget + 64 MiB + a quarter MiB per client (the overhead: the
// runtime, what the heap keeps between collections under GOMEMLIMIT, and
// the one message each connection may still be written while the server is
// over its budget, when its backlog is empty: the budget never drops a
// peer that keeps up, so that message is in flight before the backlog
// shows), the
// slowBystander must get every echo, a fresh dial must succeed during the
// flood, and within 10 s of the flooders leaving RSS must be back under
// baseline + 32 MiB.
func TestSlowReaders(t *testing.T) {
	clients, msgSize, budget, flood := 50, 1<<20, int64(64<<20), 6*time.Second
	if *slowFull {
		clients, budget, flood = 200, 256<<20, 20*time.Second
	}
	cc := childConfig{MemoryBudget: budget, OutboundReject: true}
	switch *slowPolicy {
	case "reject":
	case "close":
		cc.OutboundReject = false
	default:
		t.Fatalf("-slowpolicy=%q: reject or close", *slowPolicy)
	}
	const overhead, settle = 64 << 20, 32 << 20
	ch := startChild(t, cc)
	base := soakBaseline(t, ch)
	limit := base.rss + budget + overhead + int64(clients)<<18
	t.Logf("child pid %d: baseline RSS %.1f MiB; %d clients × %d KiB messages for %v, budget %d MiB, policy %s: RSS limit %.1f MiB",
		ch.pid, mib(base.rss), clients, msgSize>>10, flood, budget>>20, *slowPolicy, mib(limit))

	// RSS, every 50 ms, for the peak.
	var peak atomic.Int64
	peak.Store(base.rss)
	stopSampling := make(chan struct{})
	var samplers sync.WaitGroup
	samplers.Go(func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
				if r := ch.rss(); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	})
	defer func() { close(stopSampling); samplers.Wait() }()

	by := startBystander(t, ch.url())

	// The flooders: connect all, then send until the flood ends; a write
	// that stalls past the end just stops.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns := make([]*ClientConn, clients)
	var dials sync.WaitGroup
	var dialErrs atomic.Int64
	for i := range conns {
		dials.Go(func() {
			c, err := Dial(ctx, ch.url(), nil)
			if err != nil {
				dialErrs.Add(1)
				t.Logf("flooder %d: dial: %v", i, err)
				return
			}
			conns[i] = c
		})
	}
	dials.Wait()
	if n := dialErrs.Load(); n > 0 {
		t.Fatalf("%d of %d flooders could not connect", n, clients)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.CloseNow()
		}
	})
	msg := make([]byte, msgSize)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	var sent, writeErrs atomic.Int64
	floodEnd := time.Now().Add(flood)
	var flooders sync.WaitGroup
	for _, c := range conns {
		flooders.Go(func() {
			c.SetWriteDeadline(floodEnd)
			for time.Now().Before(floodEnd) {
				if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
					if time.Now().Before(floodEnd) {
						writeErrs.Add(1) // the server dropped us (policy close)
					}
					return
				}
				sent.Add(int64(msgSize))
			}
		})
	}

	// Half-way: the listener still accepts, and a newcomer gets its echo.
	time.Sleep(flood / 2)
	dialStart := time.Now()
	freshErr := freshEcho(ch.url())
	dialTook := time.Since(dialStart)
	if freshErr != nil {
		t.Errorf("a fresh connection during the flood: %v (after %v)", freshErr, dialTook.Round(time.Millisecond))
	}
	flooders.Wait()
	floodPeak := peak.Load()
	st, _ := ch.stats()

	// The flooders leave.
	for _, c := range conns {
		c.CloseNow()
	}
	left := time.Now()
	var back time.Duration
	var rss int64
	if waitFor(10*time.Second, func() bool { rss = ch.rss(); return rss <= base.rss+settle }) {
		back = time.Since(left)
	}
	lat, lost := by.stop()
	// Diagnostics: the live heap (after a GC in the child) and the RSS
	// then, to tell memory the engine still holds from memory the runtime
	// has not collected or given back.
	after, _ := ch.statsAfterGC()
	time.Sleep(time.Second)
	rssAfterGC := ch.rss()

	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	t.Logf("SLOWREADERS clients=%d msg=%d KiB flood=%v policy=%s budget=%d MiB: sent %.0f MiB (%d writes failed in the flood); child RSS baseline %.1f MiB, peak %.1f MiB (limit %.1f), heap in use at the end of the flood %.1f MiB, writes refused %d, closes %v; fresh dial+echo during the flood %v; RSS %.1f MiB after the flooders left, back under baseline+%d MiB in %v; then after a forced GC: %d conns open (the stats request included), live heap %.1f MiB, RSS %.1f MiB a second later (%d GCs in all); bystander %d echoes, %d lost, latency p50 %v p99 %v max %v",
		clients, msgSize>>10, flood, *slowPolicy, budget>>20, mib(sent.Load()), writeErrs.Load(), mib(base.rss), mib(floodPeak), mib(limit), mib(int64(st.HeapInuse)), st.Stats.WritesRefused, st.Stats.Closes,
		dialTook.Round(time.Millisecond), mib(rss), settle>>20, backString(back),
		after.Stats.Open, mib(int64(after.HeapInuse)), mib(rssAfterGC), after.NumGC, len(lat), lost, p(0.5), p(0.99), p(1))

	if lost > 0 {
		t.Errorf("the bystander lost %d of %d echoes (read error: %v): %s", lost, len(lat)+lost, by.readErr, by.lostReport())
	}
	if soakRace {
		t.Logf("RSS bounds not checked under -race (shadow memory)")
		return
	}
	if floodPeak > limit {
		t.Errorf("child RSS peaked at %.1f MiB, over baseline %.1f + budget %d + overhead %d MiB + %d clients × 256 KiB = %.1f MiB",
			mib(floodPeak), mib(base.rss), budget>>20, overhead>>20, clients, mib(limit))
	}
	if back == 0 {
		t.Errorf("child RSS %.1f MiB 10 s after the flooders left, over baseline %.1f + %d MiB", mib(rss), mib(base.rss), settle>>20)
	}
}

func backString(d time.Duration) string {
	if d == 0 {
		return "never (10 s)"
	}
	return d.Round(10 * time.Millisecond).String()
}

// freshEcho dials, echoes one message and closes, within 10 s.
func freshEcho(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.NetConn().SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(codec.OpText, []byte("newcomer")); err != nil {
		return err
	}
	op, p, err := c.ReadMessage()
	if err == nil && (op != codec.OpText || string(p) != "newcomer") {
		err = fmt.Errorf("echo %s %q", op, p)
	}
	return err
}

// slowBystander echoes a 64-byte message every 10 ms and times each echo.
type slowBystander struct {
	c       *ClientConn
	done    chan struct{}
	wg      sync.WaitGroup // the reader
	sender  sync.WaitGroup
	mu      sync.Mutex
	sentAt  map[uint64]time.Time
	lat     []time.Duration
	readErr error
	// Diagnostics for a lost echo: when the bystander started, the last
	// sequence number echoed, and a failed send.
	start    time.Time
	lastEcho uint64
	writeErr error
}

// lostReport says which echoes never came and when they were sent.
func (b *slowBystander) lostReport() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s []string
	for seq, at := range b.sentAt {
		s = append(s, fmt.Sprintf("#%d sent at +%v", seq, at.Sub(b.start).Round(time.Millisecond)))
	}
	slices.Sort(s)
	return fmt.Sprintf("lost %v; last echo #%d; send error: %v", s, b.lastEcho, b.writeErr)
}

func startBystander(t *testing.T, url string) *slowBystander {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("bystander: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	b := &slowBystander{c: c, done: make(chan struct{}), sentAt: map[uint64]time.Time{}, start: time.Now()}
	b.wg.Go(func() {
		for {
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			op, p, err := c.ReadMessage()
			if err != nil {
				b.mu.Lock()
				b.readErr = err
				b.mu.Unlock()
				return
			}
			if op != codec.OpBinary || len(p) != 64 {
				b.mu.Lock()
				b.readErr = fmt.Errorf("bystander: unexpected %s echo of %d bytes", op, len(p))
				b.mu.Unlock()
				return
			}
			seq := binary.BigEndian.Uint64(p)
			b.mu.Lock()
			if at, ok := b.sentAt[seq]; ok {
				b.lat = append(b.lat, time.Since(at))
				delete(b.sentAt, seq)
			}
			b.lastEcho = seq
			b.mu.Unlock()
		}
	})
	b.sender.Go(func() {
		msg := make([]byte, 64)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for seq := uint64(0); ; seq++ {
			select {
			case <-b.done:
				return
			case <-tk.C:
			}
			binary.BigEndian.PutUint64(msg, seq)
			b.mu.Lock()
			b.sentAt[seq] = time.Now()
			b.mu.Unlock()
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
				b.mu.Lock()
				b.writeErr = err
				b.mu.Unlock()
				return // the message may or may not have left: still counted
			}
		}
	})
	return b
}

// stop ends the sends, waits up to 10 s for the outstanding echoes, and
// returns the sorted latencies and the number of echoes that never came.
// The sender is gone before the wait begins, so no message leaves after
// it (one sent then would meet the closed connection and count as lost).
func (b *slowBystander) stop() ([]time.Duration, int) {
	close(b.done)
	b.sender.Wait()
	waitFor(10*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.sentAt) == 0 || b.readErr != nil
	})
	b.c.CloseNow()
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	slices.Sort(b.lat)
	return b.lat, len(b.sentAt)
}
