package engine

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/galews/gale/codec"
)

// OutboundPolicy says what happens when a write would take a connection's
// outbound buffer (bytes accepted but not yet taken by the kernel) past
// Config.MaxOutbound.
type OutboundPolicy uint8

const (
	// OutboundClose closes the connection (a slow reader): a Close 1008
	// goes behind the backlog, the socket is dropped at CloseTimeout if the
	// peer never reads that far, and OnClose gets ErrSlowReader. The
	// default: a server must not buffer without bound.
	OutboundClose OutboundPolicy = iota
	// OutboundReject refuses the write with ErrOutboundFull and keeps the
	// connection; the caller decides (drop the message, retry later).
	OutboundReject
)

// Config configures a Server. The zero value works: every zero field takes
// the default its comment gives.
type Config struct {
	// Loops is the number of event loops. Default: GOMAXPROCS.
	Loops int
	// ReadBufferCap is the size of each loop's read buffer. Default 64 KiB.
	ReadBufferCap int

	// MaxHeaderBytes caps the upgrade request head (431 past it). Default 8 KiB.
	MaxHeaderBytes int
	// HandshakeTimeout bounds the time from accept to a complete upgrade
	// request, against slowloris peers. Default 10 s.
	HandshakeTimeout time.Duration

	// MaxMessageSize caps a message's payload (reassembled, and inflated
	// when compressed); past it the connection is closed with 1009.
	// Default 16 MiB.
	MaxMessageSize int64
	// MaxFrameSize caps a single frame's payload (1009). Default: MaxMessageSize.
	MaxFrameSize int64

	// PingInterval, when positive, makes the server ping each connection
	// that has sent nothing for that long, and write a heartbeat comment to
	// each event stream that often. Default: no pings.
	PingInterval time.Duration
	// IdleTimeout, when positive, closes a connection from which nothing
	// was received for that long; with pings, a live peer's pongs keep it
	// open and a half-open peer is reaped. Default: 2×PingInterval when
	// PingInterval is set, else none. An event stream's client sends
	// nothing, so it does not apply to streams; on Linux it becomes their
	// TCP_USER_TIMEOUT instead: unacknowledged heartbeats drop the stream.
	IdleTimeout time.Duration
	// CloseTimeout bounds the wait for the peer's Close after ours.
	// Default 5 s.
	CloseTimeout time.Duration

	// MaxOutbound caps a connection's backlog: the bytes written to it that
	// the kernel has not taken yet. It is checked where a message starts,
	// so one message larger than MaxOutbound to a peer that reads is not a
	// backlog and goes; a message that meets a backlog of MaxOutbound
	// follows OutboundPolicy. Past half of it the connection is no longer
	// read until the backlog falls under an eighth (read backpressure).
	// Default 4 MiB.
	MaxOutbound int
	// OutboundPolicy applies when a write would exceed MaxOutbound.
	OutboundPolicy OutboundPolicy
	// MemoryBudget caps the bytes the server holds for all connections
	// together in outbound backlogs and message reassembly (inflation
	// included). Past it, connections with a backlog are not read and new
	// writes to them are refused or close them (OutboundPolicy), and
	// messages waiting for reassembly are held back until memory falls
	// again. Default 256 MiB; negative: no budget.
	MemoryBudget int64
	// KeepFreedMemory leaves the memory a burst freed (a ramp of new
	// connections, a wave of large messages) to the Go runtime, which
	// returns it to the system over minutes. By default, once the server
	// has gone quiet after a burst, it runs a collection and returns what
	// was freed at once (debug.FreeOSMemory, at most every 2 s, counted
	// in Stats.MemoryReleases), so an idle-heavy server's RSS follows
	// what its connections hold rather than its peak: about a third less
	// per idle TLS connection after a ramp. Each release costs one
	// collection (about 0.3 s of CPU over a 250 MB heap). Set it when the
	// process's heap is mostly someone else's, or when steady CPU matters
	// more than RSS.
	KeepFreedMemory bool

	// Subprotocols the server speaks; the first one the client offers (in
	// the client's order) is selected. OnUpgrade may change the choice.
	Subprotocols []string
	// AllowedOrigins lists the Origin values accepted, exactly as browsers
	// send them ("https://example.com"); "*" accepts any. When empty and
	// CheckOrigin is nil, the same-host policy applies: no Origin, or an
	// Origin whose host equals the Host header.
	AllowedOrigins []string
	// CheckOrigin, when set, decides the origin policy instead. It runs
	// where OnUpgrade does.
	CheckOrigin func(r *UpgradeRequest) bool
	// OnUpgrade, when set, sees each valid upgrade request before the 101 is
	// sent. It may set r.Subprotocol, r.ResponseHeader and r.UserData, and refuse the
	// upgrade by returning an error: a *Reject chooses the status, headers
	// and body; any other error answers 403. It runs on the event loop for
	// Gale's own listener, so it must not block; for a request through
	// Server.ServeHTTP it runs on net/http's goroutine for the request.
	OnUpgrade func(r *UpgradeRequest) error
	// OnEventStream, when set, serves Server-Sent Events: a GET that is not
	// an upgrade and whose Accept lists text/event-stream is offered to it,
	// and unless it refuses (an error, as for OnUpgrade: a *Reject chooses
	// the response, any other error answers 403) the request becomes an
	// event stream: a Conn for which IsEventStream reports true, opened
	// with Handler.OnOpen, written with WriteEvent, subscribed to topics
	// like any connection, ended by Close or the client going away
	// (Handler.OnClose). It runs on the event loop, so it must not block.
	// When nil such requests go to Fallback like any plain request. The
	// origin policy does not apply: a browser lets a page read a
	// cross-origin stream only if the response allows it (CORS headers the
	// hook may add to r.ResponseHeader). Streams are served on the
	// server's own listener, not through ServeHTTP.
	OnEventStream func(r *EventStreamRequest) error
	// KeepRequest keeps the upgrade request's path and query on each
	// connection (Conn.Request), with the header fields named in
	// KeepHeaders, for handlers that route or authorise by them after the
	// upgrade. Off by default: what is kept costs every connection memory
	// for as long as it lives (the strings and a RequestInfo, about 100
	// bytes for a short path). Listing KeepHeaders implies KeepRequest.
	KeepRequest bool
	KeepHeaders []string

	// Fallback, when set, answers plain HTTP requests (no upgrade), e.g. a
	// health check or a test page; otherwise they get 426 Upgrade Required.
	// It runs on the event loop; the request body is not read, and the
	// connection is closed after the response. A plain request that reaches
	// Server.ServeHTTP goes to it as well, with net/http's own request and
	// ResponseWriter, on net/http's goroutine.
	Fallback http.Handler

	// Compression configures permessage-deflate (RFC 7692). The zero value
	// leaves it off.
	Compression CompressionConfig

	// TLS, when set, makes the server's listener speak TLS (wss://, and
	// https for Fallback), with crypto/tls. Certificates, GetCertificate
	// (SNI), session resumption and the other fields work as for any
	// crypto/tls server; NextProtos defaults to http/1.1 and may not offer
	// h2. The config is cloned: later changes to it do not apply.
	//
	// The handshake runs on a goroutine (at most TLSHandshakeWorkers at
	// once) under HandshakeTimeout, which then applies again to the
	// upgrade request; once established, the connection's records are
	// decrypted and encrypted on its event loop, and an idle connection
	// has no goroutine and no timer. A handshake that fails or stalls is
	// closed with one log line (Stats.TLSHandshakeErrors); a plain HTTP
	// request is answered 400 and closed. Connections that reach the
	// server through ServeHTTP are not affected: net/http terminates
	// their TLS, and they cannot be handed over (see ServeHTTP).
	TLS *tls.Config
	// TLSHandshakeWorkers caps the TLS handshakes in progress at once;
	// when all are taken, accepting waits and new connections queue in
	// the listen backlog. A handshake mostly waits for its peer (a round
	// trip or two; a stalled one holds its slot up to HandshakeTimeout),
	// costing a parked goroutine and crypto/tls's state, tens of KiB, so
	// the cap is far above the cores that do the cryptography: it bounds
	// memory under a flood of connections. Default 256 × GOMAXPROCS.
	TLSHandshakeWorkers int

	// Workers, when positive, runs OnMessage, OnFrame, OnPing and OnPong on
	// a pool of that many goroutines instead of the event loop, keeping
	// each connection's order, for handlers that block.
	Workers int
	// WorkerQueue caps the events queued per connection for the workers;
	// past it the connection is closed with 1013 (try again later).
	// Default 1024.
	WorkerQueue int

	// ReusePort listens with SO_REUSEPORT, so that several processes, or
	// several Servers in one process, can listen on the same address and
	// the kernel spreads new connections over them (by a hash of the
	// connection's addresses). Every listener on the port must set it.
	// A process's open-files limit caps the connections it can hold; this
	// is how one port serves more connections than one process may open.
	ReusePort bool

	// Broker, when set, carries topics between servers: Publish reaches
	// the subscribers of every server sharing the broker, at most once
	// each, and local delivery goes on when the broker cannot (see
	// Broker). The server starts it with its loops and closes it on
	// Shutdown. Server only.
	Broker Broker

	// Logger receives handler panics and other events worth a line,
	// among them accepting pausing at the descriptor limit (one warning per
	// episode, not per failed accept: the server backs off from 5 ms to
	// 1 s, keeps every open connection and resumes as descriptors free
	// up). Default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultReadBufferCap    = 64 << 10
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxMessageSize   = 16 << 20
	DefaultCloseTimeout     = 5 * time.Second
	DefaultMaxOutbound      = 4 << 20
	DefaultMemoryBudget     = 256 << 20
	DefaultWorkerQueue      = 1024

	DefaultCompressionLevel     = 1   // flate.BestSpeed
	DefaultCompressionThreshold = 128 // bytes
)

