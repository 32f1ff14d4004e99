package codec_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/galews/gale/codec"
)

// A server parses the upgrade request from the bytes it has read so far,
// validates it and answers 101, or the error's status when it is refused.
func ExampleRequest_Parse() {
	in := []byte("GET /chat?room=1 HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: chat, superchat\r\n" +
		"\r\n")

	var req codec.Request
	if _, err := req.Parse(in[:40], 0); err == codec.ErrNeedMore {
		fmt.Println("need more after 40 bytes")
	}
	n, err := req.Parse(in, 0)
	if err == nil {
		err = req.Validate()
	}
	var out []byte
	var refused *codec.HandshakeError
	if errors.As(err, &refused) {
		out = codec.AppendHandshakeError(out, refused)
	} else {
		protocol := req.SelectProtocol([]string{"superchat", "chat"})
		out = codec.AppendUpgradeResponse(out, req.Key, []byte(protocol), nil, nil)
	}
	fmt.Printf("consumed %d bytes: path %s, query %s\n", n, req.Path, req.Query)
	fmt.Print(strings.ReplaceAll(string(out), "\r\n", "\n"))
	// Output:
	// need more after 40 bytes
	// consumed 214 bytes: path /chat, query room=1
	// HTTP/1.1 101 Switching Protocols
	// Upgrade: websocket
	// Connection: Upgrade
	// Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
	// Sec-WebSocket-Protocol: chat
}

// A client writes the upgrade request and checks the server's answer against
// what it offered.
func ExampleAppendClientRequest() {
	req := &codec.ClientRequest{
		Host:      "example.com",
		URI:       "/chat",
		Origin:    "https://example.com",
		Protocols: []string{"chat", "superchat"},
	}
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==") // a real client uses codec.NewKey()
	out := codec.AppendClientRequest(nil, req, key)
	fmt.Print(strings.ReplaceAll(string(out), "\r\n", "\n"))

	in := []byte("HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
		"Sec-WebSocket-Protocol: chat\r\n" +
		"\r\n")
	var resp codec.Response
	if _, err := resp.Parse(in, 0); err != nil {
		panic(err)
	}
	fmt.Println(resp.Validate(key, req), string(resp.Protocol))
	// Output:
	// GET /chat HTTP/1.1
	// Host: example.com
	// Upgrade: websocket
	// Connection: Upgrade
	// Sec-WebSocket-Version: 13
	// Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
	// Origin: https://example.com
	// Sec-WebSocket-Protocol: chat, superchat
	//
	// <nil> chat
}
