// Command echoserver is a small outside echo server for the suite's tests,
// taking its arguments the way -extra passes them:
//
//	echoserver PORT 0|1 [ignore-term]
//
// It echoes on 127.0.0.1:PORT, any path, with permessage-deflate when the
// second argument is 1; with ignore-term it ignores SIGTERM (to test that
// the suite then kills it).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

type echo struct{ engine.BaseHandler }

func (echo) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) { c.WriteMessage(op, p) }

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: echoserver PORT 0|1 [ignore-term]")
		os.Exit(2)
	}
	if len(os.Args) > 3 && os.Args[3] == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	cfg := engine.Config{}
	if os.Args[2] == "1" {
		cfg.Compression = engine.CompressionConfig{Enabled: true}
	}
	srv, err := engine.NewServer(echo{}, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening on port", os.Args[1])
	if err := srv.ListenAndServe("127.0.0.1:" + os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
