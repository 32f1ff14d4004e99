package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExtraRun runs the suite with an outside echo server (testdata's, on
// Gale's engine) through one short round of echo64, with a second outside
// server whose program is not there, and reads the report.
func TestExtraRun(t *testing.T) {
	bin := echoServer(t)
	dir := t.TempDir()
	gale := filepath.Join(dir, "gale")
	build := exec.Command("go", "build", "-o", gale, "./cmd/gale")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building gale: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "docs", "benchmarks.md")
	cmdline := bin + " {port} {compress}"
	defer func(args []string, fs *flag.FlagSet) { os.Args, flag.CommandLine = args, fs }(os.Args, flag.CommandLine)
	defer func() { delete(extraServers, "mini") }()
	flag.CommandLine = flag.NewFlagSet("bench", flag.ContinueOnError)
	os.Args = []string{"bench",
		"-extra", "mini=" + cmdline, "-extra", "gone=/no/such/server {port} {compress}",
		"-impls", "mini", "-scenarios", "echo64,broadcast", "-rounds", "1", "-duration", "1s", "-warmup", "200ms",
		"-retries", "0", "-no-check", "-profiles=false",
		// Only outside servers run: benchserver is never started.
		"-server", os.DevNull, "-gale", gale, "-out", out}
	if code := mainErr(); code != 0 {
		t.Fatalf("bench exited %d", code)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	i := strings.Index(md, "### echo64")
	if i < 0 {
		t.Fatalf("no echo64 table:\n%s", md)
	}
	echo, _, _ := strings.Cut(md[i:], "### broadcast")
	for _, want := range []string{
		"- Outside server **mini**: `" + cmdline + "`",
		"- Outside server gone (`/no/such/server {port} {compress}`) skipped: /no/such/server is not there",
		"Outside server mini left out: the scenario needs a server that sends every message to every connection",
		"No server of this run serves this scenario.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(echo, "\n| mini | ") || strings.Contains(echo, "| gone |") {
		t.Errorf("echo64 table:\n%s", echo)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "docs", "bench", "echo64-cpu.svg"))
	if err != nil || !strings.Contains(string(svg), "mini") {
		t.Errorf("chart: %v", err)
	}
}
