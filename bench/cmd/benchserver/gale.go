package main

import (
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
	"github.com/galews/gale/natsbroker"
)

// galeEcho is the echo handler of cmd/gale serve: write from the callback,
// where the payload is still valid.
type galeEcho struct{ engine.BaseHandler }

func (galeEcho) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(op, p)
}

// galeBroadcast sends every message it receives to every connection: the
// frame is encoded once (PreparedMessage) and each loop writes it to its
// own connections (Server.Broadcast).
type galeBroadcast struct {
	engine.BaseHandler
	srv *engine.Server
}

func (b *galeBroadcast) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	if pm, err := engine.NewPreparedMessage(op, p); err == nil {
		b.srv.Broadcast(pm)
	}
}

// galeTopics publishes every message to the topic the connection's path
// names, which it subscribed to on opening: Server.Publish, the engine's
// topics (and, with a broker, every node's subscribers).
type galeTopics struct {
	engine.BaseHandler
	srv *engine.Server
}

func (galeTopics) OnOpen(c *engine.Conn) { c.Subscribe(c.UserData().(string)) }

func (t *galeTopics) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	t.srv.Publish(c.UserData().(string), op, p)
}

func startGale(addr string, o serverOptions) (net.Addr, error) {
	srv, err := newGale(o)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(addr); err != nil {
		return nil, err
	}
	return srv.Addr(), nil
}

// startGaleHTTP serves the same Gale server mounted on net/http at /ws
// (the driver's URL for this server), beside another route: an
// http.Server with a ServeMux, as an application that adds WebSocket to
// its HTTP server would. Gale's loops start with the first upgrade.
func startGaleHTTP(addr string, o serverOptions) (net.Addr, error) {
	srv, err := newGale(o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("/ws", srv)
	go http.Serve(ln, mux)
	return ln.Addr(), nil
}

func newGale(o serverOptions) (*engine.Server, error) {
	cfg := engine.Config{
		MaxMessageSize: maxMessage,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if o.tlsCert != "" {
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	if o.compress {
		cfg.Compression = engine.CompressionConfig{Enabled: true}
	}
	var h engine.Handler = galeEcho{}
	bh := &galeBroadcast{}
	th := &galeTopics{}
	switch {
	case o.topics:
		h = th
		cfg.OnUpgrade = func(r *engine.UpgradeRequest) error {
			r.UserData = string(r.Path)
			return nil
		}
		if o.nats != "" {
			b, err := natsbroker.Connect(o.nats, natsbroker.Options{Logger: cfg.Logger})
			if err != nil {
				return nil, err
			}
			cfg.Broker = b
		}
	case o.broadcast:
		h = bh
	}
	srv, err := engine.NewServer(h, cfg)
	if err != nil {
		return nil, err
	}
	bh.srv, th.srv = srv, srv
	return srv, nil
}
