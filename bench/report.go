package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// stat is a metric over rounds; N is 0 when no round measured it.
type stat struct {
	N   int     `json:"n"`
	Med float64 `json:"median"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

func statOf(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{N: len(s), Med: med, Min: s[0], Max: s[len(s)-1]}
}

// med is the median for display: NaN (shown as "—") when unmeasured.
func (s stat) med() float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return s.Med
}

// summary is one server in one scenario, over its rounds.
type summary struct {
	Scenario   string `json:"scenario"`
	Impl       string `json:"impl"`
	Runs       int    `json:"runs"`   // successful runs
	Failed     int    `json:"failed"` // runs that produced no result
	Errors     int    `json:"errors"` // load-generator errors over all runs
	FirstError string `json:"first_error,omitempty"`

	Rate      stat `json:"rate"` // messages or handshakes per second
	MBps      stat `json:"mb_per_sec"`
	CPUPerOp  stat `json:"server_cpu_per_op_us"`
	ServerPct stat `json:"server_cpu_pct"`
	ClientPct stat `json:"client_cpu_pct"`
	OtherPct  stat `json:"other_cpu_pct"`
	P50       stat `json:"p50_us"`
	P90       stat `json:"p90_us"`
	P99       stat `json:"p99_us"`
	MaxLat    stat `json:"max_us"`
	RSS       stat `json:"server_rss_mib"` // at the end of the window

	Held       stat `json:"held"`
	Alive      stat `json:"alive"`
	RSSBefore  stat `json:"rss_before_mib"`
	RSSAfter   stat `json:"rss_after_mib"`
	KiBPerConn stat `json:"kib_per_conn"`     // a second after the ramp
	KiBEnd     stat `json:"kib_per_conn_end"` // at the end of the idle window
	IdleCPUms  stat `json:"idle_cpu_ms"`

	// Where the server's time went per operation (see accounting).
	UserUS   stat `json:"user_us_per_op"`
	SysUS    stat `json:"sys_us_per_op"`
	Syscalls stat `json:"syscalls_per_op"` // read- and write-family, /proc/PID/io
	VolCS    stat `json:"voluntary_ctx_switches_per_op"`
	InvolCS  stat `json:"involuntary_ctx_switches_per_op"`
	AllCalls stat `json:"all_syscalls_per_op"` // -perf
	Epoll    stat `json:"epoll_waits_per_op"`  // -perf
}

// idleKiB is the idle scenario's RSS per connection: read at the end of
// the idle window, or a second after the ramp in a report from before
// that reading existed.
func (s summary) idleKiB() (st stat, when string) {
	if s.KiBEnd.N > 0 && s.KiBEnd.Med > 0 {
		return s.KiBEnd, "after the idle window"
	}
	return s.KiBPerConn, "a second after the ramp"
}

func summarize(sc scenario, impl string, runs []run) summary {
	s := summary{Scenario: sc.Name, Impl: impl}
	var rate, mbps, cpu, spct, cpct, opct, p50, p90, p99, pmax, held, alive, rb, ra, kib, kibEnd, idle, rss []float64
	var user, sys, calls, vcs, ics, all, epoll []float64
	note := func(n int, first string) {
		s.Errors += n
		if s.FirstError == "" {
			s.FirstError = first
		}
	}
	for _, r := range runs {
		if r.Scenario != sc.Name || r.Impl != impl {
			continue
		}
		if r.Err != "" && r.Idle == nil {
			s.Failed++
			note(0, r.Err)
			continue
		}
		s.Runs++
		var lat *latencyRef
		switch {
		case r.Echo != nil:
			rate = append(rate, r.Echo.MsgsPerSec)
			mbps = append(mbps, r.Echo.MBPerSec)
			note(r.Echo.Errors, r.Echo.FirstError)
			if r.ServerRSSKiB > 0 {
				rss = append(rss, float64(r.ServerRSSKiB)/1024)
			}
			lat = &latencyRef{r.Echo.Latency.P50, r.Echo.Latency.P90, r.Echo.Latency.P99, r.Echo.Latency.Max}
		case r.Handshake != nil:
			rate = append(rate, r.Handshake.PerSec)
			note(r.Handshake.Errors, r.Handshake.FirstError)
			lat = &latencyRef{r.Handshake.Latency.P50, r.Handshake.Latency.P90, r.Handshake.Latency.P99, r.Handshake.Latency.Max}
		case r.Idle != nil:
			id := r.Idle
			note(id.Errors+(id.Held-id.Alive), id.FirstError)
			if r.Err != "" {
				note(1, r.Err)
			}
			held = append(held, float64(id.Held))
			alive = append(alive, float64(id.Alive))
			rb = append(rb, float64(id.RSSBeforeKiB)/1024)
			ra = append(ra, float64(id.RSSAfterKiB)/1024)
			kib = append(kib, id.KiBPerConn)
			kibEnd = append(kibEnd, id.KiBPerConnEnd)
			idle = append(idle, float64(id.IdleCPU)/float64(time.Millisecond))
		}
		if a := r.Acct; a != nil {
			user, sys = append(user, a.UserUS), append(sys, a.SysUS)
			vcs, ics = append(vcs, a.VolCS), append(ics, a.InvolCS)
			if a.IO {
				calls = append(calls, a.Syscalls)
			}
			if a.Perf {
				all, epoll = append(all, a.AllSyscalls), append(epoll, a.EpollWaits)
			}
		}
		if lat != nil {
			if r.Ops > 0 {
				cpu = append(cpu, r.CPUPerOpUS)
			}
			spct = append(spct, r.ServerCPUPct)
			cpct = append(cpct, r.ClientCPUPct)
			opct = append(opct, r.OtherCPUPct)
			p50, p90, p99, pmax = append(p50, lat.p50), append(p90, lat.p90), append(p99, lat.p99), append(pmax, lat.max)
		}
	}
	s.Rate, s.MBps, s.CPUPerOp = statOf(rate), statOf(mbps), statOf(cpu)
	s.ServerPct, s.ClientPct, s.OtherPct = statOf(spct), statOf(cpct), statOf(opct)
	s.P50, s.P90, s.P99, s.MaxLat = statOf(p50), statOf(p90), statOf(p99), statOf(pmax)
	s.Held, s.Alive, s.RSSBefore, s.RSSAfter = statOf(held), statOf(alive), statOf(rb), statOf(ra)
	s.KiBPerConn, s.KiBEnd, s.IdleCPUms, s.RSS = statOf(kib), statOf(kibEnd), statOf(idle), statOf(rss)
	s.UserUS, s.SysUS, s.Syscalls, s.VolCS, s.InvolCS = statOf(user), statOf(sys), statOf(calls), statOf(vcs), statOf(ics)
	s.AllCalls, s.Epoll = statOf(all), statOf(epoll)
	return s
}

type latencyRef struct{ p50, p90, p99, max float64 }

// verdict is Gale against one target.
type verdict struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"` // Gale/gorilla, or Gale's absolute value
	Target   string  `json:"target"`
	Met      bool    `json:"met"`
	Ahead    string  `json:"msgs_vs_peers,omitempty"`
}

