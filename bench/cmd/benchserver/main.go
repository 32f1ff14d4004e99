// Command benchserver is the echo server the benchmark driver starts once per
// run, one library per process so that the operating system can account its
// CPU time and memory:
//
//	benchserver -impl gale|gale-http|gorilla|gws|nbio|gobwas -addr 127.0.0.1:0
//
// It prints its listening address as the first line on stdout and serves
// until SIGTERM or SIGINT. Every implementation echoes text and binary
// messages with their opcode, with messages capped at 16 MiB, written the
// way the library's own documentation shows; -compress turns
// permessage-deflate on, -broadcast sends each message to every connection
// instead of echoing it, -topics makes gale publish it to the topic its path
// names (the others broadcast) and -nats joins gale to other servers through
// NATS; -tls-cert and -tls-key serve wss:// with each
// library's own TLS (gale: engine.Config.TLS; gorilla: net/http's
// ServeTLS; gws: a crypto/tls listener, as its RunTLS; nbio: nbhttp's
// AddrsTLS on its fork of crypto/tls). gale-http is Gale mounted on a net/http server
// (Server.ServeHTTP) at /ws; the others serve every path.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
)

// serverOptions select what a server does besides plain echo.
type serverOptions struct {
	compress  bool // accept permessage-deflate and compress what is sent
	broadcast bool // send every received message to every connection instead of echoing it
	// topics: gale publishes every message to the topic its connection's
	// path names (Server.Publish), the sender included; the others, which
	// have no topics, broadcast, as if every connection were on the one
	// topic a run uses. nats: gale joins the other servers on this NATS
	// URL (natsbroker).
	topics bool
	nats   string
	// tlsCert and tlsKey, when set, are the PEM certificate and key every
	// implementation serves wss:// with, through its own TLS support.
	tlsCert, tlsKey string
}

// tlsConfig loads the certificate for the servers on crypto/tls.
func (o serverOptions) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}, nil
}

// maxMessage is the one message-size limit every implementation gets.
const maxMessage = 16 << 20

// impls maps -impl names to server starters: each listens on addr, serves
// in the background and returns the bound address.
var impls = map[string]func(addr string, o serverOptions) (net.Addr, error){
	"gale":      startGale,
	"gale-http": startGaleHTTP,
	"gorilla":   startGorilla,
	"gws":       startGWS,
	"nbio":      startNbio,
	"gobwas":    startGobwas,
}

func main() {
	os.Exit(run())
}

func run() int {
	names := make([]string, 0, len(impls))
	for n := range impls {
		names = append(names, n)
	}
	slices.Sort(names)
	impl := flag.String("impl", "gale", "server implementation: "+strings.Join(names, ", "))
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
	var o serverOptions
	flag.BoolVar(&o.compress, "compress", false, "accept permessage-deflate where the library supports it")
	flag.BoolVar(&o.broadcast, "broadcast", false, "send every received message to every connection instead of echoing")
	flag.BoolVar(&o.topics, "topics", false, "gale: publish every message to the topic the path names (the others broadcast)")
	flag.StringVar(&o.nats, "nats", "", "gale with -topics: join the servers on this NATS `URL`")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file`: serve wss:// (with -tls-key)")
	flag.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` for -tls-cert")
	flag.Parse()
	if (o.tlsCert == "") != (o.tlsKey == "") {
		fmt.Fprintln(os.Stderr, "benchserver: -tls-cert and -tls-key go together")
		return 2
	}
	if o.tlsCert != "" && *impl == "gale-http" {
		// Server.ServeHTTP takes over plain connections only: a TLS
		// connection cannot be handed from net/http to the loops.
		fmt.Fprintln(os.Stderr, "benchserver: gale-http does not serve TLS")
		return 2
	}

	if o.nats != "" && (*impl != "gale" || !o.topics) {
		fmt.Fprintln(os.Stderr, "benchserver: -nats is for gale with -topics")
		return 2
	}
	if o.topics && *impl != "gale" {
		o.broadcast = true
	}
	start, ok := impls[*impl]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchserver: unknown -impl %q (want one of %s)\n", *impl, strings.Join(names, ", "))
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchserver:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "benchserver:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	a, err := start(*addr, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchserver: %s: %v\n", *impl, err)
		return 1
	}
	fmt.Println(a.String())
	<-sig
	// No graceful shutdown: the run is over and nothing is measured now.
	return 0
}
