package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/galews/gale/engine"
)

// TestDialSeedWalkthrough drives gale dial through its input, as a pipe
// would, against the echo server of gale serve: the seed's three frames
// (FIN 0, 0, 1), a ping, and Close 1000 with a reason whose echo is shown.
func TestDialSeedWalkthrough(t *testing.T) {
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
	code := dial([]string{"ws://" + srv.Addr().String() + "/wsChilkatEcho.ashx"}, strings.NewReader(input), &out, &errb)
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
