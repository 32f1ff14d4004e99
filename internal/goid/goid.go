// Package goid tells goroutines apart, cheaply.
//
// The engine needs to know whether a write comes from the event loop that
// owns a connection (and may go straight to gnet) or from any other goroutine
// (and must be queued to the loop). Go offers no public goroutine identity,
// so this package reads the runtime's current-goroutine pointer: only its
// value is used, as an identity, never the structure it points to. The value
// is unique among live goroutines and stable for a goroutine's life.
package goid

// ID returns an identity of the calling goroutine, never 0.
func ID() uintptr { return id() }
