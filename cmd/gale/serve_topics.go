package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
	"github.com/galews/gale/natsbroker"
)

// topicsHandler is gale serve -topics: the request path names the topic a
// connection subscribes to, and every message it sends is published to
// that topic, itself included.
type topicsHandler struct {
	engine.BaseHandler
	srv *engine.Server
}

func (h *topicsHandler) OnOpen(c *engine.Conn) {
	if err := c.Subscribe(c.UserData().(string)); err != nil {
		c.Close(codec.StatusInternalError, "cannot subscribe")
	}
}

func (h *topicsHandler) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	// A broker error (NATS unreachable, its buffer full) leaves the local
	// delivery done: the client is not told, as other nodes may not be.
	h.srv.Publish(c.UserData().(string), op, p)
}

// topicOf returns the topic a request path names under prefix ("/" or
// -path): the rest of the path, unescaped ("/news" is "news", "/a%20b"
// "a b", "/" the empty topic), and whether the path is under prefix at all.
func topicOf(prefix, rawPath string) (string, bool) {
	rest, ok := strings.CutPrefix(rawPath, prefix)
	if !ok {
		return "", false
	}
	if prefix != "/" {
		if rest != "" && rest[0] != '/' {
			return "", false // "/topicsX" is not under "/topics"
		}
		rest = strings.TrimPrefix(rest, "/")
	}
	topic, err := url.PathUnescape(rest)
	return topic, err == nil
}

// topicsServer builds the pub/sub server the flags describe.
func (sf *serveFlags) topicsServer(cfg engine.Config, log *slog.Logger) (*engine.Server, error) {
	prefix := sf.path
	if prefix == "" {
		prefix = "/"
	}
	cfg.OnUpgrade = func(r *engine.UpgradeRequest) error {
		topic, ok := topicOf(prefix, string(r.Path))
		if !ok {
			return &engine.Reject{Status: http.StatusNotFound, Body: "no topic here: ws://HOST" + strings.TrimSuffix(prefix, "/") + "/TOPIC\n"}
		}
		r.UserData = topic
		return nil
	}
	if sf.nats != "" {
		b, err := natsbroker.Connect(sf.nats, natsbroker.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		cfg.Broker = b
	}
	h := &topicsHandler{}
	srv, err := engine.NewServer(h, cfg)
	if err != nil {
		if cfg.Broker != nil {
			cfg.Broker.Close()
		}
		return nil, err
	}
	h.srv = srv
	return srv, nil
}
