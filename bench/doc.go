// Package bench is Gale's benchmark suite: Gale and its peers (gorilla,
// gws, nbio, gobwas) through the same scenarios in one run. It is its own
// module so that the peers never become dependencies of the engine.
//
// The suite is not built yet; it needs the engine and the load generator.
package bench