// CompressionConfig configures permessage-deflate (RFC 7692): what the server
// accepts of a client's offers, what the clients offer (the event-loop
// Client in its Config, the blocking Dial in DialOptions), and how messages
// are compressed. Its zero value leaves compression off.
type CompressionConfig struct {
	// Enabled accepts (server) or offers (client) permessage-deflate.
	Enabled bool
	// Level is the flate level, 1 (fastest, the default) to 9 (smallest),
	// for messages compressed with a 32 KiB window; under a smaller
	// negotiated window it does not apply (see MaxWindowBits).
	Level int
	// Threshold is the size below which a message is sent uncompressed:
	// small messages gain little and cost a compressor. Default 128 bytes;
	// 1 compresses every non-empty message. Messages sent with
	// Conn.WriteMessageUncompressed, or as frames with Conn.WriteFrame or
	// ClientConn.WriteFrame, are never compressed.
	Threshold int
	// ContextTakeover lets each side keep its LZ77 window from one message
	// to the next, which compresses a stream of similar messages better but
	// costs each connection, for as long as it lives, the window of each
	// direction: the last 2^bits bytes sent and received (see
	// MaxWindowBits), kept as dictionaries, so up to 32 KiB each way. The
	// compressor and decompressor themselves are the loop's, never the
	// connection's (a blocking ClientConn borrows them from a pool for
	// each message). Every compressed write also pays to prime a compressor
	// with that dictionary (about 20 µs for a full 32 KiB window, less for
	// smaller ones). Writes from goroutines other than the loop's, and
	// prepared messages, are compressed without the window. When false
	// (the default) the server answers server_no_context_takeover and
	// client_no_context_takeover (the client offers them), so an idle
	// connection holds no compression memory at all. A peer that asks for
	// no context takeover gets it either way.
	ContextTakeover bool
	// MaxWindowBits caps the LZ77 windows of both directions at 2^bits
	// bytes, 8 (256 B) to 15 (32 KiB); 0 sets no cap. Whatever it is, every
	// window a peer asks for, 8 to 15 bits in server_max_window_bits and
	// client_max_window_bits (RFC 7692 §7.1.2), is honoured: messages are
	// compressed so as to refer no further back than the negotiated window
	// of their direction, and inflated with a 32 KiB window, which reads
	// any smaller one.
	//
	// With a cap, a server answers server_max_window_bits and, when the
	// client offered client_max_window_bits, client_max_window_bits of at
	// most MaxWindowBits; a client offers both with that value (a server
	// that cannot honour server_max_window_bits then declines). Without
	// one, a client offers client_max_window_bits without a value, so the
	// server may set the client's window.
	//
	// The window changes what each connection keeps with ContextTakeover,
	// 2^bits bytes per direction (256 B at 8 bits, 4 KiB at 12, 32 KiB at
	// 15), not the compressor a loop holds: about 1 MiB under 15 bits
	// (klauspost/compress's custom-window compressor, which has one speed,
	// about that of level 5, so Level does not apply there) and 0.8 to
	// 1.4 MiB at 15 bits (level 1 to 9). A smaller window compresses less.
	MaxWindowBits int
}

