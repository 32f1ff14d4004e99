//go:build (amd64 || arm64) && !purego

package goid

// id reads the g register (arm64) or the g slot of thread-local storage
// (amd64).
//
//go:noescape
func id() uintptr
