package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainErr())
}

// params are the run's settings, as reported.
type params struct {
	Args      string   `json:"args"`
	Scenarios []string `json:"scenarios"`
	Impls     []string `json:"impls"`
	Rounds    int      `json:"rounds"`
	Warmup    string   `json:"warmup"`
	Duration  string   `json:"duration"`
	IdleConns int      `json:"idle_conns"`
	IdleFor   string   `json:"idle_window"`
	Broadcast int      `json:"broadcast_conns"`
	Started   string   `json:"started"`
	Took      string   `json:"took"`
	// Extras are the outside servers run (-extra), Absent those skipped
	// because their program is not there, with the reason.
	Extras []extraServer `json:"extras,omitempty"`
	Absent []absentExtra `json:"absent_extras,omitempty"`
}

// absentExtra is an outside server left out of the run.
type absentExtra struct {
	extraServer
	Why string `json:"why"`
}

// report is the whole run, as -json prints it.
type report struct {
	Machine  machine   `json:"machine"`
	Params   params    `json:"params"`
	Verdicts []verdict `json:"verdicts"`
	Summary  []summary `json:"summary"`
	Runs     []run     `json:"runs"`
	// Checks are the bench/load client's runs against gale, beside gale
	// bench's: is the load generator the bottleneck?
	Checks   []run     `json:"load_generator_checks,omitempty"`
	Profiles []profile `json:"profiles,omitempty"`
}

