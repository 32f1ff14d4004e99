package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// startGorilla serves gorilla's examples/echo: net/http, a goroutine per
// connection, Upgrader with default buffers, ReadMessage then WriteMessage.
// With broadcast it follows examples/chat instead: a hub that hands each
// message (here a PreparedMessage, encoded once) to every client's
// buffered send channel, drained by the client's write goroutine.
func startGorilla(addr string, o serverOptions) (net.Addr, error) {
	upgrader := websocket.Upgrader{EnableCompression: o.compress}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var h *gorillaHub
	if o.broadcast {
		h = &gorillaHub{clients: map[chan *websocket.PreparedMessage]bool{}}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(maxMessage)
		if h != nil {
			h.serve(c)
			return
		}
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	})
	if o.tlsCert != "" {
		// net/http over crypto/tls: http.Server.ServeTLS with the
		// certificate files, as an application serving wss:// would.
		hs := &http.Server{Handler: handler, TLSConfig: &tls.Config{NextProtos: []string{"http/1.1"}}}
		go hs.ServeTLS(ln, o.tlsCert, o.tlsKey)
		return ln.Addr(), nil
	}
	go http.Serve(ln, handler)
	return ln.Addr(), nil
}

// gorillaHub is examples/chat's Hub, with a mutex instead of its run
// goroutine's channels.
type gorillaHub struct {
	mu      sync.Mutex
	clients map[chan *websocket.PreparedMessage]bool
}

func (h *gorillaHub) serve(c *websocket.Conn) {
	send := make(chan *websocket.PreparedMessage, 256)
	h.mu.Lock()
	h.clients[send] = true
	h.mu.Unlock()
	go func() { // writePump
		for pm := range send {
			if err := c.WritePreparedMessage(pm); err != nil {
				c.Close()
				for range send {
				}
				return
			}
		}
	}()
	defer func() {
		h.mu.Lock()
		delete(h.clients, send)
		close(send)
		h.mu.Unlock()
	}()
	for { // readPump
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(mt, p)
		if err != nil {
			return
		}
		h.mu.Lock()
		for ch := range h.clients {
			select {
			case ch <- pm:
			default: // as examples/chat: a client that cannot keep up is dropped
				delete(h.clients, ch)
				close(ch)
			}
		}
		h.mu.Unlock()
	}
}
