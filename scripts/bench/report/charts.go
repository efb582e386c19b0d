package main

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// throughputChart draws median MB/s per target, produce and consume side
// by side.
func throughputChart(ts []*target, path string) error {
	p := plot.New()
	p.Title.Text = "Throughput, 1 KiB records (median of runs)"
	p.Y.Label.Text = "MB/s"
	names := make([]string, len(ts))
	prod := make(plotter.Values, len(ts))
	cons := make(plotter.Values, len(ts))
	for i, t := range ts {
		names[i] = t.label
		prod[i] = zeroNaN(pick(t.produce, mbSec).med)
		cons[i] = zeroNaN(pick(t.consume, mbSec).med)
	}
	w := vg.Points(28)
	pb, err := plotter.NewBarChart(prod, w)
	if err != nil {
		return err
	}
	pb.Color = plotutil.Color(0)
	pb.LineStyle.Width = 0
	pb.Offset = -w / 2
	cb, err := plotter.NewBarChart(cons, w)
	if err != nil {
		return err
	}
	cb.Color = plotutil.Color(1)
	cb.LineStyle.Width = 0
	cb.Offset = w / 2
	p.Add(pb, cb, plotter.NewGrid())
	p.Legend.Add("produce (acks=all)", pb)
	p.Legend.Add("consume", cb)
	p.Legend.Top = true
	p.NominalX(names...)
	p.Y.Min = 0
	top := 0.0
	for i := range prod {
		top = math.Max(top, math.Max(prod[i], cons[i]))
	}
	p.Y.Max = top * 1.2 // room for the legend
	return p.Save(9*vg.Inch, 4.5*vg.Inch, path)
}

// nines maps a percentile to the chart's x axis: 90 → 1, 99 → 2, 99.9 → 3.
func nines(pct float64) float64 {
	const cap = 4.5 // 99.997%: where the maximum is drawn
	if pct >= 100 {
		return cap
	}
	return math.Min(cap, -math.Log10(1-pct/100))
}

type ninesTicks struct{}

func (ninesTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for _, t := range []struct {
		pct   float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}} {
		ts = append(ts, plot.Tick{Value: nines(t.pct), Label: t.label})
	}
	ts = append(ts, plot.Tick{Value: nines(100), Label: "max"})
	return ts
}

// cdfChart draws the latency distribution of each target's median
// fixed-rate run (by p99).
func cdfChart(ts []*target, path string) error {
	p := plot.New()
	p.Title.Text = "Produce latency at 10% of full speed (median run by p99)"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Tick.Marker = ninesTicks{}
	p.Add(plotter.NewGrid())
	for i, t := range ts {
		if len(t.rate) == 0 {
			continue
		}
		r := medianRun(t.rate, latOf(func(l *latency) float64 { return l.p99 }))
		if r.lat == nil {
			continue
		}
		var xys plotter.XYs
		for _, c := range r.lat.cdf {
			if math.IsNaN(c.ms) || c.ms <= 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: nines(c.pct), Y: c.ms})
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		c := plotutil.Color(i)
		l.Color, pts.Color = c, c
		l.Width = vg.Points(1.5)
		pts.Shape = plotutil.Shape(i)
		p.Add(l, pts)
		p.Legend.Add(t.label, l, pts)
	}
	// Bottom right: under the curves, which rise to the right.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(10)
	p.Legend.YOffs = vg.Points(10)
	p.X.Min = 0
	p.X.Max = nines(100) + 0.1
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
