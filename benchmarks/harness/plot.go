package harness

import (
	"errors"
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// ErrNoData: the runs hold no figures for the picture asked for.
var ErrNoData = errors.New("harness: no figures to draw")

// Picture sizes.
const (
	picWidth  = 7 * vg.Inch
	picHeight = 4.5 * vg.Inch
)

// DrawPictures draws what a report shows best as pictures, beside base
// (a path without extension, e.g. "results/full-2026-11-29"): the
// durable-append latency CDF of every implementation at 4 KiB with one
// writer (base-durable-cdf-4KiB.svg), and durable records/s by number of
// writers per implementation, one picture per record size
// (base-durable-writers-<size>.svg). Pictures whose figures the runs
// lack are not drawn. It returns the files written.
func DrawPictures(base string, runs [][]CaseResult) ([]string, error) {
	var out []string
	name := base + "-durable-cdf-4KiB.svg"
	switch err := PlotLatencyCDF(name, runs, Case{Workload: WDurable, Size: 4096, Writers: 1}); {
	case err == nil:
		out = append(out, name)
	case !errors.Is(err, ErrNoData):
		return out, err
	}
	var sizes []int
	for _, crs := range runs {
		for _, cr := range crs {
			if cr.Case.Workload == WDurable && !slices.Contains(sizes, cr.Case.Size) {
				sizes = append(sizes, cr.Case.Size)
			}
		}
	}
	slices.Sort(sizes)
	for _, s := range sizes {
		name := base + "-durable-writers-" + strings.ReplaceAll(sizeName(s), " ", "") + ".svg"
		switch err := PlotWriters(name, runs, s); {
		case err == nil:
			out = append(out, name)
		case !errors.Is(err, ErrNoData):
			return out, err
		}
	}
	return out, nil
}

// PlotLatencyCDF draws the latency CDF of every implementation in case c
// (its latencies pooled over the runs), latency on a log axis, to path
// (its extension picks the format: .svg, .png, ...).
func PlotLatencyCDF(path string, runs [][]CaseResult, c Case) error {
	pooled := map[string]*Hist{}
	var names []string
	for _, crs := range runs {
		for _, r := range resultsOf(crs, c) {
			if r.Skip != "" || r.Lat.Count() == 0 {
				continue
			}
			if pooled[r.Impl] == nil {
				pooled[r.Impl] = new(Hist)
				names = append(names, r.Impl)
			}
			pooled[r.Impl].Merge(&r.Lat)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: %w", c, ErrNoData)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Durable append latency, %s records, %d writer(s): CDF (%s)", sizeName(c.Size), c.Writers, runsNote(len(runs)))
	p.X.Label.Text = "latency of one append (µs, log scale)"
	p.Y.Label.Text = "fraction of appends at or below"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top, p.Legend.Left = false, false
	p.Add(plotter.NewGrid())
	for i, n := range names {
		// A step function from 0: up at each bucket's bound.
		var xys plotter.XYs
		prev := 0.0
		for _, pt := range pooled[n].CDF() {
			us := max(float64(pt.Latency)/1e3, 1e-3) // a log axis takes no 0
			xys = append(xys, plotter.XY{X: us, Y: prev}, plotter.XY{X: us, Y: pt.Fraction})
			prev = pt.Fraction
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("cdf of %s: %w", n, err)
		}
		l.Color, l.Width = seriesColor(i), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(n, l)
	}
	return savePlot(p, path)
}

// errPoints is a series with error bars: the median of the runs, bars
// from their lowest to their highest.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// PlotWriters draws durable records/s against the number of writers, one
// line per implementation at record size size: the median over the runs,
// with a bar from the lowest to the highest run. Both axes are log scale.
func PlotWriters(path string, runs [][]CaseResult, size int) error {
	series := map[string]map[int][]float64{} // impl -> writers -> records/s per run
	var names []string
	for _, crs := range runs {
		for _, cr := range crs {
			if cr.Case.Workload != WDurable || cr.Case.Size != size {
				continue
			}
			for _, r := range cr.Results {
				if r.Skip != "" || r.RecordsPerSec() <= 0 {
					continue
				}
				if series[r.Impl] == nil {
					series[r.Impl] = map[int][]float64{}
					names = append(names, r.Impl)
				}
				series[r.Impl][cr.Case.Writers] = append(series[r.Impl][cr.Case.Writers], r.RecordsPerSec())
			}
		}
	}
	writers := map[int]bool{}
	for _, byWriters := range series {
		for w := range byWriters {
			writers[w] = true
		}
	}
	if len(writers) < 2 {
		// One writer count draws no line (and a log axis of one value
		// has no range).
		return fmt.Errorf("durable/size=%d, %d writer counts: %w", size, len(writers), ErrNoData)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Durable appends, %s records: records/s by writers (%s)", sizeName(size), runsNote(len(runs)))
	p.X.Label.Text = "writers (each appends, then waits until durable)"
	p.Y.Label.Text = "durable records/s (log scale)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	var ticks []plot.Tick
	for i, n := range names {
		pts := writerPoints(series[n])
		for _, xy := range pts.XYs {
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == xy.X }) {
				ticks = append(ticks, plot.Tick{Value: xy.X, Label: fmt.Sprint(xy.X)})
			}
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("writers of %s: %w", n, err)
		}
		l.Color, l.Width = seriesColor(i), vg.Points(1.5)
		s.Color, s.Shape = seriesColor(i), plotutil.Shape(i)
		p.Add(l, s)
		if len(runs) > 1 {
			bars, err := plotter.NewYErrorBars(pts)
			if err != nil {
				return fmt.Errorf("writers of %s: %w", n, err)
			}
			bars.Color = seriesColor(i)
			p.Add(bars)
		}
		p.Legend.Add(n, l, s)
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	return savePlot(p, path)
}

// writerPoints turns writers -> values into points at the median, with
// errors reaching the lowest and the highest value.
func writerPoints(byWriters map[int][]float64) errPoints {
	var ws []int
	for w := range byWriters {
		ws = append(ws, w)
	}
	slices.Sort(ws)
	var e errPoints
	for _, w := range ws {
		vs := slices.Sorted(slices.Values(byWriters[w]))
		med := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
		}
		e.XYs = append(e.XYs, plotter.XY{X: float64(w), Y: med})
		e.YErrors = append(e.YErrors, struct{ Low, High float64 }{med - vs[0], vs[len(vs)-1] - med})
	}
	return e
}

func runsNote(n int) string {
	if n == 1 {
		return "one run"
	}
	return fmt.Sprintf("%d runs", n)
}

func seriesColor(i int) color.Color { return plotutil.Color(i) }

func savePlot(p *plot.Plot, path string) error {
	if err := p.Save(picWidth, picHeight, path); err != nil {
		return fmt.Errorf("draw %s: %w", filepath.Base(path), err)
	}
	return nil
}
