package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"runtime"
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
  broadcast  one connection sends, the server sends each message to every
             connection (it must broadcast what it receives): deliveries/s
  publish    connections over one or more nodes (gale serve -topics -nats)
             subscribe, some publish; every message must reach every
             connection once: deliveries/s, publish-to-delivery latency

Run "gale bench MODE -h" for the flags of a mode. Sizes are bytes (1048576) or
a number with KiB, MiB or GiB (16KiB).
Exit status: 0 when every connection opened and every message was verified,
1 on errors (failed dials, lost or altered messages, a server that cannot do
what the mode needs), 2 on bad flags.
`

// benchExit is the exit status paragraph of each mode's usage.
const benchExit = `Exit status: 0 when every connection opened and every message was verified,
1 on errors, 2 on bad flags.
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
	Compress    bool    `json:"compress,omitempty"`
	SSE         bool    `json:"sse,omitempty"` // idle: the connections were event streams
	// Compression is, with -compress, how many connections negotiated
	// permessage-deflate (the server may decline it).
	Compression *int `json:"compression,omitempty"`
	Distinct    int  `json:"distinct,omitempty"`

	// broadcast: messages sent by the one sender; Msgs and MsgsPerS count
	// deliveries (a message received by one connection).
	Broadcasts uint64 `json:"broadcasts,omitempty"`

	// publish: Broadcasts counts the messages published, by Publishers
	// connections over Nodes servers; Duplicates and Lost are deliveries
	// received twice or never (both also counted in Errors).
	Publishers int    `json:"publishers,omitempty"`
	Nodes      int    `json:"nodes,omitempty"`
	Duplicates uint64 `json:"duplicates,omitempty"`
	Lost       uint64 `json:"lost,omitempty"`

	// idle
	Held            int     `json:"held,omitempty"`
	ServerRSSBefore int64   `json:"server_rss_before_kb,omitempty"`
	ServerRSSAfter  int64   `json:"server_rss_after_kb,omitempty"`
	RSSPerConn      float64 `json:"rss_per_conn_bytes,omitempty"`
	IdleCPUPercent  float64 `json:"server_idle_cpu_percent,omitempty"`
	Alive           int     `json:"alive,omitempty"` // idle connections that answered the final ping
	// The server's RSS summed over -pid and its descendants, divided by the
	// connections held (RSSPerConn counts only the growth since the start).
	RSSPerConnTotal float64 `json:"rss_per_conn_total_bytes,omitempty"`
	// The same reading at the end of -duration: what the server keeps
	// while its connections stay idle, once it has had time to return the
	// ramp's garbage to the system.
	ServerRSSHeld  int64   `json:"server_rss_held_kb,omitempty"`
	RSSPerConnHeld float64 `json:"rss_per_conn_held_bytes,omitempty"`
	// The same readings of RssAnon, the server's private memory: VmRSS
	// without the executable's pages, which its processes share.
	ServerAnonBefore int64   `json:"server_anon_before_kb,omitempty"`
	ServerAnonHeld   int64   `json:"server_anon_held_kb,omitempty"`
	AnonPerConn      float64 `json:"anon_per_conn_bytes,omitempty"`
	AnonPerConnHeld  float64 `json:"anon_per_conn_held_bytes,omitempty"`
	ServerProcs      int     `json:"server_procs,omitempty"`
	Children         int     `json:"children,omitempty"`
	RampS            float64 `json:"ramp_s,omitempty"`
	RampPerS         float64 `json:"ramp_conns_per_s,omitempty"`
	DialRetries      int     `json:"dial_retries,omitempty"`
	CheckS           float64 `json:"check_s,omitempty"`
	// AliveWithin10s is how many answered within 10 s of the check's start.
	AliveWithin10s int              `json:"alive_within_10s,omitempty"`
	Dropped        int64            `json:"dropped,omitempty"`
	DropCodes      map[string]int64 `json:"drop_codes,omitempty"`
	Redials        int64            `json:"redials,omitempty"`
	RedialFails    int64            `json:"redial_fails,omitempty"`
	RedialFirstErr string           `json:"redial_first_error,omitempty"`
	// With -reconnect: from the first drop to the last, to the last
	// connection back, and from the last drop to the last back.
	DropSpanS               float64 `json:"drop_span_s,omitempty"`
	LastBackAfterFirstDropS float64 `json:"last_back_after_first_drop_s,omitempty"`
	LastBackAfterDropS      float64 `json:"last_back_after_last_drop_s,omitempty"`
	// The longest one connection took from its drop to being back, the
	// longest a redial waited for a dialling slot, and how many took more
	// than a second.
	RedialMaxS     float64 `json:"redial_max_s,omitempty"`
	RedialWaitMaxS float64 `json:"redial_wait_max_s,omitempty"`
	RedialSlow     int64   `json:"redial_over_1s,omitempty"`
	// The kernel: TCP sockets and their buffer memory (/proc/net/sockstat),
	// and the growth of unreclaimable slab and of all used memory.
	Sockstat        *sockstat `json:"sockstat,omitempty"`
	SlabDeltaKB     int64     `json:"slab_delta_kb,omitempty"`
	HostUsedDeltaKB int64     `json:"host_used_delta_kb,omitempty"`

	// server CPU over the measured window, when -pid is given
	ServerCPUs      float64 `json:"server_cpu_s,omitempty"`
	ServerCPUPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
	// ServerRSS is the server's RSS at the end of the window (KiB).
	ServerRSS int64 `json:"server_rss_kb,omitempty"`
	// This process's CPU time over the window, and how busy all the
	// machine's CPUs were (100 = every CPU), so that a caller can tell
	// other processes' noise from the server's and the client's work.
	ClientCPUs  float64 `json:"client_cpu_s,omitempty"`
	HostBusyPct float64 `json:"host_busy_pct,omitempty"`
	CPUs        int     `json:"cpus,omitempty"`
}

