package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// chartFile names a chart of a scenario and metric, relative to docs/.
func chartFile(scenario, metric string) string {
	return "bench/" + scenario + "-" + metric + ".svg"
}

// galeColor marks gale's bar; the peers share a grey.
var (
	galeColor = drawing.ColorFromHex("1f77b4")
	peerColor = drawing.ColorFromHex("9e9e9e")
)

// writeCharts draws, per scenario, the median rate and server CPU per
// operation of every server (idle: RSS per connection), and for the
// connections sweep msgs/s and server RSS against connections, as SVG files
// in dir.
func writeCharts(dir string, rep *report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range rep.Params.Scenarios {
		sc, _ := scenarioByName(name)
		switch sc.Kind {
		case kindIdle:
			if err := barChart(dir, rep, sc, "rss", "server RSS per idle connection, KiB (lower is better)",
				func(s summary) float64 { k, _ := s.idleKiB(); return k.med() }); err != nil {
				return err
			}
		default:
			unit := map[kind]string{kindEcho: "msgs/s", kindBroadcast: "deliveries/s", kindHandshake: "handshakes/s"}[sc.Kind]
			op := map[kind]string{kindEcho: "message", kindBroadcast: "delivery", kindHandshake: "handshake"}[sc.Kind]
			if err := barChart(dir, rep, sc, "rate", unit+" (higher is better)",
				func(s summary) float64 { return s.Rate.med() }); err != nil {
				return err
			}
			if err := barChart(dir, rep, sc, "cpu", "server CPU µs per "+op+" (lower is better)",
				func(s summary) float64 { return s.CPUPerOp.med() }); err != nil {
				return err
			}
		}
	}
	if pts := sweepPoints(rep); len(pts) > 1 {
		if err := sweepChart(dir, rep, pts, "rate", "msgs/s", func(s summary) float64 { return s.Rate.med() }); err != nil {
			return err
		}
		if err := sweepChart(dir, rep, pts, "rss", "server RSS, MiB", func(s summary) float64 { return s.RSS.med() }); err != nil {
			return err
		}
	}
	return nil
}

func barChart(dir string, rep *report, sc scenario, metric, title string, val func(summary) float64) error {
	var bars []chart.Value
	for _, impl := range rep.Params.Impls {
		s, ok := find(rep.Summary, sc.Name, impl)
		v := val(s)
		if !ok || !sc.runs(impl) || math.IsNaN(v) {
			continue
		}
		c := peerColor
		if impl == "gale" {
			c = galeColor
		}
		bars = append(bars, chart.Value{Value: v, Label: fmt.Sprintf("%s %s", impl, num(v)),
			Style: chart.Style{FillColor: c, StrokeColor: c}})
	}
	if len(bars) == 0 {
		return nil
	}
	top := 0.0
	for _, b := range bars {
		top = max(top, b.Value)
	}
	g := chart.BarChart{
		Title:      sc.Name + ": " + title,
		TitleStyle: chart.Style{FontSize: 11},
		Background: chart.Style{Padding: chart.Box{Top: 40, Left: 10, Right: 10, Bottom: 40}},
		Width:      640, Height: 320, BarWidth: 80, BarSpacing: 30,
		XAxis: chart.Style{FontSize: 9},
		YAxis: chart.YAxis{Style: chart.Style{FontSize: 9}, ValueFormatter: func(v any) string { return num(v.(float64)) },
			Range: &chart.ContinuousRange{Min: 0, Max: top * 1.15}},
		Bars: bars,
	}
	return renderSVG(filepath.Join(dir, filepath.Base(chartFile(sc.Name, metric))), g.Render)
}

// sweepPoints are the scenarios of the connections sweep in the run,
// ordered by connections: echo1k and the sweep scenarios built on it.
func sweepPoints(rep *report) []scenario {
	var pts []scenario
	for _, sc := range scenarios {
		if (sc.Name == "echo1k" || sc.Sweep == "echo1k") && contains(rep.Params.Scenarios, sc.Name) {
			pts = append(pts, sc)
		}
	}
	return pts
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sweepChart(dir string, rep *report, pts []scenario, metric, title string, val func(summary) float64) error {
	g := chart.Chart{
		Title:      "connections sweep, echo 1 KiB: " + title,
		TitleStyle: chart.Style{FontSize: 11},
		Background: chart.Style{Padding: chart.Box{Top: 70, Left: 20, Right: 20, Bottom: 20}},
		Width:      640, Height: 360,
		XAxis: chart.XAxis{Name: "connections", Style: chart.Style{FontSize: 9},
			ValueFormatter: func(v any) string { return num(v.(float64)) }},
		YAxis: chart.YAxis{Name: title, Style: chart.Style{FontSize: 9},
			ValueFormatter: func(v any) string { return num(v.(float64)) }},
	}
	for i, impl := range rep.Params.Impls {
		var xs, ys []float64
		for _, sc := range pts {
			s, ok := find(rep.Summary, sc.Name, impl)
			if v := val(s); ok && !math.IsNaN(v) {
				xs, ys = append(xs, float64(sc.Conns)), append(ys, v)
			}
		}
		if len(xs) < 2 {
			continue
		}
		st := chart.Style{StrokeColor: chart.GetDefaultColor(i), StrokeWidth: 2, DotWidth: 3, DotColor: chart.GetDefaultColor(i)}
		if impl == "gale" {
			st.StrokeWidth = 4
		}
		g.Series = append(g.Series, chart.ContinuousSeries{Name: impl, XValues: xs, YValues: ys, Style: st})
	}
	if len(g.Series) == 0 {
		return nil
	}
	g.Elements = []chart.Renderable{chart.LegendThin(&g)}
	return renderSVG(filepath.Join(dir, "sweep-"+metric+".svg"), g.Render)
}

func renderSVG(path string, r func(chart.RendererProvider, io.Writer) error) error {
	var b bytes.Buffer
	if err := r(renderFormat, &b); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// renderFormat is SVG; tests may switch it.
var renderFormat = chart.SVG
