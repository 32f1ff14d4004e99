package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
)

// Server is a WebSocket server running on gnet event loops.
//
// It takes connections two ways, separately or together: from its own
// listener (Start, ListenAndServe), and as an http.Handler mounted on any
// net/http server (ServeHTTP: mux.Handle("/ws", srv)). Both judge an
// upgrade by the same rules and run the upgraded connection the same way,
// on the loops, with no goroutine per connection. A mounted connection is
// hijacked from net/http and its socket handed to a loop; plain TCP and
// unix sockets only, so an https or HTTP/2 net/http server gets a clear
// refusal instead (see ServeHTTP). The loops start with Start, Start("")
// (no listener), or the first ServeHTTP; Shutdown stops both paths.
type Server struct {
	cfg    Config
	tlsCfg *tls.Config // Config.TLS, cloned and completed (serverTLS); nil without
	h      Handler
	pings  PingHandler
	pongs  PongHandler
	frames FrameHandler

	tick time.Duration

	mu    sync.Mutex
	loops []*loop

	acc      atomic.Pointer[acceptor] // nil without a listener
	client   *Client                  // the event-loop client this machinery serves, if it does
	addr     net.Addr
	started  atomic.Bool // Start was called
	live     atomic.Bool // the loops run: gcli is set
	stopping atomic.Bool
	// bootMu orders booting the loops and installing a listener against
	// Shutdown, so neither can slip in behind a drain.
	bootMu sync.Mutex
	gcli   *gnet.Client // the loops; set once, before live
	// handing is read-held by every ServeHTTP hand-over: Shutdown takes it
	// once to wait them out before stopping the loops, which would strand
	// a hand-over waiting for a loop that no longer runs.
	handing sync.RWMutex
	mount   mountState // mount.go
	// closed is set once the acceptor has stopped: a connection it handed
	// over before that is served (and then closed by the drain like the
	// others), not reset on arrival.
	closed atomic.Bool

	booted   chan struct{}
	done     chan struct{}
	serveErr error
	stopTick chan struct{}
	base     time.Time // tick 0 of every loop's wheel
	workers  *workerPool
	halt     func() // stops the gnet loops

	mem               memBudget // limits.go
	pauseAt, resumeAt int       // read backpressure's high- and low-water marks

	bk brokerState // broker.go
}

// NewServer returns a server that calls h, configured by cfg (whose zero
// value works).
func NewServer(h Handler, cfg Config) (*Server, error) {
	if h == nil {
		return nil, errors.New("gale: nil Handler")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		h:        h,
		tick:     cfg.tick(),
		booted:   make(chan struct{}),
		done:     make(chan struct{}),
		stopTick: make(chan struct{}),
		base:     time.Now(),
		mem:      memBudget{limit: cfg.MemoryBudget},
		pauseAt:  cfg.MaxOutbound / 2,
		resumeAt: cfg.MaxOutbound / 8,
		bk:       brokerState{b: cfg.Broker},
	}
	if cfg.TLS != nil {
		if s.tlsCfg, err = serverTLS(cfg.TLS); err != nil {
			return nil, fmt.Errorf("gale: invalid Config: %w", err)
		}
	}
	s.pings, _ = h.(PingHandler)
	s.pongs, _ = h.(PongHandler)
	s.frames, _ = h.(FrameHandler)
	return s, nil
}

// ListenAndServe listens on addr and serves until Shutdown. addr is
// "host:port" or "tcp://host:port" for TCP, "unix:///path" for a unix
// socket, or "" for no listener (the server then takes connections only
// through ServeHTTP). It returns nil after a Shutdown.
func (s *Server) ListenAndServe(addr string) error {
	if err := s.Start(addr); err != nil {
		return err
	}
	<-s.done
	return s.serveErr
}

// Start listens on addr (as in ListenAndServe) and serves in the
// background; it returns once the server accepts connections. Start("")
// starts the event loops without a listener, for a server used only
// through ServeHTTP (which otherwise starts them on its first request).
//
// When the process runs out of file descriptors (or the kernel of socket
// memory), accepting pauses, backing off from 5 ms to 1 s, and resumes
// when connections close: open connections are kept, new ones wait in the
// listen backlog, and the episode is logged once (Stats.AcceptErrors
// counts the failed accepts).
func (s *Server) Start(addr string) error {
	if addr == "" {
		if !s.started.CompareAndSwap(false, true) {
			return errors.New("gale: server already started")
		}
		return s.boot()
	}
	if s.started.Load() {
		return errors.New("gale: server already started")
	}
	ln, err := Listen(addr, s.cfg.ReusePort)
	if err != nil {
		return err
	}
	if err := s.StartListener(ln); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// StartListener serves the connections ln accepts, in the background, as
// Start does for a listener of its own; ln is closed when the server stops
// accepting (Shutdown, Drain). Closing ln closes this process's descriptor
// only: a listening socket inherited from a parent process stays open, with
// the connections queued in it, as long as another process holds it.
func (s *Server) StartListener(ln net.Listener) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("gale: server already started")
	}
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	if err := s.bootLocked(); err != nil {
		return err
	}
	acc := newAcceptor(s, ln, s.gcli)
	s.addr = ln.Addr()
	s.acc.Store(acc) // under bootMu: a Shutdown from now on stops it
	go acc.run()
	return nil
}

