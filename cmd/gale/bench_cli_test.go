package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// runLimited runs gale with args and fails the test when it has not exited
// within limit.
func runLimited(t *testing.T, limit time.Duration, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(args, &out, &errb) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(limit):
		t.Fatalf("gale %v still running after %v\nstdout: %s\nstderr: %s", args, limit, out.String(), errb.String())
		return 0, "", ""
	}
}

// closedURL returns a ws:// URL whose port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr + "/"
}

// TestBenchFlags: every flag of every mode is checked before any load:
// a bad value exits 2 naming the flag. The URL is a closed port, so that a
// value wrongly accepted ends the run at once (exit 1), not after a load.
func TestBenchFlags(t *testing.T) {
	url := closedURL(t)
	tests := []struct {
		args     []string
		inStderr string
	}{
		{[]string{"echo", "-conns", "-5"}, "-conns -5: need at least 1"},
		{[]string{"echo", "-conns", "0"}, "-conns 0: need at least 1"},
		{[]string{"echo", "-size", "-1"}, `invalid value "-1" for flag -size`},
		{[]string{"echo", "-size", "2GiB"}, "-size 2GiB: at most 1GiB"},
		{[]string{"echo", "-size", "1GiB", "-distinct", "2"}, "-size 1GiB × -distinct 2: the messages would take more than 1GiB"},
		{[]string{"echo", "-depth", "-1"}, "-depth -1: need 1 to 65536"},
		{[]string{"echo", "-depth", "0"}, "-depth 0"},
		{[]string{"echo", "-duration", "-1s"}, "-duration -1s: must be positive"},
		{[]string{"echo", "-duration", "0"}, "-duration 0s: must be positive"},
		{[]string{"echo", "-warmup", "-1s"}, "-warmup -1s is negative"},
		{[]string{"echo", "-distinct", "0"}, "-distinct 0: need 1 to 1024"},
		{[]string{"echo", "-loops", "-1"}, "-loops -1 is negative"},
		{[]string{"echo", "-sources", "-1"}, "-sources -1 is negative"},
		{[]string{"echo", "-first-source", "0"}, "-first-source 0"},
		{[]string{"echo", "-sources", "10", "-first-source", "65530"}, "-first-source 65530 with 10 sources"},
		{[]string{"echo", "-pid", "-1"}, "-pid -1 is negative"},
		{[]string{"echo", "-pid", "999999999"}, "-pid 999999999: no such process"},
		{[]string{"echo", "-url", "http://127.0.0.1:1/"}, "want ws://host:port/path"},
		{[]string{"echo", "-url", "wss://127.0.0.1:1/", "-ca", "/nonexistent.pem"}, "-ca: open /nonexistent.pem"},
		{[]string{"echo", "-url", "wss://127.0.0.1:1/", "-ca", "x.pem", "-insecure"}, "-ca and -insecure: choose one"},
		{[]string{"echo", "-url", "ws:///nohost"}, "want ws://host:port/path"},
		{[]string{"echo", "100"}, `unexpected argument "100"`},
		{[]string{"echo", "-nope"}, "flag provided but not defined: -nope"},
		{[]string{"handshake", "-conns", "0"}, "-conns 0"},
		{[]string{"handshake", "-duration", "-1s"}, "-duration -1s"},
		{[]string{"handshake", "-loops", "-3"}, "-loops -3"},
		{[]string{"idle", "-conns", "-1"}, "-conns -1"},
		{[]string{"idle", "-duration", "0"}, "-duration 0s"},
		{[]string{"idle", "-settle", "-1s"}, "-settle -1s is negative"},
		{[]string{"idle", "-sources", "-2"}, "-sources -2"},
		{[]string{"broadcast", "-conns", "1"}, "-conns 1: need at least 2"},
		{[]string{"broadcast", "-conns", "0"}, "-conns 0"},
		{[]string{"broadcast", "-size", "7"}, "-size 7: need 8 bytes to 1GiB"},
		{[]string{"broadcast", "-size", "-1"}, `invalid value "-1" for flag -size`},
		{[]string{"broadcast", "-depth", "0"}, "-depth 0: need 1 to 1024"},
		{[]string{"broadcast", "-depth", "5000"}, "-depth 5000"},
		{[]string{"broadcast", "-warmup", "-1s"}, "-warmup -1s is negative"},
		{[]string{"broadcast", "-duration", "-1s"}, "-duration -1s"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"bench", tt.args[0], "-url", url}, tt.args[1:]...)
			if tt.args[1] == "-url" {
				args = append([]string{"bench"}, tt.args...)
			}
			code, out, errs := runLimited(t, 10*time.Second, args...)
			if code != 2 || !strings.Contains(errs, tt.inStderr) {
				t.Fatalf("exit %d (want 2), stderr lacks %q:\n%s\nstdout: %s", code, tt.inStderr, errs, out)
			}
		})
	}
}

