package engine

// A Gale echo server in a child process, for the tests that must watch the
// server's own memory, descriptors and goroutines from outside (TestSoak,
// TestSlowReaders): the parent re-executes the test binary with
// -test.run=^TestChildServer$ and the configuration as JSON in an
// environment variable; the child prints its address and serves until its
// stdin closes (the parent ended or died) or it is killed.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// childEnv carries the child's configuration (childConfig as JSON).
const childEnv = "GALE_TEST_CHILD_SERVER"

// childConfig is the part of Config a child server is started with.
type childConfig struct {
	Loops          int   `json:",omitempty"`
	Compression    bool  `json:",omitempty"`
	MaxOutbound    int   `json:",omitempty"`
	OutboundReject bool  `json:",omitempty"`
	MaxMessageSize int64 `json:",omitempty"`
	MemoryBudget   int64 `json:",omitempty"`
}

// childStats is what the child's GET /stats answers.
type childStats struct {
	Goroutines int
	FDs        int // the child's open descriptors, the stats request's own included
	Stats      Stats
	HeapInuse  uint64
	HeapIdle   uint64
	HeapRel    uint64 // HeapReleased
	NumGC      uint32
}

// childEcho echoes every message with its opcode.
type childEcho struct{ BaseHandler }

func (childEcho) OnMessage(c *Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

// TestChildServer is not a test: it is the server half of TestSoak and
// TestSlowReaders, run in a child process. Without childEnv it skips.
func TestChildServer(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("the server of TestSoak and TestSlowReaders, run in a child process")
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		t.Fatalf("child config %q: %v", raw, err)
	}
	cfg := Config{
		Loops:          cc.Loops,
		MaxOutbound:    cc.MaxOutbound,
		MaxMessageSize: cc.MaxMessageSize,
		Compression:    CompressionConfig{Enabled: cc.Compression},
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if cc.OutboundReject {
		cfg.OutboundPolicy = OutboundReject
	}
	cfg.MemoryBudget = cc.MemoryBudget
	var srv *Server
	cfg.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("gc") != "" {
			// Diagnostics only: the live heap, after the RSS was measured.
			// Twice: sync.Pool keeps a GC's worth in its victim cache.
			runtime.GC()
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := childStats{
			Goroutines: runtime.NumGoroutine(),
			FDs:        countFDs("self"),
			Stats:      srv.Stats(),
			HeapInuse:  ms.HeapInuse,
			HeapIdle:   ms.HeapIdle,
			HeapRel:    ms.HeapReleased,
			NumGC:      ms.NumGC,
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	srv, err := NewServer(childEcho{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("GALE_CHILD_ADDR %s\n", srv.Addr())
	io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin or dies
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// countFDs counts the open descriptors of /proc/<pid>, -1 if unreadable.
func countFDs(pid string) int {
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// child is the parent's handle on a child server.
type child struct {
	addr   string // host:port
	pid    int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	http   *http.Client
}

// startChild starts a child server with cc; t.Cleanup kills it.
func startChild(t *testing.T, cc childConfig) *child {
	t.Helper()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc (Linux)")
	}
	raw, err := json.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildServer$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	if cc.MemoryBudget > 0 {
		// What an operator does beside the budget: MemoryBudget bounds what
		// Gale holds, GOMEMLIMIT keeps the collector from letting garbage
		// double the heap on top of it.
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMEMLIMIT=%dMiB", cc.MemoryBudget>>20+32))
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, stderr: &tailBuffer{max: 64 << 10},
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.pid = cmd.Process.Pid
	waited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-waited:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
		if s := c.stderr.String(); t.Failed() && s != "" {
			t.Logf("child stderr (tail):\n%s", s)
		}
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "GALE_CHILD_ADDR "); ok {
				addrc <- a
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(waited) }()
	select {
	case c.addr = <-addrc:
	case <-waited:
		t.Fatalf("child server exited before listening: %s", c.stderr.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child server did not print its address in 20 s")
	}
	return c
}

// url is the child's WebSocket URL.
func (c *child) url() string { return "ws://" + c.addr + "/" }

// stats fetches GET /stats from the child.
func (c *child) stats() (childStats, error) { return c.getStats("/stats") }

// statsAfterGC fetches GET /stats?gc=1: the child collects first, so the
// heap figures are the live heap. For diagnostics after RSS was measured.
func (c *child) statsAfterGC() (childStats, error) { return c.getStats("/stats?gc=1") }

func (c *child) getStats(path string) (childStats, error) {
	var st childStats
	resp, err := c.http.Get("http://" + c.addr + path)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /stats: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// rss returns the child's resident set in bytes, from /proc/<pid>/status.
func (c *child) rss() int64 { return procRSS(strconv.Itoa(c.pid)) }

// fds counts the child's open descriptors from /proc/<pid>/fd.
func (c *child) fds() int { return countFDs(strconv.Itoa(c.pid)) }

// raced reports whether the race detector complained in the child.
func (c *child) raced() bool { return strings.Contains(c.stderr.String(), "DATA RACE") }

func procRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return -1
}

// tailBuffer keeps the first and the last bytes written to it, at most max
// in all (a child's stderr).
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	head bytes.Buffer
	tail []byte
	all  int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all += len(p)
	if room := b.max/2 - b.head.Len(); room > 0 {
		b.head.Write(p[:min(room, len(p))])
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > b.max/2 {
		b.tail = append(b.tail[:0:0], b.tail[len(b.tail)-b.max/2:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.all <= b.max/2 {
		return b.head.String()
	}
	return b.head.String() + "\n…\n" + string(b.tail)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
