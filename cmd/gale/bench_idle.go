package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// bench idle: the parent starts child processes (this binary, "bench
// idle-child"), each holding its share of the connections, because one
// process may open only so many files. It talks to each over the child's
// stdin and stdout, one line each way:
//
//	child:  progress OPEN FAILED         while dialling, twice a second
//	child:  ready HELD FAILED COMPRESSED RETRIED
//	parent: stats   child: stats {JSON childStats}
//	parent: check   child: alive ANSWERED WITHIN10S
//
// and the child exits when its stdin ends, which closes its connections.

// defaultPerChild is how many connections one child holds: the file limit
// here is 20,000 per process.
const defaultPerChild = 15000

// maxPerChild leaves a child headroom under a 20,000-file limit for its
// own descriptors (epoll, pipes, the runtime's).
const maxPerChild = 19500

// checkPayload marks the liveness check's pings, so that their pongs are
// told from those of keepalive pings.
var checkPayload = []byte("gale-bench-check")

// childStats is what a child reports on "stats".
type childStats struct {
	Open         int64            `json:"open"`
	Dropped      int64            `json:"dropped"` // closed by the server or the network
	Codes        map[string]int64 `json:"codes,omitempty"`
	Redials      int64            `json:"redials"`
	RedialFails  int64            `json:"redial_fails"`
	FirstErr     string           `json:"first_err,omitempty"`
	FirstDropNs  int64            `json:"first_drop_ns"`      // Unix ns of the first drop
	LastDropNs   int64            `json:"last_drop_ns"`       // Unix ns of the last drop
	LastBackNs   int64            `json:"last_back_ns"`       // Unix ns of the last successful redial
	RedialMaxNs  int64            `json:"redial_max_ns"`      // the longest from a drop to its connection back
	RedialWaitNs int64            `json:"redial_wait_max_ns"` // the longest a redial waited for a dialling slot
	RedialSlow   int64            `json:"redial_slow"`        // redials back more than a second after their drop
}

const idleHelp = `Opens -conns connections from child processes (-per-child each, -parallel of
them dialling at a time, over source addresses 127.0.0.2… so that no address
runs out of ephemeral ports), holds them for -duration, then pings every one and
counts the pongs: every connection must answer. With -pid it reports the
server's memory and CPU summed over that process and all its descendants (the
workers of gale serve -procs): RSS per connection -settle after the last
connection and again at the end of -duration (a server that returns the ramp's
garbage to the system while idle shows it there), CPU while idle. Beside it,
the kernel's socket counts and memory from /proc/net/sockstat and the change of
unreclaimable slab memory (the kernel's own per-socket structures).
With -reconnect, a connection the server closes is dialled again at once;
the report says how many were dropped, with which close codes, how many
redials failed, how long after the last drop the last one was back, and the
longest any one connection took from its drop to being open again.
With -sse, the connections are Server-Sent Events streams: a GET of the -url's
host and path (ws:// only) with Accept: text/event-stream, held open and read
(gale serve -sse PATH serves them); the final check counts the streams still
open, since a stream has no ping to answer. Compare the RSS per connection with
and without it in the same session.
`