// snapshot is the CPU accounting at one edge of a measured window.
type snapshot struct {
	server, self      time.Duration
	hostBusy, hostAll uint64
}

func takeSnapshot(pid int) snapshot {
	s := snapshot{server: procCPU(pid), self: selfCPU()}
	s.hostBusy, s.hostAll = hostCPU()
	return s
}

// window fills in the CPU figures of r between s0 and s1 over ops
// operations (messages, deliveries, handshakes).
func (r *benchResult) window(pid int, s0, s1 snapshot, ops uint64) {
	r.ClientCPUs = (s1.self - s0.self).Seconds()
	r.CPUs = runtime.NumCPU()
	if s1.hostAll > s0.hostAll {
		r.HostBusyPct = 100 * float64(s1.hostBusy-s0.hostBusy) / float64(s1.hostAll-s0.hostAll)
	}
	if pid > 0 && s1.server >= s0.server {
		r.ServerCPUs = (s1.server - s0.server).Seconds()
		r.ServerRSS = procRSS(pid)
		if ops > 0 {
			r.ServerCPUPerMsg = float64((s1.server - s0.server).Nanoseconds()) / 1e3 / float64(ops)
		}
	}
}

func bench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, benchUsage)
		return 0
	}
	raiseFileLimit()
	switch args[0] {
	case "echo":
		return benchEcho(args[1:], stdout, stderr)
	case "handshake":
		return benchHandshake(args[1:], stdout, stderr)
	case "idle":
		return benchIdle(args[1:], stdout, stderr)
	case "broadcast":
		return benchBroadcast(args[1:], stdout, stderr)
	case "publish":
		return benchPublish(args[1:], stdout, stderr)
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
	first    int
	pid      int
	json     bool
	multiURL bool        // -url may list several servers, comma-separated (publish)
	ca       string      // -ca: a PEM file of roots for wss://
	insecure bool        // -insecure: no certificate check for wss://
	tls      *tls.Config // from ca and insecure, for wss://
}

