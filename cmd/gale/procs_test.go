package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// The supervisor tests run gale serve -procs 2 as a child process (this
// test binary, see TestMain) whose workers are children of it in turn, and
// hold connections to it with blocking clients.

// lockedBuffer collects a process's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type supervised struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	exited chan error
}

func startSupervisor(t *testing.T, extra ...string) *supervised {
	t.Helper()
	args := append([]string{"serve", "-addr", "127.0.0.1:0", "-procs", "2", "-ping", "0", "-idle-timeout", "0", "-stats", "0"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	s := &supervised{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = s.stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill() // its workers get SIGTERM from the kernel (Pdeathsig)
			t.Errorf("supervisor did not exit after SIGTERM; stderr:\n%s", s.stderr)
		}
		if t.Failed() {
			t.Logf("supervisor stderr:\n%s", s.stderr)
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(`listening on (\S+) \(2 worker processes`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("supervisor said %q (%v); stderr:\n%s", line, err, s.stderr)
	}
	s.url = "ws://" + m[1] + "/"
	return s
}

// workers returns the supervisor's child processes (listed per thread:
// each thread's children are those it forked).
func (s *supervised) workers(t *testing.T) []int {
	t.Helper()
	pid := s.cmd.Process.Pid
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var pids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
	}
	slices.Sort(pids)
	return pids
}

// waitLog waits until the supervisor's stderr holds n lines containing s.
func (s *supervised) waitLog(t *testing.T, what string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(s.stderr.String(), what) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d × %q in the supervisor's log within %v", n, what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holders keeps n connections open, each redialled at once when the server
// closes it if reconnect is set, and records how they ended.
type holders struct {
	url       string
	reconnect bool
	open      atomic.Int64

	mu       sync.Mutex
	closes   map[codec.StatusCode]int
	dialErrs []error
	lastOpen time.Time
}

func holdConns(t *testing.T, url string, n int, reconnect bool) (*holders, context.CancelFunc) {
	h := &holders{url: url, reconnect: reconnect, closes: map[codec.StatusCode]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); h.hold(ctx) }()
	}
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for h.open.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections open", h.open.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h, stop
}

func (h *holders) hold(ctx context.Context) {
	for ctx.Err() == nil {
		c, err := engine.Dial(ctx, h.url, nil)
		if err != nil {
			if ctx.Err() == nil {
				h.mu.Lock()
				h.dialErrs = append(h.dialErrs, err)
				h.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		h.mu.Lock()
		h.lastOpen = time.Now()
		h.mu.Unlock()
		h.open.Add(1)
		stop := context.AfterFunc(ctx, func() { c.CloseNow() })
		var rerr error
		for rerr == nil {
			_, _, rerr = c.ReadMessage()
		}
		stop()
		h.open.Add(-1)
		c.CloseNow()
		if ctx.Err() != nil {
			return
		}
		code := codec.CloseStatus(rerr)
		if code == 0 {
			code = codec.StatusAbnormalClosure // the socket dropped without a Close
		}
		h.mu.Lock()
		h.closes[code]++
		h.mu.Unlock()
		if !h.reconnect {
			return
		}
	}
}

func (h *holders) snapshot() (map[codec.StatusCode]int, []error, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	closes := map[codec.StatusCode]int{}
	for k, v := range h.closes {
		closes[k] = v
	}
	return closes, append([]error(nil), h.dialErrs...), h.lastOpen
}

// waitOpen waits until n connections are open.
func (h *holders) waitOpen(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for h.open.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", h.open.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A worker killed with SIGKILL: only its own connections drop, the
// supervisor starts a new worker, and the dropped clients reconnect without
// a refused dial.
func TestSupervisorRestartsKilledWorker(t *testing.T) {
	s := startSupervisor(t)
	before := s.workers(t)
	if len(before) != 2 {
		t.Fatalf("workers %v, want 2", before)
	}
	const n = 40
	h, _ := holdConns(t, s.url, n, true)
	if err := syscall.Kill(before[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, "worker restarted", 1, 5*time.Second)
	// Reconnects first go to the survivor; wait until every client is back.
	time.Sleep(100 * time.Millisecond)
	h.waitOpen(t, n, 5*time.Second)
	closes, dialErrs, _ := h.snapshot()
	dropped := closes[codec.StatusAbnormalClosure]
	if len(closes) != 1 || dropped == 0 || dropped == n {
		// 40 connections all on one of two workers is a 2^-39 chance.
		t.Fatalf("closes %v: want only 1006, on some but not all of the %d connections", closes, n)
	}
	if len(dialErrs) > 0 {
		t.Fatalf("%d dials failed after the kill, the first: %v", len(dialErrs), dialErrs[0])
	}
	after := s.workers(t)
	if len(after) != 2 || after[0] == before[0] && after[1] == before[0] {
		t.Fatalf("workers after the kill %v (before %v)", after, before)
	}
	for _, p := range after {
		if p == before[0] {
			t.Fatalf("the killed worker %d is still a child: %v", p, after)
		}
	}
	if !strings.Contains(s.stderr.String(), "status=\"signal: killed\"") {
		t.Fatalf("the log does not say how the worker died")
	}
}

// A reload (SIGHUP) under continuous dialling: no dial fails, every held
// connection is closed once with 1012 by an old worker and is back on a
// new one within the drain period, and the old workers exit.
func TestSupervisorReload(t *testing.T) {
	const drain = time.Second
	s := startSupervisor(t, "-drain", drain.String())
	old := s.workers(t)
	const n = 40
	h, _ := holdConns(t, s.url, n, true)

	// Fresh connections the whole time, each upgraded and closed.
	var dials, failed atomic.Int64
	var firstErr atomic.Value
	ctx, stopDialling := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := engine.Dial(dctx, s.url, nil)
				cancel()
				dials.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.CloseNow()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The drain period starts once the new workers serve: the old ones
	// close nothing before, however long the new ones take to start (a
	// second and more for race-instrumented binaries on a busy machine).
	s.waitLog(t, "new workers serving", 1, 10*time.Second)
	drainAt := time.Now()
	s.waitLog(t, "old worker exited", 2, drain+10*time.Second)
	time.Sleep(200 * time.Millisecond)
	stopDialling()
	wg.Wait()

	if failed.Load() > 0 {
		t.Fatalf("%d of %d dials failed during the reload, the first: %v", failed.Load(), dials.Load(), firstErr.Load())
	}
	if dials.Load() < 20 {
		t.Fatalf("only %d dials during the reload: the test proves little", dials.Load())
	}
	h.waitOpen(t, n, time.Second)
	closes, dialErrs, lastOpen := h.snapshot()
	if closes[codec.StatusServiceRestart] != n || len(closes) != 1 {
		t.Fatalf("closes %v: want %d × 1012", closes, n)
	}
	if len(dialErrs) > 0 {
		t.Fatalf("%d reconnects failed, the first: %v", len(dialErrs), dialErrs[0])
	}
	if back := lastOpen.Sub(drainAt); back > drain+500*time.Millisecond {
		t.Fatalf("the last client was back %v after the drain began; the drain period is %v", back, drain)
	}
	for _, p := range s.workers(t) {
		for _, o := range old {
			if p == o {
				t.Fatalf("old worker %d still running after the reload: %v", p, s.workers(t))
			}
		}
	}
	t.Logf("%d dials through the reload, none failed; %d held connections back within %v",
		dials.Load(), n, lastOpen.Sub(drainAt).Round(time.Millisecond))
}

// SIGTERM: every connection gets 1001, every worker exits, and so does
// the supervisor, with status 0 and the summed counters in its log.
func TestSupervisorShutdown(t *testing.T) {
	s := startSupervisor(t)
	workers := s.workers(t)
	const n = 20
	h, _ := holdConns(t, s.url, n, false)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("supervisor exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor still running 10 s after SIGTERM")
	}
	s.exited <- nil // for the cleanup
	h.waitOpen(t, 0, 5*time.Second)
	if closes, _, _ := h.snapshot(); closes[codec.StatusGoingAway] != n {
		t.Fatalf("closes %v: want %d × 1001", closes, n)
	}
	for _, p := range workers {
		if syscall.Kill(p, 0) == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); !strings.Contains(string(b), ") Z") {
				t.Fatalf("worker %d still running", p)
			}
		}
	}
	if log := s.stderr.String(); !strings.Contains(log, "all workers ended") || !strings.Contains(log, "closes_1001=20") {
		t.Fatalf("no final counters with 20 closes 1001 in the log:\n%s", log)
	}
}
