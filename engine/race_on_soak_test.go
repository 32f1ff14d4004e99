//go:build race

package engine

// soakRace is set when the tests run under the race detector, whose shadow
// memory inflates a child server's RSS several times over.
const soakRace = true
