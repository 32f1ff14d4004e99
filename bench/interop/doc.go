// Package interop holds Gale's interoperability tests against the Go
// WebSocket libraries gorilla/websocket, lxzan/gws and coder/websocket: their
// clients against Gale's server, Gale's clients against their servers, and
// permessage-deflate both ways. The tests use only Gale's exported API.
//
// They live in the bench module, which already requires these libraries, so
// that they never enter the module graph of a program importing
// github.com/galews/gale/engine. The engine's own tests (package engine)
// cover the same ground with Gale's clients, gobwas/ws, raw frames, and the
// Python, node and Chromium peers in engine/testdata.
//
//	cd bench && go test -race ./interop/
package interop