func benchIdle(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	var c common
	c.register(fs, 1000, 5*time.Second)
	settle := fs.Duration("settle", 2*time.Second, "wait after the last connection before reading the server's RSS (0: none)")
	compress := fs.Bool("compress", false, "offer permessage-deflate (no context takeover), to compare idle memory with and without it; a warning says when the server declines it")
	perChild := fs.Int("per-child", defaultPerChild, "connections per child process (each child is under the open-files limit)")
	parallel := fs.Int("parallel", 4, "child processes dialling at the same time during the ramp")
	ping := fs.Duration("ping", 0, "client keepalive: each client connection pings the server this often (0: none; the server's own pings are answered either way)")
	checkTimeout := fs.Duration("check-timeout", 60*time.Second, "how long the final check waits for every pong")
	reconnect := fs.Bool("reconnect", false, "dial a connection again at once when the server closes it (reload and restart tests)")
	sse := fs.Bool("sse", false, "hold Server-Sent Events streams (GET with Accept: text/event-stream) instead of WebSocket connections")
	if status, done := parseMode(fs, &c, idleHelp, args, stdout, stderr); done {
		return status
	}
	switch {
	case *settle < 0:
		return flagError(stderr, fs, "-settle %v is negative", *settle)
	case *perChild < 1 || *perChild > maxPerChild:
		return flagError(stderr, fs, "-per-child %d: want 1 to %d (one process's open-files limit)", *perChild, maxPerChild)
	case *parallel < 1:
		return flagError(stderr, fs, "-parallel %d: need at least 1", *parallel)
	case *ping < 0:
		return flagError(stderr, fs, "-ping %v is negative", *ping)
	case *checkTimeout <= 0:
		return flagError(stderr, fs, "-check-timeout %v must be positive", *checkTimeout)
	case *sse && (*compress || *reconnect || *ping != 0):
		return flagError(stderr, fs, "-sse holds event streams: -compress, -reconnect and -ping are WebSocket options")
	case *sse && !strings.HasPrefix(c.url, "ws://"):
		return flagError(stderr, fs, "-sse needs a ws:// -url: its host and path are requested over plain HTTP")
	}
	if _, ok := stderr.(*os.File); !ok {
		// The children's stderr is copied into it by goroutines of
		// os/exec, while this one writes to it too.
		stderr = &lockedWriter{w: stderr}
	}
	if c.sources == 0 {
		// About 10,000 connections per address: a bound socket's port is
		// unique per address (28,232 in the default ephemeral range).
		c.sources = c.conns/10000 + 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	mem0 := readHostMem()
	rss0, anon0, _ := treeRSS(c.pid)

	// The ramp: children started -parallel at a time, each as the previous
	// ones report ready.
	n := (c.conns + *perChild - 1) / *perChild
	kids := make([]*idleKid, n)
	for i := range kids {
		cnt := min(*perChild, c.conns-i**perChild)
		args := []string{"bench", "idle-child", "-url", c.url, "-conns", strconv.Itoa(cnt),
			"-offset", strconv.Itoa(i * *perChild), "-sources", strconv.Itoa(c.sources), "-first-source", strconv.Itoa(c.first),
			"-loops", strconv.Itoa(c.loops), "-ping", ping.String(), "-duration", checkTimeout.String()}
		if *compress {
			args = append(args, "-compress")
		}
		if *reconnect {
			args = append(args, "-reconnect")
		}
		if *sse {
			args = append(args, "-sse")
		}
		if c.ca != "" {
			args = append(args, "-ca", c.ca)
		}
		if c.insecure {
			args = append(args, "-insecure")
		}
		cmd := exec.Command(self, args...)
		if os.Getenv("GOMAXPROCS") == "" {
			// Dozens of children share a few cores, and each is idle after
			// its ramp: one P each keeps their threads and wake-ups few.
			cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		}
		kids[i] = &idleKid{n: cnt, cmd: cmd, replies: make(chan string, 4)}
	}
	defer func() {
		for _, k := range kids {
			k.stop()
		}
	}()
	rampStart := time.Now()
	stopProgress := progress(stderr, func() string {
		var open, failed int64
		for _, k := range kids {
			open += k.open.Load()
			failed += k.failed.Load()
		}
		d := time.Since(rampStart).Seconds()
		return fmt.Sprintf("ramp: %d of %d open (%.0f/s), %d failed, %v", open, c.conns, float64(open)/d, failed, time.Since(rampStart).Round(time.Second))
	})
	var held, failed, compressed, retried int
	next, running := 0, 0
	readyCh := make(chan *idleKid, n)
	for next < n || running > 0 {
		for running < *parallel && next < n {
			k := kids[next]
			next++
			if err := k.start(stderr, readyCh); err != nil {
				fmt.Fprintln(stderr, "gale bench:", err)
				return 2
			}
			running++
		}
		k := <-readyCh
		running--
		held, failed, compressed, retried = held+k.held, failed+k.nfailed, compressed+k.compressed, retried+k.retried
		if held == 0 && running == 0 {
			break // not one connection: the child said why; start no more
		}
	}
	rampS := time.Since(rampStart).Seconds()
	stopProgress()
	if held == 0 {
		fmt.Fprintf(stderr, "gale bench: cannot connect to %s: no connection opened\n", c.url)
		return 1
	}
	if *compress && compressed < held {
		fmt.Fprintf(stderr, "gale bench: warning: -compress: the server declined permessage-deflate on %d of %d connections\n", held-compressed, held)
	}
	live := kids[:0:0]
	for _, k := range kids {
		if k.started {
			live = append(live, k)
		}
	}

	holdStart := time.Now()
	var lastStats childStats
	var statsMu sync.Mutex
	stopProgress = progress(stderr, func() string {
		statsMu.Lock()
		st := lastStats
		statsMu.Unlock()
		return fmt.Sprintf("holding %d connections: %v of %v; open %d, dropped %d, redialled %d",
			held, time.Since(holdStart).Round(time.Second), *settle+c.duration, st.Open, st.Dropped, st.Redials)
	})
	pollStats := func() childStats { st := sumStats(live); statsMu.Lock(); lastStats = st; statsMu.Unlock(); return st }
	pollStats()
	sleepPolling(*settle, pollStats)
	rss1, anon1, procs := treeRSS(c.pid)
	mem1 := readHostMem()
	cpu0 := treeCPU(c.pid)
	sleepPolling(c.duration, pollStats)
	cpu1 := treeCPU(c.pid)
	rss2, anon2, _ := treeRSS(c.pid)
	st := pollStats()
	stopProgress()

	// Every connection must answer a ping after the idle time.
	checkStart := time.Now()
	stopProgress = progress(stderr, func() string {
		return fmt.Sprintf("checking %d connections: %v", held, time.Since(checkStart).Round(time.Second))
	})
	alive, within10 := 0, 0
	for _, k := range live {
		k.send("check")
	}
	for _, k := range live {
		var a, w int
		if _, err := fmt.Sscanf(k.reply(*checkTimeout+30*time.Second), "alive %d %d", &a, &w); err == nil {
			alive, within10 = alive+a, within10+w
		}
	}
	checkS := time.Since(checkStart).Seconds()
	stopProgress()
	for _, k := range kids {
		k.stop()
	}

	r := benchResult{Mode: "idle", URL: c.url, Conns: c.conns, Held: held, Alive: alive, DurationS: c.duration.Seconds(),
		Compress: *compress, SSE: *sse, Children: len(live), RampS: rampS, RampPerS: float64(held) / rampS, DialRetries: retried,
		CheckS: checkS, AliveWithin10s: within10, Dropped: st.Dropped, DropCodes: st.Codes,
		Redials: st.Redials, RedialFails: st.RedialFails, RedialFirstErr: st.FirstErr}
	if *reconnect && st.LastBackNs > 0 && st.FirstDropNs > 0 {
		r.DropSpanS = float64(st.LastDropNs-st.FirstDropNs) / 1e9
		r.LastBackAfterFirstDropS = float64(st.LastBackNs-st.FirstDropNs) / 1e9
		r.LastBackAfterDropS = float64(st.LastBackNs-st.LastDropNs) / 1e9
		r.RedialMaxS = float64(st.RedialMaxNs) / 1e9
		r.RedialWaitMaxS = float64(st.RedialWaitNs) / 1e9
		r.RedialSlow = st.RedialSlow
	}
	// A drop that was redialled is not a lost connection; one that was
	// not, or a connection that did not answer, is.
	lost := held - alive
	if !*reconnect {
		lost = max(lost, int(st.Dropped))
	}
	r.Errors = uint64(failed + lost + int(st.RedialFails))
	if *compress {
		r.Compression = &compressed
	}
	r.Sockstat = mem1.sockstat
	r.SlabDeltaKB = mem1.sunreclaimKB - mem0.sunreclaimKB
	r.HostUsedDeltaKB = mem1.usedKB - mem0.usedKB
	if c.pid > 0 && held > 0 {
		r.ServerProcs = procs
		r.ServerRSSBefore, r.ServerRSSAfter = rss0, rss1
		r.RSSPerConn = float64(rss1-rss0) * 1024 / float64(held)
		r.RSSPerConnTotal = float64(rss1) * 1024 / float64(held)
		r.ServerRSSHeld = rss2
		r.RSSPerConnHeld = float64(rss2-rss0) * 1024 / float64(held)
		r.ServerAnonBefore, r.ServerAnonHeld = anon0, anon2
		r.AnonPerConn = float64(anon1-anon0) * 1024 / float64(held)
		r.AnonPerConnHeld = float64(anon2-anon0) * 1024 / float64(held)
		r.IdleCPUPercent = 100 * (cpu1 - cpu0).Seconds() / c.duration.Seconds()
	}
	return report(stdout, stderr, &r, c.json)
}

// sleepPolling sleeps for d, calling poll every second.
func sleepPolling(d time.Duration, poll func() childStats) {
	end := time.Now().Add(d)
	for time.Until(end) > 0 {
		time.Sleep(min(time.Second, time.Until(end)))
		poll()
	}
}

// idleKid is the parent's side of one child.
type idleKid struct {
	n       int
	cmd     *exec.Cmd
	in      io.WriteCloser
	started bool
	replies chan string // lines other than progress and ready

	open, failed atomic.Int64 // from progress lines

	held, nfailed, compressed, retried int // from the ready line
}

func (k *idleKid) start(stderr io.Writer, ready chan<- *idleKid) error {
	k.cmd.Stderr = stderr
	k.in, _ = k.cmd.StdinPipe()
	out, _ := k.cmd.StdoutPipe()
	if err := k.cmd.Start(); err != nil {
		return err
	}
	k.started = true
	go func() {
		br := bufio.NewReader(out)
		said := false
		for {
			line, err := br.ReadString('\n')
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, "progress "):
				var o, f int64
				fmt.Sscanf(line, "progress %d %d", &o, &f)
				k.open.Store(o)
				k.failed.Store(f)
			case strings.HasPrefix(line, "ready ") && !said:
				if _, err := fmt.Sscanf(line, "ready %d %d %d %d", &k.held, &k.nfailed, &k.compressed, &k.retried); err != nil {
					k.nfailed = k.n
				}
				k.open.Store(int64(k.held))
				said = true
				ready <- k
			case line != "":
				k.replies <- line
			}
			if err != nil {
				if !said {
					fmt.Fprintf(stderr, "gale bench: a child ended before it was ready\n")
					k.nfailed = k.n
					ready <- k
				}
				close(k.replies)
				return
			}
		}
	}()
	return nil
}

