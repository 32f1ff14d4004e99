// Command gale is the command-line shell over the Gale WebSocket engine:
//
//	gale serve -addr 127.0.0.1:8080   echo server
//	gale dial ws://127.0.0.1:8080/    interactive client
//	gale bench echo -url ws://...     load generator
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: gale <command> [flags]

commands:
  serve   run an echo server
  dial    connect to a WebSocket server and exchange messages
  bench   generate load against a WebSocket server
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "dial":
		return dial(args[1:], os.Stdin, stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gale: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
