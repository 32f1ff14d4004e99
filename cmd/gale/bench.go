package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

const benchUsage = `usage: gale bench MODE [flags]

modes:
  echo       connections send messages and verify every echo: msgs/s, MB/s, latency
  handshake  workers open, upgrade and close connections: handshakes/s
  idle       open connections and hold them: the server's RSS per connection

Run "gale bench MODE -h" for the flags of a mode.
`

// benchResult is what a run reports, as JSON (-json) or a Markdown table.
type benchResult struct {
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	Conns       int     `json:"conns"`
	Size        int     `json:"size,omitempty"`
	Depth       int     `json:"depth,omitempty"`
	DurationS   float64 `json:"duration_s"`
	Msgs        uint64  `json:"msgs,omitempty"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	MBPerS      float64 `json:"mb_per_s,omitempty"`
	Handshakes  uint64  `json:"handshakes,omitempty"`
	HandshakesS float64 `json:"handshakes_per_s,omitempty"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
	Errors      uint64  `json:"errors"`

	// idle
	Held            int     `json:"held,omitempty"`
	ServerRSSBefore int64   `json:"server_rss_before_kb,omitempty"`
	ServerRSSAfter  int64   `json:"server_rss_after_kb,omitempty"`
	RSSPerConn      float64 `json:"rss_per_conn_bytes,omitempty"`
	IdleCPUPercent  float64 `json:"server_idle_cpu_percent,omitempty"`

	// server CPU over the measured window, when -pid is given
	ServerCPUs      float64 `json:"server_cpu_s,omitempty"`
	ServerCPUPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
}

func bench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	raiseFileLimit()
	switch args[0] {
	case "echo":
		return benchEcho(args[1:], stdout, stderr)
	case "handshake":
		return benchHandshake(args[1:], stdout, stderr)
	case "idle":
		return benchIdle(args[1:], stdout, stderr)
	case "idle-child":
		return benchIdleChild(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "gale bench: unknown mode %q\n\n%s", args[0], benchUsage)
		return 2
	}
}

// common are the flags every mode shares.
type common struct {
	url      string
	conns    int
	duration time.Duration
	loops    int
	sources  int
	pid      int
	json     bool
}

func (c *common) register(fs *flag.FlagSet, conns int, dur time.Duration) {
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:8080/", "server URL (ws://)")
	fs.IntVar(&c.conns, "conns", conns, "connections")
	fs.DurationVar(&c.duration, "duration", dur, "measured time")
	fs.IntVar(&c.loops, "loops", 0, "client event loops (0: one per CPU)")
	fs.IntVar(&c.sources, "sources", 0, "spread connections over this many source addresses 127.0.0.2… (0: 127.0.0.1, or enough for -conns)")
	fs.IntVar(&c.pid, "pid", 0, "server process id, to report its CPU time (and RSS for idle) from /proc")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of a Markdown table")
}

// dialOptions spreads connection i over the source addresses, so one
// client never runs out of ephemeral ports towards one server address.
func (c *common) dialOptions(i int) *engine.DialOptions {
	sources := c.sources
	if sources == 0 && c.conns > 20000 {
		sources = c.conns/20000 + 1
	}
	if sources <= 0 {
		return nil
	}
	ip := net.IPv4(127, 0, byte((2+i%sources)>>8), byte(2+i%sources))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	return &engine.DialOptions{NetDial: d.DialContext}
}

// dialAll opens n connections with at most 64 dials in flight.
func dialAll(ctx context.Context, cl *engine.Client, c *common, n, offset int, failed *atomic.Uint64) []*engine.Conn {
	conns := make([]*engine.Conn, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			conn, err := cl.Dial(ctx, c.url, c.dialOptions(offset+i))
			if err != nil {
				if failed.Add(1) <= 3 {
					fmt.Fprintln(os.Stderr, "gale bench: dial:", err)
				}
				return
			}
			conns[i] = conn
		}()
	}
	wg.Wait()
	return conns
}