func (k *idleKid) send(cmd string) {
	if k.started {
		io.WriteString(k.in, cmd+"\n")
	}
}

// reply waits for the child's answer to the last command ("" if none).
func (k *idleKid) reply(within time.Duration) string {
	if !k.started {
		return ""
	}
	select {
	case line := <-k.replies:
		return line
	case <-time.After(within):
		return ""
	}
}

// stop ends the child: its input closes, and it closes its connections
// (for at most 10 s) and exits.
func (k *idleKid) stop() {
	if !k.started {
		return
	}
	k.started = false
	k.in.Close()
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
}

// sumStats asks every child for its counters and sums them.
func sumStats(kids []*idleKid) childStats {
	var sum childStats
	for _, k := range kids {
		k.send("stats")
	}
	for _, k := range kids {
		line, ok := strings.CutPrefix(k.reply(10*time.Second), "stats ")
		var st childStats
		if !ok || json.Unmarshal([]byte(line), &st) != nil {
			continue
		}
		sum.Open += st.Open
		sum.Dropped += st.Dropped
		sum.Redials += st.Redials
		sum.RedialFails += st.RedialFails
		sum.LastDropNs = max(sum.LastDropNs, st.LastDropNs)
		if st.FirstDropNs > 0 && (sum.FirstDropNs == 0 || st.FirstDropNs < sum.FirstDropNs) {
			sum.FirstDropNs = st.FirstDropNs
		}
		sum.LastBackNs = max(sum.LastBackNs, st.LastBackNs)
		sum.RedialMaxNs = max(sum.RedialMaxNs, st.RedialMaxNs)
		sum.RedialWaitNs = max(sum.RedialWaitNs, st.RedialWaitNs)
		sum.RedialSlow += st.RedialSlow
		if sum.FirstErr == "" {
			sum.FirstErr = st.FirstErr
		}
		for code, n := range st.Codes {
			if sum.Codes == nil {
				sum.Codes = map[string]int64{}
			}
			sum.Codes[code] += n
		}
	}
	return sum
}

