package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchPublish: against gale serve -topics, given twice as two nodes
// (the same topic), every connection receives every message of both
// publishers once; an echo server, which publishes nothing to the others,
// is reported with losses.
func TestBenchPublish(t *testing.T) {
	addr := startEcho(t, "-topics")
	u := "ws://" + addr + "/room"
	r := runBench(t, "publish", "-url", u+","+u, "-conns", "20", "-size", "64", "-depth", "4",
		"-duration", "300ms", "-warmup", "100ms", "-settle", "50ms", "-json")
	if r.Mode != "publish" || r.Nodes != 2 || r.Publishers != 2 || r.Msgs == 0 || r.Broadcasts == 0 ||
		r.Errors != 0 || r.Lost != 0 || r.Duplicates != 0 || r.P99us <= 0 {
		t.Fatalf("result: %+v", r)
	}

	var out, errb bytes.Buffer
	code := run([]string{"bench", "publish", "-url", benchServer(t), "-conns", "3", "-size", "32",
		"-duration", "200ms", "-warmup", "0s", "-settle", "0s", "-json"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "lost") {
		t.Fatalf("against an echo server: exit %d, stderr %q", code, errb.String())
	}
}
