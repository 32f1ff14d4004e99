// Command scalechart draws docs/scale.md's charts and table from the
// results of docs/scale/run.sh (gale bench idle -json, one file per step):
//
//	cd bench && go run ./cmd/scalechart ../docs/scale
//
// It writes DIR/memory.svg (server RSS and the kernel's socket memory
// against connections), DIR/per-conn.svg (the same per connection: it
// must stay flat) and DIR/cpu.svg (the server's CPU while the connections
// are idle, keepalive on), and prints the Markdown table on stdout.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	chart "github.com/wcharczuk/go-chart/v2"
)

// result is the part of gale bench idle's JSON the page uses.
type result struct {
	Conns           int     `json:"conns"`
	Held            int     `json:"held"`
	Alive           int     `json:"alive"`
	Errors          int     `json:"errors"`
	DurationS       float64 `json:"duration_s"`
	ServerProcs     int     `json:"server_procs"`
	RSSBeforeKB     int64   `json:"server_rss_before_kb"`
	RSSAfterKB      int64   `json:"server_rss_after_kb"`
	RSSPerConn      float64 `json:"rss_per_conn_bytes"`
	RSSPerConnHeld  float64 `json:"rss_per_conn_held_bytes"`
	AnonPerConnHeld float64 `json:"anon_per_conn_held_bytes"`
	CPUPercent      float64 `json:"server_idle_cpu_percent"`
	RampPerS        float64 `json:"ramp_conns_per_s"`
	CheckS          float64 `json:"check_s"`
	AliveWithin10s  int     `json:"alive_within_10s"`
	SlabDeltaKB     int64   `json:"slab_delta_kb"`
	HostUsedDeltaKB int64   `json:"host_used_delta_kb"`
	Sockstat        struct {
		InUse int64 `json:"inuse"`
		MemKB int64 `json:"mem_kb"`
	} `json:"sockstat"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: scalechart DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var rs []result
	for _, f := range files {
		// Steps are named by their connection count (1000.json); the
		// restart and reload runs beside them are not steps.
		if _, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".json")); err != nil {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			fail(fmt.Errorf("%s: %w", f, err))
		}
		if r.Held > 0 {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b result) int { return a.Held - b.Held })
	if len(rs) < 2 {
		fail(fmt.Errorf("%s: fewer than two results", dir))
	}
	xs := make([]float64, len(rs))
	col := func(f func(result) float64) []float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = float64(r.Held)
			v[i] = f(r)
		}
		return v
	}
	mib := func(kb int64) float64 { return float64(kb) / 1024 }
	must(line(filepath.Join(dir, "memory.svg"), "memory against idle connections (MiB)", xs, map[string][]float64{
		"server RSS, all processes":      col(func(r result) float64 { return mib(r.RSSAfterKB) }),
		"server RSS growth":              col(func(r result) float64 { return mib(r.RSSAfterKB - r.RSSBeforeKB) }),
		"kernel slab growth (2 sockets)": col(func(r result) float64 { return mib(r.SlabDeltaKB) }),
	}))
	perConn := map[string][]float64{
		"server RSS growth / conn":              col(func(r result) float64 { return r.RSSPerConn }),
		"kernel slab growth / conn (both ends)": col(func(r result) float64 { return 1024 * float64(r.SlabDeltaKB) / float64(r.Held) }),
	}
	if !slices.ContainsFunc(rs, func(r result) bool { return r.AnonPerConnHeld == 0 }) {
		perConn["server private memory (RssAnon) growth / conn, end of hold"] = col(func(r result) float64 { return r.AnonPerConnHeld })
	}
	must(line(filepath.Join(dir, "per-conn.svg"), "bytes per connection (flat is the goal)", xs, perConn))
	must(line(filepath.Join(dir, "cpu.svg"), "server CPU while idle, keepalive on (% of one core)", xs, map[string][]float64{
		"server CPU %": col(func(r result) float64 { return r.CPUPercent }),
	}))
	fmt.Println("| connections | alive | server processes | server RSS MiB | RSS growth / conn (B) | … end of hold | RssAnon growth / conn, end of hold (B) | server CPU % (idle, pings) | ramp conns/s | kernel TCP sockets | kernel slab growth MiB | slab / conn (B) | check s | answered within 10 s |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	opt := func(v float64) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f", v)
	}
	for _, r := range rs {
		fmt.Printf("| %d | %d | %d | %.0f | %.0f | %s | %s | %.1f | %.0f | %d | %.0f | %.0f | %.1f | %d |\n",
			r.Held, r.Alive, r.ServerProcs, mib(r.RSSAfterKB), r.RSSPerConn, opt(r.RSSPerConnHeld), opt(r.AnonPerConnHeld), r.CPUPercent, r.RampPerS,
			r.Sockstat.InUse, mib(r.SlabDeltaKB), 1024*float64(r.SlabDeltaKB)/float64(r.Held), r.CheckS, r.AliveWithin10s)
	}
}

func line(path, title string, xs []float64, series map[string][]float64) error {
	g := chart.Chart{
		Title:      title,
		TitleStyle: chart.Style{FontSize: 11},
		Background: chart.Style{Padding: chart.Box{Top: 50, Left: 20, Right: 20, Bottom: 20}},
		Width:      640, Height: 360,
		XAxis: chart.XAxis{Name: "connections", Style: chart.Style{FontSize: 9},
			ValueFormatter: func(v any) string { return num(v.(float64)) }},
		YAxis: chart.YAxis{Style: chart.Style{FontSize: 9},
			ValueFormatter: func(v any) string { return num(v.(float64)) }},
	}
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		st := chart.Style{StrokeColor: chart.GetDefaultColor(i), StrokeWidth: 2, DotWidth: 3, DotColor: chart.GetDefaultColor(i)}
		g.Series = append(g.Series, chart.ContinuousSeries{Name: n, XValues: xs, YValues: series[n], Style: st})
	}
	g.Elements = []chart.Renderable{chart.LegendThin(&g)}
	var b bytes.Buffer
	if err := g.Render(chart.SVG, &b); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// num formats an axis value: 1000000 as 1M, 50000 as 50k.
func num(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scalechart:", err)
	os.Exit(1)
}