// benchIdleChild holds its share of the idle connections until its input
// ends.
func benchIdleChild(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench idle-child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, 1000, 0)
	offset := fs.Int("offset", 0, "index of the first connection, for source addresses")
	compress := fs.Bool("compress", false, "offer permessage-deflate (no context takeover)")
	ping := fs.Duration("ping", 0, "client keepalive interval")
	reconnect := fs.Bool("reconnect", false, "dial again when the server closes a connection")
	sse := fs.Bool("sse", false, "hold Server-Sent Events streams instead of WebSocket connections")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sse {
		return holdStreams(&c, *offset, stdout, stderr)
	}
	// The parent checked the flags; the child only needs the TLS roots.
	if c.ca != "" || c.insecure {
		tc, err := clientTLSConfig(c.ca, c.insecure)
		if err != nil {
			fmt.Fprintln(stderr, "gale bench:", err)
			return 2
		}
		c.tls = tc
	}
	out := &lockedWriter{w: stdout}
	h := &idleHolder{c: &c, offset: *offset, reconnect: *reconnect, redialing: make(chan struct{}, 256)}
	cfg := engine.Config{Loops: c.loops, PingInterval: *ping}
	if *compress {
		cfg.Compression = engine.CompressionConfig{Enabled: true}
	}
	cl, err := engine.NewClient(h, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	h.cl = cl
	h.conns = make([]*engine.Conn, c.conns)
	failed, retried := dialIdle(c.conns, h.dial, &h.open, out, stderr)
	compressed := 0
	h.mu.Lock()
	for _, conn := range h.conns {
		if conn != nil && conn.Compression() {
			compressed++
		}
	}
	h.mu.Unlock()
	fmt.Fprintf(out, "ready %d %d %d %d\n", h.open.Load(), failed, compressed, retried)
	answerParent(out, h.stats, func() (int, int) { return h.check(c.duration) })
	h.quitting.Store(true)
	// Close with the handshake rather than by exiting: the server then
	// closes each TCP connection first and keeps its TIME_WAIT, where an
	// exit would leave one per connection on this child's source
	// addresses, and a run started within the next minute from the same
	// addresses would dial several times slower. Bounded: what is not
	// closed by then goes with the process.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	cl.Close(ctx)
	cancel()
	return 0
}