func mainErr() int {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.Name)
	}
	scenarioList := flag.String("scenarios", strings.Join(names, ","), "comma-separated scenarios: "+strings.Join(names, ", "))
	implList := flag.String("impls", defaultImpls, "comma-separated servers, run in this order (rotated each round); gale-http (Gale mounted on net/http) runs in handshake and idle only, gale-nats3 (three Gale servers joined through NATS) in publish only")
	rounds := flag.Int("rounds", 3, "rounds: each round runs every server once per scenario")
	duration := flag.Duration("duration", 3*time.Second, "measured window per echo and handshake run")
	warmup := flag.Duration("warmup", time.Second, "traffic before each measured window")
	idleConns := flag.Int("idle-conns", 18000, "connections for the idle scenario")
	idleWindow := flag.Duration("idle-window", 3*time.Second, "how long the idle scenario reads the server's CPU")
	bcastConns := flag.Int("broadcast-conns", 10000, "connections for the broadcast scenario")
	quick := flag.Bool("quick", false, "1 round, 1.5 s windows, 5,000 idle and broadcast connections, no docs or charts unless -out is given")
	noCheck := flag.Bool("no-check", false, "skip the load-generator check (the raw bench/load client against gale once per echo scenario)")
	profiles := flag.Bool("profiles", true, "profile gale once in every scenario where it is not first, and summarize the profiles in the docs")
	jsonOut := flag.Bool("json", false, "print the results as JSON on stdout instead of Markdown")
	out := flag.String("out", "", "Markdown file to write (default ../docs/benchmarks.md, none with -quick; \"-\" for none)")
	serverBin := flag.String("server", "", "prebuilt benchserver binary (default: build ./cmd/benchserver)")
	galeBin := flag.String("gale", "", "prebuilt gale binary, the load generator (default: build ../cmd/gale)")
	profileDir := flag.String("cpuprofile", "", "directory for a CPU profile of every server run (<impl>-<scenario>-r<round>.pprof)")
	verbose := flag.Bool("v", false, "pass the servers' stderr through")
	maxNoise := flag.Float64("max-noise", 40, "rerun an echo or handshake run (up to -retries times) when other processes used more than this much CPU in its window, in % of one core")
	retries := flag.Int("retries", 2, "reruns allowed per run for -max-noise")
	fromJSON := flag.String("report", "", "render a saved -json report as Markdown (to -out and stdout) instead of running")
	usePerf := flag.Bool("perf", false, "run every server under perf stat -I (Linux perf) to count all its system calls and epoll waits per\n"+
		"operation in the accounting (tracepoint counters, no tracing; skipped with a note when perf cannot count them);\n"+
		"the counting slows every server down, so a -perf run's timings are not comparable with a run without it")
	var extras extraFlags
	flag.Var(&extras, "extra", "an outside server, `NAME=COMMAND ARGS…`: an echo server on 127.0.0.1:{port} (any path) that accepts\n"+
		"permessage-deflate when {compress} is 1 (0 otherwise); run in the same rounds as the others, in the\n"+
		"scenarios an echo server can serve (not broadcast, not wss://). The command is split on spaces, no shell.\n"+
		"Repeatable; skipped with a note when its program is not there; runs where -impls names it, else last.\n"+
		"E.g. -extra 'uws=/path/to/uws-echo {port} {compress}' (uWebSockets' EchoServer example)")
	flag.Usage = usage
	flag.Parse()

	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["rounds"] {
			*rounds = 1
		}
		if !set["duration"] {
			*duration = 1500 * time.Millisecond
		}
		if !set["warmup"] {
			*warmup = 500 * time.Millisecond
		}
		if !set["idle-conns"] {
			*idleConns = 5000
		}
		if !set["broadcast-conns"] {
			*bcastConns = 5000
		}
		if !set["idle-window"] {
			*idleWindow = 2 * time.Second
		}
	}
	if *fromJSON != "" {
		return render(*fromJSON, *out)
	}
	sel := splitList(*scenarioList)
	for _, n := range sel {
		if _, ok := scenarioByName(n); !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q\n", n)
			return 2
		}
	}
	impls := splitList(*implList)
	var absent []absentExtra
	var present []extraServer
	for _, e := range extras {
		if why := e.missing(); why != "" {
			fmt.Fprintf(os.Stderr, "bench: note: outside server %s skipped: %s\n", e.Name, why)
			absent = append(absent, absentExtra{e, why})
			impls = slices.DeleteFunc(impls, func(s string) bool { return s == e.Name })
			continue
		}
		present = append(present, e)
		extraServers[e.Name] = e
		if !slices.Contains(impls, e.Name) {
			impls = append(impls, e.Name)
		}
	}
	for _, impl := range impls {
		if !slices.Contains(builtinImpls, impl) && !isExtra(impl) && !slices.ContainsFunc(absent, func(a absentExtra) bool { return a.Name == impl }) {
			fmt.Fprintf(os.Stderr, "bench: unknown server %q (built in: %s; or give it with -extra)\n", impl, strings.Join(builtinImpls, ", "))
			return 2
		}
	}
	if len(sel) == 0 || len(impls) == 0 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: need scenarios, impls and rounds ≥ 1")
		return 2
	}

	limit, err := raiseFileLimit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: raising the open-files limit:", err)
	}
	if (slices.Contains(sel, "idle") || slices.Contains(sel, "wss-idle")) && *idleConns+100 > int(limit) {
		fmt.Fprintf(os.Stderr, "bench: note: %d idle connections in one server process need more than the %d open files allowed here\n", *idleConns, limit)
	}

	modDir, err := moduleDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	outPath := *out
	if !set["out"] && !*quick {
		outPath = filepath.Join(modDir, "..", "docs", "benchmarks.md")
	}
	if outPath == "-" {
		outPath = ""
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	bin := *serverBin
	if bin == "" {
		tmp, err := os.MkdirTemp("", "galebench")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "benchserver")
		build := exec.Command("go", "build", "-o", bin, "./cmd/benchserver")
		build.Dir, build.Stdout, build.Stderr = modDir, os.Stderr, os.Stderr
		fmt.Fprintln(os.Stderr, "bench: building benchserver")
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: building benchserver:", err)
			return 1
		}
	}
	gale := *galeBin
	if gale == "" {
		tmp, err := os.MkdirTemp("", "galebench")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		gale = filepath.Join(tmp, "gale")
		build := exec.Command("go", "build", "-o", gale, "./cmd/gale")
		build.Dir, build.Stdout, build.Stderr = filepath.Join(modDir, ".."), os.Stderr, os.Stderr
		fmt.Fprintln(os.Stderr, "bench: building gale (the load generator)")
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: building gale:", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := &options{
		serverBin: bin, galeBin: gale, bcastConns: *bcastConns, warmup: *warmup, duration: *duration,
		idleConns: *idleConns, idleWindow: *idleWindow, profileDir: *profileDir, verbose: *verbose,
	}
	if *usePerf {
		if why := perfUsable(); why != "" {
			fmt.Fprintln(os.Stderr, "bench: note: -perf left out:", why)
		} else if dir, err := os.MkdirTemp("", "galeperf"); err == nil {
			defer os.RemoveAll(dir)
			o.perfDir = dir
		}
	}
	for _, n := range sel {
		if sc, _ := scenarioByName(n); sc.TLS && o.certs == nil {
			dir, err := os.MkdirTemp("", "galecerts")
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return 1
			}
			defer os.RemoveAll(dir)
			c, err := writeCerts(dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: certificate:", err)
				return 1
			}
			o.certs = &c
		}
	}
	rep := report{Machine: readMachine(bin)}
	start := time.Now()
	rep.Params = params{
		Args: strings.Join(os.Args[1:], " "), Scenarios: sel, Impls: impls, Rounds: *rounds,
		Warmup: warmup.String(), Duration: duration.String(), IdleConns: *idleConns, IdleFor: idleWindow.String(), Broadcast: *bcastConns,
		Started: start.UTC().Format(time.RFC3339), Extras: present, Absent: absent,
	}
	for _, name := range sel {
		sc, _ := scenarioByName(name)
		for round := 1; round <= *rounds && ctx.Err() == nil; round++ {
			for i := range impls {
				if ctx.Err() != nil {
					break
				}
				impl := impls[(i+round-1)%len(impls)] // rotate who goes first
				if !sc.runs(impl) {
					continue
				}
				r := runOne(ctx, o, sc, impl, round, false)
				for r.OtherCPUPct > *maxNoise && r.Retries < *retries && ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "bench: %-14s round %d/%d %-8s noisy, again: %s\n", name, round, *rounds, impl, progress(r))
					n := r.Retries + 1
					r = runOne(ctx, o, sc, impl, round, false)
					r.Retries = n
				}
				rep.Runs = append(rep.Runs, r)
				fmt.Fprintf(os.Stderr, "bench: %-14s round %d/%d %-8s %s\n", name, round, *rounds, impl, progress(r))
				// Right after gale's first run of an echo scenario: the same
				// load on a fresh gale server from the independent raw client.
				if impl == "gale" && round == 1 && sc.Kind == kindEcho && !sc.Compress && !sc.TLS && sc.Sweep == "" && !*noCheck && ctx.Err() == nil {
					c := runOne(ctx, o, sc, impl, round, true)
					rep.Checks = append(rep.Checks, c)
					fmt.Fprintf(os.Stderr, "bench: %-14s round %d/%d %-8s raw client: %s\n", name, round, *rounds, impl, progress(c))
				}
			}
		}
	}
	rep.summarize()
	if *profiles && ctx.Err() == nil {
		dir := *profileDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "galeprof")
			if err == nil {
				defer os.RemoveAll(tmp)
			}
			dir = tmp
		}
		rep.Profiles = profileLosses(ctx, o, &rep, dir)
	}
	rep.Params.Took = time.Since(start).Round(time.Second).String()
	chartDir := ""
	if outPath != "" {
		chartDir = filepath.Join(filepath.Dir(outPath), "bench")
		if err := writeCharts(chartDir, &rep); err != nil {
			fmt.Fprintln(os.Stderr, "bench: charts:", err)
		} else {
			fmt.Fprintln(os.Stderr, "bench: wrote charts in", chartDir)
		}
	}

	var md bytes.Buffer
	writeDoc(&md, &rep, chartDir != "")
	if outPath != "" {
		if err := os.WriteFile(outPath, md.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", outPath)
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, "bench: JSON:", err)
			return 1
		}
	} else {
		writeResults(os.Stdout, &rep, false)
		writeProfiles(os.Stdout, &rep)
	}
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// summarize fills in the summaries and verdicts from the runs.
func (rep *report) summarize() {
	rep.Summary = nil
	for _, name := range rep.Params.Scenarios {
		sc, _ := scenarioByName(name)
		for _, impl := range rep.Params.Impls {
			rep.Summary = append(rep.Summary, summarize(sc, impl, rep.Runs))
		}
	}
	rep.Verdicts = verdicts(rep.Summary)
}