func (c *common) register(fs *flag.FlagSet, conns int, dur time.Duration) {
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:8080/", "server URL (ws:// or wss://)")
	fs.StringVar(&c.ca, "ca", "", "PEM `file` of the certificate authorities to trust for wss:// (default: the system's)")
	fs.BoolVar(&c.insecure, "insecure", false, "for wss://, accept any certificate (tests only)")
	fs.IntVar(&c.conns, "conns", conns, "connections")
	fs.DurationVar(&c.duration, "duration", dur, "measured time")
	fs.IntVar(&c.loops, "loops", 0, "client event loops (0: one per CPU)")
	fs.IntVar(&c.sources, "sources", 0, "spread connections over this many source addresses 127.0.0.2… (0: 127.0.0.1, or enough for -conns)")
	fs.IntVar(&c.first, "first-source", 2, "the first source address with -sources: 127.0.0.N")
	fs.IntVar(&c.pid, "pid", 0, "server process id, to report its CPU time (and RSS for idle) from /proc")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of a Markdown table")
}

// check validates the shared flags; it returns a message for the first bad
// one, or "".
func (c *common) check() string {
	urls := []string{c.url}
	if c.multiURL {
		urls = strings.Split(c.url, ",")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			return fmt.Sprintf("-url %q: %v", raw, err)
		case u.Scheme != "ws" && u.Scheme != "wss" || u.Hostname() == "":
			return fmt.Sprintf("-url %q: want ws://host:port/path or wss://host:port/path", raw)
		}
	}
	switch {
	case c.conns < 1:
		return fmt.Sprintf("-conns %d: need at least 1", c.conns)
	case c.duration <= 0:
		return fmt.Sprintf("-duration %v: must be positive", c.duration)
	case c.loops < 0:
		return fmt.Sprintf("-loops %d is negative (0: one per CPU)", c.loops)
	case c.sources < 0:
		return fmt.Sprintf("-sources %d is negative (0: automatic)", c.sources)
	case c.first < 1 || c.first+max(c.effectiveSources(), 1)-1 > 0xFFFF:
		return fmt.Sprintf("-first-source %d with %d sources: the addresses 127.0.0.1 to 127.0.255.255 hold 65535", c.first, max(c.effectiveSources(), 1))
	case c.pid < 0:
		return fmt.Sprintf("-pid %d is negative", c.pid)
	}
	if c.ca != "" || c.insecure {
		cfg, err := clientTLSConfig(c.ca, c.insecure)
		if err != nil {
			return err.Error()
		}
		c.tls = cfg
	}
	if c.pid > 0 {
		if _, err := os.Stat("/proc/" + strconv.Itoa(c.pid) + "/stat"); err != nil {
			return fmt.Sprintf("-pid %d: no such process (or no /proc to read it from)", c.pid)
		}
	}
	return ""
}

// effectiveSources is how many source addresses the connections use (0:
// the default route's).
func (c *common) effectiveSources() int {
	if c.sources == 0 && c.conns > 20000 {
		return c.conns/20000 + 1
	}
	return c.sources
}

// dialOptions spreads connection i over the source addresses, so one
// client never runs out of ephemeral ports towards one server address.
func (c *common) dialOptions(i int) *engine.DialOptions {
	sources := c.effectiveSources()
	if sources <= 0 {
		if c.tls == nil {
			return nil
		}
		return &engine.DialOptions{TLSConfig: c.tls}
	}
	n := c.first + i%sources
	ip := net.IPv4(127, 0, byte(n>>8), byte(n))
	// KeepAlive -1: the kernel's TCP keepalive probes would add a packet
	// each way per idle connection every 15 s (Go's default), load on the
	// server's machine that is the load generator's, not the server's.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, KeepAlive: -1}
	return &engine.DialOptions{NetDial: d.DialContext, TLSConfig: c.tls}
}

// parseMode parses a mode's flags and checks the shared ones; when done,
// the mode ends with status (0 after -h, 2 for a bad flag).
func parseMode(fs *flag.FlagSet, c *common, help string, args []string, stdout, stderr io.Writer) (status int, done bool) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gale %s [flags]\n\n%s\n%s\nflags:\n", fs.Name(), help, benchExit)
		fs.PrintDefaults()
	}
	if status, done := parseFlags(fs, args, false, stdout, stderr); done {
		return status, true
	}
	if msg := c.check(); msg != "" {
		return flagError(stderr, fs, "%s", msg), true
	}
	return 0, false
}

// maxBenchSize bounds -size: every message is held in memory, -distinct
// times over.
const maxBenchSize = 1 << 30

// dialTimeout bounds one dial of the load generator.
const dialTimeout = 10 * time.Second

