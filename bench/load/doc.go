// Package load is the benchmark suite's load generator: raw TCP clients that
// speak just enough RFC 6455 to drive a server hard without becoming the
// bottleneck themselves. Upgrade requests and masked frames are built once
// and reused, each connection reads into one fixed-size buffer, and server
// frames are parsed in place with the codec package.
//
// It has three modes: [Echo] (throughput and latency, every echo verified),
// [Handshake] (connection setup rate) and [Hold] (many idle connections).
// The same code drives every server, so differences in the results are the
// servers'.
package load
