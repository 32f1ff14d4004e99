//go:build !race

package engine

import (
	"fmt"
	"testing"

	"github.com/galews/gale/codec"
)

// TestPublishAllocs: a publish costs the same allocations however many
// subscribers receive it (one encoding, one task per loop).
func TestPublishAllocs(t *testing.T) {
	h := newTopicHandler()
	srv := startServer(t, h, Config{Loops: 1})
	allocs := func(n int) float64 {
		topic := fmt.Sprint("n", n)
		for range n {
			c, err := Dial(t.Context(), wsURL(srv), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.CloseNow() })
			go func() {
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
			if err := recv(t, h.opened, "OnOpen").Subscribe(topic); err != nil {
				t.Fatal(err)
			}
		}
		srv.Subscribers(topic) // the subscriptions are in
		payload := []byte("tick")
		return testing.AllocsPerRun(50, func() {
			srv.Publish(topic, codec.OpText, payload)
			srv.Subscribers(topic) // wait for the loop to have written it
		})
	}
	// Per-subscriber allocation would show as 49 more; the client
	// goroutines reading in the same process may add one now and then.
	one, many := allocs(1), allocs(50)
	if many > one+3 {
		t.Fatalf("a publish to 50 subscribers allocates %.0f times, to 1 %.0f: per-subscriber allocation", many, one)
	}
}
