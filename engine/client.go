package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"

	"github.com/panjf2000/gnet/v2"

	"github.com/galews/gale/codec"
)

// Client is the event-loop client: many WebSocket connections on a few gnet
// loops, with the same Handler callbacks and Conn write API as the server
// (Gale's load generator runs on it). Frames it sends are masked with a
// fresh key each. For a single connection in an ordinary program, Dial (a
// blocking client over net.Conn) is simpler.
type Client struct {
	s    *Server // the shared machinery: config, handler, loops, wheel, workers
	gcli *gnet.Client
}

// NewClient starts an event-loop client that calls h, configured by cfg
// (whose zero value works). The Config is the server's: the fields about
// the connection (limits, timeouts, pings, compression, workers, logger)
// apply to every connection the client dials, with MaxHeaderBytes capping
// the server's response head; the fields about answering upgrades
// (Subprotocols, AllowedOrigins, CheckOrigin, OnUpgrade, KeepRequest,
// KeepHeaders, Fallback), and Broker (a client has no topics), do not, and
// setting one is an error rather than a silent no-op. Offer subprotocols
// per dial in DialOptions.
func NewClient(h Handler, cfg Config) (*Client, error) {
	if f := cfg.serverOnly(); f != "" {
		return nil, fmt.Errorf("gale: invalid client Config: %s is a server's and does not apply to a client", f)
	}
	s, err := NewServer(h, cfg)
	if err != nil {
		return nil, err
	}
	s.started.Store(true)
	if err := s.boot(); err != nil {
		return nil, fmt.Errorf("gale: client: %w", err)
	}
	cl := &Client{s: s, gcli: s.gcli}
	s.client = cl
	return cl, nil
}

// dialing is a dial in progress: the request sent and where to report.
type dialing struct {
	req  codec.ClientRequest
	key  [codec.KeyLen]byte
	done chan dialResult // buffered: the loop never blocks on it
}

type dialResult struct {
	conn *Conn
	err  error
}

// Dial connects to rawURL (ws:// or wss://) and returns once the connection is
// upgraded and OnOpen has run, or the upgrade failed (the error says why:
// a *codec.HandshakeError sentinel in its chain), or ctx is done. opts may
// be nil; its NetDial can bind a local address (many source addresses let a
// load generator open more connections than one has ports).
//
// Of opts, the fields for each dial apply as they do to Dial; the limits
// and the compression are the Client's Config's for all its connections,
// so a non-zero MaxMessageSize, MaxHeaderBytes, CloseTimeout or
// Compression that differs from it fails with ErrDialOption. (A
// Compression is compared with its zero Level and Threshold defaulted, as
// the Config's are.)
func (cl *Client) Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	cfg := &cl.s.cfg
	switch {
	case opts.MaxMessageSize != 0 && opts.MaxMessageSize != cfg.MaxMessageSize:
		return nil, fmt.Errorf("%w: MaxMessageSize %d (the Client's Config has %d)", ErrDialOption, opts.MaxMessageSize, cfg.MaxMessageSize)
	case opts.MaxHeaderBytes != 0 && opts.MaxHeaderBytes != cfg.MaxHeaderBytes:
		return nil, fmt.Errorf("%w: MaxHeaderBytes %d (the Client's Config has %d)", ErrDialOption, opts.MaxHeaderBytes, cfg.MaxHeaderBytes)
	case opts.CloseTimeout != 0 && opts.CloseTimeout != cfg.CloseTimeout:
		return nil, fmt.Errorf("%w: CloseTimeout %v (the Client's Config has %v)", ErrDialOption, opts.CloseTimeout, cfg.CloseTimeout)
	case opts.Compression != (CompressionConfig{}) && opts.Compression.withDefaults() != cfg.Compression:
		return nil, fmt.Errorf("%w: Compression %+v (the Client's Config has %+v)", ErrDialOption, opts.Compression, cfg.Compression)
	}
	if opts.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.HandshakeTimeout)
		defer cancel()
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("gale: dial: %w", err)
	}
	secure := u.Scheme == "wss"
	if u.Scheme != "ws" && !secure || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q", ErrBadURL, rawURL)
	}
	hostPort := u.Host
	if u.Port() == "" {
		port := "80"
		if secure {
			port = "443"
		}
		hostPort = net.JoinHostPort(u.Hostname(), port)
	}
	if _, ok := ctx.Deadline(); !ok && secure {
		// The TLS handshake runs on this goroutine and must not wait forever.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cl.s.cfg.HandshakeTimeout)
		defer cancel()
	}
	dial := opts.NetDial
	if dial == nil {
		// No TCP keepalive, as on the server's accepted sockets: the
		// ping/idle timers are the liveness check, and the kernel's probes
		// (every 15 s by Go's default) cost a packet each way per idle
		// connection, which at hundreds of thousands of connections is a
		// steady load on both ends.
		dial = (&net.Dialer{KeepAlive: -1}).DialContext
	}
	nc, err := dial(ctx, "tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("gale: dial %s: %w", hostPort, err)
	}
	uri := u.EscapedPath()
	if u.RawQuery != "" {
		uri += "?" + u.RawQuery
	}
	d := &dialing{
		req: codec.ClientRequest{
			Host:      u.Host,
			URI:       uri,
			Origin:    opts.Origin,
			Protocols: opts.Subprotocols,
			Header:    opts.Header,
		},
		key:  codec.NewKey(),
		done: make(chan dialResult, 1),
	}
	d.req.Extensions = cl.s.cfg.Compression.offerValue()
	var gctx any = d
	if secure {
		// The handshake runs here, on the caller's goroutine; the loop
		// takes the established connection (tls.go).
		t := newTLSConn(nc)
		t.tc = tls.Client(&t.tr, clientTLS(opts.TLSConfig, u.Hostname()))
		if err := t.tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("gale: dial %s: tls: %w", hostPort, err)
		}
		t.tr.nc = nil // gnet's from here on
		t.dial = d
		gctx = t
	}
	compactAddrs(nc)
	gc, err := cl.gcli.EnrollContext(nc, gctx) // closes nc: gnet works on a dup
	if err != nil {
		return nil, fmt.Errorf("gale: dial %s: %w", hostPort, err)
	}
	select {
	case r := <-d.done:
		return r.conn, r.err
	case <-ctx.Done():
		gc.Close()
		return nil, fmt.Errorf("gale: dial %s: %w", hostPort, ctx.Err())
	}
}

