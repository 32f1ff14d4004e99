package main

import (
	"bytes"
	"math"
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

// TestVariants: gale-http runs only where a scenario lists it, is left out
// of the other tables, is not counted as a peer, and is compared with gale.
func TestVariants(t *testing.T) {
	hs, _ := scenarioByName("handshake")
	idle, _ := scenarioByName("idle")
	echo, _ := scenarioByName("echo1k")
	if !hs.runs("gale-http") || !idle.runs("gale-http") || echo.runs("gale-http") || !echo.runs("gorilla") {
		t.Fatal("gale-http must run in handshake and idle only")
	}
	if isPeer("gale-http") || isPeer("gale") || !isPeer("gorilla") {
		t.Fatal("isPeer")
	}
	impls := []string{"gale", "gale-http", "gorilla"}
	var sums []summary
	for i, impl := range impls {
		sums = append(sums,
			summary{Scenario: "idle", Impl: impl, Runs: 1, KiBPerConn: stat{N: 1, Med: 1 + float64(i)/10}},
			summary{Scenario: "handshake", Impl: impl, Runs: 1, Rate: stat{N: 1, Med: 1000 - 100*float64(i)}, CPUPerOp: stat{N: 1, Med: 100 + 10*float64(i)}})
		if impl != "gale-http" {
			sums = append(sums, summary{Scenario: "echo1k", Impl: impl, Runs: 1, Rate: stat{N: 1, Med: 1000}})
		}
	}
	var b bytes.Buffer
	writeTables(&b, sums, []string{"echo1k", "handshake", "idle"}, impls, false)
	out := b.String()
	echoTable, rest, _ := strings.Cut(out, "### handshake")
	if strings.Contains(echoTable, "gale-http") {
		t.Errorf("gale-http in the echo table:\n%s", echoTable)
	}
	for _, want := range []string{"| gale-http |", "gale-http against gale: rate 0.90x, server CPU per operation 1.10x", "gale-http against gale: KiB/conn 1.10x"} {
		if !strings.Contains(rest, want) {
			t.Errorf("missing %q in:\n%s", want, rest)
		}
	}
	if got := aheadOfPeers(sums, "handshake", sums[1]); strings.Contains(got, "gale") {
		t.Errorf("aheadOfPeers counts a variant: %q", got)
	}
}

// TestIdleVerdict: the wss-idle target is judged on the reading at the
// end of the idle window when the report has it, else on the reading a
// second after the ramp.
func TestIdleVerdict(t *testing.T) {
	at := func(afterRamp, end [2]float64) []summary {
		var sums []summary
		for i, impl := range []string{"gale", "gorilla"} {
			s := summary{Scenario: "wss-idle", Impl: impl, Runs: 1, KiBPerConn: stat{N: 1, Med: afterRamp[i]}}
			if end[i] > 0 {
				s.KiBEnd = stat{N: 1, Med: end[i]}
			}
			sums = append(sums, s)
		}
		return sums
	}
	for _, c := range []struct {
		sums []summary
		want float64
		met  bool
		when string
	}{
		{at([2]float64{13.4, 42.6}, [2]float64{9.06, 42.6}), 9.06 / 42.6, true, "after the idle window"},
		{at([2]float64{13.4, 42.6}, [2]float64{0, 0}), 13.4 / 42.6, false, "a second after the ramp"},
	} {
		vs := verdicts(c.sums)
		if len(vs) != 1 || math.Abs(vs[0].Value-c.want) > 1e-9 || vs[0].Met != c.met || !strings.Contains(vs[0].Metric, c.when) {
			t.Errorf("verdicts = %+v, want value %.3f met %v on the reading %s", vs, c.want, c.met, c.when)
		}
	}
}

// TestDocsMethod: docs/benchmarks.md carries the generator's sections on
// outside servers and the accounting as they are now.
func TestDocsMethod(t *testing.T) {
	b, err := os.ReadFile("../docs/benchmarks.md")
	if err != nil {
		t.Skip(err)
	}
	part := func(s string) string {
		i, j := strings.Index(s, "## Outside servers"), strings.Index(s, "## Method")
		if i < 0 || j < i {
			t.Fatal("no \"## Outside servers\" … \"## Method\"")
		}
		return s[i:j]
	}
	want, got := strings.Split(part(docMethod), "\n"), strings.Split(part(string(b)), "\n")
	for k := range max(len(want), len(got)) {
		if k >= len(want) || k >= len(got) || want[k] != got[k] {
			t.Fatalf("docs/benchmarks.md differs from docMethod (bench/markdown.go) in line %d of \"## Outside servers\":\n%q\n%q",
				k+1, at(got, k), at(want, k))
		}
	}
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return "(end)"
}

// TestIdleVerdictInKiB: the idle target is absolute, so the table shows
// Gale's figure in KiB on either reading, not as a ratio.
func TestIdleVerdictInKiB(t *testing.T) {
	for _, end := range []float64{0, 0.93} {
		s := summary{Scenario: "idle", Impl: "gale", Runs: 1, KiBPerConn: stat{N: 1, Med: 0.99}}
		want := "| 0.99 KiB |"
		if end > 0 {
			s.KiBEnd = stat{N: 1, Med: end}
			want = "| 0.93 KiB |"
		}
		var b strings.Builder
		writeVerdicts(&b, verdicts([]summary{s}))
		if !strings.Contains(b.String(), want) {
			t.Errorf("end reading %v: want %q in\n%s", end, want, b.String())
		}
	}
}
