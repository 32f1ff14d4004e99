package main

import (
	nbtls "github.com/lesismal/llib/std/crypto/tls"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// startNbio serves nbio's websocket example: an nbhttp.Engine (epoll
// pollers, non-blocking mode) with an Upgrader whose OnMessage echoes, or,
// with broadcast, writes the message to every connection in turn (nbio's
// writes do not block: what the socket does not take is buffered).
func startNbio(addr string, o serverOptions) (net.Addr, error) {
	logging.Output = os.Stderr // stdout carries the address only
	logging.SetLevel(logging.LevelError)

	u := websocket.NewUpgrader()
	u.MessageLengthLimit = maxMessage
	u.EnableCompression(o.compress)
	var mu sync.Mutex
	conns := map[*websocket.Conn]struct{}{}
	if o.broadcast {
		u.OnOpen(func(c *websocket.Conn) { mu.Lock(); conns[c] = struct{}{}; mu.Unlock() })
		u.OnClose(func(c *websocket.Conn, err error) { mu.Lock(); delete(conns, c); mu.Unlock() })
		u.OnMessage(func(_ *websocket.Conn, mt websocket.MessageType, data []byte) {
			mu.Lock()
			defer mu.Unlock()
			for c := range conns {
				c.WriteMessage(mt, data)
			}
		})
	} else {
		u.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
			c.WriteMessage(mt, data)
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if o.compress {
			c.EnableWriteCompression(true)
		}
	})
	bound := make(chan net.Addr, 1)
	conf := nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 mux,
		ReleaseWebsocketPayload: true,
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err == nil {
				bound <- ln.Addr()
			}
			return ln, err
		},
	}
	if o.tlsCert != "" {
		// nbhttp's own TLS: its fork of crypto/tls (lesismal/llib),
		// records handled in its pollers.
		cert, err := nbtls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, err
		}
		conf.Addrs, conf.AddrsTLS = nil, []string{addr}
		conf.TLSConfig = &nbtls.Config{Certificates: []nbtls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	}
	eng := nbhttp.NewEngine(conf)
	if err := eng.Start(); err != nil {
		return nil, err
	}
	return <-bound, nil
}
