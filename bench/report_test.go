package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileParse(t *testing.T) {
	out := `File: benchserver
Type: cpu
Showing nodes accounting for 2.90s, 96.67% of 3s total
      flat  flat%   sum%        cum   cum%
     1.50s 50.00% 50.00%      1.60s 53.33%  internal/runtime/syscall/linux.Syscall6
     0.30s 10.00% 60.00%      0.30s 10.00%  runtime.futex
     0.20s  6.67% 66.67%      2.00s 66.67%  syscall.Syscall
     0.10s  3.33% 70.00%      0.10s  3.33%  github.com/galews/gale/codec.Unmask (inline)
`
	var p profile
	if err := p.parse([]byte(out)); err != nil {
		t.Fatal(err)
	}
	if p.SyscallPct != 66.67 || p.RuntimePct != 10 || len(p.Top) != 4 || p.Top[3].Name != "github.com/galews/gale/codec.Unmask" ||
		!strings.HasPrefix(p.Total, "2.90s") {
		t.Fatalf("%+v", p)
	}
}

func testReport() *report {
	rep := &report{Params: params{Scenarios: []string{"echo1k", "sweep5k", "idle"}, Impls: []string{"gale", "gorilla"}, Rounds: 1}}
	for _, sc := range []string{"echo1k", "sweep5k"} {
		for i, impl := range rep.Params.Impls {
			rate := 1000.0 * float64(i+1)
			rep.Summary = append(rep.Summary, summary{Scenario: sc, Impl: impl, Runs: 1,
				Rate: stat{N: 1, Med: rate}, CPUPerOp: stat{N: 1, Med: 10}, RSS: stat{N: 1, Med: 20}})
		}
	}
	for _, impl := range rep.Params.Impls {
		rep.Summary = append(rep.Summary, summary{Scenario: "idle", Impl: impl, Runs: 1, KiBPerConn: stat{N: 1, Med: 1}})
	}
	return rep
}

func TestBehind(t *testing.T) {
	rep := testReport()
	sc, _ := scenarioByName("echo1k")
	if why := behind(rep.Summary, sc); !strings.Contains(why, "gorilla has 2.00x its rate") {
		t.Fatalf("behind = %q", why)
	}
	sc, _ = scenarioByName("idle")
	if why := behind(rep.Summary, sc); why != "" {
		t.Fatalf("idle: behind = %q", why)
	}
}

// TestCharts renders every chart of a small report and the document that
// links them.
func TestCharts(t *testing.T) {
	rep := testReport()
	dir := t.TempDir()
	if err := writeCharts(filepath.Join(dir, "bench"), rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"echo1k-rate.svg", "echo1k-cpu.svg", "idle-rss.svg", "sweep-rate.svg", "sweep-rss.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, "bench", f))
		if err != nil || !bytes.Contains(b, []byte("<svg")) {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var md bytes.Buffer
	writeDoc(&md, rep, true)
	for _, want := range []string{"](bench/echo1k-rate.svg)", "](bench/sweep-rss.svg)", "### Connections sweep"} {
		if !strings.Contains(md.String(), want) {
			t.Fatalf("document lacks %q", want)
		}
	}
}
