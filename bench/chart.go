package bench

import (
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The charts are SVG text written directly: a production binary links no
// plotting, font, LaTeX or PDF package for them.

// Chart colours.
const (
	colorP50    = "#1f77b4"
	colorP99    = "#ff7f0e"
	colorOther  = "#2ca02c"
	colorGrey   = "#707070"
	colorPurple = "#9467bd"
	colorRed    = "#d62728"
	colorBrown  = "#8c564b"
	colorPink   = "#e377c2"
)

// writeCharts writes ratios.svg (every ratio at the largest size) and, with
// more than one size, growth.svg (ratios against corpus size) under dir, and
// returns their paths.
func writeCharts(r *Report, dir string) ([]string, error) {
	if len(r.Stages) == 0 {
		return nil, nil
	}
	charts := []struct {
		name string
		svg  func(*Report) string
	}{{"ratios.svg", ratioChart}}
	if len(r.Stages) > 1 {
		charts = append(charts, struct {
			name string
			svg  func(*Report) string
		}{"growth.svg", growthChart})
	}
	var out []string
	for _, c := range charts {
		path := outPath(dir, c.name)
		if err := os.WriteFile(path, []byte(c.svg(r)), 0o644); err != nil {
			return nil, fmt.Errorf("bench: chart: %w", err)
		}
		out = append(out, path)
	}
	return out, nil
}

// svg builds an SVG document.
type svg struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&s.b, `<rect width="%g" height="%g" fill="white"/>`+"\n", w, h)
	return s
}

func (s *svg) line(x1, y1, x2, y2 float64, color string, width float64, dashed bool) {
	dash := ""
	if dashed {
		dash = ` stroke-dasharray="4 3"`
	}
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n", x1, y1, x2, y2, color, width, dash)
}

func (s *svg) rect(x, y, w, h float64, color string) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, color)
}

func (s *svg) circle(x, y, r float64, color string) {
	fmt.Fprintf(&s.b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"/>`+"\n", x, y, r, color)
}

func (s *svg) polyline(pts [][2]float64, color string) {
	var p []string
	for _, pt := range pts {
		p = append(p, fmt.Sprintf("%.1f,%.1f", pt[0], pt[1]))
	}
	fmt.Fprintf(&s.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(p, " "), color)
}

// text writes text anchored at (x, y); anchor is start, middle or end;
// rotate is in degrees.
func (s *svg) text(x, y float64, anchor string, rotate float64, size float64, t string) {
	tr := ""
	if rotate != 0 {
		tr = fmt.Sprintf(` transform="rotate(%g %.1f %.1f)"`, rotate, x, y)
	}
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%g"%s>%s</text>`+"\n", x, y, anchor, size, tr, html.EscapeString(t))
}

func (s *svg) String() string { return s.b.String() + "</svg>\n" }

// logAxis maps values on a log scale to pixels between p0 (at lo) and p1
// (at hi).
type logAxis struct{ lo, hi, p0, p1 float64 }

func (a logAxis) at(v float64) float64 {
	v = min(max(v, a.lo), a.hi)
	return a.p0 + (math.Log(v)-math.Log(a.lo))/(math.Log(a.hi)-math.Log(a.lo))*(a.p1-a.p0)
}

// ratioTicks returns the tick values between lo and hi: factors of 2, 5
// and 10 around parity (the targets are dashed lines).
func ratioTicks(lo, hi float64) []float64 {
	var out []float64
	for _, v := range []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000} {
		if v >= lo && v <= hi {
			out = append(out, v)
		}
	}
	return out
}