// TestHelp: -h prints the usage of each command and mode on stdout and
// exits 0.
func TestHelp(t *testing.T) {
	tests := []struct {
		args     []string
		inStdout []string
	}{
		{[]string{"-h"}, []string{"usage: gale <command>"}},
		{[]string{"bench", "-h"}, []string{"usage: gale bench MODE", "broadcast"}},
		{[]string{"bench", "help"}, []string{"usage: gale bench MODE"}},
		{[]string{"bench", "echo", "-h"}, []string{"usage: gale bench echo [flags]", "-depth", "Exit status"}},
		{[]string{"bench", "handshake", "-h"}, []string{"usage: gale bench handshake [flags]", "-conns"}},
		{[]string{"bench", "idle", "-h"}, []string{"usage: gale bench idle [flags]", "-settle"}},
		{[]string{"bench", "broadcast", "-help"}, []string{"usage: gale bench broadcast [flags]", "does not"}},
		{[]string{"serve", "-h"}, []string{"usage: gale serve [flags]", "-memory-budget"}},
		{[]string{"dial", "-h"}, []string{"usage: gale dial [flags] ws://", "/close"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runLimited(t, 5*time.Second, tt.args...)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			for _, w := range tt.inStdout {
				if !strings.Contains(out, w) {
					t.Fatalf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestBenchCannotConnect: when the server is not there, every mode says so
// at once with the dial's error and exits 1, instead of waiting out its
// window and printing zeros.
func TestBenchCannotConnect(t *testing.T) {
	url := closedURL(t)
	for _, mode := range []string{"echo", "handshake", "idle", "broadcast"} {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			code, out, errs := runLimited(t, 10*time.Second, "bench", mode, "-url", url, "-conns", "20", "-duration", "30s", "-json")
			if code != 1 || !strings.Contains(errs, "cannot connect to "+url) || !strings.Contains(errs, "refused") || out != "" {
				t.Fatalf("exit %d after %v\nstdout: %s\nstderr: %s", code, time.Since(start), out, errs)
			}
		})
	}
}

// TestBenchBroadcastNoRelay: against a server that only echoes, broadcast
// reports that the server does not relay and exits 1.
func TestBenchBroadcastNoRelay(t *testing.T) {
	code, out, errs := runLimited(t, 15*time.Second, "bench", "broadcast", "-url", benchServer(t), "-conns", "5",
		"-duration", "30s", "-warmup", "0", "-json")
	if code != 1 || !strings.Contains(errs, "does not broadcast") || out != "" {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

// TestBenchCompressDeclined: -compress against a server that declines it
// warns, and the JSON says how many connections negotiated it (none).
func TestBenchCompressDeclined(t *testing.T) {
	url := benchServer(t) // no compression
	for _, mode := range [][]string{
		{"echo", "-duration", "300ms", "-warmup", "0", "-size", "1024"},
		{"idle", "-duration", "100ms", "-settle", "0"},
	} {
		t.Run(mode[0], func(t *testing.T) {
			args := append([]string{"bench"}, mode...)
			args = append(args, "-url", url, "-conns", "4", "-compress", "-json")
			code, out, errs := runLimited(t, 20*time.Second, args...)
			if code != 0 || !strings.Contains(errs, "warning: -compress: the server declined permessage-deflate on 4 of 4 connections") {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(out), &raw); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if n, ok := raw["compression"].(float64); !ok || n != 0 {
				t.Fatalf(`"compression" = %v, want 0: %s`, raw["compression"], out)
			}
		})
	}
}

// TestBenchMarkdownCompression: the table shows the negotiated count.
func TestBenchMarkdownCompression(t *testing.T) {
	var b bytes.Buffer
	n := 3
	writeMarkdown(&b, &benchResult{Mode: "echo", Conns: 4, Compress: true, Compression: &n})
	if !strings.Contains(b.String(), "compressed conns") || !strings.Contains(b.String(), "| 3 |") {
		t.Fatalf("%s", b.String())
	}
}