// withDefaults returns c with every zero field defaulted, or an error for a
// value that cannot work.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Loops < 0 || c.ReadBufferCap < 0 || c.MaxHeaderBytes < 0 || c.MaxOutbound < 0 || c.Workers < 0 || c.WorkerQueue < 0 || c.TLSHandshakeWorkers < 0 {
		errs = append(errs, errors.New("negative Loops, ReadBufferCap, MaxHeaderBytes, MaxOutbound, Workers, WorkerQueue or TLSHandshakeWorkers"))
	}
	if c.MaxMessageSize < 0 || c.MaxFrameSize < 0 {
		errs = append(errs, errors.New("negative MaxMessageSize or MaxFrameSize"))
	}
	if c.HandshakeTimeout < 0 || c.PingInterval < 0 || c.IdleTimeout < 0 || c.CloseTimeout < 0 {
		errs = append(errs, errors.New("negative timeout or interval"))
	}
	if err := c.Compression.check(); err != nil {
		errs = append(errs, err)
	}
	if c.OutboundPolicy > OutboundReject {
		errs = append(errs, fmt.Errorf("unknown OutboundPolicy %d", c.OutboundPolicy))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("gale: invalid Config: %w", err)
	}
	if len(c.KeepHeaders) > 0 {
		c.KeepRequest = true
		c.KeepHeaders = slices.Clone(c.KeepHeaders)
		for i, h := range c.KeepHeaders {
			c.KeepHeaders[i] = http.CanonicalHeaderKey(h)
		}
	}
	c.Loops = cmp.Or(c.Loops, runtime.GOMAXPROCS(0))
	c.ReadBufferCap = cmp.Or(c.ReadBufferCap, DefaultReadBufferCap)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, codec.DefaultMaxHeaderBytes)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	c.MaxMessageSize = cmp.Or(c.MaxMessageSize, DefaultMaxMessageSize)
	c.MaxFrameSize = min(cmp.Or(c.MaxFrameSize, c.MaxMessageSize), c.MaxMessageSize)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, 2*c.PingInterval)
	c.CloseTimeout = cmp.Or(c.CloseTimeout, DefaultCloseTimeout)
	c.MaxOutbound = cmp.Or(c.MaxOutbound, DefaultMaxOutbound)
	c.MemoryBudget = cmp.Or(c.MemoryBudget, DefaultMemoryBudget)
	c.WorkerQueue = cmp.Or(c.WorkerQueue, DefaultWorkerQueue)
	c.TLSHandshakeWorkers = cmp.Or(c.TLSHandshakeWorkers, 256*runtime.GOMAXPROCS(0))
	c.Compression = c.Compression.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// check returns an error for a value that cannot work.
