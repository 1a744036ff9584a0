package bench

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart colours, as 0xRRGGBB.
const (
	colorP50    = 0x1f77b4
	colorP99    = 0xff7f0e
	colorOther  = 0x2ca02c
	colorGrey   = 0x707070
	colorPurple = 0x9467bd
	colorRed    = 0xd62728
)

func rgb(c uint32) color.Color {
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

// writeCharts writes ratios.svg (every ratio at the largest size) and, with
// more than one size, growth.svg (ratios against corpus size) under dir, and
// returns their paths.
func writeCharts(r *Report, dir string) ([]string, error) {
	if len(r.Stages) == 0 {
		return nil, nil
	}
	var out []string
	p, err := ratioChart(r)
	if err != nil {
		return nil, err
	}
	path := outPath(dir, "ratios.svg")
	if err := p.Save(11*vg.Inch, 5.5*vg.Inch, path); err != nil {
		return nil, fmt.Errorf("bench: chart: %w", err)
	}
	out = append(out, path)
	if len(r.Stages) > 1 {
		p, err := growthChart(r)
		if err != nil {
			return nil, err
		}
		path := outPath(dir, "growth.svg")
		if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
			return nil, fmt.Errorf("bench: chart: %w", err)
		}
		out = append(out, path)
	}
	return out, nil
}

// ratioChart is a bar chart of every ratio (blindex / bleve; lower is
// better) at the largest size, on a log scale with bars growing from parity
// (1): indexing time per document, size on disk, peak RSS, then p50 and p99
// of each query class, with the target lines.
func ratioChart(r *Report) (*plot.Plot, error) {
	s := r.Stages[len(r.Stages)-1]
	var names []string
	var other, p50, p99 []float64
	addOther := func(name string, v float64) {
		names = append(names, name)
		other, p50, p99 = append(other, v), append(p50, 0), append(p99, 0)
	}
	addOther("index time", ratio(1, s.Indexing.DocsPerSec.Ratio))
	addOther("size", s.SizeMB.Ratio)
	if m := r.Memory; len(m.Checkpoints) > 0 {
		v := m.FinalPeakMB.Ratio
		if m.Method == "in-process" {
			v = m.FinalAboveStartMB.Ratio
		}
		addOther("peak RSS", v)
	}
	for _, c := range s.Classes {
		names = append(names, c.Class)
		other, p50, p99 = append(other, 0), append(p50, c.P50.Ratio), append(p99, c.P99.Ratio)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("blindex / bleve at %d documents (log scale; below 1 blindex is better)", s.Docs)
	p.Y.Label.Text = "ratio blindex / bleve"
	w := vg.Points(12)
	for _, b := range []struct {
		vals   []float64
		col    uint32
		offset vg.Length
		label  string
	}{
		{other, colorOther, 0, "indexing time/doc, size, peak RSS (targets 1.0, 1.5, 1.0)"},
		{p50, colorP50, -w / 2, "query p50 (target 1.25)"},
		{p99, colorP99, w / 2, "query p99 (target 1.5)"},
	} {
		bars := &parityBars{vals: b.vals, width: w, offset: b.offset, color: rgb(b.col)}
		p.Add(bars)
		p.Legend.Add(b.label, bars)
	}
	lo, hi := 0.8, 1.6
	for _, vs := range [][]float64{other, p50, p99} {
		for _, v := range vs {
			if v > 0 && !math.IsInf(v, 0) {
				lo, hi = min(lo, v/1.15), max(hi, v*1.15)
			}
		}
	}
	for _, l := range []struct {
		y   float64
		col uint32
	}{{1, colorGrey}, {1.25, colorP50}, {1.5, colorP99}} {
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: l.y}, {X: float64(len(names)) - 0.5, Y: l.y}})
		if err != nil {
			return nil, fmt.Errorf("bench: chart: %w", err)
		}
		line.Color = rgb(l.col)
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ratioTicks{}
	p.Y.Min, p.Y.Max = lo, hi
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Legend.Left = true // bottom left: bars there grow upwards from 1
	p.Add(plotter.NewGrid())
	return p, nil
}

// parityBars draws bars from 1 to each value (none for 0), so that on a
// log scale a ratio of 2 and one of 1/2 are bars of the same length.
type parityBars struct {
	vals   []float64
	width  vg.Length
	offset vg.Length
	color  color.Color
}