// render rewrites the Markdown from a saved -json report.
func render(path, out string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", path+":", err)
		return 1
	}
	for _, e := range rep.Params.Extras {
		extraServers[e.Name] = e
	}
	rep.summarize()
	if out != "" && out != "-" {
		if err := writeCharts(filepath.Join(filepath.Dir(out), "bench"), &rep); err != nil {
			fmt.Fprintln(os.Stderr, "bench: charts:", err)
		}
		var md bytes.Buffer
		writeDoc(&md, &rep, true)
		if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	writeResults(os.Stdout, &rep, false)
	return 0
}

// usage is bench -h.
func usage() {
	w := flag.CommandLine.Output()
	fmt.Fprint(w, `Usage: go run . [flags]   (in bench/; or the built command, from bench/ or the repository root)

Runs Gale and the other Go WebSocket servers (gorilla, gws, nbio, gobwas), and any outside server
given with -extra, through the same scenarios in interleaved rounds, each server in a fresh process,
with gale bench as the one load generator, and writes the results (docs/benchmarks.md, charts).

For every server and scenario it reports the rate, latency, server CPU per message (or handshake)
and RSS, and an accounting of where the server's time goes per operation, read from /proc over the
measured window and summed over the server's process tree: user and system CPU time (utime,
stime), read- and write-family system calls (syscr, syscw of /proc/PID/io: read, write, readv,
writev…; recv, send, recvmsg, sendmsg and epoll calls are not counted there), and voluntary and
involuntary context switches.

An outside server is any WebSocket echo server that takes its port on the command line:

  go run . -quick -scenarios echo64,echo1k,echo16k,echo1k-deflate,handshake -extra 'uws=/path/to/uws-echo {port} {compress}'

runs uWebSockets' EchoServer example (built with a port argument and a permessage-deflate switch)
beside the others. Broadcast and the wss:// scenarios leave outside servers out, and say so.

Flags:
`)
	flag.PrintDefaults()
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// moduleDir finds the bench module from the working directory (the module
// itself, or the repository root above it).
func moduleDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for _, d := range []string{wd, filepath.Join(wd, "bench")} {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/galews/gale/bench\n")) {
			return d, nil
		}
	}
	return "", errors.New("run from the bench directory (or the repository root), or pass -server")
}