// dialAll opens n connections with at most 64 dials in flight. The first
// is dialled alone: when it fails, dialAll returns its error at once (a
// server that is not there, or refuses the upgrade), as it does when every
// dial failed; otherwise failed counts the dials that did, and the slots of
// conns they leave are nil. The first three errors go to stderr.
func dialAll(stderr io.Writer, cl *engine.Client, c *common, n, offset int, failed *atomic.Uint64) ([]*engine.Conn, error) {
	conns := make([]*engine.Conn, n)
	if n == 0 {
		return conns, nil
	}
	dialOne := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		defer cancel()
		conn, err := cl.Dial(ctx, c.url, c.dialOptions(offset+i))
		if err != nil {
			failed.Add(1)
			return err
		}
		conns[i] = conn
		return nil
	}
	if err := dialOne(0); err != nil {
		failed.Add(uint64(n - 1)) // none of the others is tried
		return conns, err
	}
	var opened atomic.Int64
	opened.Store(1)
	stopProgress := progress(stderr, func() string {
		return fmt.Sprintf("dialling: %d of %d open, %d failed", opened.Load(), n, failed.Load())
	})
	defer stopProgress()
	var printed atomic.Int32
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := dialOne(i); err != nil {
				if printed.Add(1) <= 3 {
					fmt.Fprintln(stderr, "gale bench: dial:", err)
				}
				return
			}
			opened.Add(1)
		}()
	}
	wg.Wait()
	return conns, nil
}

// cannotConnect reports that no connection could be opened.
func cannotConnect(stderr io.Writer, c *common, err error) int {
	fmt.Fprintf(stderr, "gale bench: cannot connect to %s: %v\n", c.url, err)
	return 1
}

// negotiated counts the open connections and those of them that
// negotiated permessage-deflate; with -compress it warns when the server
// declined it on some.
func negotiated(stderr io.Writer, conns []*engine.Conn, asked bool) (open, compressed int) {
	for _, conn := range conns {
		if conn == nil {
			continue
		}
		open++
		if conn.Compression() {
			compressed++
		}
	}
	if asked && compressed < open {
		fmt.Fprintf(stderr, "gale bench: warning: -compress: the server declined permessage-deflate on %d of %d connections; their messages go uncompressed\n", open-compressed, open)
	}
	return open, compressed
}

// echoLoad sends messages, verifies the echoes and records latencies. Its
// callbacks run on the client's event loops.
type echoLoad struct {
	engine.BaseHandler
	op       codec.Opcode
	payloads [][]byte // sent in turn on each connection
	depth    int
	phase    atomic.Int32 // 0 warm-up, 1 measuring, 2 stopping
	msgs     atomic.Uint64
	errors   atomic.Uint64
	hist     histogram
}

// inflight is a connection's FIFO of send times and of which payload was
// sent.
type inflight struct {
	sent       []time.Time
	which      []int
	head, size int
	next       int // the payload to send next
}

// OnOpen only prepares the connection: traffic starts once every
// connection is up (start), so that late dials do not wait behind the echo
// traffic of the early ones (at 15,000 connections the dials otherwise
// stretch to most of a minute).
func (e *echoLoad) OnOpen(c *engine.Conn) {
	c.SetUserData(&inflight{sent: make([]time.Time, e.depth), which: make([]int, e.depth)})
}

// start sends every connection's first message; its echo makes the loop
// send the rest of the depth. Only that first write comes from this
// goroutine: writes from two goroutines keep their order only each on its
// own, so the loop must send everything after it. The connection's state is
// complete before the write, and the loop touches it only when the echo
// arrives, which the write's queue orders after this goroutine's stores.
func (e *echoLoad) start(conns []*engine.Conn) {
	now := time.Now()
	for _, c := range conns {
		if c == nil {
			continue // its dial failed and was counted
		}
		st := c.UserData().(*inflight)
		st.sent[0], st.which[0] = now, 0
		st.size, st.next = 1, 1%len(e.payloads)
		if err := c.WriteMessage(e.op, e.payloads[0]); err != nil {
			e.errors.Add(1)
		}
	}
}

