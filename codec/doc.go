// Package codec is Gale's WebSocket protocol core: RFC 6455 and RFC 7692 as
// pure functions over byte slices, and the text/event-stream format of
// Server-Sent Events (AppendEvent, AcceptsEventStream). It does no I/O, starts no goroutines and
// keeps no global mutable state, so the engine can run it straight on the
// bytes gnet holds and every piece can be tested and fuzzed on its own.
//
// Conventions shared by the whole package:
//
//   - Encoders append: AppendX(dst []byte, ...) []byte returns the extended
//     slice and allocates only when dst lacks capacity.
//   - Decoders read the caller's bytes and return views into them; they never
//     copy and never size anything from a peer-declared length. When the input
//     holds less than a whole unit they return [ErrNeedMore] and consume
//     nothing, so the caller can wait for more bytes and call again.
//   - Failures caused by the peer are typed: a [*ProtocolError] carries the
//     close code a connection must be failed with, a [*HandshakeError] the
//     HTTP status an upgrade request must be answered with.
package codec
