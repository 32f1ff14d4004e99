package natsbroker_test

import (
	"log"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
	"github.com/galews/gale/natsbroker"
)

// room subscribes every connection to "lobby" and publishes what it sends
// there: to every subscriber of every node.
type room struct {
	engine.BaseHandler
	srv *engine.Server
}

func (room) OnOpen(c *engine.Conn) { c.Subscribe("lobby") }

func (r *room) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	r.srv.Publish("lobby", op, p)
}

// Each node connects its own broker to the NATS cluster and sets it in its
// Config; run this program on several machines (or ports) and a message
// sent to any of them reaches the clients of all.
func Example() {
	b, err := natsbroker.Connect("nats://127.0.0.1:4222", natsbroker.Options{})
	if err != nil {
		log.Fatal(err)
	}
	h := &room{}
	srv, err := engine.NewServer(h, engine.Config{Broker: b})
	if err != nil {
		log.Fatal(err)
	}
	h.srv = srv
	log.Fatal(srv.ListenAndServe("127.0.0.1:8080")) // Shutdown closes b
}