func (e *echoLoad) send(c *engine.Conn, st *inflight) {
	i := (st.head + st.size) % len(st.sent)
	st.sent[i], st.which[i] = time.Now(), st.next
	st.size++
	p := e.payloads[st.next]
	st.next = (st.next + 1) % len(e.payloads)
	if err := c.WriteMessage(e.op, p); err != nil {
		e.errors.Add(1)
	}
}

func (e *echoLoad) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	st := c.UserData().(*inflight)
	if st.size == 0 || op != e.op || !bytes.Equal(p, e.payloads[st.which[st.head]]) {
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
	for st.size < e.depth { // after start's one message, the loop fills the depth
		e.send(c, st)
	}
}

func (e *echoLoad) OnClose(c *engine.Conn, err error) {
	if e.phase.Load() < 2 {
		e.errors.Add(1) // the server dropped us mid-run
	}
}

const echoHelp = `Each connection sends messages and verifies every echo (opcode, payload and
order); reports msgs/s, MB/s and latency percentiles over the measured window.
`

func benchEcho(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench echo", flag.ContinueOnError)
	var c common
	c.register(fs, 100, 10*time.Second)
	sizeFlag := byteSize(64)
	fs.Var(&sizeFlag, "size", "message `size` (up to 1GiB)")
	binary := fs.Bool("binary", false, "binary messages (default text)")
	depth := fs.Int("depth", 1, "messages in flight per connection (1 to 65536)")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before the measurement (0: none)")
	compress := fs.Bool("compress", false, "offer permessage-deflate (no context takeover) and compress every message; a warning says when the server declines it")
	distinct := fs.Int("distinct", 8, "distinct messages each connection cycles through (1 to 1024)")
	if status, done := parseMode(fs, &c, echoHelp, args, stdout, stderr); done {
		return status
	}
	size := int(sizeFlag)
	switch {
	case sizeFlag > maxBenchSize:
		return flagError(stderr, fs, "-size %s: at most 1GiB", &sizeFlag)
	case *depth < 1 || *depth > 1<<16:
		return flagError(stderr, fs, "-depth %d: need 1 to 65536", *depth)
	case *warmup < 0:
		return flagError(stderr, fs, "-warmup %v is negative", *warmup)
	case *distinct < 1 || *distinct > 1024:
		return flagError(stderr, fs, "-distinct %d: need 1 to 1024", *distinct)
	case int64(size)*int64(*distinct) > maxBenchSize:
		return flagError(stderr, fs, "-size %s × -distinct %d: the messages would take more than 1GiB", &sizeFlag, *distinct)
	}
	load := &echoLoad{op: codec.OpText, payloads: benchPayloads(size, *distinct), depth: *depth}
	if *binary {
		load.op = codec.OpBinary
	}
	cfg := engine.Config{Loops: c.loops, MaxMessageSize: int64(size) + 1<<20}
	if *compress {
		cfg.Compression = engine.CompressionConfig{Enabled: true, Threshold: 1}
	}
	cl, err := engine.NewClient(load, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var failed atomic.Uint64
	conns, err := dialAll(stderr, cl, &c, c.conns, 0, &failed)
	if err != nil {
		closeClient(cl)
		return cannotConnect(stderr, &c, err)
	}
	_, compressed := negotiated(stderr, conns, *compress)
	load.start(conns)
	elapsed, s0, s1 := measure(stderr, &c, *warmup, &load.phase, &load.msgs, "msgs", func() { load.hist.reset() })
	msgs := load.msgs.Load()
	closeClient(cl)

	pct := load.hist.percentiles(0.5, 0.9, 0.99)
	r := benchResult{
		Mode: "echo", URL: c.url, Conns: c.conns, Size: size, Depth: load.depth,
		DurationS: elapsed, Msgs: msgs, MsgsPerS: float64(msgs) / elapsed,
		MBPerS: float64(msgs) * float64(size) / elapsed / 1e6,
		P50us:  us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(load.hist.max.Load())),
		Errors:   load.errors.Load() + failed.Load(),
		Compress: *compress, Distinct: len(load.payloads),
	}
	if *compress {
		r.Compression = &compressed
	}
	r.window(c.pid, s0, s1, msgs)
	return report(stdout, stderr, &r, c.json)
}