func (z CompressionConfig) check() error {
	var errs []error
	if z.Level < 0 || z.Level > 9 || z.Threshold < 0 {
		errs = append(errs, fmt.Errorf("Compression: Level %d not in 1..9 or negative Threshold", z.Level))
	}
	if b := z.MaxWindowBits; b != 0 && (b < 8 || b > 15) {
		errs = append(errs, fmt.Errorf("Compression: MaxWindowBits %d not 0 or in 8..15", b))
	}
	return errors.Join(errs...)
}

// withDefaults returns z with its zero Level and Threshold defaulted.
func (z CompressionConfig) withDefaults() CompressionConfig {
	z.Level = cmp.Or(z.Level, DefaultCompressionLevel)
	z.Threshold = cmp.Or(z.Threshold, DefaultCompressionThreshold)
	return z
}

// serverOnly names the first field set that only a server uses, or "".
func (c *Config) serverOnly() string {
	switch {
	case len(c.Subprotocols) > 0:
		return "Subprotocols"
	case len(c.AllowedOrigins) > 0:
		return "AllowedOrigins"
	case c.CheckOrigin != nil:
		return "CheckOrigin"
	case c.OnUpgrade != nil:
		return "OnUpgrade"
	case c.OnEventStream != nil:
		return "OnEventStream"
	case c.KeepRequest || len(c.KeepHeaders) > 0:
		return "KeepRequest"
	case c.Fallback != nil:
		return "Fallback"
	case c.TLS != nil:
		return "TLS"
	case c.Broker != nil:
		return "Broker"
	}
	return ""
}

// tick returns the timing wheel's resolution: fine enough for the shortest
// configured duration (an eighth of it), never busier than every 5 ms nor
// lazier than every second. Each tick costs one wake-up per busy loop.
func (c *Config) tick() time.Duration {
	d := c.HandshakeTimeout
	for _, x := range []time.Duration{c.PingInterval, c.IdleTimeout, c.CloseTimeout} {
		if x > 0 && x < d {
			d = x
		}
	}
	return min(max(d/8, 5*time.Millisecond), time.Second)
}