// answerParent answers the parent's commands on standard input (stats,
// check) until it closes it.
func answerParent(out io.Writer, stats func() childStats, check func() (alive, within10 int)) {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stats":
			b, _ := json.Marshal(stats())
			fmt.Fprintf(out, "stats %s\n", b)
		case "check":
			a, w := check()
			fmt.Fprintf(out, "alive %d %d\n", a, w)
		}
	}
}

// holdCounts is what a child counts of the connections it holds, whatever
// they are: open now, dropped by the server, when the first and last
// drops came.
type holdCounts struct {
	quitting            atomic.Bool
	open, dropped       atomic.Int64
	firstDrop, lastDrop atomic.Int64
}

// dropped1 counts a connection the server ended; false while quitting,
// when the child is closing them itself.
func (h *holdCounts) dropped1() bool {
	if h.quitting.Load() {
		return false
	}
	h.open.Add(-1)
	h.dropped.Add(1)
	now := time.Now().UnixNano()
	h.firstDrop.CompareAndSwap(0, now)
	h.lastDrop.Store(now)
	return true
}

// holdStreams is bench idle-child -sse: the same protocol with the parent,
// over event streams.
func holdStreams(c *common, offset int, stdout, stderr io.Writer) int {
	out := &lockedWriter{w: stdout}
	h, err := newStreamHolder(c, offset, c.conns)
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	failed, retried := dialIdle(c.conns, h.dial, &h.open, out, stderr)
	fmt.Fprintf(out, "ready %d %d 0 %d\n", h.open.Load(), failed, retried)
	answerParent(out, h.stats, h.check)
	h.quit()
	return 0
}

// dialIdle dials connections 0..n-1, 64 at a time, reporting progress
// (open counts them) twice a second on out; it returns the dials that
// failed dialTries times, and the retries.
// dialTries is how often a connection is dialled before it counts as failed.
const dialTries = 5