// Stats returns the client's counters.
func (cl *Client) Stats() Stats { return cl.s.Stats() }

// Close closes every connection with 1001 (waiting for the answers until ctx
// is done) and stops the loops.
func (cl *Client) Close(ctx context.Context) error { return cl.s.Shutdown(ctx) }

// openClient sets up a dialled connection and returns the upgrade request
// for gnet to write. Loop only.
func (s *Server) openClient(gc gnet.Conn, d *dialing) ([]byte, gnet.Action) {
	c := s.newClientConn(gc, d)
	if c == nil {
		return nil, gnet.Close
	}
	return codec.AppendClientRequest(nil, &d.req, d.key[:]), gnet.None
}

// openClientTLS is openClient for a wss:// dial whose TLS handshake is
// done: the request goes out encrypted. Loop only.
func (s *Server) openClientTLS(gc gnet.Conn, t *tlsConn) ([]byte, gnet.Action) {
	d := t.dial
	t.dial = nil
	c := s.newClientConn(gc, d)
	if c == nil {
		return nil, gnet.Close
	}
	t.attach(gc, c)
	l := c.loop
	l.out = codec.AppendClientRequest(l.out[:0], &d.req, d.key[:])
	if _, err := t.tc.Write(l.out); err != nil {
		l.tlsOut = l.tlsOut[:0]
		c.setCloseErr(fmt.Errorf("gale: dial: tls: %w", err))
		return nil, gnet.Close
	}
	// gnet writes (or buffers) what OnOpen returns before the loop moves
	// on, so the loop's buffer can be handed over as it is.
	out := l.tlsOut
	l.tlsOut = out[:0]
	return out, gnet.None
}

// newClientConn creates the Conn of a dialled connection, or returns nil
// (the dial told) when the client is closing. Loop only.
func (s *Server) newClientConn(gc gnet.Conn, d *dialing) *Conn {
	l := s.loopFor(gc.EventLoop())
	l.enter()
	if s.stopping.Load() {
		d.done <- dialResult{err: ErrServerClosed}
		return nil
	}
	// EnrollContext put d (or its tlsConn) in gnet's safe context too,
	// which would keep the dial's request for the connection's life;
	// trimGnetConn clears it. A client's local ports differ, so its local
	// address is not shared.
	addrs, raddr := takeAddrs(gc, false)
	c := &Conn{gc: gc, loop: l, client: true, addrs: addrs, hs: handshakes.Get().(*handshake)}
	c.hs.raddr = raddr
	c.hs.dial = d
	gc.SetContext(c)
	s.register(l, c)
	return c
}

// clientTLS returns the TLS configuration of a wss:// dial: cfg cloned,
// ServerName defaulting to the URL's host, ALPN http/1.1 unless cfg names
// its protocols.
func clientTLS(cfg *tls.Config, host string) *tls.Config {
	cfg = cfg.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return cfg
}

// readResponse parses the server's answer to the upgrade request as it
// arrives and validates it. Loop only.
func (c *Conn) readResponse() gnet.Action {
	srv := c.loop.srv
	p := c.peek(min(c.inbound(), srv.cfg.MaxHeaderBytes+1))
	resp := &c.hs.resp
	n, err := resp.Parse(p, srv.cfg.MaxHeaderBytes)
	if err == codec.ErrNeedMore {
		return gnet.None
	}
	d := c.hs.dial
	if err == nil {
		err = resp.Validate(d.key[:], &d.req)
	}
	if err == nil {
		err = c.acceptDeflate(resp) // deflate.go
	}
	if err != nil {
		c.setCloseErr(fmt.Errorf("gale: handshake: %w", err))
		return gnet.Close // OnClose reports the error to Dial
	}
	if len(resp.Protocol) > 0 {
		c.extra().subprotocol = string(resp.Protocol)
	}
	c.skip(n)
	c.open()
	d.done <- dialResult{conn: c}
	if c.closing() {
		return gnet.Close
	}
	return c.readFrames()
}

// dialFailed reports a connection that closed before its upgrade completed.
func (c *Conn) dialFailed(err error) {
	if c.hs == nil || c.hs.dial == nil {
		return
	}
	if ce := c.closeErr(); ce != nil {
		err = ce
	} else if err == nil {
		err = ErrServerClosed
	} else {
		err = fmt.Errorf("gale: handshake: connection closed: %w", err)
	}
	c.hs.dial.done <- dialResult{err: err}
	c.hs.dial = nil
}
