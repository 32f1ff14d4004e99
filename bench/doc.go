// Command bench is Gale's benchmark suite: it runs Gale and its peers
// (gorilla, gws, nbio, gobwas) through the same scenarios in one run,
// interleaved, each server in its own process so that its CPU time and
// memory can be read from the operating system, and writes the results to
// docs/benchmarks.md.
//
//	cd bench && go run . -scenarios echo64,echo1k,echo16k,handshake,idle -rounds 3 -duration 5s
//	cd bench && go run . -quick
//
// The wss-* scenarios (wss-echo1k, wss-handshake, wss-idle) run the same
// servers over TLS: the suite makes one self-signed ECDSA P-256 CA and a
// leaf for 127.0.0.1 per run, every server serves the leaf with its own
// TLS (benchserver -tls-cert, -tls-key), and gale bench trusts the CA (-ca):
//
//	cd bench && go run . -quick -scenarios wss-echo1k,wss-handshake,wss-idle -idle-conns 18000
//
// The servers are in cmd/benchserver, the load generator in package load.
// The suite is its own module so that the peers never become dependencies
// of the engine.
package main
