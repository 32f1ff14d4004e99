// Package engine is Gale's event-loop WebSocket server on gnet.
//
// A connection is a small state machine driven by gnet's event loops: the
// upgrade request and then the frames are parsed where gnet holds the bytes,
// payloads are unmasked in place and handed to the [Handler] without a copy
// whenever a whole frame sits in the read buffer. No goroutine, timer or
// buffer is kept per idle connection: timers live in one timing wheel per
// loop, and buffers are borrowed from package pool while there is work.
//
// Threading rules, in short: Handler callbacks run on the connection's event
// loop (or on a worker when Config.Workers is set) and must not keep the
// payload slices they are given past the call. Every Conn method is safe to
// call from any goroutine; inside a callback writes go straight to the
// socket, elsewhere they are queued and flushed by the loop in order.
//
// A Server listens itself (Server.Start) or is mounted on a net/http server
// as an http.Handler (Server.ServeHTTP), or both: a mounted upgrade is
// judged by the same rules, then its connection is hijacked and the socket
// handed to the event loops, leaving no goroutine behind.
//
// See docs/architecture.md for the design.
package engine
