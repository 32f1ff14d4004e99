package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

const dialHelp = `Each input line is sent as a text message. Lines starting with / are commands:
  /frames a|b|c        send one text message as several frames (FIN 0, 0, 1)
  /binary HEX          send a binary message
  /ping [text]         send a ping
  /close [code [why]]  close with a code (default 1000) and reason, then exit;
                       codes 1000-1003, 1007-1014 and 3000-4999 may be sent, and
                       a reason of up to 123 bytes; others are refused, unsent
  //text               send "/text" as a text message
At the end of input Gale sends Close 1000 and prints the code and reason it got back.
When the server closes first, Gale prints its code and reason and exits at once.
Every received frame is printed as: < OPCODE fin=BOOL len=N PAYLOAD
With -compress, Gale offers permessage-deflate (RFC 7692) and says on connect
whether the server accepted; typed messages are then sent compressed when that
makes them smaller (/frames never), and a message that arrived compressed is
printed whole and inflated, as one frame marked (compressed) after its length.
Exit status: 0 after a 1000 close, 1 after another close code, 2 on errors.
`

// dial runs the interactive client over the blocking client: one goroutine
// prints frames as they arrive, the other sends what stdin says.
func dial(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	origin := fs.String("origin", "", "Origin header to send")
	protos := fs.String("protocols", "", "comma-separated subprotocols to offer")
	timeout := fs.Duration("timeout", 10*time.Second, "connect and close-reply timeout")
	compress := fs.Bool("compress", false, "offer permessage-deflate (RFC 7692), without context takeover")
	caFile := fs.String("ca", "", "PEM `file` of the certificate authorities to trust for wss:// (default: the system's)")
	insecure := fs.Bool("insecure", false, "for wss://, accept any certificate (tests only)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gale dial [flags] ws://host:port/path | wss://host:port/path\n\n%s\nflags:\n", dialHelp)
		fs.PrintDefaults()
	}
	if status, done := parseFlags(fs, args, true, stdout, stderr); done {
		return status
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	if *timeout <= 0 {
		return flagError(stderr, fs, "-timeout %v: must be positive", *timeout)
	}
	opts := &engine.DialOptions{Origin: *origin, HandshakeTimeout: *timeout, CloseTimeout: *timeout}
	if *caFile != "" || *insecure {
		cfg, err := clientTLSConfig(*caFile, *insecure)
		if err != nil {
			return flagError(stderr, fs, "%v", err)
		}
		opts.TLSConfig = cfg
	}
	if *compress {
		// Threshold 1: typed lines are short, and a tool for trying a
		// server out should compress what it can.
		opts.Compression = engine.CompressionConfig{Enabled: true, Threshold: 1}
	}
	if *protos != "" {
		opts.Subprotocols = strings.Split(*protos, ",")
	}
	c, err := engine.Dial(context.Background(), fs.Arg(0), opts)
	if err != nil {
		fmt.Fprintln(stderr, "gale dial:", err)
		return 2
	}
	defer c.CloseNow()
	var out sync.Mutex // stdout lines from both goroutines stay whole
	printf := func(format string, a ...any) {
		out.Lock()
		fmt.Fprintf(stdout, format, a...)
		out.Unlock()
	}
	printf("connected to %s", fs.Arg(0))
	if p := c.Subprotocol(); p != "" {
		printf(" (subprotocol %s)", p)
	}
	switch {
	case c.Compression():
		printf(" (permessage-deflate)")
	case *compress:
		printf(" (permessage-deflate declined by the server)")
	}
	printf("\n")

	closed := make(chan *codec.CloseError, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			f, err := c.ReadFrame()
			var ce *codec.CloseError
			if errors.As(err, &ce) {
				printf("< Close %d (%v) %q\n", ce.Code, ce.Code, ce.Reason)
				closed <- ce
				return
			}
			if err != nil {
				readErr <- err
				return
			}
			z := ""
			if f.Compressed {
				z = " (compressed)"
			}
			printf("< %v fin=%v len=%d%s%s\n", f.Opcode, f.Fin, len(f.Payload), z, preview(f))
		}
	}()

	// Input lines come from their own goroutine, so that a Close from the
	// server ends the session at once, not at the next line.
	lines := make(chan string)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		in := bufio.NewScanner(stdin)
		in.Buffer(make([]byte, 64<<10), 16<<20)
		for in.Scan() {
			select {
			case lines <- in.Text():
			case <-done:
				return
			}
		}
		if err := in.Err(); err != nil {
			fmt.Fprintln(stderr, "gale dial: input:", err)
		}
	}()
	finish := func(ce *codec.CloseError) int {
		printf("closed: %d %q\n", ce.Code, ce.Reason)
		if ce.Code == codec.StatusNormalClosure {
			return 0
		}
		return 1
	}

	code, reason := codec.StatusNormalClosure, ""
