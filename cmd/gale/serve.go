package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// echoHandler echoes every text and binary message with its opcode, and
// closes a connection after maxMessages echoes when that is positive, as
// public echo servers that cap a session do. With event streams on (-sse),
// each stream is greeted with a "hello" event and subscribed to echoTopic,
// and while any stream is open the text messages echoed are published
// there too.
type echoHandler struct {
	engine.BaseHandler
	maxMessages int
	streams     atomic.Int64 // open event streams: the echo path pays one load without them
}

// echoTopic is where -sse streams receive the text messages echoed.
const echoTopic = "echo"

type echoState struct{ echoed int }

func (h *echoHandler) OnOpen(c *engine.Conn) {
	if c.IsEventStream() {
		h.streams.Add(1)
		c.WriteEvent(engine.Event{Event: "hello", Data: []byte("gale event stream: text messages echoed to WebSocket clients follow")})
		c.Subscribe(echoTopic)
		return
	}
	if h.maxMessages > 0 {
		c.SetUserData(&echoState{})
	}
}

func (h *echoHandler) OnClose(c *engine.Conn, _ error) {
	if c.IsEventStream() {
		h.streams.Add(-1)
	}
}

func (h *echoHandler) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(op, p)
	if op == codec.OpText && h.streams.Load() > 0 {
		c.Server().Publish(echoTopic, op, p)
	}
	if h.maxMessages > 0 {
		st := c.UserData().(*echoState)
		st.echoed++
		if st.echoed >= h.maxMessages {
			c.Close(codec.StatusPolicyViolation, "message limit reached")
		}
	}
}

const serveHelp = `Runs an echo server: every text and binary message is sent back with its
opcode. A plain GET of / returns a test page that exchanges messages with it.
With -sse PATH, a GET of PATH with Accept: text/event-stream is a Server-Sent
Events stream: a "hello" event, then every text message the server echoes to a
WebSocket client, and a heartbeat comment every -ping.
Sizes are bytes (1048576) or a number with KiB, MiB or GiB (4MiB).
With -procs N, this process supervises N worker processes serving the address
together (SO_REUSEPORT): a worker that dies is restarted (backoff 100ms doubling
to 10s), SIGINT or SIGTERM shut every worker down (1001 to each connection),
SIGHUP starts a new set of workers and drains the old ones (1012 to each
connection, spread over -drain), SIGUSR1 logs the counters summed over the
workers (also logged every -stats). Each worker raises its open-files limit to
the hard limit.
With -topics it is a publish/subscribe server instead: the request path names
the topic (ws://HOST:PORT/news subscribes to "news"; with -path /topics,
ws://HOST:PORT/topics/news does; the path is unescaped, so /a%20b is "a b"),
and every message a connection sends is published to its topic: every
subscriber receives it, the sender included. With -nats nats://HOST:PORT the
server joins the other servers on that NATS cluster: a message published on
any of them reaches the subscribers of all, at most once each (see natsbroker);
while NATS is unreachable local delivery goes on and the server reconnects.
Exit status: 0 after SIGINT or SIGTERM and a clean shutdown, 1 when the
server fails, 2 on bad flags.
`

func serve(args []string, stdout, stderr io.Writer) int {
	sf, code := parseServe(args, stdout, stderr)
	if sf == nil {
		return code
	}
	if os.Getenv(workerEnv) != "" {
		return serveWorker(sf, stderr)
	}
	if sf.procs > 0 {
		return superviseServe(sf, args, stdout, stderr)
	}
	srv, err := sf.server(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gale serve:", err)
		return 2
	}
	if sf.pprof != "" {
		if _, err := startPprof(sf.pprof, stderr); err != nil {
			fmt.Fprintln(stderr, "gale serve:", err)
			return 1
		}
	}
	if err := srv.Start(sf.addr); err != nil {
		fmt.Fprintln(stderr, "gale serve:", err)
		return 1
	}
	sf.limitMemory()
	what := "echo server"
	if sf.topics {
		what = "pub/sub server"
	}
	fmt.Fprintf(stdout, "gale: %s listening on %s\n", what, srv.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(stderr, "gale serve: shutdown:", err)
		return 1
	}
	return 0
}

// limitMemory sets the Go memory limit from the memory budget.
func (sf *serveFlags) limitMemory() {
	if b := sf.cfg.MemoryBudget; b > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The budget bounds what the engine holds; this keeps the collector
		// from letting garbage double the heap on top of it. GOMEMLIMIT,
		// when set, is the operator's choice.
		debug.SetMemoryLimit(b + 64<<20)
	}
}