// boot starts the event loops once: from Start, the first ServeHTTP or
// NewClient. The loops run without a listener of their own; sockets come
// to them by hand-over (accept.go, mount.go, client.go).
func (s *Server) boot() error {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	return s.bootLocked()
}

func (s *Server) bootLocked() error {
	if s.live.Load() {
		return nil
	}
	if s.stopping.Load() {
		return ErrServerClosed
	}
	// The broker first: a server that cannot join its peers does not start.
	if err := s.startBroker(); err != nil {
		return err
	}
	gcli, err := gnet.NewClient(&events{s: s},
		gnet.WithMulticore(s.cfg.Loops > 1),
		gnet.WithNumEventLoop(s.cfg.Loops),
		gnet.WithReadBufferCap(s.cfg.ReadBufferCap),
		// Every socket reaches the loops through EnrollContext as a
		// net.TCPConn, which Go's accept and dial have already set to
		// TCP_NODELAY; gnet setting it again on the duplicate would be one
		// more system call per connection, and would override a caller who
		// turned it off on purpose (TestNoDelayKept).
		gnet.WithTCPNoDelay(gnet.TCPDelay),
		gnet.WithLogger(gnetLogger{s.cfg.Logger}),
		// Hand-overs come from many goroutines at once (the accept
		// goroutine, Dial callers, every ServeHTTP), and round-robin's
		// next() bumps an unguarded index; least-connections only reads
		// atomic counts. gnet v2.10's Client picks it whatever the option
		// says; the option keeps that true should it start to listen.
		gnet.WithLoadBalancing(gnet.LeastConnections),
	)
	if err != nil {
		s.closeBroker()
		return fmt.Errorf("gale: %w", err)
	}
	if s.cfg.Workers > 0 {
		s.workers = newWorkerPool(s, s.cfg.Workers)
	}
	s.gcli = gcli
	s.halt = func() {
		err := gcli.Stop()
		if err != nil && !errors.Is(err, context.Canceled) {
			s.serveErr = err
		}
		close(s.done)
	}
	if err := gcli.Start(); err != nil {
		// Nothing can be served: the server is as if shut down.
		s.stopping.Store(true)
		s.closeBroker()
		close(s.stopTick)
		if s.workers != nil {
			s.workers.stop()
		}
		s.serveErr = err
		close(s.done)
		return fmt.Errorf("gale: %w", err)
	}
	s.live.Store(true)
	return nil
}

// Addr returns the address the server listens on (with the actual port when
// started on port 0), or nil before Start.
func (s *Server) Addr() net.Addr { return s.addr }

// Shutdown closes the server gracefully: new connections are refused (by
// the listener, and by ServeHTTP with 503), every open connection, mounted
// ones included, is sent Close 1001 and given until ctx is done (or its
// Config.CloseTimeout) to answer, then whatever remains is dropped and the
// loops stop. It returns ctx's error when the deadline cut the drain short.
// A server is not restarted after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(ctx, codec.StatusGoingAway, "server shutting down", 0)
}

// Drain closes the server for a restart: it stops accepting at once, then
// sends Close 1012 (Service Restart) to its open connections spread evenly
// over spread, so that clients reconnecting to a successor arrive as a
// stream rather than all at once, waits for the answers (until ctx is done,
// or Config.CloseTimeout after the last Close) and stops as Shutdown does.
// Handshakes in progress are let finish (or time out), then closed too. It
// returns ctx's error when the deadline cut the drain short.
func (s *Server) Drain(ctx context.Context, spread time.Duration) error {
	return s.stop(ctx, codec.StatusServiceRestart, "service restart", max(spread, 0))
}

// drainStep is how often Drain closes its next share of connections.
const drainStep = 20 * time.Millisecond