// benchPayloads returns n distinct messages of size bytes each: words
// drawn from a small vocabulary by a fixed-seed generator, so that they are
// valid UTF-8 text and compress about as well as chat or JSON text does
// (about 3:1 with deflate), not as well as a repeated pattern.
func benchPayloads(size, n int) [][]byte {
	words := strings.Fields(`the quick brown fox jumps over lazy dog message event user id name value
		status ok error time stamp price count update channel room join leave hello world data {"type": "text"},
		[1, 2, 3] true false null alpha beta gamma delta 0 42 1024 3.14`)
	rng := rand.New(rand.NewPCG(6, 455))
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, 0, size+16)
		for len(p) < size {
			p = append(p, words[rng.IntN(len(words))]...)
			p = append(p, ' ')
		}
		out[i] = p[:size]
	}
	return out
}

// closeWaiter is a handler that reports each connection's close.
type closeWaiter struct{ engine.BaseHandler }

func (closeWaiter) OnClose(c *engine.Conn, _ error) {
	if ch, ok := c.UserData().(chan struct{}); ok {
		close(ch)
	}
}

const handshakeHelp = `Workers (-conns of them) open a connection, upgrade it and close it, over and
over; reports handshakes/s and the latency of an upgrade.
`

func benchHandshake(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench handshake", flag.ContinueOnError)
	var c common
	c.register(fs, 64, 5*time.Second)
	if status, done := parseMode(fs, &c, handshakeHelp, args, stdout, stderr); done {
		return status
	}
	cl, err := engine.NewClient(closeWaiter{}, engine.Config{Loops: c.loops})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	// One handshake first: a server that is not there is reported at once.
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	probe, err := cl.Dial(ctx, c.url, c.dialOptions(0))
	cancel()
	if err != nil {
		closeClient(cl)
		return cannotConnect(stderr, &c, err)
	}
	probe.Close(codec.StatusNormalClosure, "")
	var done, failed atomic.Uint64
	var hist histogram
	var stop atomic.Bool
	s0 := takeSnapshot(c.pid)
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
				ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
				conn, err := cl.Dial(ctx, c.url, c.dialOptions(w+i*c.conns))
				cancel()
				if err != nil {
					if failed.Add(1) <= 3 {
						fmt.Fprintln(stderr, "gale bench: dial:", err)
					}
					continue
				}
				hist.add(time.Since(t0))
				closed := make(chan struct{})
				conn.SetUserData(closed)
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
	s1 := takeSnapshot(c.pid)
	stopProgress()
	closeClient(cl)
	pct := hist.percentiles(0.5, 0.9, 0.99)
	n := done.Load()
	r := benchResult{
		Mode: "handshake", URL: c.url, Conns: c.conns, DurationS: elapsed,
		Handshakes: n, HandshakesS: float64(n) / elapsed, MsgsPerS: float64(n) / elapsed,
		P50us: us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(hist.max.Load())),
		Errors: failed.Load(),
	}
	r.window(c.pid, s0, s1, n)
	return report(stdout, stderr, &r, c.json)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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
	case "publish":
		add("nodes", strconv.Itoa(r.Nodes))
		add("publishers", strconv.Itoa(r.Publishers))
		add("size", strconv.Itoa(r.Size))
		add("published", strconv.FormatUint(r.Broadcasts, 10))
		add("deliveries/s", fmt.Sprintf("%.0f", r.MsgsPerS))
		add("lost", strconv.FormatUint(r.Lost, 10))
		add("duplicates", strconv.FormatUint(r.Duplicates, 10))
	case "broadcast":
		add("size", strconv.Itoa(r.Size))
		add("broadcasts", strconv.FormatUint(r.Broadcasts, 10))
		add("deliveries/s", fmt.Sprintf("%.0f", r.MsgsPerS))
		add("MB/s", fmt.Sprintf("%.1f", r.MBPerS))
	case "handshake":
		add("handshakes/s", fmt.Sprintf("%.0f", r.HandshakesS))
	case "idle":
		if r.SSE {
			add("kind", "event streams")
		}
		add("held", strconv.Itoa(r.Held))
		add("alive", strconv.Itoa(r.Alive))
		add("ramp conns/s", fmt.Sprintf("%.0f", r.RampPerS))
		if r.RSSPerConn > 0 {
			add("server procs", strconv.Itoa(r.ServerProcs))
			add("server RSS MiB", fmt.Sprintf("%.1f", float64(r.ServerRSSAfter)/1024))
			add("server RSS/conn (B)", fmt.Sprintf("%.0f", r.RSSPerConn))
			add("after hold MiB", fmt.Sprintf("%.1f", float64(r.ServerRSSHeld)/1024))
			add("after hold RSS/conn (B)", fmt.Sprintf("%.0f", r.RSSPerConnHeld))
			add("private (RssAnon)/conn (B)", fmt.Sprintf("%.0f after ramp, %.0f after hold", r.AnonPerConn, r.AnonPerConnHeld))
			add("server idle CPU %", fmt.Sprintf("%.2f", r.IdleCPUPercent))
		}
		if k := r.Sockstat; k != nil {
			add("kernel TCP sockets", strconv.FormatInt(k.InUse, 10))
			add("kernel sock buf MiB", fmt.Sprintf("%.1f", float64(k.MemKB)/1024))
			add("kernel slab Δ MiB", fmt.Sprintf("%.1f", float64(r.SlabDeltaKB)/1024))
		}
		add("check s", fmt.Sprintf("%.1f", r.CheckS))
		if r.Dropped > 0 || r.Redials > 0 {
			add("dropped", fmt.Sprintf("%d %v", r.Dropped, r.DropCodes))
			add("redialled", strconv.FormatInt(r.Redials, 10))
			add("redial failures", strconv.FormatInt(r.RedialFails, 10))
			if r.Redials > 0 {
				add("last back after last drop s", fmt.Sprintf("%.2f", r.LastBackAfterDropS))
				add("longest redial s", fmt.Sprintf("%.2f", r.RedialMaxS))
				add("redials over 1 s", strconv.FormatInt(r.RedialSlow, 10))
			}
		}
	}
	if r.Mode != "idle" {
		add("p50 µs", fmt.Sprintf("%.0f", r.P50us))
		add("p90 µs", fmt.Sprintf("%.0f", r.P90us))
		add("p99 µs", fmt.Sprintf("%.0f", r.P99us))
		add("max µs", fmt.Sprintf("%.0f", r.MaxUs))
	}
	if r.Compression != nil {
		add("compressed conns", strconv.Itoa(*r.Compression))
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

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostCPU returns the busy and total jiffies of all CPUs from /proc/stat.
func hostCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// procRSS returns VmRSS of process pid in KiB (0 when unknown).
func procRSS(pid int) int64 { return procStatus(pid)["VmRSS:"] }

// procStatus returns the kB fields of /proc/<pid>/status by their names
// with the colon ("VmRSS:"); nil when unknown.
func procStatus(pid int) map[string]int64 {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	m := make(map[string]int64)
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, "\t")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64); err == nil {
			m[name] = n
		}
	}
	return m
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

