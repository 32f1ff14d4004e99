//go:build !race

package engine

import (
	"context"
	"testing"
	"time"
)

// TestWriteEventAllocs: an event written from the loop costs no
// allocation once the loop's scratch buffer has grown, whether it joins a
// callback's batch (OnOpen) or goes straight to gnet (a task on the loop).
func TestWriteEventAllocs(t *testing.T) {
	h := newStreamHandler()
	result := make(chan float64, 2)
	ev := Event{ID: "12345", Event: "tick", Data: []byte("line one\nline two"), Retry: time.Second}
	measure := func(c *Conn) {
		c.WriteEvent(ev) // grows the scratch buffer
		result <- testing.AllocsPerRun(1000, func() {
			if err := c.WriteEvent(ev); err != nil {
				panic(err)
			}
		})
	}
	h.onOpen = measure
	srv := startServer(t, h, Config{Loops: 1, OnEventStream: acceptAll})
	sc := dialStream(t, srv.Addr(), "/")
	go func() {
		buf := make([]byte, 32<<10)
		for {
			if _, err := sc.br.Read(buf); err != nil {
				return
			}
		}
	}()
	c := recv(t, h.opens, "OnOpen")
	c.loop.el.Execute(context.Background(), runFunc(func() { measure(c) }))
	for _, where := range []string{"in OnOpen", "in a loop task"} {
		if n := recv(t, result, "the measurement"); n != 0 {
			t.Fatalf("%v allocations per WriteEvent %s", n, where)
		}
	}
}