// valid reports whether v can be drawn on a log scale.
func valid(v float64) bool { return v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// yRange returns a log range holding 1, the targets and every valid value.
func yRange(vals []float64) (lo, hi float64) {
	lo, hi = 0.8, 2.2
	for _, v := range vals {
		if valid(v) {
			lo, hi = min(lo, v/1.15), max(hi, v*1.15)
		}
	}
	return lo, hi
}

// yGrid draws the y axis of a log ratio scale, its grid and target lines.
func (s *svg) yGrid(y logAxis, x0, x1 float64, title string) {
	for _, v := range ratioTicks(y.lo, y.hi) {
		py := y.at(v)
		s.line(x0, py, x1, py, "#e0e0e0", 1, false)
		s.text(x0-5, py+4, "end", 0, 11, strconv.FormatFloat(v, 'g', -1, 64))
	}
	for _, t := range []struct {
		v   float64
		col string
	}{{1, colorGrey}, {1.5, colorP99}, {2, colorRed}} {
		if t.v >= y.lo && t.v <= y.hi {
			s.line(x0, y.at(t.v), x1, y.at(t.v), t.col, 1, true)
		}
	}
	s.line(x0, y.p0, x0, y.p1, "black", 1, false)
	s.line(x0, y.p0, x1, y.p0, "black", 1, false)
	s.text(16, (y.p0+y.p1)/2, "middle", -90, 12, title)
}

// legend draws coloured labels in a column from (x, y).
func (s *svg) legend(x, y float64, items [][2]string) {
	for i, it := range items {
		py := y + float64(i)*16
		s.rect(x, py-9, 12, 10, it[1])
		s.text(x+17, py, "start", 0, 11, it[0])
	}
}

// bar is one group of bars of the ratio chart.
type bar struct {
	name string
	vals []float64 // one per series; 0 for none
}

// ratioChart is a bar chart of every ratio (blindex / bleve; lower is
// better) at the largest size, on a log scale with bars growing from parity
// (1), with the target lines.
func ratioChart(r *Report) string {
	s := r.Stages[len(r.Stages)-1]
	var bars []bar
	one := func(name string, v float64) { bars = append(bars, bar{name, []float64{v, 0, 0}}) }
	one("index time/doc", ratio(1, s.Indexing.DocsPerSec.Ratio))
	one("size on disk", s.SizeMB.Ratio)
	if sf := s.Steady; sf != nil {
		one("size vs steady bleve", sf.SizeMB.Ratio)
	}
	if m := r.Memory; len(m.Checkpoints) > 0 {
		v := m.Checkpoints[len(m.Checkpoints)-1].PeakMB.Ratio
		if m.Method == "in-process" {
			v = m.Checkpoints[len(m.Checkpoints)-1].PeakAboveStartMB.Ratio
		}
		one("peak RSS indexing", v)
	}
	if c := s.Cold; c != nil {
		one("peak RSS searching", c.PeakRSSMB.Ratio)
		one("cold open+1st query", c.OpenFirstQuerySeconds.Ratio)
	}
	if l := r.Load; l != nil {
		bars = append(bars, bar{"search under load", []float64{0, l.P50.Ratio, l.P99.Ratio}})
	}
	for _, c := range s.Classes {
		bars = append(bars, bar{c.Class, []float64{0, c.P50.Ratio, c.P99.Ratio}})
	}
	var all []float64
	for _, b := range bars {
		all = append(all, b.vals...)
	}
	lo, hi := yRange(all)
	const left, top, bottom, right = 60.0, 40.0, 190.0, 20.0
	w := max(700, left+right+float64(len(bars))*44)
	h := 600.0
	g := newSVG(w, h)
	g.text(w/2, 22, "middle", 0, 14, fmt.Sprintf("blindex / bleve at %d documents (log scale; below 1 blindex is better)", s.Docs))
	y := logAxis{lo: lo, hi: hi, p0: h - bottom, p1: top}
	g.yGrid(y, left, w-right, "ratio blindex / bleve")
	slot := (w - left - right) / float64(len(bars))
	colors := []string{colorOther, colorP50, colorP99}
	for i, b := range bars {
		cx := left + slot*(float64(i)+0.5)
		n := 0
		for _, v := range b.vals {
			if valid(v) {
				n++
			}
		}
		bw := min(14, slot*0.8/float64(max(1, n)))
		k := 0
		for j, v := range b.vals {
			if !valid(v) {
				continue
			}
			x := cx - bw*float64(n)/2 + bw*float64(k)
			y0, y1 := y.at(1), y.at(v)
			g.rect(x, min(y0, y1), bw, math.Max(math.Abs(y1-y0), 1), colors[j])
			k++
		}
		g.text(cx+4, h-bottom+8, "end", -90, 11, b.name)
	}
	g.legend(left+10, h-18-16*2, [][2]string{
		{"indexing time/doc, size, peak RSS, cold open + first query (targets 1.0, 1.25, 1.0, 2.0)", colorOther},
		{"query p50 (target 1.0; dashed lines at 1, 1.5 and 2)", colorP50},
		{"query p99 (target 1.5)", colorP99},
	})
	return g.String()
}

// series is one line of the growth chart.
type series struct {
	name  string
	color string
	pts   [][2]float64 // docs, ratio
}

// growthChart plots the main ratios against the corpus size, both on log
// scales.
func growthChart(r *Report) string {
	stageSeries := func(name, color string, f func(Stage) float64) series {
		sr := series{name: name, color: color}
		for _, s := range r.Stages {
			if v := f(s); valid(v) {
				sr.pts = append(sr.pts, [2]float64{float64(s.Docs), v})
			}
		}
		return sr
	}
	all := []series{
		stageSeries("indexing time/doc", colorOther, func(s Stage) float64 { return ratio(1, s.Indexing.DocsPerSec.Ratio) }),
		stageSeries("size on disk", colorGrey, func(s Stage) float64 { return s.SizeMB.Ratio }),
		stageSeries("median class p50", colorP50, func(s Stage) float64 { return classQuantile(s.Classes, 0.5, false) }),
		stageSeries("worst class p50", colorPurple, func(s Stage) float64 { return classQuantile(s.Classes, 1, false) }),
		stageSeries("median class p99", colorP99, func(s Stage) float64 { return classQuantile(s.Classes, 0.5, true) }),
		stageSeries("cold open + first query", colorBrown, func(s Stage) float64 {
			if s.Cold == nil {
				return 0
			}
			return s.Cold.OpenFirstQuerySeconds.Ratio
		}),
		stageSeries("peak RSS searching", colorPink, func(s Stage) float64 {
			if s.Cold == nil {
				return 0
			}
			return s.Cold.PeakRSSMB.Ratio
		}),
	}
	mem := series{name: "peak RSS indexing", color: colorRed}
	for _, c := range r.Memory.Checkpoints {
		v := c.PeakMB.Ratio
		if r.Memory.Method == "in-process" {
			v = c.PeakAboveStartMB.Ratio
		}
		if valid(v) {
			mem.pts = append(mem.pts, [2]float64{float64(c.Docs), v})
		}
	}
	all = append(all, mem)
	var vals []float64
	for _, sr := range all {
		for _, p := range sr.pts {
			vals = append(vals, p[1])
		}
	}
	lo, hi := yRange(vals)
	const left, top, bottom, right = 60.0, 40.0, 50.0, 200.0
	w, h := 860.0, 500.0
	g := newSVG(w, h)
	g.text((w-right+left)/2, 22, "middle", 0, 14, "blindex / bleve by corpus size (log scales; below 1 blindex is better)")
	y := logAxis{lo: lo, hi: hi, p0: h - bottom, p1: top}
	g.yGrid(y, left, w-right, "ratio blindex / bleve")
	first, last := float64(r.Stages[0].Docs), float64(r.Stages[len(r.Stages)-1].Docs)
	x := logAxis{lo: first / 1.2, hi: last * 1.2, p0: left, p1: w - right}
	for _, s := range r.Stages {
		px := x.at(float64(s.Docs))
		g.line(px, h-bottom, px, h-bottom+4, "black", 1, false)
		g.text(px, h-bottom+16, "middle", 0, 11, strconv.Itoa(s.Docs))
	}
	g.text((w-right+left)/2, h-12, "middle", 0, 12, "documents")
	var legend [][2]string
	for _, sr := range all {
		if len(sr.pts) == 0 {
			continue
		}
		var pts [][2]float64
		for _, p := range sr.pts {
			pts = append(pts, [2]float64{x.at(p[0]), y.at(p[1])})
		}
		if len(pts) > 1 {
			g.polyline(pts, sr.color)
		}
		for _, p := range pts {
			g.circle(p[0], p[1], 3, sr.color)
		}
		legend = append(legend, [2]string{sr.name, sr.color})
	}
	g.legend(w-right+12, top+10, legend)
	return g.String()
}

// classQuantile is a quantile (0.5 median, 1 worst) over the classes of
// their p50 (or p99) ratio.
func classQuantile(classes []ClassFigures, q float64, p99 bool) float64 {
	var vs []float64
	for _, c := range classes {
		if p99 {
			vs = append(vs, c.P99.Ratio)
		} else {
			vs = append(vs, c.P50.Ratio)
		}
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[int(math.Round(q*float64(len(vs)-1)))]
}