// echoLoad sends messages, verifies the echoes and records latencies. Its
// callbacks run on the client's event loops.
type echoLoad struct {
	engine.BaseHandler
	op      codec.Opcode
	payload []byte
	depth   int
	phase   atomic.Int32 // 0 warm-up, 1 measuring, 2 stopping
	msgs    atomic.Uint64
	errors  atomic.Uint64
	hist    histogram
}

// inflight is a connection's FIFO of send times.
type inflight struct {
	sent       []time.Time
	head, size int
}

func (e *echoLoad) OnOpen(c *engine.Conn) {
	st := &inflight{sent: make([]time.Time, e.depth)}
	c.SetContext(st)
	for range e.depth {
		e.send(c, st)
	}
}

func (e *echoLoad) send(c *engine.Conn, st *inflight) {
	st.sent[(st.head+st.size)%len(st.sent)] = time.Now()
	st.size++
	if err := c.WriteMessage(e.op, e.payload); err != nil {
		e.errors.Add(1)
	}
}

func (e *echoLoad) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	st := c.Context().(*inflight)
	if st.size == 0 || op != e.op || !bytes.Equal(p, e.payload) {
		e.errors.Add(1) // an echo we did not ask for, or altered
		return
	}
	lat := time.Since(st.sent[st.head])
	st.head = (st.head + 1) % len(st.sent)
	st.size--
	switch e.phase.Load() {
	case 1:
		e.msgs.Add(1)
		e.hist.add(lat)
	case 2:
		return
	}
	e.send(c, st)
}

func (e *echoLoad) OnClose(c *engine.Conn, err error) {
	if e.phase.Load() < 2 {
		e.errors.Add(1) // the server dropped us mid-run
	}
}

func benchEcho(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, 100, 10*time.Second)
	size := fs.Int("size", 64, "message size in bytes")
	binary := fs.Bool("binary", false, "binary messages (default text)")
	depth := fs.Int("depth", 1, "messages in flight per connection")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before the measurement")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	load := &echoLoad{op: codec.OpText, payload: benchPayload(*size), depth: max(*depth, 1)}
	if *binary {
		load.op = codec.OpBinary
	}
	cl, err := engine.NewClient(load, engine.Config{Loops: c.loops, MaxMessageSize: int64(*size) + 1<<20})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var failed atomic.Uint64
	dialAll(context.Background(), cl, &c, c.conns, 0, &failed)
	time.Sleep(*warmup)
	cpu0 := procCPU(c.pid)
	load.hist.reset()
	load.phase.Store(1)
	start := time.Now()
	stopProgress := progress(stderr, func() string {
		return fmt.Sprintf("%d msgs, %.0f msg/s", load.msgs.Load(), float64(load.msgs.Load())/time.Since(start).Seconds())
	})
	time.Sleep(c.duration)
	load.phase.Store(2)
	elapsed := time.Since(start).Seconds()
	cpu1 := procCPU(c.pid)
	stopProgress()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	cl.Close(ctx)
	cancel()

	msgs := load.msgs.Load()
	pct := load.hist.percentiles(0.5, 0.9, 0.99)
	r := benchResult{
		Mode: "echo", URL: c.url, Conns: c.conns, Size: *size, Depth: load.depth,
		DurationS: elapsed, Msgs: msgs, MsgsPerS: float64(msgs) / elapsed,
		MBPerS: float64(msgs) * float64(*size) / elapsed / 1e6,
		P50us:  us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(load.hist.max.Load())),
		Errors: load.errors.Load() + failed.Load(),
	}
	if c.pid > 0 && cpu1 >= cpu0 && msgs > 0 {
		r.ServerCPUs = (cpu1 - cpu0).Seconds()
		r.ServerCPUPerMsg = float64((cpu1 - cpu0).Microseconds()) / float64(msgs)
	}
	return report(stdout, stderr, &r, c.json)
}