func (s *Server) stop(ctx context.Context, code codec.StatusCode, reason string, spread time.Duration) error {
	s.bootMu.Lock()
	first := s.stopping.CompareAndSwap(false, true)
	live := s.live.Load()
	s.bootMu.Unlock()
	if !first {
		<-s.stopTick
		return nil
	}
	if !live {
		close(s.stopTick) // never booted: nothing to drain
		return nil
	}
	<-s.booted // gnet's Start ran OnBoot before the loops went live
	if acc := s.acc.Load(); acc != nil {
		acc.stop() // the listener first: nothing new arrives during the drain
	}
	s.closed.Store(true)
	// Hand-overs from ServeHTTP in flight finish (each loop then holds its
	// connection, which the closers below reach); later ones see stopping.
	s.handing.Lock()
	s.handing.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	// Shutdown drops the handshakes in progress; Drain lets them finish
	// (and then closes them like the rest), since a client whose upgrade
	// is cut short cannot tell a restart from a failure.
	abortHandshakes := code != codec.StatusServiceRestart
	steps := int((spread + drainStep - 1) / drainStep)
	var drainErr error
	if steps > 1 {
		// Each step closes, on every loop, its share of the connections
		// still open: 1/steps of them in the first, all in the last.
		tick := time.NewTicker(spread / time.Duration(steps))
		for left := steps; left > 0 && drainErr == nil; left-- {
			for _, l := range s.loopList() {
				l.el.Execute(context.Background(), &closer{l: l, code: code, reason: reason, left: left, handshakes: abortHandshakes})
			}
			if left == 1 {
				break
			}
			select {
			case <-ctx.Done():
				drainErr = ctx.Err()
			case <-tick.C:
			}
		}
		tick.Stop()
	} else {
		for _, l := range s.loopList() {
			l.el.Execute(context.Background(), &closer{l: l, code: code, reason: reason, left: 1, handshakes: abortHandshakes})
		}
	}
	poll := time.NewTicker(5 * time.Millisecond)
	for i := 1; s.Stats().Open > 0 && drainErr == nil; i++ {
		select {
		case <-ctx.Done():
			drainErr = ctx.Err()
		case <-poll.C:
		}
		if i%10 == 0 {
			// A connection handed over since the last round (or, under
			// Drain, a handshake completed since) is sent its Close too.
			for _, l := range s.loopList() {
				l.el.Execute(context.Background(), &closer{l: l, code: code, reason: reason, left: 1, handshakes: abortHandshakes})
			}
		}
	}
	poll.Stop()
	s.halt()
	s.closeBroker()
	close(s.stopTick)
	if s.workers != nil {
		s.workers.stop()
	}
	return drainErr
}

// closer is the runnable that starts closing a loop's connections: of
// those still open, 1/left (all of them when left is 1). With handshakes,
// those in progress are dropped.
type closer struct {
	l          *loop
	code       codec.StatusCode
	reason     string
	left       int
	handshakes bool
}

func (cl *closer) Run(context.Context) error {
	cl.l.enter()
	quota := -1 // all
	if cl.left > 1 {
		open := 0
		for c := cl.l.conns; c != nil; c = c.lnext {
			if c.state == stateOpen {
				open++
			}
		}
		quota = (open + cl.left - 1) / cl.left
	}
	for c := cl.l.conns; c != nil && quota != 0; {
		next := c.lnext
		switch c.state {
		case stateHandshake:
			if cl.handshakes {
				c.abort(ErrServerClosed)
			}
		case stateOpen:
			c.sendClose(cl.code, cl.reason)
			quota--
		}
		c = next
	}
	return nil
}

func (s *Server) loopFor(el gnet.EventLoop) *loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.loops {
		if l.el == el {
			return l
		}
	}
	l := &loop{srv: s, el: el, iov: make([][]byte, 0, 2)}
	s.loops = append(s.loops, l)
	return l
}

func (s *Server) loopList() []*loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loops[:len(s.loops):len(s.loops)]
}

// ticks converts d to wheel ticks, rounding up.
func (s *Server) ticks(d time.Duration) int64 {
	return int64((d + s.tick - 1) / s.tick)
}

// runTicker advances every busy loop's wheel from one goroutine per server:
// gnet's own OnTick runs outside the loops, so the wheel is driven through
// EventLoop.Execute and stays loop-owned.
// traffic returns the payload bytes moved both ways and the upgrades so
// far, summed over the loops.
func (s *Server) traffic() (moved, upgrades uint64) {
	for _, l := range s.loopList() {
		moved += l.stats.bytesIn.Load() + l.stats.bytesOut.Load()
		upgrades += l.stats.upgrades.Load()
	}
	return moved, upgrades
}

