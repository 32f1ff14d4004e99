package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// profile is a CPU profile of gale in a scenario where it is not first,
// reduced to where its time goes.
type profile struct {
	Scenario   string   `json:"scenario"`
	Why        string   `json:"why"`   // who is ahead, by what
	Total      string   `json:"total"` // pprof's "N% of T total" line
	SyscallPct float64  `json:"syscall_pct"`
	RuntimePct float64  `json:"runtime_pct"` // flat time in runtime.* (scheduler, GC, memory)
	Top        []profFn `json:"top"`
	Err        string   `json:"error,omitempty"`
}

type profFn struct {
	Name    string  `json:"name"`
	FlatPct float64 `json:"flat_pct"`
	CumPct  float64 `json:"cum_pct"`
}

// behind says whether and why gale is not first in a scenario: by msgs/s
// (or deliveries, handshakes) or by server CPU per operation.
func behind(sums []summary, sc scenario) string {
	if sc.Kind == kindIdle {
		return "" // memory, not CPU: a CPU profile does not explain it
	}
	gale, ok := find(sums, sc.Name, "gale")
	if !ok || gale.Runs == 0 {
		return ""
	}
	var why []string
	for _, s := range sums {
		if s.Scenario != sc.Name || !isPeer(s.Impl) || s.Runs == 0 {
			continue
		}
		if s.Rate.Med > gale.Rate.Med {
			why = append(why, fmt.Sprintf("%s has %.2fx its rate", s.Impl, s.Rate.Med/gale.Rate.Med))
		}
		if s.CPUPerOp.N > 0 && gale.CPUPerOp.N > 0 && s.CPUPerOp.Med < gale.CPUPerOp.Med {
			why = append(why, fmt.Sprintf("%s uses %.2fx its server CPU per operation", s.Impl, s.CPUPerOp.Med/gale.CPUPerOp.Med))
		}
	}
	return strings.Join(why, "; ")
}

// profileLosses runs gale once more, with a CPU profile, in every scenario
// where it is not first, and reads the profile with go tool pprof.
func profileLosses(ctx context.Context, o *options, rep *report, dir string) []profile {
	var out []profile
	for _, name := range rep.Params.Scenarios {
		sc, _ := scenarioByName(name)
		why := behind(rep.Summary, sc)
		if why == "" || ctx.Err() != nil {
			continue
		}
		po := *o
		po.profileDir = dir
		r := runOne(ctx, &po, sc, "gale", 0, false)
		fmt.Fprintf(os.Stderr, "bench: %-14s profile  gale     %s\n", name, progress(r))
		p := profile{Scenario: name, Why: why}
		if r.Err != "" {
			p.Err = r.Err
		}
		file := filepath.Join(dir, fmt.Sprintf("gale-%s-r0.pprof", name))
		if err := p.read(file); err != nil {
			p.Err = err.Error()
		}
		out = append(out, p)
	}
	return out
}

// read fills p from pprof -top output.
func (p *profile) read(file string) error {
	cmd := exec.Command("go", "tool", "pprof", "-top", "-nodecount=400", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("pprof: %v: %s", err, lastLine(stderr.String()))
	}
	return p.parse(b)
}

func (p *profile) parse(b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	table := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Showing nodes accounting for") {
			p.Total = strings.TrimPrefix(line, "Showing nodes accounting for ")
		}
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "flat" && f[1] == "flat%" {
			table = true
			continue
		}
		if !table || len(f) < 6 {
			continue
		}
		flat, err1 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cum, err2 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		fn := profFn{Name: strings.TrimSuffix(strings.Join(f[5:], " "), " (inline)"), FlatPct: flat, CumPct: cum}
		if strings.Contains(fn.Name, "Syscall") || strings.Contains(fn.Name, "syscall.syscall") {
			p.SyscallPct = max(p.SyscallPct, cum)
		}
		if strings.HasPrefix(fn.Name, "runtime.") {
			p.RuntimePct += flat
		}
		if len(p.Top) < 8 {
			p.Top = append(p.Top, fn)
		}
	}
	if !table {
		return fmt.Errorf("pprof printed no table")
	}
	return nil
}
