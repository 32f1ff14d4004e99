package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// TestDialWalkthrough drives gale dial through its input, as a pipe
// would, against the echo server of gale serve: the acceptance walk-through's three frames
// (FIN 0, 0, 1), a ping, and Close 1000 with a reason whose echo is shown.
func TestDialWalkthrough(t *testing.T) {
	srv, err := engine.NewServer(&echoHandler{maxMessages: 16}, engine.Config{MaxMessageSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	input := strings.Join([]string{
		"/frames This is the 1st frame. |This is the 2nd frame. |This is the 3rd frame.",
		"/ping are you there",
		"/binary 00ff10",
		"/close 1000 Closing this websocket.",
	}, "\n") + "\n"
	var out, errb bytes.Buffer
	code := dial([]string{"ws://" + srv.Addr().String() + "/echo"}, strings.NewReader(input), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errb.String(), out.String())
	}
	want := []string{
		`< Text fin=true len=68 "This is the 1st frame. This is the 2nd frame. This is the 3rd fr"…`, // previews stop at 64 bytes
		`< Pong fin=true len=13 "are you there"`,
		`< Binary fin=true len=3 00ff10`,
		`< Close 1000 (NormalClosure) "Closing this websocket."`,
		`closed: 1000 "Closing this websocket."`,
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w+"\n") {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestDialEndOfInput: at the end of input gale dial sends Close 1000 itself.
func TestDialEndOfInput(t *testing.T) {
	srv, err := engine.NewServer(&echoHandler{}, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	var out, errb bytes.Buffer
	code := dial([]string{"ws://" + srv.Addr().String() + "/"}, strings.NewReader("hello\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), `< Text fin=true len=5 "hello"`) || !strings.Contains(out.String(), "closed: 1000") {
		t.Fatalf("exit %d, out:\n%s\nerr: %s", code, out.String(), errb.String())
	}
}

// TestDialRefused: a server that is not there exits 2 with the reason.
func TestDialRefused(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dial([]string{"ws://127.0.0.1:1/"}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "refused") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// runDial runs gale dial with the input and fails the test when it has not
// exited within limit; stdin stays open after the input unless closeIn.
func runDial(t *testing.T, limit time.Duration, url, input string, closeIn bool, extra ...string) (int, string, string) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	go func() {
		io.WriteString(pw, input)
		if closeIn {
			pw.Close()
		}
	}()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- dial(append(extra, url), pr, &out, &errb) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(limit):
		t.Fatalf("gale dial still running after %v\nstdout:\n%s\nstderr:\n%s", limit, out.String(), errb.String())
		return 0, "", ""
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDialCloseCodes: /close sends only the codes RFC 6455 §7.4 lets an
// endpoint send; any other is refused on stderr, nothing is sent, and the
// session goes on (here: one more message, then the end of input's 1000).
func TestDialCloseCodes(t *testing.T) {
	url := "ws://" + startEcho(t) + "/"
	long := strings.Repeat("x", 124)
	tests := []struct {
		line     string
		exit     int
		inStdout string // after the exchange
		inStderr string
	}{
		{"/close 70000", 0, `closed: 1000 ""`, "70000 is not a close code"},
		{"/close 65536", 0, `closed: 1000 ""`, "not a close code"},
		{"/close 999", 0, `closed: 1000 ""`, "999 may not be sent"},
		{"/close 0", 0, `closed: 1000 ""`, "0 may not be sent"},
		{"/close 1004", 0, `closed: 1000 ""`, "1004 is reserved"},
		{"/close 1005", 0, `closed: 1000 ""`, "1005 is reserved"},
		{"/close 1006", 0, `closed: 1000 ""`, "1006 is reserved"},
		{"/close 1015", 0, `closed: 1000 ""`, "1015 is reserved"},
		{"/close 1016", 0, `closed: 1000 ""`, "1016 may not be sent"},
		{"/close 2999", 0, `closed: 1000 ""`, "2999 may not be sent"},
		{"/close 5000", 0, `closed: 1000 ""`, "5000 may not be sent"},
		{"/close -1", 0, `closed: 1000 ""`, `"-1" is not a close code`},
		{"/close abc", 0, `closed: 1000 ""`, `"abc" is not a close code`},
		{"/close 4000 " + long, 0, `closed: 1000 ""`, "reason is 124 bytes"},
		{"/close 1000 bye", 0, `closed: 1000 "bye"`, ""},
		{"/close 1003", 1, `closed: 1003 ""`, ""},
		{"/close 1014 gw", 1, `closed: 1014 "gw"`, ""},
		{"/close 3000 app", 1, `closed: 3000 "app"`, ""},
		{"/close 4999", 1, `closed: 4999 ""`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.line[:min(len(tt.line), 20)], func(t *testing.T) {
			code, out, errs := runDial(t, 5*time.Second, url, tt.line+"\nafter\n", true, "-timeout", "2s")
			if code != tt.exit || !strings.Contains(out, tt.inStdout+"\n") || !strings.Contains(errs, tt.inStderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.exit, out, errs)
			}
			refused := tt.inStderr != ""
			if got := strings.Contains(out, `"after"`); got != refused {
				t.Fatalf("the line after the /close was sent: %v, want %v\n%s", got, refused, out)
			}
		})
	}
}

// closeAfterFirst closes each connection with 4001 "enough" after its first
// message.
type closeAfterFirst struct{ engine.BaseHandler }

func (closeAfterFirst) OnMessage(c *engine.Conn, _ codec.Opcode, _ []byte) {
	c.Close(4001, "enough")
}

// TestDialServerCloses: when the server closes, gale dial prints the code
// and reason and exits at once, while its input is still open.
func TestDialServerCloses(t *testing.T) {
	tests := []struct {
		name    string
		handler engine.Handler
		exit    int
		want    string
	}{
		{"4001", closeAfterFirst{}, 1, `closed: 4001 "enough"`},
		{"1008 after the echo limit", &echoHandler{maxMessages: 1}, 1, `closed: 1008 "message limit reached"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := engine.NewServer(tt.handler, engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Shutdown(context.Background()) })
			code, out, errs := runDial(t, 3*time.Second, "ws://"+srv.Addr().String()+"/", "hello\n", false)
			if code != tt.exit || !strings.Contains(out, tt.want+"\n") {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.exit, out, errs)
			}
		})
	}
}

// TestDialFlags: bad flags and arguments exit 2 with a message.
func TestDialFlags(t *testing.T) {
	tests := []struct {
		args     []string
		inStderr string
	}{
		{[]string{"-timeout", "0", "ws://127.0.0.1:1/"}, "-timeout 0s: must be positive"},
		{[]string{"-timeout", "-1s", "ws://127.0.0.1:1/"}, "-timeout -1s"},
		{nil, "usage: gale dial"},
		{[]string{"ws://a/", "ws://b/"}, "usage: gale dial"},
		{[]string{"-nope", "ws://a/"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := dial(tt.args, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), tt.inStderr) {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, errb.String())
		}
	}
}

// countingProxy forwards one TCP connection to target; sent reports the
// bytes the client sent through it once the client has closed.
func countingProxy(t *testing.T, target string) (addr string, sent func() int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		go io.Copy(c, s)
		k, _ := io.Copy(s, c)
		n <- k
	}()
	return ln.Addr().String(), func() int64 {
		select {
		case k := <-n:
			return k
		case <-time.After(5 * time.Second):
			t.Fatal("the proxied connection is still open")
			return 0
		}
	}
}

// TestDialCompress: gale dial -compress against gale serve -compress
// negotiates permessage-deflate, says so, and echoes compressed messages
// both ways: the server's echo is marked (compressed), and what the client
// sent through a counting proxy is a fraction of the text typed.
func TestDialCompress(t *testing.T) {
	addr, sent := countingProxy(t, startEcho(t, "-compress"))
	line := strings.Repeat(`{"room":"lobby","text":"hello, compressed world"} `, 40) // 2 KB, typed as one line
	code, out, errs := runDial(t, 5*time.Second, "ws://"+addr+"/", line+"\nhi\n/frames a|b\n", true, "-compress")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		"connected to ws://" + addr + "/ (permessage-deflate)\n",
		fmt.Sprintf("< Text fin=true len=%d (compressed) %q…\n", len(line), line[:64]),
		`< Text fin=true len=2 "hi"` + "\n", // under the server's threshold: echoed plain
		`< Text fin=true len=2 "ab"` + "\n",
		`closed: 1000 ""` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := sent(); n > int64(len(line))/4 {
		t.Errorf("the client sent %d bytes for a %d-byte compressible line: not compressed", n, len(line))
	} else {
		t.Logf("the client sent %d bytes in all, for a %d-byte line and more", n, len(line))
	}

	// A server without -compress declines, and the session goes on plain.
	code, out, errs = runDial(t, 5*time.Second, "ws://"+startEcho(t)+"/", "hello\n", true, "-compress")
	if code != 0 || !strings.Contains(out, "(permessage-deflate declined by the server)\n") || !strings.Contains(out, `< Text fin=true len=5 "hello"`+"\n") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