func dialIdle(n int, dial func(i int) error, open *atomic.Int64, out, stderr io.Writer) (failedN, retriedN int64) {
	var failed, retried atomic.Int64
	dialDone := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-dialDone:
				return
			case <-t.C:
				fmt.Fprintf(out, "progress %d %d\n", open.Load(), failed.Load())
			}
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var printed atomic.Int32
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			// A dial that fails (a SYN dropped by a full queue and not
			// retransmitted in time, a handshake slower than the dial
			// deadline on a saturated machine) is tried again, up to
			// dialTries times, after a pause that grows, and counted.
			var err error
			for try := range dialTries {
				if try > 0 {
					retried.Add(1)
					time.Sleep(time.Duration(try) * 500 * time.Millisecond)
				}
				if err = dial(i); err == nil {
					return
				}
			}
			failed.Add(1)
			if printed.Add(1) <= 3 {
				fmt.Fprintln(stderr, "gale bench: dial:", err)
			}
		}()
		if i == 0 {
			wg.Wait() // the first alone: a server that is not there fails once
			if failed.Load() == 1 {
				failed.Store(int64(n))
				break
			}
		}
	}
	wg.Wait()
	close(dialDone)
	return failed.Load(), retried.Load()
}

// idleHolder is a child's handler and connection table.
type idleHolder struct {
	engine.BaseHandler
	c         *common
	cl        *engine.Client
	offset    int
	reconnect bool
	holdCounts

	redials, redialFails  atomic.Int64
	redialMax, redialWait atomic.Int64 // ns: drop to back, drop to a dialling slot
	redialSlow            atomic.Int64
	answered              atomic.Int64 // pongs to the check's pings
	lastBack              atomic.Int64

	// redialing bounds the redials in flight: a reload closes thousands of
	// connections within seconds, and each dial holds two descriptors for
	// a moment (the socket and the event loop's copy), which unbounded
	// would take a child near its file limit past it.
	redialing chan struct{}

	mu       sync.Mutex
	conns    []*engine.Conn
	codes    map[codec.StatusCode]int64
	firstErr string
}

// slot is a connection's user data: its index and whether it answered the
// check.
type slot struct {
	i        int
	answered atomic.Bool
}

func (h *idleHolder) dial(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := h.cl.Dial(ctx, h.c.url, h.c.dialOptions(h.offset+i))
	if err != nil {
		return err
	}
	conn.SetUserData(&slot{i: i})
	h.mu.Lock()
	h.conns[i] = conn
	h.mu.Unlock()
	h.open.Add(1)
	return nil
}

func (h *idleHolder) OnMessage(*engine.Conn, codec.Opcode, []byte) {}

func (h *idleHolder) OnPong(c *engine.Conn, p []byte) {
	if s, ok := c.UserData().(*slot); ok && bytes.Equal(p, checkPayload) && s.answered.CompareAndSwap(false, true) {
		h.answered.Add(1)
	}
}

func (h *idleHolder) OnClose(c *engine.Conn, err error) {
	s, ok := c.UserData().(*slot)
	if !ok || !h.dropped1() {
		return
	}
	code := codec.CloseStatus(err)
	if code == 0 {
		code = codec.StatusAbnormalClosure
	}
	h.mu.Lock()
	if h.codes == nil {
		h.codes = map[codec.StatusCode]int64{}
	}
	h.codes[code]++
	h.conns[s.i] = nil
	h.mu.Unlock()
	if h.reconnect {
		go h.redial(s.i, time.Now())
	}
}