input:
	for {
		var line string
		select {
		case ce := <-closed:
			return finish(ce) // the server closed first; ReadFrame answered it
		case err := <-readErr:
			fmt.Fprintln(stderr, "gale dial:", err)
			return 2
		case l, ok := <-lines:
			if !ok {
				break input
			}
			line = l
		}
		cmd, rest, _ := strings.Cut(line, " ")
		var err error
		switch {
		case strings.HasPrefix(line, "//"):
			err = c.WriteMessage(codec.OpText, []byte(line[1:]))
		case cmd == "/frames":
			parts := strings.Split(rest, "|")
			for i, p := range parts {
				op := codec.OpText
				if i > 0 {
					op = codec.OpContinuation
				}
				if err = c.WriteFrame(op, []byte(p), i == len(parts)-1); err != nil {
					break
				}
			}
		case cmd == "/binary":
			var b []byte
			if b, err = hex.DecodeString(strings.ReplaceAll(rest, " ", "")); err == nil {
				err = c.WriteMessage(codec.OpBinary, b)
			}
		case cmd == "/ping":
			err = c.Ping([]byte(rest))
		case cmd == "/close":
			if rest == "" {
				break input
			}
			num, why, _ := strings.Cut(rest, " ")
			n, perr := parseCloseCode(num, why)
			if perr != nil {
				fmt.Fprintf(stderr, "gale dial: %v; nothing sent\n", perr)
				continue
			}
			code, reason = n, why
			break input
		case strings.HasPrefix(line, "/"):
			err = fmt.Errorf("unknown command %q (see gale dial -h)", cmd)
		default:
			err = c.WriteMessage(codec.OpText, []byte(line))
		}
		if err != nil {
			fmt.Fprintln(stderr, "gale dial:", err)
			if errors.Is(err, engine.ErrClosed) {
				break input
			}
		}
	}
	// The reading goroutine gets the server's answer; Close waits for it
	// (DialOptions.CloseTimeout) and closes the connection.
	if err := c.Close(code, reason); err != nil && !errors.Is(err, engine.ErrClosed) {
		fmt.Fprintln(stderr, "gale dial: close:", err)
	}
	select {
	case ce := <-closed:
		return finish(ce)
	case err := <-readErr:
		fmt.Fprintln(stderr, "gale dial:", err)
		return 2
	}
}

// parseCloseCode parses the code of a /close command and checks it, and the
// reason, against what RFC 6455 lets an endpoint send: codes 1000–1003,
// 1007–1014 and 3000–4999 (§7.4), and a reason that fits a control frame
// with the code (§5.5: 125 bytes).
func parseCloseCode(num, reason string) (codec.StatusCode, error) {
	n, err := strconv.ParseUint(num, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange), err == nil && n > 0xFFFF:
		return 0, fmt.Errorf("%s is not a close code (they are 16-bit: 1000–1003, 1007–1014, 3000–4999)", num)
	case err != nil:
		return 0, fmt.Errorf("%q is not a close code (a number: 1000–1003, 1007–1014, 3000–4999)", num)
	}
	code := codec.StatusCode(n)
	switch {
	case code == 1004 || code == 1005 || code == 1006 || code == 1015:
		return 0, fmt.Errorf("close code %d is reserved and may not be sent (RFC 6455 §7.4.1); send 1000–1003, 1007–1014 or 3000–4999", n)
	case !code.IsValid():
		return 0, fmt.Errorf("close code %d may not be sent (RFC 6455 §7.4): send 1000–1003, 1007–1014 or 3000–4999", n)
	case len(reason) > codec.MaxCloseReason:
		return 0, fmt.Errorf("close reason is %d bytes; at most %d fit in a Close frame", len(reason), codec.MaxCloseReason)
	}
	return code, nil
}

// preview renders a frame's payload: text as a quoted string, binary as hex,
// both cut at 64 bytes.
func preview(f engine.Frame) string {
	p := f.Payload
	if len(p) == 0 {
		return ""
	}
	more := ""
	if len(p) > 64 {
		p, more = p[:64], "…"
	}
	if f.Opcode == codec.OpBinary {
		return " " + hex.EncodeToString(p) + more
	}
	return " " + strconv.Quote(string(p)) + more
}