const baseline = "gorilla"

func verdicts(sums []summary) []verdict {
	var out []verdict
	for _, sc := range scenarios {
		t := sc.Target
		gale, ok1 := find(sums, sc.Name, "gale")
		base, ok2 := find(sums, sc.Name, baseline)
		if t == nil || !ok1 || gale.Runs == 0 || (!t.Absolute && (!ok2 || base.Runs == 0)) {
			continue
		}
		v := verdict{Scenario: sc.Name}
		switch t.Metric {
		case "cpu":
			if gale.CPUPerOp.N == 0 || base.CPUPerOp.Med <= 0 {
				continue
			}
			v.Metric = "server CPU per message, Gale/gorilla"
			if sc.Kind == kindHandshake {
				v.Metric = "server CPU per handshake, Gale/gorilla"
			}
			v.Value = gale.CPUPerOp.Med / base.CPUPerOp.Med
			v.Target, v.Met = fmt.Sprintf("≤ %.2fx", t.Max), v.Value <= t.Max
			v.Ahead = aheadOfPeers(sums, sc.Name, gale)
		case "rate":
			if base.Rate.Med <= 0 {
				continue
			}
			v.Metric = "handshakes/s, Gale/gorilla"
			v.Value = gale.Rate.Med / base.Rate.Med
			v.Target, v.Met = fmt.Sprintf("≥ %.2fx", t.Min), v.Value >= t.Min
		case "kib":
			// Judged on what the server keeps while its connections stay
			// idle (the end of the window), as a long-lived server would be.
			g, when := gale.idleKiB()
			b, _ := base.idleKiB()
			if g.N == 0 {
				continue
			}
			if !t.Absolute {
				if b.Med <= 0 {
					continue
				}
				v.Metric = "server RSS per idle connection " + when + ", Gale/gorilla"
				v.Value = g.Med / b.Med
				v.Target, v.Met = fmt.Sprintf("≤ %.2fx", t.Max), v.Value <= t.Max
				break
			}
			v.Metric = "server RSS per idle connection " + when + ", KiB"
			v.Value = g.Med
			v.Target, v.Met = fmt.Sprintf("≤ %.1f KiB", t.Max), v.Value <= t.Max
		}
		out = append(out, v)
	}
	return out
}