// redial dials slot i again until it succeeds (for at most a minute),
// counting every failure: a client of a restarting server must never be
// refused.
func (h *idleHolder) redial(i int, dropped time.Time) {
	h.redialing <- struct{}{}
	defer func() { <-h.redialing }()
	storeMax(&h.redialWait, int64(time.Since(dropped)))
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && !h.quitting.Load(); {
		err := h.dial(i)
		if err == nil {
			h.redials.Add(1)
			h.lastBack.Store(time.Now().UnixNano())
			took := time.Since(dropped)
			storeMax(&h.redialMax, int64(took))
			if took > time.Second {
				h.redialSlow.Add(1)
			}
			return
		}
		if h.redialFails.Add(1) == 1 {
			h.mu.Lock()
			h.firstErr = err.Error()
			h.mu.Unlock()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *idleHolder) stats() childStats {
	st := childStats{Open: h.open.Load(), Dropped: h.dropped.Load(), Redials: h.redials.Load(),
		RedialFails: h.redialFails.Load(), FirstDropNs: h.firstDrop.Load(), LastDropNs: h.lastDrop.Load(), LastBackNs: h.lastBack.Load(),
		RedialMaxNs: h.redialMax.Load(), RedialWaitNs: h.redialWait.Load(), RedialSlow: h.redialSlow.Load()}
	h.mu.Lock()
	st.FirstErr = h.firstErr
	for code, n := range h.codes {
		if st.Codes == nil {
			st.Codes = map[string]int64{}
		}
		st.Codes[strconv.Itoa(int(code))] = n
	}
	h.mu.Unlock()
	return st
}

// check pings every connection and waits for the pongs, up to timeout;
// it returns how many answered, and how many of them within 10 s.
func (h *idleHolder) check(timeout time.Duration) (answered, within10 int) {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	h.mu.Lock()
	conns := append([]*engine.Conn(nil), h.conns...)
	h.mu.Unlock()
	h.answered.Store(0)
	sent := 0
	for _, conn := range conns {
		if conn == nil {
			continue
		}
		if s, ok := conn.UserData().(*slot); ok {
			s.answered.Store(false)
		}
		if conn.Ping(checkPayload) == nil {
			sent++
		}
	}
	start := time.Now()
	w := -1
	for int(h.answered.Load()) < sent && time.Since(start) < timeout {
		if w < 0 && time.Since(start) >= 10*time.Second {
			w = int(h.answered.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := int(h.answered.Load())
	if w < 0 {
		w = a
	}
	return a, w
}

// treeRSS returns the summed VmRSS and RssAnon (KiB) of pid and all its
// descendants, and how many processes that is. VmRSS also counts the
// pages of the executable each process has touched, which the workers of
// one binary share: summed, they are counted once per process, and grow
// as code runs for the first time, so RssAnon (heap, stacks, the
// runtime's own) is the part that is each process's alone.
func treeRSS(pid int) (kb, anon int64, procs int) {
	for _, p := range procTree(pid) {
		st := procStatus(p)
		kb += st["VmRSS:"]
		anon += st["RssAnon:"]
		procs++
	}
	return kb, anon, procs
}

// treeCPU returns the CPU time of pid and all its descendants.
func treeCPU(pid int) time.Duration {
	var d time.Duration
	for _, p := range procTree(pid) {
		d += procCPU(p)
	}
	return d
}

// procTree returns pid and its descendants, read from /proc (each thread's
// children file lists the processes it forked).
func procTree(pid int) []int {
	if pid <= 0 {
		return nil
	}
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", all[i]))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, s := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(s); err == nil {
					all = append(all, n)
				}
			}
		}
	}
	return all
}

// hostMem is the machine-wide memory the kernel accounts to sockets.
type hostMem struct {
	sockstat     *sockstat
	sunreclaimKB int64 // unreclaimable slab: socket, inode, dentry and file structures among it
	usedKB       int64 // MemTotal - MemAvailable
}

// sockstat is /proc/net/sockstat's TCP line.
type sockstat struct {
	InUse  int64 `json:"inuse"`
	Orphan int64 `json:"orphan"`
	TW     int64 `json:"tw"`
	Alloc  int64 `json:"alloc"`
	MemKB  int64 `json:"mem_kb"` // pages of socket buffers, in KiB
}

func readHostMem() hostMem {
	var m hostMem
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "TCP: "); ok {
				var s sockstat
				var pages int64
				if _, err := fmt.Sscanf(rest, "inuse %d orphan %d tw %d alloc %d mem %d", &s.InUse, &s.Orphan, &s.TW, &s.Alloc, &pages); err == nil {
					s.MemKB = pages * int64(os.Getpagesize()) / 1024
					m.sockstat = &s
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var total, avail int64
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "SUnreclaim:":
				m.sunreclaimKB = v
			case "MemTotal:":
				total = v
			case "MemAvailable:":
				avail = v
			}
		}
		m.usedKB = total - avail
	}
	return m
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for old := m.Load(); v > old && !m.CompareAndSwap(old, v); old = m.Load() {
	}
}
