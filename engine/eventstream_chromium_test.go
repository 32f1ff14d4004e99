package engine

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// TestEventStreamChromium runs testdata/eventsource_page.html in headless
// Chromium: an EventSource receives events in order, reconnects by itself
// after the server ends the stream and sends Last-Event-ID, from which the
// server resumes; then an EventSource and a WebSocket subscribed to one
// topic both receive one Publish.
func TestEventStreamChromium(t *testing.T) {
	needPeer(t, "chromium", "apt-get install -y --no-install-recommends chromium; npm ci in engine/testdata (playwright-core)",
		[]string{"node", "-e", "require.resolve('playwright-core'); require('fs').accessSync(process.env.CHROMIUM || '/usr/bin/chromium')"})
	page, err := os.ReadFile("testdata/eventsource_page.html")
	if err != nil {
		t.Fatal(err)
	}
	type request struct{ path, lastID string }
	requests := make(chan request, 16)
	h := newStreamHandler()
	h.onOpen = func(c *Conn) {
		if !c.IsEventStream() {
			c.Subscribe("news")
			return
		}
		switch c.Request().Path {
		case "/topic":
			c.Subscribe("news")
		case "/count":
			last, _ := c.UserData().(string)
			from, _ := strconv.Atoi(last)
			to := min(from+5, 10)
			for i := from + 1; i <= to; i++ {
				ev := Event{ID: strconv.Itoa(i), Data: []byte(strconv.Itoa(i))}
				if i == from+1 {
					ev.Retry = 50 * time.Millisecond // reconnect at once
				}
				c.WriteEvent(ev)
			}
			if to < 10 {
				c.Close(codec.StatusNormalClosure, "come back")
			}
		}
	}
	srv := startServer(t, h, Config{
		Loops:       1,
		KeepRequest: true,
		OnEventStream: func(r *EventStreamRequest) error {
			offer(requests, request{string(r.Path), r.LastEventID})
			r.UserData = r.LastEventID
			return nil
		},
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
		}),
	})

	go func() {
		// The page's two subscribers of "news" open one after the other.
		for deadline := time.Now().Add(2 * testTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if srv.Subscribers("news") == 2 {
				srv.Publish("news", codec.OpText, []byte("to both"))
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 6*testTimeout)
	defer cancel()
	out, err := command(ctx, []string{"node", "chromium_client.js", "http://" + srv.Addr().String() + "/"}).CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil || !strings.Contains(string(out), "TITLE PASS") {
		t.Fatalf("chromium: %v", err)
	}
	var got []request
	for len(got) < 3 {
		got = append(got, recv(t, requests, "OnEventStream"))
	}
	want := []request{{"/count", ""}, {"/count", "5"}, {"/topic", ""}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("OnEventStream saw %v, want %v", got, want)
		}
	}
}