func (s *Server) runTicker() {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-s.stopTick:
			return
		case now := <-t.C:
			moved, upgrades := s.traffic()
			if !s.cfg.KeepFreedMemory {
				s.mem.releaseAfterBurst(now, moved, upgrades)
			}
			tick := int64(now.Sub(s.base) / s.tick)
			for _, l := range s.loopList() {
				if l.stats.open.Load() > 0 {
					l.tickNow.Store(tick)
					l.el.Execute(context.Background(), (*tickRunner)(l))
				}
			}
		}
	}
}

// events adapts Server to gnet.EventHandler without exporting the methods.
type events struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *events) OnBoot(gnet.Engine) gnet.Action {
	go e.s.runTicker()
	close(e.s.booted)
	return gnet.None
}

func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	switch x := gc.Context().(type) {
	case *dialing:
		return s.openClient(gc, x)
	case *mounted:
		return s.openMounted(gc, x)
	case *tlsConn:
		if x.dial != nil {
			return s.openClientTLS(gc, x)
		}
		return s.openTLS(gc, x)
	}
	l := s.loopFor(gc.EventLoop())
	l.enter()
	if s.closed.Load() {
		return nil, gnet.Close
	}
	addrs, raddr := takeAddrs(gc, true)
	c := &Conn{gc: gc, loop: l, addrs: addrs, hs: handshakes.Get().(*handshake)}
	c.hs.raddr = raddr
	gc.SetContext(c)
	s.register(l, c)
	return nil, gnet.None
}

// register links a new connection into its loop and arms its handshake
// deadline. Loop only.
func (s *Server) register(l *loop, c *Conn) {
	if l.conns == nil {
		// runTicker skips loops with no connection, so an empty loop's
		// wheel stands still: catch it up before arming (it holds nothing).
		l.wheel.now = max(l.wheel.now, int64(time.Since(s.base)/s.tick))
	}
	l.link(c)
	l.stats.open.Add(1)
	l.wheel.schedule(c, l.wheel.now+s.ticks(s.cfg.HandshakeTimeout))
}

func (e *events) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.Close
	}
	c.loop.enter()
	c.lastRead = c.loop.stamp()
	return c.process()
}

// process runs the read side over what gnet holds, with the frames the
// handler writes batched into one write, and returns gnet's action: from
// OnTraffic, and when a paused connection resumes. Loop only.
func (c *Conn) process() gnet.Action {
	c.flags |= flagInTraffic
	var act gnet.Action
	t, _ := c.gc.(*tlsConn)
	var eof bool // the peer's close_notify came behind what is being read
	for round := 0; ; round++ {
		if t != nil {
			// Decrypt what arrived; more than tlsFillMax takes more rounds.
			added, err := t.fill()
			if err == io.EOF && t.InboundBuffered() > 0 {
				// A Close frame and the close_notify often arrive
				// together: read the frames first.
				eof, err = true, nil
			}
			if err != nil {
				c.tlsFailed(err)
				break
			}
			if added == 0 && !eof && (round > 0 || t.InboundBuffered() == 0) {
				break
			}
		}
		switch c.state {
		case stateHandshake:
			if c.client {
				act = c.readResponse()
			} else {
				act = c.readHandshake()
			}
		case stateOpen, stateClosing:
			if c.stream {
				act = c.readStream()
			} else {
				act = c.readFrames()
			}
		}
		if eof {
			c.tlsFailed(io.EOF) // the reason stays the Close frame's, if one was read
			break
		}
		if t == nil || act != gnet.None || c.closing() || c.paused != 0 || !t.more {
			break
		}
	}
	if t != nil {
		t.release()
	}
	if !c.closing() {
		c.checkBacklog() // still inside: a drop only asks for the close
	}
	c.flags &^= flagInTraffic
	if t != nil && c.is(flagWantClose) {
		t.closing = true // the close_notify rides with the last frames (tls.go)
	}
	c.flushBatch()
	if c.state == stateClosed {
		// gnet closed the socket under us (a failed write); OnClose was
		// held back until the callback returned.
		c.notifyClose(c.closeErr())
		return gnet.None
	}
	if c.is(flagWantClose) {
		return gnet.Close
	}
	return act
}

// resume reads what a paused connection left in gnet's buffer. Loop only.
func (c *Conn) resume() {
	if c.process() == gnet.Close && c.state != stateClosed {
		c.loop.el.Close(c.socket())
	}
}

func (e *events) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.None
	}
	c.loop.enter()
	if t, ok := c.gc.(*tlsConn); ok && err == nil {
		t.closeNotify()
	}
	c.socketClosed(err)
	return gnet.None
}
