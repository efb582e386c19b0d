package main

import (
	"context"
	"fmt"
	"html"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

type renderOpts struct {
	prom, dashboards, out, work, chromium string
	from, to                              time.Time
	scrape                                time.Duration
	width, maxBytes                       int
}

// noDataError lists the targets without data: the workload does not
// exercise them, or the expression is wrong.
type noDataError struct{ problems []string }

func (e *noDataError) Error() string {
	return fmt.Sprintf("%d dashboard target(s) without data:\n  %s", len(e.problems), strings.Join(e.problems, "\n  "))
}

// Grafana's dashboard grid (GRID_CELL_HEIGHT, GRID_CELL_VMARGIN, 24
// columns) and dark theme.
const (
	cellH      = 30
	gutter     = 8
	pagePad    = 16
	headerH    = 96
	titleH     = 32
	bodyPad    = 8
	fontSize   = 12
	charW      = 0.6 * fontSize // DejaVu Sans and Liberation Sans stay within it on average
	colorBg    = "#111217"
	colorPanel = "#181b1f"
	colorText  = "#ccccdc"
	colorMuted = "rgba(204,204,220,0.65)"
	colorGrid  = "rgba(240,250,255,0.09)"
	colorLine  = "rgba(204,204,220,0.12)"
)

// palette is Grafana's classic palette (palette-classic), green first.
var palette = []string{"#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
	"#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
	"#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F", "#F29191", "#82B5D8", "#E5A8E2", "#AEA2E0"}

var namedColors = map[string]string{
	"green": "#73BF69", "red": "#F2495C", "yellow": "#FADE2A", "orange": "#FF9830",
	"blue": "#5794F2", "purple": "#B877D9", "text": colorText,
}

func colorOf(c string) string {
	if v, ok := namedColors[c]; ok {
		return v
	}
	return c
}

// page is one dashboard's rendered HTML.
type page struct {
	name, title string
	html        string
	height      int
}

func render(ctx context.Context, o renderOpts) error {
	api := &promAPI{base: strings.TrimRight(o.prom, "/"), hc: &http.Client{}}
	files, err := filepath.Glob(filepath.Join(o.dashboards, "*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no dashboards in %s: %v", o.dashboards, err)
	}
	sort.Strings(files)
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	var pages []page
	var problems []string
	for _, f := range files {
		d, err := readDashboard(f)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(strings.TrimSuffix(filepath.Base(f), ".json"), "streamhouse-")
		fmt.Printf("== %s (%s)\n", d.Title, filepath.Base(f))
		vars, explain, err := resolveVars(ctx, api, d, o.from, o.to)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		for _, e := range explain {
			fmt.Printf("   %s\n", e)
		}
		p, probs, err := drawDashboard(ctx, api, d, vars, o)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		for _, pr := range probs {
			problems = append(problems, d.Title+": "+pr)
		}
		p.name = name
		if err := os.WriteFile(filepath.Join(o.work, "dashboard-"+name+".html"), []byte(p.html), 0o644); err != nil {
			return err
		}
		pages = append(pages, p)
	}
	if len(problems) > 0 {
		return &noDataError{problems}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	for _, p := range pages {
		png := filepath.Join(o.out, "dashboard-"+p.name+".png")
		size, err := screenshot(ctx, o, filepath.Join(o.work, "dashboard-"+p.name+".html"), png, p.height)
		if err != nil {
			return fmt.Errorf("%s: %w", p.title, err)
		}
		fmt.Printf("wrote %s (%dx%d, %d KiB)\n", png, o.width, p.height, size>>10)
	}
	return nil
}

// geometry of the page.
type grid struct{ colW float64 }

func (g grid) rect(x, y, w, h int) (left, top, width, height float64) {
	left = pagePad + float64(x)*(g.colW+gutter)
	top = headerH + float64(y)*(cellH+gutter)
	width = float64(w)*g.colW + float64(w-1)*gutter
	height = float64(h*cellH + (h-1)*gutter)
	return
}

func drawDashboard(ctx context.Context, api *promAPI, d *dashboard, vars map[string]string, o renderOpts) (page, []string, error) {
	g := grid{colW: (float64(o.width) - 2*pagePad - 23*gutter) / 24}
	var body strings.Builder
	var problems []string
	bottom := 0.0
	for _, p := range d.layout() {
		left, top, width, height := g.rect(p.GridPos.X, p.GridPos.Y, p.GridPos.W, p.GridPos.H)
		bottom = math.Max(bottom, top+height)
		if p.Type == "row" {
			fmt.Fprintf(&body, `<div class="row" style="left:%.1fpx;top:%.1fpx;width:%.1fpx;height:%.1fpx">%s %s</div>`,
				left, top, width, height, chevron(p.Collapsed), html.EscapeString(p.Title))
			continue
		}
		panelHTML, probs, err := drawPanel(ctx, api, p, vars, o, width, height)
		if err != nil {
			return page{}, nil, fmt.Errorf("panel %q: %w", p.Title, err)
		}
		for _, pr := range probs {
			problems = append(problems, fmt.Sprintf("%q: %s", p.Title, pr))
		}
		fmt.Fprintf(&body, `<div class="panel" style="left:%.1fpx;top:%.1fpx;width:%.1fpx;height:%.1fpx"><div class="ptitle">%s</div>%s</div>`,
			left, top, width, height, html.EscapeString(p.Title), panelHTML)
	}
	height := int(math.Ceil(bottom)) + pagePad
	var varsHTML strings.Builder
	for _, v := range d.Templating.List {
		label := v.Label
		if label == "" {
			label = v.Name
		}
		text := strings.Join(stringList(v.Current.Text), " + ")
		fmt.Fprintf(&varsHTML, `<span class="var"><span class="vl">%s</span><span class="vv">%s</span></span>`, html.EscapeString(label), html.EscapeString(text))
	}
	rng := fmt.Sprintf("%s to %s UTC", o.from.Format("2006-01-02 15:04:05"), o.to.Format("15:04:05"))
	doc := fmt.Sprintf(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>%[1]s</title><style>
body{margin:0;background:%[2]s;color:%[3]s;font-family:Inter,"Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif;font-size:%[4]dpx;width:%[5]dpx;height:%[6]dpx;position:relative;overflow:hidden}
.head{position:absolute;left:%[7]dpx;right:%[7]dpx;top:12px;display:flex;justify-content:space-between;align-items:baseline}
.head h1{font-size:20px;font-weight:500;margin:0}
.muted{color:%[8]s}
.vars{position:absolute;left:%[7]dpx;right:%[7]dpx;top:52px;display:flex;justify-content:space-between;align-items:center}
.var{display:inline-flex;border:1px solid %[9]s;border-radius:2px;height:30px;line-height:30px;font-size:14px}
.vl{padding:0 8px;background:#22252b;border-right:1px solid %[9]s}.vv{padding:0 10px;background:%[10]s}
.row{position:absolute;font-size:16px;font-weight:500;line-height:30px}
.panel{position:absolute;background:%[10]s;border:1px solid %[9]s;border-radius:2px;box-sizing:border-box;overflow:hidden}
.ptitle{height:%[11]dpx;line-height:%[11]dpx;padding:0 %[12]dpx;font-size:14px;font-weight:500;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.legend{display:flex;flex-wrap:wrap;align-content:flex-start;gap:0 16px;padding:0 %[12]dpx;overflow:hidden}
.li{display:inline-flex;align-items:center;height:20px;white-space:nowrap}
.li i{display:inline-block;width:14px;height:4px;border-radius:2px;margin-right:6px}
.nodata{position:absolute;left:0;right:0;top:50%%;text-align:center;font-size:14px;color:%[8]s}
svg text{font-family:inherit}
</style></head><body>
<div class="head"><h1>%[1]s</h1><span class="muted">%[13]s</span></div>
<div class="vars"><span>%[14]s</span><span class="muted">Rendered by scripts/dashboard-shots.sh from a real run: Prometheus data, StreamHouse's renderer (not Grafana)</span></div>
%[15]s
</body></html>
`, html.EscapeString(d.Title), colorBg, colorText, fontSize, o.width, height, pagePad, colorMuted, colorLine, colorPanel,
		titleH, bodyPad, html.EscapeString(rng), varsHTML.String(), body.String())
	return page{title: d.Title, html: doc, height: height}, problems, nil
}

func chevron(collapsed bool) string {
	if collapsed {
		return "&#9656;"
	}
	return "&#9662;"
}

// panelData is the answer to every target of a panel.
type panelData struct {
	series  []series
	start   time.Time
	stepDur time.Duration
}

// query runs a panel's targets as Grafana would and returns its series
// and the targets without data.
func query(ctx context.Context, api *promAPI, p panel, vars map[string]string, o renderOpts, width float64) (panelData, []string, error) {
	maxPoints := p.MaxDataPoints
	if maxPoints == 0 {
		maxPoints = int(width) // Grafana's default: the panel's width in pixels
	}
	minInterval := o.scrape
	if p.Interval != "" {
		d, err := time.ParseDuration(p.Interval)
		if err != nil {
			return panelData{}, nil, fmt.Errorf("panel interval %q: %w", p.Interval, err)
		}
		minInterval = max(minInterval, d)
	}
	interval, rate := intervals(o.from, o.to, maxPoints, minInterval)
	// With a min interval on the panel Grafana still counts the scrape
	// interval of the datasource for $__rate_interval.
	rate = max(interval+o.scrape, 4*o.scrape)
	all := builtins(vars, o.from, o.to, interval, rate)
	start := o.from.Truncate(interval)
	end := o.to.Truncate(interval)
	pd := panelData{start: start, stepDur: interval}
	var problems []string
	for _, t := range p.Targets {
		if t.Hide {
			continue
		}
		instant := t.Instant || t.Format == "table"
		if instant && p.Type != "table" {
			return panelData{}, nil, fmt.Errorf("target %s: an instant query in a %s panel is not drawn by the renderer", t.RefID, p.Type)
		}
		expr, err := interpolate(t.Expr, all)
		if err != nil {
			return panelData{}, nil, fmt.Errorf("target %s: %w", t.RefID, err)
		}
		var ss []series
		if instant {
			ss, err = api.queryInstant(ctx, expr, o.to)
		} else {
			ss, err = api.queryRange(ctx, expr, start, end, interval)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("target %s: %s: %v", t.RefID, expr, err))
			continue
		}
		points := 0
		for i := range ss {
			ss[i].name = legendName(t.LegendFormat, expr, ss[i].labels)
			for _, v := range ss[i].values {
				if !math.IsNaN(v) {
					points++
				}
			}
		}
		switch {
		case len(ss) == 0:
			problems = append(problems, fmt.Sprintf("target %s: NO DATA: %s", t.RefID, expr))
		case points == 0:
			problems = append(problems, fmt.Sprintf("target %s: NO DATA (only NaN in %d series): %s", t.RefID, len(ss), expr))
		default:
			fmt.Printf("   ok  %-52q %s: %d series, %d points, step %s, $__rate_interval %s\n", p.Title, t.RefID, len(ss), points, formatDuration(interval), formatDuration(rate))
		}
		pd.series = append(pd.series, ss...)
	}
	for _, pr := range problems {
		fmt.Printf("   !!  %-52q %s\n", p.Title, pr)
	}
	return pd, problems, nil
}

func drawPanel(ctx context.Context, api *promAPI, p panel, vars map[string]string, o renderOpts, width, height float64) (string, []string, error) {
	if len(p.FieldConfig.Overrides) > 0 {
		return "", nil, fmt.Errorf("field overrides are not drawn by the renderer")
	}
	unit := p.FieldConfig.Defaults.Unit
	if _, err := format(unit, 0, 0); err != nil {
		return "", nil, err
	}
	bodyW, bodyH := width-2, height-2-titleH // inside the border, below the title
	draw, ok := map[string]func(panel, panelData, float64, float64) (string, error){
		"timeseries": func(p panel, pd panelData, w, h float64) (string, error) { return drawTimeseries(p, pd, o, w, h) },
		"stat":       drawStat,
		"gauge":      drawGauge,
		"table":      drawTable,
	}[p.Type]
	if !ok {
		return "", nil, fmt.Errorf("panel type %q is not drawn by the renderer (timeseries, stat, gauge and table are)", p.Type)
	}
	pd, probs, err := query(ctx, api, p, vars, o, width)
	if err != nil {
		return "", nil, err
	}
	s, err := draw(p, pd, bodyW, bodyH)
	return s, probs, err
}

func decimals(p panel) int {
	if p.FieldConfig.Defaults.Decimals != nil {
		return *p.FieldConfig.Defaults.Decimals
	}
	return -1
}

// legendItem estimates the width of one legend entry.
func legendItemW(name string) float64 { return 14 + 6 + float64(len([]rune(name)))*charW + 16 }

func drawTimeseries(p panel, pd panelData, o renderOpts, w, h float64) (string, error) {
	if lg := p.Options.Legend; lg != nil && (lg.DisplayMode == "table" || lg.Placement == "right" || len(lg.Calcs) > 0) {
		return "", fmt.Errorf("legend %s/%s with calcs %v is not drawn by the renderer (a bottom list is)", lg.DisplayMode, lg.Placement, lg.Calcs)
	}
	showLegend := true
	if lg := p.Options.Legend; lg != nil && (lg.DisplayMode == "hidden" || (lg.ShowLegend != nil && !*lg.ShowLegend)) {
		showLegend = false
	}
	// The legend: rows of entries, at most what leaves the plot 55% of
	// the body; the rest is summarised as "+N more".
	var legendHTML string
	legendH := 0.0
	if showLegend && len(pd.series) > 0 {
		maxRows := int(math.Max(1, math.Floor(h*0.45/20)))
		rows, x := 1, 0.0
		shown := 0
		avail := w - 2*bodyPad
		for _, s := range pd.series {
			iw := legendItemW(s.name)
			if x > 0 && x+iw > avail {
				rows++
				x = 0
			}
			if rows > maxRows {
				break
			}
			x += iw
			shown++
		}
		if shown < len(pd.series) && shown > 0 && x+legendItemW("+99 more") > avail {
			shown-- // room for the "+N more" entry
		}
		rows = min(rows, maxRows)
		var b strings.Builder
		for i, s := range pd.series[:shown] {
			fmt.Fprintf(&b, `<span class="li"><i style="background:%s"></i>%s</span>`, palette[i%len(palette)], html.EscapeString(s.name))
		}
		if shown < len(pd.series) {
			fmt.Fprintf(&b, `<span class="li muted">+%d more</span>`, len(pd.series)-shown)
		}
		legendH = float64(rows)*20 + 4
		legendHTML = fmt.Sprintf(`<div class="legend" style="height:%.0fpx">%s</div>`, legendH, b.String())
	}
	plotH := h - legendH - 4
	if len(pd.series) == 0 || allNaN(pd.series) {
		return fmt.Sprintf(`<div style="position:relative;height:%.0fpx"><div class="nodata">No data</div></div>`, h), nil
	}
	svg, err := plot(p, pd, o, w, plotH)
	if err != nil {
		return "", err
	}
	return svg + legendHTML, nil
}

func allNaN(ss []series) bool {
	for _, s := range ss {
		for _, v := range s.values {
			if !math.IsNaN(v) {
				return false
			}
		}
	}
	return true
}

// yRange is the value axis: the fixed min/max of the panel, else the
// data's range widened to whole ticks.
func yRange(p panel, ss []series, ticksWanted int) (lo, hi float64, ticks []float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, v := range s.values {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	// Flat data (float noise apart, as rates of a steady counter have)
	// would make ticks finer than float64 can step.
	if hi-lo <= 1e-9*math.Max(math.Abs(lo), math.Abs(hi)) {
		lo = hi
	}
	if lo == hi {
		switch {
		case lo == 0:
			lo, hi = 0, 1
		case lo > 0:
			lo, hi = 0, 2*hi
		default:
			lo, hi = 2*lo, 0
		}
	}
	if m := p.FieldConfig.Defaults.Min; m != nil {
		lo = *m
	}
	if m := p.FieldConfig.Defaults.Max; m != nil {
		hi = *m
	}
	// Positive data reaching down to half its maximum get an axis from
	// zero, as rates and counts read best.
	if lo > 0 && lo <= hi/2 && p.FieldConfig.Defaults.Min == nil {
		lo = 0
	}
	step := niceStep((hi - lo) / float64(max(ticksWanted, 1)))
	// Durations of a second or more tick at round times (30 s, 1 min, 5 min).
	if u := p.FieldConfig.Defaults.Unit; (u == "s" || u == "ms") && step > 0 {
		sec := (hi - lo) / float64(max(ticksWanted, 1))
		if u == "ms" {
			sec /= 1000
		}
		if sec >= 1 {
			for _, c := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400} {
				if c >= sec {
					sec = c
					break
				}
			}
			step = sec
			if u == "ms" {
				step = sec * 1000
			}
		}
	}
	// Binary units tick at round numbers of their unit (KiB, MiB, ...).
	if u := p.FieldConfig.Defaults.Unit; u == "bytes" || u == "Bps" || u == "binBps" {
		if m := math.Max(math.Abs(lo), math.Abs(hi)); m >= 1024 {
			scale := math.Pow(1024, math.Floor(math.Log(m)/math.Log(1024)))
			step = niceStep((hi-lo)/scale/float64(max(ticksWanted, 1))) * scale
		}
	}
	if p.FieldConfig.Defaults.Min == nil {
		lo = math.Floor(lo/step) * step
	}
	if p.FieldConfig.Defaults.Max == nil {
		hi = math.Ceil(hi/step) * step
	}
	first := math.Ceil(lo/step) * step
	for i := 0; i <= 100; i++ {
		t := first + float64(i)*step
		if t > hi+step*1e-9 {
			break
		}
		if math.Abs(t) < step*1e-9 {
			t = 0
		}
		ticks = append(ticks, t)
	}
	return lo, hi, ticks
}

// niceStep rounds a tick spacing up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag*(1+1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// timeStep picks the spacing of the time axis' labels.
func timeStep(rng time.Duration, maxLabels int) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
		30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		if int(rng/s) <= maxLabels {
			return s
		}
	}
	return 24 * time.Hour
}

func plot(p panel, pd panelData, o renderOpts, w, h float64) (string, error) {
	const xAxisH = 22
	plotTop := 6.0
	_, _, ticks := yRange(p, pd.series, int(math.Max(2, (h-xAxisH-plotTop)/45)))
	lo, hi := ticks[0], ticks[len(ticks)-1]
	if m := p.FieldConfig.Defaults.Min; m != nil {
		lo = *m
	}
	if m := p.FieldConfig.Defaults.Max; m != nil {
		hi = *m
	}
	labels, err := axisLabels(p.FieldConfig.Defaults.Unit, ticks)
	if err != nil {
		return "", err
	}
	if d := p.FieldConfig.Defaults.Decimals; d != nil {
		for i, t := range ticks {
			labels[i], _ = format(p.FieldConfig.Defaults.Unit, t, *d)
		}
	}
	maxLabel := 0
	for _, l := range labels {
		maxLabel = max(maxLabel, len([]rune(l)))
	}
	x0 := bodyPad + float64(maxLabel)*charW + 8
	x1 := w - bodyPad - 4
	y0, y1 := plotTop, h-xAxisH
	from, to := float64(o.from.Unix()), float64(o.to.Unix())
	xOf := func(t float64) float64 { return x0 + (t-from)/(to-from)*(x1-x0) }
	yOf := func(v float64) float64 { return y1 - (v-lo)/(hi-lo)*(y1-y0) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" style="display:block">`, w, h, w, h)
	clip := fmt.Sprintf("c%d", p.ID)
	fmt.Fprintf(&b, `<clipPath id="%s"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></clipPath>`, clip, x0, y0-1, x1-x0, y1-y0+2)
	for i, t := range ticks {
		y := yOf(t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>`, x0, x1, y, y, colorGrid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="%s" font-size="%d">%s</text>`, x0-6, y+4, colorMuted, fontSize, html.EscapeString(labels[i]))
	}
	rng := o.to.Sub(o.from)
	ts := timeStep(rng, int((x1-x0)/80))
	layout := "15:04"
	if ts < time.Minute {
		layout = "15:04:05"
	}
	for t := o.from.Truncate(ts); !t.After(o.to); t = t.Add(ts) {
		if t.Before(o.from) {
			continue
		}
		x := xOf(float64(t.Unix()))
		if x < x0+30 || x > x1-30 {
			continue // a label there would run into the value axis or out of the panel
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>`, x, x, y0, y1, colorGrid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" font-size="%d">%s</text>`, x, y1+16, colorMuted, fontSize, t.UTC().Format(layout))
	}
	fmt.Fprintf(&b, `<g clip-path="url(#%s)" fill="none" stroke-width="1" stroke-linejoin="round">`, clip)
	for i, s := range pd.series {
		color := palette[i%len(palette)]
		var d strings.Builder
		pen := false
		for j, v := range s.values {
			if math.IsNaN(v) {
				pen = false
				continue
			}
			t := float64(pd.start.Unix()) + float64(j)*pd.stepDur.Seconds()
			x, y := xOf(t), yOf(v)
			isolated := (j == 0 || math.IsNaN(s.values[j-1])) && (j == len(s.values)-1 || math.IsNaN(s.values[j+1]))
			if isolated {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`, x, y, color)
			}
			if pen {
				fmt.Fprintf(&d, "L%.1f %.1f", x, y)
			} else {
				fmt.Fprintf(&d, "M%.1f %.1f", x, y)
				pen = true
			}
		}
		if d.Len() > 0 {
			fmt.Fprintf(&b, `<path d="%s" stroke="%s"/>`, d.String(), color)
		}
	}
	b.WriteString(`</g></svg>`)
	return b.String(), nil
}

// reduce is a stat panel's calculation over one series.
func reduce(calc string, vs []float64) (float64, error) {
	var finite []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			finite = append(finite, v)
		}
	}
	if len(finite) == 0 {
		return math.NaN(), nil
	}
	switch calc {
	case "", "lastNotNull":
		return finite[len(finite)-1], nil
	case "last":
		return vs[len(vs)-1], nil
	case "firstNotNull":
		return finite[0], nil
	case "max":
		m := finite[0]
		for _, v := range finite {
			m = math.Max(m, v)
		}
		return m, nil
	case "min":
		m := finite[0]
		for _, v := range finite {
			m = math.Min(m, v)
		}
		return m, nil
	case "mean":
		s := 0.0
		for _, v := range finite {
			s += v
		}
		return s / float64(len(finite)), nil
	}
	return 0, fmt.Errorf("stat calculation %q is not one the renderer does", calc)
}

// thresholdColor is the color of the highest step at or below v; without
// thresholds, Grafana's default (green, red from 80).
func thresholdColor(p panel, v float64) string {
	th := p.FieldConfig.Defaults.Thresholds
	if th == nil || len(th.Steps) == 0 {
		if v >= 80 {
			return namedColors["red"]
		}
		return namedColors["green"]
	}
	c := th.Steps[0].Color
	for _, s := range th.Steps[1:] {
		if s.Value != nil && v >= *s.Value {
			c = s.Color
		}
	}
	return colorOf(c)
}

func drawStat(p panel, pd panelData, w, h float64) (string, error) {
	if len(pd.series) == 0 || allNaN(pd.series) {
		return fmt.Sprintf(`<div style="position:relative;height:%.0fpx"><div class="nodata">No data</div></div>`, h), nil
	}
	n := len(pd.series)
	cellW := w / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" style="display:block">`, w, h, w, h)
	for i, s := range pd.series {
		v, text, color, err := statValue(p, s)
		if err != nil {
			return "", err
		}
		switch p.Options.ColorMode {
		case "", "value":
		case "none":
			color = colorText
		default:
			return "", fmt.Errorf("stat colorMode %q is not drawn by the renderer", p.Options.ColorMode)
		}
		cx := cellW*float64(i) + cellW/2
		// The sparkline (graphMode area, Grafana's default) under the value.
		if p.Options.GraphMode != "none" && !math.IsNaN(v) {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, x := range s.values {
				if !math.IsNaN(x) {
					lo, hi = math.Min(lo, x), math.Max(hi, x)
				}
			}
			if hi == lo {
				lo -= 1
			}
			var d strings.Builder
			top, bot := h*0.5, h
			x0, xw := cellW*float64(i), cellW
			first := true
			lastX := 0.0
			for j, x := range s.values {
				if math.IsNaN(x) {
					continue
				}
				px := x0 + float64(j)/float64(max(len(s.values)-1, 1))*xw
				py := bot - (x-lo)/(hi-lo)*(bot-top)
				if first {
					fmt.Fprintf(&d, "M%.1f %.1f", px, bot)
					first = false
				}
				fmt.Fprintf(&d, "L%.1f %.1f", px, py)
				lastX = px
			}
			fmt.Fprintf(&d, "L%.1f %.1fZ", lastX, bot)
			fmt.Fprintf(&b, `<path d="%s" fill="%s" fill-opacity="0.18" stroke="%s" stroke-opacity="0.6" stroke-width="1"/>`, d.String(), color, color)
		}
		size := math.Min(h*0.5, cellW*0.8/(float64(len([]rune(text)))*0.62))
		size = math.Max(14, math.Min(size, 72))
		y := h*0.42 + size*0.35
		if n > 1 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" font-size="%d">%s</text>`, cx, h*0.42-size*0.55, colorText, fontSize, html.EscapeString(s.name))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" font-size="%.0f" font-weight="500">%s</text>`, cx, y, color, size, html.EscapeString(text))
	}
	b.WriteString(`</svg>`)
	return b.String(), nil
}

// statValue is the reduced value of a series and its text and color, for
// stat and gauge panels.
func statValue(p panel, s series) (v float64, text, color string, err error) {
	calc := ""
	if len(p.Options.ReduceOptions.Calcs) > 0 {
		calc = p.Options.ReduceOptions.Calcs[0]
	}
	v, err = reduce(calc, s.values)
	if err != nil {
		return 0, "", "", err
	}
	if math.IsNaN(v) {
		return v, "No data", colorMuted, nil
	}
	text, err = format(p.FieldConfig.Defaults.Unit, v, decimals(p))
	return v, text, thresholdColor(p, v), err
}

// drawGauge draws Grafana's gauge: a 240 degree arc from min to max
// (default 0 to 100) filled to the value in its threshold color, the
// thresholds as a thin outer band, the value in the middle.
func drawGauge(p panel, pd panelData, w, h float64) (string, error) {
	if len(pd.series) == 0 || allNaN(pd.series) {
		return fmt.Sprintf(`<div style="position:relative;height:%.0fpx"><div class="nodata">No data</div></div>`, h), nil
	}
	lo, hi := 0.0, 100.0
	if m := p.FieldConfig.Defaults.Min; m != nil {
		lo = *m
	}
	if m := p.FieldConfig.Defaults.Max; m != nil {
		hi = *m
	}
	n := len(pd.series)
	cellW := w / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" style="display:block">`, w, h, w, h)
	const sweep = 240.0
	point := func(cx, cy, r, frac float64) (float64, float64) {
		a := (90 + sweep/2 + frac*sweep) * math.Pi / 180 // from lower left, clockwise
		return cx + r*math.Cos(a), cy + r*math.Sin(a)
	}
	arc := func(cx, cy, r, f0, f1 float64, color string, width float64) {
		f0, f1 = math.Max(0, math.Min(1, f0)), math.Max(0, math.Min(1, f1))
		if f1 <= f0 {
			return
		}
		x0, y0 := point(cx, cy, r, f0)
		x1, y1 := point(cx, cy, r, f1)
		large := 0
		if (f1-f0)*sweep > 180 {
			large = 1
		}
		fmt.Fprintf(&b, `<path d="M%.1f %.1fA%.1f %.1f 0 %d 1 %.1f %.1f" fill="none" stroke="%s" stroke-width="%.1f"/>`, x0, y0, r, r, large, x1, y1, color, width)
	}
	for i, s := range pd.series {
		v, text, color, err := statValue(p, s)
		if err != nil {
			return "", err
		}
		top := 0.0
		if n > 1 {
			top = 18
			fmt.Fprintf(&b, `<text x="%.1f" y="14" text-anchor="middle" fill="%s" font-size="%d">%s</text>`, cellW*(float64(i)+0.5), colorText, fontSize, html.EscapeString(s.name))
		}
		r := math.Min(cellW*0.42, (h-top)*0.5)
		cx, cy := cellW*(float64(i)+0.5), top+(h-top)*0.55
		width := r * 0.18
		arc(cx, cy, r, 0, 1, "rgba(204,204,220,0.1)", width)
		if !math.IsNaN(v) {
			arc(cx, cy, r, 0, (v-lo)/(hi-lo), color, width)
		}
		if p.Options.ShowThresholdMarkers == nil || *p.Options.ShowThresholdMarkers {
			th := p.FieldConfig.Defaults.Thresholds
			steps := []struct {
				c    string
				from float64
			}{{"green", lo}, {"red", 80}}
			if th != nil && len(th.Steps) > 0 {
				steps = steps[:0]
				for j, st := range th.Steps {
					from := lo
					if j > 0 && st.Value != nil {
						from = *st.Value
					}
					steps = append(steps, struct {
						c    string
						from float64
					}{st.Color, from})
				}
			}
			for j, st := range steps {
				to := hi
				if j+1 < len(steps) {
					to = steps[j+1].from
				}
				arc(cx, cy, r+width*0.9, (st.from-lo)/(hi-lo), (to-lo)/(hi-lo), colorOf(st.c), width*0.3)
			}
		}
		size := math.Max(12, math.Min(r*0.5, r*1.4/(float64(len([]rune(text)))*0.62)))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" font-size="%.0f" font-weight="500">%s</text>`, cx, cy+size*0.35, color, size, html.EscapeString(text))
	}
	b.WriteString(`</svg>`)
	return b.String(), nil
}

// drawTable draws a table panel as Grafana shows a Prometheus answer in
// table format: a column per label, then the value (the last of a range
// query), a row per series, as many as fit.
func drawTable(p panel, pd panelData, w, h float64) (string, error) {
	if len(pd.series) == 0 || allNaN(pd.series) {
		return fmt.Sprintf(`<div style="position:relative;height:%.0fpx"><div class="nodata">No data</div></div>`, h), nil
	}
	keys := map[string]bool{}
	for _, s := range pd.series {
		for k := range s.labels {
			if k != "__name__" {
				keys[k] = true
			}
		}
	}
	var cols []string
	for k := range keys {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	var b strings.Builder
	fmt.Fprintf(&b, `<div style="height:%.0fpx;overflow:hidden;padding:0 %dpx"><table style="width:100%%;border-collapse:collapse">`, h, bodyPad)
	b.WriteString(`<tr>`)
	for _, c := range append(cols, "Value") {
		fmt.Fprintf(&b, `<th style="text-align:left;color:#6e9fff;font-weight:500;height:32px;border-bottom:1px solid %s">%s</th>`, colorLine, html.EscapeString(c))
	}
	b.WriteString(`</tr>`)
	rows := int((h - 32) / 28)
	for i, s := range pd.series {
		if i == rows-1 && len(pd.series) > rows {
			fmt.Fprintf(&b, `<tr><td class="muted" colspan="%d">+%d more rows</td></tr>`, len(cols)+1, len(pd.series)-i)
			break
		}
		b.WriteString(`<tr>`)
		for _, c := range cols {
			fmt.Fprintf(&b, `<td style="height:28px;border-bottom:1px solid %s">%s</td>`, colorLine, html.EscapeString(s.labels[c]))
		}
		text := ""
		for j := len(s.values) - 1; j >= 0; j-- {
			if !math.IsNaN(s.values[j]) {
				var err error
				if text, err = format(p.FieldConfig.Defaults.Unit, s.values[j], decimals(p)); err != nil {
					return "", err
				}
				break
			}
		}
		fmt.Fprintf(&b, `<td style="border-bottom:1px solid %s">%s</td></tr>`, colorLine, html.EscapeString(text))
	}
	b.WriteString(`</table></div>`)
	return b.String(), nil
}