func (b *parityBars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for i, v := range b.vals {
		if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			continue
		}
		x0 := trX(float64(i)) - b.width/2 + b.offset
		x1 := x0 + b.width
		y0, y1 := trY(1), trY(v)
		pts := []vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}}
		c.FillPolygon(b.color, c.ClipPolygonY(pts))
	}
}

func (b *parityBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = 1, 1
	for _, v := range b.vals {
		if v > 0 && !math.IsInf(v, 0) {
			ymin, ymax = min(ymin, v), max(ymax, v)
		}
	}
	return 0, float64(len(b.vals) - 1), ymin, ymax
}

func (b *parityBars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(b.color, c.ClipPolygonY(pts))
}

// ratioTicks marks ratios on a log scale: the targets and factors of 2 and
// 10 around parity.
type ratioTicks struct{}

func (ratioTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, v := range []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000} {
		if v >= lo && v <= hi {
			out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return out
}

// growthChart plots the main ratios against the corpus size.
func growthChart(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "blindex / bleve by corpus size (log scales; below 1 blindex is better)"
	p.X.Label.Text = "documents"
	p.Y.Label.Text = "ratio blindex / bleve"
	series := []struct {
		name string
		f    func(Stage) float64
		col  uint32
	}{
		{"indexing time/doc", func(s Stage) float64 { return ratio(1, s.Indexing.DocsPerSec.Ratio) }, colorOther},
		{"size on disk", func(s Stage) float64 { return s.SizeMB.Ratio }, colorGrey},
		{"median class p50", func(s Stage) float64 { return classQuantile(s, 0.5, false) }, colorP50},
		{"worst class p50", func(s Stage) float64 { return classQuantile(s, 1, false) }, colorPurple},
		{"median class p99", func(s Stage) float64 { return classQuantile(s, 0.5, true) }, colorP99},
	}
	lo, hi := 0.8, 1.6
	for _, sr := range series {
		var xys plotter.XYs
		for _, s := range r.Stages {
			v := sr.f(s)
			if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				continue
			}
			xys = append(xys, plotter.XY{X: float64(s.Docs), Y: v})
			lo, hi = min(lo, v/1.15), max(hi, v*1.15)
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("bench: chart: %w", err)
		}
		line.Color, points.Color = rgb(sr.col), rgb(sr.col)
		p.Add(line, points)
		p.Legend.Add(sr.name, line, points)
	}
	var xys plotter.XYs
	if len(r.Memory.Checkpoints) > 1 {
		for _, c := range r.Memory.Checkpoints {
			v := c.PeakMB.Ratio
			if r.Memory.Method == "in-process" {
				v = c.PeakAboveStartMB.Ratio
			}
			if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				continue
			}
			xys = append(xys, plotter.XY{X: float64(c.Docs), Y: v})
			lo, hi = min(lo, v/1.15), max(hi, v*1.15)
		}
	}
	if len(xys) > 0 {
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("bench: chart: %w", err)
		}
		line.Color, points.Color = rgb(colorRed), rgb(colorRed)
		p.Add(line, points)
		p.Legend.Add("peak RSS (indexing)", line, points)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: float64(r.Stages[0].Docs), Y: 1}, {X: float64(r.Stages[len(r.Stages)-1].Docs), Y: 1}})
	if err != nil {
		return nil, fmt.Errorf("bench: chart: %w", err)
	}
	one.Color = rgb(colorGrey)
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one, plotter.NewGrid())
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ratioTicks{}
	p.Y.Min, p.Y.Max = lo, hi
	p.X.Scale = plot.LogScale{}
	var sizes plot.ConstantTicks
	for _, s := range r.Stages {
		sizes = append(sizes, plot.Tick{Value: float64(s.Docs), Label: strconv.Itoa(s.Docs)})
	}
	p.X.Tick.Marker = sizes
	p.X.Min, p.X.Max = float64(r.Stages[0].Docs)/1.2, float64(r.Stages[len(r.Stages)-1].Docs)*1.2
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

// classQuantile is a quantile (0.5 median, 1 worst) over the classes of
// their p50 (or p99) ratio.
func classQuantile(s Stage, q float64, p99 bool) float64 {
	var vs []float64
	for _, c := range s.Classes {
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
