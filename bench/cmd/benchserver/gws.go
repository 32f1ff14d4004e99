package main

import (
	"crypto/tls"
	"net"
	"sync"

	"github.com/lxzan/gws"
)

// gwsEcho is the OnMessage of gws's README: echo, then release the message.
type gwsEcho struct{ gwsPong }

// gwsPong answers a ping with its payload, as RFC 6455 requires and the
// idle scenario's final check expects; gws's BuiltinEventHandler answers
// with an empty pong.
type gwsPong struct{ gws.BuiltinEventHandler }

func (gwsPong) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (gwsEcho) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	socket.WriteMessage(message.Opcode, message.Bytes())
}

// gwsBroadcast sends every message to every connection with a
// gws.Broadcaster, which encodes (and compresses) the frame once and
// queues it on each connection's write queue.
type gwsBroadcast struct {
	gwsPong
	conns sync.Map // *gws.Conn → struct{}
}

func (b *gwsBroadcast) OnOpen(socket *gws.Conn) { b.conns.Store(socket, struct{}{}) }

func (b *gwsBroadcast) OnClose(socket *gws.Conn, err error) { b.conns.Delete(socket) }

func (b *gwsBroadcast) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	bc := gws.NewBroadcaster(message.Opcode, message.Bytes())
	defer bc.Close()
	b.conns.Range(func(k, _ any) bool {
		bc.Broadcast(k.(*gws.Conn))
		return true
	})
}

// startGWS serves with gws.Server (its Quick Start), a goroutine per
// connection running ReadLoop.
func startGWS(addr string, o serverOptions) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var h gws.Event = gwsEcho{}
	if o.broadcast {
		h = &gwsBroadcast{}
	}
	srv := gws.NewServer(h, &gws.ServerOption{
		ReadMaxPayloadSize: maxMessage,
		PermessageDeflate:  gws.PermessageDeflate{Enabled: o.compress},
	})
	if o.tlsCert != "" {
		// What gws's Server.RunTLS does (a crypto/tls listener with the
		// certificate and ALPN http/1.1), on our listener so that the
		// bound address is known.
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
	}
	go srv.RunListener(ln)
	return ln.Addr(), nil
}