// measure lets the running load warm up, then opens the measured window:
// reset runs, phase goes to 1 (the load counts into n), and after
// c.duration phase goes to 2 (the load stops). It returns the window's
// length in seconds and the snapshots taken at its edges.
func measure(stderr io.Writer, c *common, warmup time.Duration, phase *atomic.Int32, n *atomic.Uint64, unit string, reset func()) (float64, snapshot, snapshot) {
	var start atomic.Int64 // of the window, in UnixNano
	stopProgress := progress(stderr, func() string {
		t0 := start.Load()
		if t0 == 0 {
			return "warming up"
		}
		d := time.Since(time.Unix(0, t0))
		return fmt.Sprintf("%d %s, %.0f/s, %v of %v", n.Load(), unit, float64(n.Load())/d.Seconds(), d.Round(time.Second), c.duration)
	})
	time.Sleep(warmup)
	s0 := takeSnapshot(c.pid)
	reset()
	phase.Store(1)
	start.Store(time.Now().UnixNano())
	time.Sleep(c.duration)
	phase.Store(2)
	elapsed := time.Since(time.Unix(0, start.Load())).Seconds()
	s1 := takeSnapshot(c.pid)
	stopProgress()
	return elapsed, s0, s1
}

// closeClient closes the load generator's connections, waiting up to 5 s.
func closeClient(cl *engine.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.Close(ctx)
}