// aheadOfPeers says how Gale's msgs/s compares with the best other server.
func aheadOfPeers(sums []summary, name string, gale summary) string {
	best, bestImpl := 0.0, ""
	for _, s := range sums {
		if s.Scenario == name && isPeer(s.Impl) && s.Runs > 0 && s.Rate.Med > best {
			best, bestImpl = s.Rate.Med, s.Impl
		}
	}
	if bestImpl == "" || best <= 0 {
		return ""
	}
	word := "ahead of"
	if gale.Rate.Med <= best {
		word = "behind"
	}
	return fmt.Sprintf("%.2fx %s (%s best peer)", gale.Rate.Med/best, bestImpl, word)
}

func find(sums []summary, name, impl string) (summary, bool) {
	for _, s := range sums {
		if s.Scenario == name && s.Impl == impl {
			return s, true
		}
	}
	return summary{}, false
}

// Number formatting: three significant figures, thousands separated.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.Abs(v) >= 1000:
		return thousands(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func span(s stat) string {
	if s.N == 0 {
		return "—"
	}
	return num(s.Min) + "–" + num(s.Max)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// writeTables writes a Markdown table per scenario, and its charts when
// charts is set.
func writeTables(w io.Writer, sums []summary, names, impls []string, charts bool) {
	for _, name := range names {
		sc, _ := scenarioByName(name)
		base, _ := find(sums, name, baseline)
		fmt.Fprintf(w, "### %s — %s\n\n", sc.Name, sc.Title)
		if sc.Note != "" {
			fmt.Fprintf(w, "%s\n\n", sc.Note)
		}
		if note := extraNote(sc, impls); note != "" {
			fmt.Fprintf(w, "%s\n\n", note)
		}
		if !slices.ContainsFunc(impls, sc.runs) {
			fmt.Fprintf(w, "No server of this run serves this scenario.\n\n")
			continue
		}
		switch sc.Kind {
		case kindEcho, kindBroadcast:
			unit, op := "msgs/s", "msg"
			if sc.Kind == kindBroadcast {
				unit, op = "deliveries/s", "delivery"
			}
			fmt.Fprintf(w, "| server | %s | min–max | × gorilla | MB/s | p50 µs | p90 µs | p99 µs | max µs | server CPU µs/%s | min–max | × gorilla | server RSS MiB | server CPU %% | load gen CPU %% | others CPU %% | errors |\n", unit, op)
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
			for _, impl := range impls {
				if !sc.runs(impl) {
					continue
				}
				s, _ := find(sums, name, impl)
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					implCell(s), num(s.Rate.med()), span(s.Rate), ratio(s.Rate.med(), base.Rate.med()), num(s.MBps.med()),
					num(s.P50.med()), num(s.P90.med()), num(s.P99.med()), num(s.MaxLat.med()),
					num(s.CPUPerOp.med()), span(s.CPUPerOp), ratio(s.CPUPerOp.med(), base.CPUPerOp.med()),
					num(s.RSS.med()), num(s.ServerPct.med()), num(s.ClientPct.med()), num(s.OtherPct.med()), errCell(s))
			}
		case kindHandshake:
			fmt.Fprintln(w, "| server | handshakes/s | min–max | × gorilla | p50 µs | p99 µs | server CPU µs/handshake | min–max | × gorilla | server CPU % | load gen CPU % | others CPU % | errors |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
			for _, impl := range impls {
				if !sc.runs(impl) {
					continue
				}
				s, _ := find(sums, name, impl)
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					implCell(s), num(s.Rate.med()), span(s.Rate), ratio(s.Rate.med(), base.Rate.med()),
					num(s.P50.med()), num(s.P99.med()),
					num(s.CPUPerOp.med()), span(s.CPUPerOp), ratio(s.CPUPerOp.med(), base.CPUPerOp.med()),
					num(s.ServerPct.med()), num(s.ClientPct.med()), num(s.OtherPct.med()), errCell(s))
			}
		case kindIdle:
			fmt.Fprintln(w, "| server | held | alive after | RSS before MiB | RSS after ramp MiB | KiB/conn after ramp | min–max | × gorilla | KiB/conn after idle window | min–max | × gorilla | idle CPU ms | errors |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
			for _, impl := range impls {
				if !sc.runs(impl) {
					continue
				}
				s, _ := find(sums, name, impl)
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					implCell(s), num(s.Held.med()), num(s.Alive.med()), num(s.RSSBefore.med()), num(s.RSSAfter.med()),
					num(s.KiBPerConn.med()), span(s.KiBPerConn), ratio(s.KiBPerConn.med(), base.KiBPerConn.med()),
					num(s.KiBEnd.med()), span(s.KiBEnd), ratio(s.KiBEnd.med(), base.KiBEnd.med()),
					num(s.IdleCPUms.med()), errCell(s))
			}
		}
		fmt.Fprintln(w)
		writeVariants(w, sums, sc, impls)
		if charts {
			if sc.Kind == kindIdle {
				fmt.Fprintf(w, "![%s: RSS per connection](%s)\n\n", sc.Name, chartFile(sc.Name, "rss"))
			} else {
				fmt.Fprintf(w, "![%s: rate](%s) ![%s: server CPU per operation](%s)\n\n",
					sc.Name, chartFile(sc.Name, "rate"), sc.Name, chartFile(sc.Name, "cpu"))
			}
		}
	}
}

// writeVariants compares each variant in sc with the server it varies.
func writeVariants(w io.Writer, sums []summary, sc scenario, impls []string) {
	for _, impl := range impls {
		of, ok := variants[impl]
		if !ok || !sc.runs(impl) {
			continue
		}
		v, _ := find(sums, sc.Name, impl)
		base, _ := find(sums, sc.Name, of)
		switch sc.Kind {
		case kindIdle:
			fmt.Fprintf(w, "%s against %s: KiB/conn %s after the ramp, %s after the idle window.\n\n", impl, of,
				ratio(v.KiBPerConn.med(), base.KiBPerConn.med()), ratio(v.KiBEnd.med(), base.KiBEnd.med()))
		default:
			fmt.Fprintf(w, "%s against %s: rate %s, server CPU per operation %s.\n\n", impl, of,
				ratio(v.Rate.med(), base.Rate.med()), ratio(v.CPUPerOp.med(), base.CPUPerOp.med()))
		}
	}
}

// extraNote says which outside servers sc leaves out, and why.
func extraNote(sc scenario, impls []string) string {
	var out []string
	for _, impl := range impls {
		if isExtra(impl) && !sc.runs(impl) {
			out = append(out, impl)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("Outside server %s left out: %s.", strings.Join(out, ", "), extraSkip(sc))
}

// writeAccounting writes where each server's time went per operation.
func writeAccounting(w io.Writer, rep *report) {
	perf := false
	for _, s := range rep.Summary {
		perf = perf || s.AllCalls.N > 0
	}
	var rows []string
	for _, name := range rep.Params.Scenarios {
		sc, _ := scenarioByName(name)
		if sc.Kind == kindIdle {
			continue
		}
		op := map[kind]string{kindEcho: "msg", kindBroadcast: "delivery", kindHandshake: "handshake"}[sc.Kind]
		for _, impl := range rep.Params.Impls {
			s, ok := find(rep.Summary, name, impl)
			if !ok || !sc.runs(impl) || s.UserUS.N == 0 {
				continue
			}
			calls := num(s.Syscalls.med())
			if s.Syscalls.N == 0 {
				calls = "n/a"
			}
			row := fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", name, op, implCell(s),
				num(s.UserUS.med()), num(s.SysUS.med()), num(s.UserUS.med()+s.SysUS.med()), num(s.CPUPerOp.med()), calls,
				num(s.VolCS.med()), num(s.InvolCS.med()))
			if perf {
				row += fmt.Sprintf(" %s | %s |", num(s.AllCalls.med()), num(s.Epoll.med()))
			}
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "### Accounting — where the server's time goes, per message or handshake")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "From `/proc`, summed over the server's process tree, over the part of each measured window that")
	fmt.Fprintln(w, "surely lies inside it, divided by the operations in that stretch at the window's rate; medians over rounds.")
	fmt.Fprintln(w, "User and system time are `utime` and `stime` (10 ms ticks); syscalls are `syscr` + `syscw` of `/proc/PID/io`,")
	fmt.Fprintln(w, "the read- and write-family calls (read, write, readv, writev…): recv, send, recvmsg, sendmsg and the epoll")
	fmt.Fprintln(w, "calls are not counted there, so a server that uses recv/send shows fewer than it makes. Context switches are")
	fmt.Fprintln(w, "`voluntary_ctxt_switches` (the thread slept: blocked, waited) and `nonvoluntary_ctxt_switches` (preempted) of every thread.")
	fmt.Fprintln(w, "\"Window's CPU\" is the server CPU per operation of the results above, over the whole window: where user + sys")
	fmt.Fprintln(w, "strays far from it, the stretch read was short or unlike the rest of the window.")
	if perf {
		fmt.Fprintln(w, "All syscalls and epoll waits (epoll_wait, epoll_pwait) are counted by `perf stat -I` (-perf), which the servers ran under,")
		fmt.Fprintln(w, "over about the same stretch.")
	}
	fmt.Fprintln(w)
	head, rule := "| scenario | per | server | user µs | sys µs | user + sys µs | window's CPU µs | read+write syscalls | voluntary ctx switches | involuntary ctx switches |", "|---|---|---|--:|--:|--:|--:|--:|--:|--:|"
	if perf {
		head, rule = head+" all syscalls | epoll waits |", rule+"--:|--:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, r := range rows {
		fmt.Fprintln(w, r)
	}
	fmt.Fprintln(w)
}

func implCell(s summary) string {
	if s.Impl == "gale" {
		return "**gale**"
	}
	return s.Impl
}

func errCell(s summary) string {
	if s.Errors == 0 && s.Failed == 0 {
		return "0"
	}
	out := fmt.Sprint(s.Errors)
	if s.Failed > 0 {
		out += fmt.Sprintf(" (%d runs failed)", s.Failed)
	}
	return out
}

func writeVerdicts(w io.Writer, vs []verdict) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprintln(w, "| scenario | metric | Gale | target | met | msgs/s vs the best peer |")
	fmt.Fprintln(w, "|---|---|--:|---|---|---|")
	for _, v := range vs {
		val := fmt.Sprintf("%.2fx", v.Value)
		if strings.HasSuffix(v.Metric, ", KiB") { // an absolute target, not a ratio
			val = fmt.Sprintf("%.2f KiB", v.Value)
		}
		met := "no"
		if v.Met {
			met = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", v.Scenario, v.Metric, val, v.Target, met, cmpOr(v.Ahead, "—"))
	}
	fmt.Fprintln(w)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// writeErrors lists the first error of each server that had any.
func writeErrors(w io.Writer, sums []summary) {
	var lines []string
	for _, s := range sums {
		if s.FirstError != "" {
			lines = append(lines, fmt.Sprintf("- %s / %s: %s", s.Scenario, s.Impl, s.FirstError))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "First error per server and scenario:")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
		fmt.Fprintln(w)
	}
}

// writeSweep writes the connections sweep: msgs/s and server RSS of every
// server at each number of connections.
func writeSweep(w io.Writer, rep *report, charts bool) {
	pts := sweepPoints(rep)
	if len(pts) < 2 {
		return
	}
	fmt.Fprintln(w, "### Connections sweep — echo 1 KiB binary, 1 in flight per connection")
	fmt.Fprintln(w)
	head, rule := "| server |", "|---|"
	for _, sc := range pts {
		head += fmt.Sprintf(" msgs/s @ %s | RSS MiB @ %s | CPU µs/msg @ %s |", thousands(int64(sc.Conns)), thousands(int64(sc.Conns)), thousands(int64(sc.Conns)))
		rule += "--:|--:|--:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, impl := range rep.Params.Impls {
		if !pts[0].runs(impl) {
			continue
		}
		s0, _ := find(rep.Summary, pts[0].Name, impl)
		row := "| " + implCell(s0) + " |"
		for _, sc := range pts {
			s, _ := find(rep.Summary, sc.Name, impl)
			row += fmt.Sprintf(" %s | %s | %s |", num(s.Rate.med()), num(s.RSS.med()), num(s.CPUPerOp.med()))
		}
		fmt.Fprintln(w, row)
	}
	fmt.Fprintln(w)
	if charts {
		fmt.Fprintln(w, "![sweep: msgs/s](bench/sweep-rate.svg) ![sweep: server RSS](bench/sweep-rss.svg)")
		fmt.Fprintln(w)
	}
}

// writeChecks compares gale bench with the raw bench/load client on the
// same gale server configuration in the same run.
func writeChecks(w io.Writer, rep *report) {
	if len(rep.Checks) == 0 {
		return
	}
	fmt.Fprintln(w, "### Is the load generator the bottleneck?")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Right after gale's first-round run of each echo scenario, a fresh gale server gets the same load from")
	fmt.Fprintln(w, "a second, independent client: `bench/load` (raw TCP, a goroutine per connection, frames built once).")
	fmt.Fprintln(w, "A ratio near or above 1 means `gale bench` drives the server at least as hard as that client does.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | gale bench msgs/s | raw client msgs/s | gale bench ÷ raw | gale bench CPU % | raw client CPU % | server CPU µs/msg (gale bench / raw) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, c := range rep.Checks {
		var g *run
		for i := range rep.Runs {
			if r := &rep.Runs[i]; r.Scenario == c.Scenario && r.Impl == "gale" && r.Round == 1 {
				g = r
			}
		}
		if g == nil || g.Echo == nil || c.Echo == nil {
			fmt.Fprintf(w, "| %s | — | — | — | — | — | — |\n", c.Scenario)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s / %s |\n", c.Scenario, num(g.Echo.MsgsPerSec), num(c.Echo.MsgsPerSec),
			ratio(g.Echo.MsgsPerSec, c.Echo.MsgsPerSec), num(g.ClientCPUPct), num(c.ClientCPUPct), num(g.CPUPerOpUS), num(c.CPUPerOpUS))
	}
	fmt.Fprintln(w)
}

// writeProfiles summarizes gale's CPU profile in every scenario where it is
// not first.
func writeProfiles(w io.Writer, rep *report) {
	if len(rep.Profiles) == 0 {
		return
	}
	fmt.Fprintln(w, "## Where Gale is not first: CPU profiles")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "One extra run of gale per such scenario with `benchserver -cpuprofile`, read with `go tool pprof -top`.")
	fmt.Fprintln(w, "\"In system calls\" is the cumulative share of samples under the syscall entry points (read, write,")
	fmt.Fprintln(w, "writev, epoll_wait: mostly the kernel's loopback work); \"runtime\" is the flat share of `runtime.*` functions")
	fmt.Fprintln(w, "(scheduler, GC, memory).")
	fmt.Fprintln(w)
	for _, p := range rep.Profiles {
		fmt.Fprintf(w, "**%s** — %s.", p.Scenario, p.Why)
		if p.Err != "" {
			fmt.Fprintf(w, " Profile failed: %s\n\n", p.Err)
			continue
		}
		fmt.Fprintf(w, " Profile: %s; %.0f%% in system calls, %.0f%% runtime. Top by own time:", p.Total, p.SyscallPct, p.RuntimePct)
		for i, f := range p.Top {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s `%s` %.1f%%", sep, f.Name, f.FlatPct)
		}
		fmt.Fprintln(w, ".")
		if note := profileNotes[p.Scenario]; note != "" {
			fmt.Fprintln(w, note)
		}
		fmt.Fprintln(w)
	}
}
