package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
)

// startPprof serves the runtime's profiles (/debug/pprof/) on addr, apart
// from the WebSocket listener, so that a profile of a loaded server can be
// taken without touching the traffic it measures. It returns once the
// listener is bound, with its address.
func startPprof(addr string, stderr io.Writer) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintf(stderr, "gale: profiles on http://%s/debug/pprof/\n", ln.Addr())
	go http.Serve(ln, mux)
	return ln.Addr(), nil
}