// benchPayload is size bytes of ASCII text (valid for text and binary).
func benchPayload(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	p := make([]byte, size)
	for i := range p {
		p[i] = alphabet[(i*7)%len(alphabet)]
	}
	return p
}

// closeWaiter is a handler that reports each connection's close.
type closeWaiter struct{ engine.BaseHandler }

func (closeWaiter) OnClose(c *engine.Conn, _ error) {
	if ch, ok := c.Context().(chan struct{}); ok {
		close(ch)
	}
}

func benchHandshake(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench handshake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, 64, 5*time.Second)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cl, err := engine.NewClient(closeWaiter{}, engine.Config{Loops: c.loops})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var done, failed atomic.Uint64
	var hist histogram
	var stop atomic.Bool
	cpu0 := procCPU(c.pid)
	start := time.Now()
	stopProgress := progress(stderr, func() string {
		return fmt.Sprintf("%d handshakes, %.0f/s", done.Load(), float64(done.Load())/time.Since(start).Seconds())
	})
	var wg sync.WaitGroup
	for w := range c.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				t0 := time.Now()
				conn, err := cl.Dial(context.Background(), c.url, c.dialOptions(w+i*c.conns))
				if err != nil {
					if failed.Add(1) <= 3 {
						fmt.Fprintln(stderr, "gale bench: dial:", err)
					}
					continue
				}
				hist.add(time.Since(t0))
				closed := make(chan struct{})
				conn.SetContext(closed)
				conn.Close(codec.StatusNormalClosure, "")
				select {
				case <-closed:
					done.Add(1)
				case <-time.After(10 * time.Second):
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(c.duration)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu1 := procCPU(c.pid)
	stopProgress()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	cl.Close(ctx)
	cancel()
	pct := hist.percentiles(0.5, 0.9, 0.99)
	n := done.Load()
	r := benchResult{
		Mode: "handshake", URL: c.url, Conns: c.conns, DurationS: elapsed,
		Handshakes: n, HandshakesS: float64(n) / elapsed, MsgsPerS: float64(n) / elapsed,
		P50us: us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(hist.max.Load())),
		Errors: failed.Load(),
	}
	if c.pid > 0 && n > 0 {
		r.ServerCPUs = (cpu1 - cpu0).Seconds()
		r.ServerCPUPerMsg = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	}
	return report(stdout, stderr, &r, c.json)
}

// perChild is how many connections one idle child holds: the file limit
// here is 20,000 per process.
const perChild = 15000

func benchIdle(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, 1000, 5*time.Second)
	settle := fs.Duration("settle", 2*time.Second, "wait after the last connection before reading the server's RSS")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.sources == 0 {
		c.sources = c.conns/10000 + 1
	}
	rss0 := procRSS(c.pid)

	// Children hold the connections, perChild each, so that no process
	// comes near the file limit; each prints "ready HELD FAILED".
	children := (c.conns + perChild - 1) / perChild
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var held, failed int
	var stdins []io.Closer
	var cmds []*exec.Cmd
	for i := range children {
		n := min(perChild, c.conns-i*perChild)
		cmd := exec.Command(self, "bench", "idle-child", "-url", c.url, "-conns", strconv.Itoa(n),
			"-offset", strconv.Itoa(i*perChild), "-sources", strconv.Itoa(c.sources), "-loops", strconv.Itoa(c.loops))
		cmd.Stderr = stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(stderr, "gale bench:", err)
			return 2
		}
		stdins, cmds = append(stdins, in), append(cmds, cmd)
		line, _ := bufio.NewReader(out).ReadString('\n')
		var h, f int
		if _, err := fmt.Sscanf(line, "ready %d %d", &h, &f); err != nil {
			fmt.Fprintf(stderr, "gale bench: child %d: %q\n", i, line)
			f = n
		}
		held, failed = held+h, failed+f
	}
	time.Sleep(*settle)
	rss1 := procRSS(c.pid)
	cpu0 := procCPU(c.pid)
	time.Sleep(c.duration)
	cpu1 := procCPU(c.pid)
	for _, in := range stdins {
		in.Close() // the children exit at the end of their input
	}
	for _, cmd := range cmds {
		cmd.Wait()
	}
	r := benchResult{Mode: "idle", URL: c.url, Conns: c.conns, Held: held, DurationS: c.duration.Seconds(), Errors: uint64(failed)}
	if c.pid > 0 && held > 0 {
		r.ServerRSSBefore, r.ServerRSSAfter = rss0, rss1
		r.RSSPerConn = float64(rss1-rss0) * 1024 / float64(held)
		r.IdleCPUPercent = 100 * (cpu1 - cpu0).Seconds() / c.duration.Seconds()
	}
	return report(stdout, stderr, &r, c.json)
}

