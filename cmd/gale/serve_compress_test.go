package main

import (
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestServeCompress(t *testing.T) {
	for _, on := range []bool{false, true} {
		args := []string{}
		if on {
			args = append(args, "-compress")
		}
		addr := startEcho(t, args...)
		d := websocket.Dialer{EnableCompression: true}
		c, resp, err := d.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if strings.HasPrefix(ext, "permessage-deflate") != on {
			t.Fatalf("-compress %v: Sec-WebSocket-Extensions %q", on, ext)
		}
		msg := strings.Repeat("compressible text ", 100)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.ReadMessage(); err != nil || string(p) != msg {
			t.Fatalf("echo: %v", err)
		}
		c.Close()
	}
}
