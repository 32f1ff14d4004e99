package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// echoHandler echoes every text and binary message with its opcode, and
// closes a connection after maxMessages echoes when that is positive (the
// seed's echo server allows 16).
type echoHandler struct {
	engine.BaseHandler
	maxMessages int
}

type echoState struct{ echoed int }

func (h *echoHandler) OnOpen(c *engine.Conn) {
	if h.maxMessages > 0 {
		c.SetContext(&echoState{})
	}
}

func (h *echoHandler) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(op, p)
	if h.maxMessages > 0 {
		st := c.Context().(*echoState)
		st.echoed++
		if st.echoed >= h.maxMessages {
			c.Close(codec.StatusPolicyViolation, "message limit reached")
		}
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	srv, addr, code := newEchoServer(args, stderr)
	if srv == nil {
		return code
	}
	if err := srv.Start(addr); err != nil {
		fmt.Fprintln(stderr, "gale serve:", err)
		return 1
	}
	fmt.Fprintf(stdout, "gale: echo server listening on %s\n", srv.Addr())
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

// newEchoServer builds the echo server the flags describe, and returns the
// address to listen on; on a flag error it returns a nil server and the exit
// status.
func newEchoServer(args []string, stderr io.Writer) (*engine.Server, string, int) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address: host:port, or unix:///path")
	path := fs.String("path", "", "accept WebSocket upgrades only on this path (default: any path)")
	maxMsg := fs.Int64("max-message", 0, "largest message in bytes (0: engine default, 16 MiB); larger ones are closed with 1009")
	maxEcho := fs.Int("max-echo", 0, "close each connection after this many echoes (0: no limit; the seed's server allows 16)")
	origins := fs.String("origins", "", "comma-separated allowed Origin values, \"*\" for any (default: same host)")
	loops := fs.Int("loops", 0, "event loops (0: one per CPU)")
	compress := fs.Bool("compress", false, "accept permessage-deflate (RFC 7692), without context takeover")
	if err := fs.Parse(args); err != nil {
		return nil, "", 2
	}
	cfg := engine.Config{
		Loops:          *loops,
		MaxMessageSize: *maxMsg,
		Logger:         slog.New(slog.NewTextHandler(stderr, nil)),
	}
	cfg.Compression.Enabled = *compress
	if *origins != "" {
		cfg.AllowedOrigins = strings.Split(*origins, ",")
	}
	if *path != "" {
		want := *path
		cfg.OnUpgrade = func(r *engine.UpgradeRequest) error {
			if string(r.Path) != want {
				return &engine.Reject{Status: http.StatusNotFound, Body: "no WebSocket endpoint here\n"}
			}
			return nil
		}
	}
	cfg.Fallback = pageHandler(cmp.Or(*path, "/"))
	srv, err := engine.NewServer(&echoHandler{maxMessages: *maxEcho}, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "gale serve:", err)
		return nil, "", 2
	}
	return srv, *addr, 0
}