// benchIdleChild holds its share of the idle connections until its input
// ends.
func benchIdleChild(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench idle-child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, 1000, 0)
	offset := fs.Int("offset", 0, "index of the first connection, for source addresses")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cl, err := engine.NewClient(engine.BaseHandler{}, engine.Config{Loops: c.loops})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var failed atomic.Uint64
	dialAll(context.Background(), cl, &c, c.conns, *offset, &failed)
	fmt.Fprintf(stdout, "ready %d %d\n", c.conns-int(failed.Load()), failed.Load())
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func report(stdout, stderr io.Writer, r *benchResult, asJSON bool) int {
	if asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(stderr, "gale bench:", err)
			return 2
		}
	} else {
		writeMarkdown(stdout, r)
	}
	if r.Errors > 0 {
		return 1
	}
	return 0
}

func writeMarkdown(w io.Writer, r *benchResult) {
	var cols []string
	var vals []string
	add := func(name, v string) { cols = append(cols, name); vals = append(vals, v) }
	add("mode", r.Mode)
	add("conns", strconv.Itoa(r.Conns))
	switch r.Mode {
	case "echo":
		add("size", strconv.Itoa(r.Size))
		add("depth", strconv.Itoa(r.Depth))
		add("msgs/s", fmt.Sprintf("%.0f", r.MsgsPerS))
		add("MB/s", fmt.Sprintf("%.1f", r.MBPerS))
	case "handshake":
		add("handshakes/s", fmt.Sprintf("%.0f", r.HandshakesS))
	case "idle":
		add("held", strconv.Itoa(r.Held))
		if r.RSSPerConn > 0 {
			add("server RSS/conn (B)", fmt.Sprintf("%.0f", r.RSSPerConn))
			add("server idle CPU %", fmt.Sprintf("%.2f", r.IdleCPUPercent))
		}
	}
	if r.Mode != "idle" {
		add("p50 µs", fmt.Sprintf("%.0f", r.P50us))
		add("p90 µs", fmt.Sprintf("%.0f", r.P90us))
		add("p99 µs", fmt.Sprintf("%.0f", r.P99us))
		add("max µs", fmt.Sprintf("%.0f", r.MaxUs))
	}
	if r.ServerCPUPerMsg > 0 {
		add("server CPU µs/op", fmt.Sprintf("%.2f", r.ServerCPUPerMsg))
	}
	add("errors", strconv.FormatUint(r.Errors, 10))
	fmt.Fprintf(w, "| %s |\n|%s\n| %s |\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)), strings.Join(vals, " | "))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// progress prints a live line on stderr once a second when it is a
// terminal, and nothing otherwise. The returned func stops it.
func progress(stderr io.Writer, line func() string) func() {
	f, ok := stderr.(*os.File)
	if !ok {
		return func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(f, "\r\033[K"+line())
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// procCPU returns the user+system CPU time of process pid from
// /proc/PID/stat (0 when pid is 0 or unreadable).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procRSS returns VmRSS of process pid in KiB (0 when unknown).
func procRSS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// raiseFileLimit lifts the soft open-files limit to the hard one: a load
// generator needs one descriptor per connection.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}