// progress is a one-line account of a run for stderr.
func progress(r run) string {
	var b strings.Builder
	switch {
	case r.Echo != nil:
		fmt.Fprintf(&b, "%s msg/s (%s), p99 %s µs, server %s µs CPU/msg (%s%% CPU), load gen %s%% CPU, others %s%%",
			num(r.Echo.MsgsPerSec), num(float64(r.ServerRSSKiB)/1024)+" MiB RSS", num(r.Echo.Latency.P99), num(r.CPUPerOpUS), num(r.ServerCPUPct), num(r.ClientCPUPct), num(r.OtherCPUPct))
		if r.Echo.Errors > 0 {
			fmt.Fprintf(&b, ", %d errors (%s)", r.Echo.Errors, r.Echo.FirstError)
		}
	case r.Handshake != nil:
		fmt.Fprintf(&b, "%s handshakes/s, server %s µs CPU/handshake (%s%% CPU), load gen %s%% CPU, others %s%%",
			num(r.Handshake.PerSec), num(r.CPUPerOpUS), num(r.ServerCPUPct), num(r.ClientCPUPct), num(r.OtherCPUPct))
		if r.Handshake.Errors > 0 {
			fmt.Fprintf(&b, ", %d errors (%s)", r.Handshake.Errors, r.Handshake.FirstError)
		}
	case r.Idle != nil:
		id := r.Idle
		fmt.Fprintf(&b, "%d held, %d alive, RSS %s → %s MiB = %s KiB/conn, %s KiB/conn after the idle window, idle CPU %v",
			id.Held, id.Alive, num(float64(id.RSSBeforeKiB)/1024), num(float64(id.RSSAfterKiB)/1024), num(id.KiBPerConn),
			num(id.KiBPerConnEnd), id.IdleCPU)
		if id.Errors > 0 {
			fmt.Fprintf(&b, ", %d errors (%s)", id.Errors, id.FirstError)
		}
	}
	if r.Err != "" {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString("error: " + r.Err)
	}
	return b.String()
}