// serveFlags is what gale serve's flags ask for.
type serveFlags struct {
	addr    string
	path    string // "" for any path, else starting with "/"
	ssePath string // event streams on this path; "" for none
	maxEcho int
	cfg     engine.Config
	topics  bool   // a pub/sub server: the path names the topic
	nats    string // with topics: the NATS URL to join other servers by

	procs      int           // worker processes (0: serve in this process)
	drain      time.Duration // a reloaded worker's 1012 closes are spread over this
	statsEvery time.Duration // how often the supervisor logs the summed counters
	pprof      string        // address for the runtime's profiles, "" for none
}

// Defaults of gale serve's production limits.
const (
	servePing         = 30 * time.Second
	serveIdleTimeout  = 60 * time.Second
	serveMemoryBudget = 256 << 20
)

// parseServe parses and checks gale serve's flags; when it returns nil the
// command ends with the status it returns (0 after -h).
func parseServe(args []string, stdout, stderr io.Writer) (*serveFlags, int) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sf := &serveFlags{}
	fs.StringVar(&sf.addr, "addr", "127.0.0.1:8080", "listen address: host:port, or unix:///path")
	path := fs.String("path", "", "accept WebSocket upgrades only on this path; a missing leading / is added (\"ws\" is \"/ws\") (default: any path)")
	ssePath := fs.String("sse", "", "serve Server-Sent Events streams on this path (GET with Accept: text/event-stream), heartbeats every -ping (default: none)")
	maxMsg := byteSize(0)
	fs.Var(&maxMsg, "max-message", "largest message, in `bytes` (0: the engine's default, 16MiB); larger ones are closed with 1009")
	maxOut := byteSize(engine.DefaultMaxOutbound)
	fs.Var(&maxOut, "max-outbound", "`bytes` buffered per connection for a peer that reads slower than it is sent to; past it the connection is closed")
	budget := byteSize(serveMemoryBudget)
	fs.Var(&budget, "memory-budget", "`bytes` held for all connections together in outbound backlogs and message reassembly (0: no budget)")
	fs.DurationVar(&sf.cfg.PingInterval, "ping", servePing, "ping a connection that has been sent nothing for this long (0: no pings)")
	fs.DurationVar(&sf.cfg.IdleTimeout, "idle-timeout", serveIdleTimeout, "close a connection from which nothing arrived for this long; longer than -ping (0: never, which needs -ping 0)")
	fs.BoolVar(&sf.topics, "topics", false, "a publish/subscribe server: the path names the topic, each message is published to it (see above)")
	fs.StringVar(&sf.nats, "nats", "", "with -topics: join the servers on this NATS `URL` (nats://HOST:PORT, comma-separated for a cluster)")
	fs.IntVar(&sf.maxEcho, "max-echo", 0, "close each connection with 1008 after this many echoes (0: no limit)")
	origins := fs.String("origins", "", "comma-separated allowed Origin values, \"*\" for any (default: same host)")
	fs.IntVar(&sf.cfg.Loops, "loops", 0, "event loops (0: one per CPU)")
	fs.IntVar(&sf.procs, "procs", 0, "run this many worker processes on the address (SO_REUSEPORT), supervised by this one: restarted when they die, SIGHUP reloads them (0: serve in this process)")
	fs.DurationVar(&sf.drain, "drain", 10*time.Second, "with -procs, on SIGHUP: the old workers' connections are closed with 1012 spread over this period")
	fs.DurationVar(&sf.statsEvery, "stats", 10*time.Second, "with -procs: log the counters summed over the workers this often (0: only at exit and on SIGUSR1)")
	fs.BoolVar(&sf.cfg.ReusePort, "reuseport", false, "listen with SO_REUSEPORT, so that other processes can serve the same address")
	compress := fs.Bool("compress", false, "accept permessage-deflate (RFC 7692), without context takeover")
	certFile := fs.String("tls-cert", "", "serve wss:// (and the test page over https): the certificate chain, a PEM `file` (with -tls-key)")
	keyFile := fs.String("tls-key", "", "the private key of -tls-cert, a PEM `file`")
	fs.StringVar(&sf.pprof, "pprof", "", "serve the runtime's profiles (/debug/pprof/) on this `address`, e.g. 127.0.0.1:6060 (not with -procs: profile one worker by running it alone) (default: none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gale serve [flags]\n\n%s\nflags:\n", serveHelp)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, false, stdout, stderr); done {
		return nil, code
	}
	cfg := &sf.cfg
	switch {
	case sf.addr == "":
		return nil, flagError(stderr, fs, "-addr is empty")
	case cfg.Loops < 0:
		return nil, flagError(stderr, fs, "-loops %d is negative", cfg.Loops)
	case sf.procs < 0:
		return nil, flagError(stderr, fs, "-procs %d is negative", sf.procs)
	case sf.procs > 0 && strings.HasPrefix(sf.addr, "unix://"):
		return nil, flagError(stderr, fs, "-procs needs a TCP address, not %s", sf.addr)
	case sf.procs > 0 && sf.pprof != "":
		return nil, flagError(stderr, fs, "-pprof serves one process's profiles; it does not go with -procs")
	case sf.drain < 0:
		return nil, flagError(stderr, fs, "-drain %v is negative", sf.drain)
	case sf.statsEvery < 0:
		return nil, flagError(stderr, fs, "-stats %v is negative", sf.statsEvery)
	case sf.nats != "" && !sf.topics:
		return nil, flagError(stderr, fs, "-nats needs -topics")
	case sf.topics && sf.maxEcho > 0:
		return nil, flagError(stderr, fs, "-max-echo is for the echo server, not -topics")
	case sf.topics && sf.procs > 0 && sf.nats == "":
		return nil, flagError(stderr, fs, "-topics with -procs needs -nats: each worker has its own subscribers, and only NATS joins them")
	case sf.maxEcho < 0:
		return nil, flagError(stderr, fs, "-max-echo %d is negative", sf.maxEcho)
	case maxOut <= 0:
		return nil, flagError(stderr, fs, "-max-outbound must be positive (a connection always has a cap)")
	case int64(maxOut) > math.MaxInt:
		return nil, flagError(stderr, fs, "-max-outbound %s is too large", &maxOut)
	case cfg.PingInterval < 0:
		return nil, flagError(stderr, fs, "-ping %v is negative (0 disables pings)", cfg.PingInterval)
	case cfg.IdleTimeout < 0:
		return nil, flagError(stderr, fs, "-idle-timeout %v is negative (0 disables it, with -ping 0)", cfg.IdleTimeout)
	case cfg.IdleTimeout == 0 && cfg.PingInterval > 0:
		return nil, flagError(stderr, fs, "-idle-timeout 0 needs -ping 0: with pings on, connections are closed after twice -ping of silence")
	case cfg.IdleTimeout > 0 && cfg.IdleTimeout <= cfg.PingInterval:
		return nil, flagError(stderr, fs, "-idle-timeout %v must be longer than -ping %v, or a quiet peer is closed before it is pinged", cfg.IdleTimeout, cfg.PingInterval)
	}
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{{"-path", *path, &sf.path}, {"-sse", *ssePath, &sf.ssePath}} {
		if f.in == "" {
			continue
		}
		p := f.in
		if i := strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '?' || r == '#' }); i >= 0 {
			return nil, flagError(stderr, fs, "%s %q: a path has no spaces, control characters, query (?) or fragment (#)", f.name, p)
		}
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		*f.out = p
	}
	cfg.MaxMessageSize = int64(maxMsg)
	cfg.MaxOutbound = int(maxOut)
	cfg.MemoryBudget = int64(budget)
	if budget == 0 {
		cfg.MemoryBudget = -1 // no budget
	}
	cfg.Compression.Enabled = *compress
	if (*certFile == "") != (*keyFile == "") {
		return nil, flagError(stderr, fs, "-tls-cert and -tls-key go together")
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return nil, flagError(stderr, fs, "-tls-cert %s, -tls-key %s: %v", *certFile, *keyFile, err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if *origins != "" {
		cfg.AllowedOrigins = strings.Split(*origins, ",")
	}
	return sf, 0
}

// server builds the echo server the flags describe.
func (sf *serveFlags) server(logs io.Writer) (*engine.Server, error) {
	cfg := sf.cfg
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if sf.topics {
		return sf.topicsServer(cfg, cfg.Logger)
	}
	if sf.path != "" {
		want := sf.path
		cfg.OnUpgrade = func(r *engine.UpgradeRequest) error {
			if string(r.Path) != want {
				return &engine.Reject{Status: http.StatusNotFound, Body: "no WebSocket endpoint here\n"}
			}
			return nil
		}
	}
	if sf.ssePath != "" {
		want := sf.ssePath
		cfg.OnEventStream = func(r *engine.EventStreamRequest) error {
			if string(r.Path) != want {
				return &engine.Reject{Status: http.StatusNotFound, Body: "no event stream here\n"}
			}
			return nil
		}
	}
	cfg.Fallback = pageHandler(cmp.Or(sf.path, "/"), sf.ssePath)
	return engine.NewServer(&echoHandler{maxMessages: sf.maxEcho}, cfg)
}
