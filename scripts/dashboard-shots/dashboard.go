package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// dashboard is the part of Grafana's dashboard JSON the renderer draws.
type dashboard struct {
	UID         string  `json:"uid"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Panels      []panel `json:"panels"`
	Templating  struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Collapsed   bool   `json:"collapsed"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	// Interval is the panel's "min interval" query option.
	Interval      string `json:"interval"`
	MaxDataPoints int    `json:"maxDataPoints"`
	FieldConfig   struct {
		Defaults struct {
			Unit       string     `json:"unit"`
			Decimals   *int       `json:"decimals"`
			Min        *float64   `json:"min"`
			Max        *float64   `json:"max"`
			Thresholds *threshold `json:"thresholds"`
		} `json:"defaults"`
		Overrides []json.RawMessage `json:"overrides"`
	} `json:"fieldConfig"`
	Options struct {
		ReduceOptions struct {
			Calcs []string `json:"calcs"`
		} `json:"reduceOptions"`
		ColorMode            string `json:"colorMode"`
		ShowThresholdMarkers *bool  `json:"showThresholdMarkers"`
		GraphMode            string `json:"graphMode"`
		Legend               *struct {
			DisplayMode string `json:"displayMode"`
			Placement   string `json:"placement"`
			ShowLegend  *bool  `json:"showLegend"`
			Calcs       []string
		} `json:"legend"`
	} `json:"options"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type threshold struct {
	Mode  string `json:"mode"`
	Steps []struct {
		Color string   `json:"color"`
		Value *float64 `json:"value"`
	} `json:"steps"`
}

type target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Instant      bool   `json:"instant"`
	Format       string `json:"format"`
	Hide         bool   `json:"hide"`
	Interval     string `json:"interval"`
}

type templateVar struct {
	Name       string          `json:"name"`
	Label      string          `json:"label"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Text  json.RawMessage `json:"text"`
		Value json.RawMessage `json:"value"`
	} `json:"current"`
}

func readDashboard(path string) (*dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.Title == "" || len(d.Panels) == 0 {
		return nil, fmt.Errorf("%s: no title or no panels", path)
	}
	return &d, nil
}

// layout returns the panels in drawing order: rows and the panels after
// them at the top level, and a row's own panels (a collapsed row in the
// JSON) after it, as Grafana shows them once the row is expanded.
func (d *dashboard) layout() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		if p.Type == "row" {
			out = append(out, p.Panels...)
		}
	}
	return out
}

// stringList reads a JSON string or array of strings (Grafana writes
// both for a variable's current value).
func stringList(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// labelValuesQuery matches Grafana's label_values(selector, label) and
// label_values(label).
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(?:(.*?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// resolveVars gives each template variable of d the text Grafana
// substitutes for its saved current value: a single value as it is, "All"
// as the variable's allValue (or every value of its query as a regex
// alternation, when it has none), several values as an alternation.
// explain says how each was resolved.
func resolveVars(ctx context.Context, api *promAPI, d *dashboard, from, to time.Time) (vars map[string]string, explain []string, err error) {
	vars = map[string]string{}
	for _, v := range d.Templating.List {
		cur := stringList(v.Current.Value)
		all := len(cur) == 0 || slicesContains(cur, "$__all")
		var values []string
		if v.Type == "query" {
			var q string
			if json.Unmarshal(v.Query, &q) != nil {
				var obj struct {
					Query string `json:"query"`
				}
				_ = json.Unmarshal(v.Query, &obj)
				q = obj.Query
			}
			m := labelValuesQuery.FindStringSubmatch(q)
			if m == nil {
				return nil, nil, fmt.Errorf("variable %s: query %q is not label_values(...), which is all the renderer resolves", v.Name, q)
			}
			values, err = api.labelValues(ctx, m[2], m[1], from, to)
			if err != nil {
				return nil, nil, fmt.Errorf("variable %s: %w", v.Name, err)
			}
			if len(values) == 0 {
				return nil, nil, fmt.Errorf("variable %s: %s has no values in the time range", v.Name, q)
			}
		} else if v.Type != "custom" && v.Type != "constant" && v.Type != "textbox" {
			return nil, nil, fmt.Errorf("variable %s: type %q not supported by the renderer", v.Name, v.Type)
		}
		var val string
		switch {
		case all && v.IncludeAll && v.AllValue != "":
			val = v.AllValue
			explain = append(explain, fmt.Sprintf("$%s = %s (All, the allValue; values %s)", v.Name, val, strings.Join(values, ", ")))
		case all && v.IncludeAll:
			val = regexAlternation(values)
			explain = append(explain, fmt.Sprintf("$%s = %s (All)", v.Name, val))
		case all:
			return nil, nil, fmt.Errorf("variable %s: no current value and no All option", v.Name)
		case len(cur) == 1:
			val = cur[0]
			explain = append(explain, fmt.Sprintf("$%s = %s", v.Name, val))
		default:
			val = regexAlternation(cur)
			explain = append(explain, fmt.Sprintf("$%s = %s", v.Name, val))
		}
		vars[v.Name] = val
	}
	return vars, explain, nil
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// regexAlternation is Grafana's Prometheus formatting of a multi-value
// variable: (a|b), each value regex-escaped.
func regexAlternation(values []string) string {
	if len(values) == 1 {
		return regexp.QuoteMeta(values[0])
	}
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = regexp.QuoteMeta(v)
	}
	return "(" + strings.Join(q, "|") + ")"
}

// Grafana's interval arithmetic (pkg/tsdb/intervalv2 and the Prometheus
// datasource): the panel's interval is the time range over the panel's
// width in pixels (its max data points), rounded to a "nice" duration and
// at least the datasource's scrape interval; it is also the query's step.
// $__rate_interval is max($__interval + scrape, 4 * scrape).

// roundInterval is Grafana's intervalv2.roundInterval.
func roundInterval(d time.Duration) time.Duration {
	ms := d.Milliseconds()
	steps := []struct {
		below int64
		to    time.Duration
	}{
		{10, time.Millisecond}, {15, 10 * time.Millisecond}, {35, 20 * time.Millisecond},
		{75, 50 * time.Millisecond}, {150, 100 * time.Millisecond}, {350, 200 * time.Millisecond},
		{750, 500 * time.Millisecond}, {1500, time.Second}, {3500, 2 * time.Second},
		{7500, 5 * time.Second}, {12500, 10 * time.Second}, {17500, 15 * time.Second},
		{25000, 20 * time.Second}, {45000, 30 * time.Second}, {90000, time.Minute},
		{210000, 2 * time.Minute}, {450000, 5 * time.Minute}, {750000, 10 * time.Minute},
		{1050000, 15 * time.Minute}, {1500000, 20 * time.Minute}, {2700000, 30 * time.Minute},
		{5400000, time.Hour}, {9000000, 2 * time.Hour}, {16200000, 3 * time.Hour},
		{24300000, 6 * time.Hour}, {64800000, 12 * time.Hour}, {129600000, 24 * time.Hour},
		{604800000, 7 * 24 * time.Hour},
	}
	for _, s := range steps {
		if ms < s.below {
			return s.to
		}
	}
	return 30 * 24 * time.Hour
}

// formatDuration is Grafana's intervalv2.FormatDuration: the largest
// whole unit.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 365*day:
		return fmt.Sprintf("%dy", d/(365*day))
	case d >= 7*day:
		return fmt.Sprintf("%dw", d/(7*day))
	case d >= day:
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second:
		return fmt.Sprintf("%ds", d/time.Second)
	case d >= time.Millisecond:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return "1ms"
}

// intervals returns $__interval (also the query step) and
// $__rate_interval for a panel maxDataPoints pixels wide over [from, to].
func intervals(from, to time.Time, maxDataPoints int, scrape time.Duration) (interval, rate time.Duration) {
	if maxDataPoints <= 0 {
		maxDataPoints = 1500
	}
	interval = roundInterval(to.Sub(from) / time.Duration(maxDataPoints))
	if calc := to.Sub(from) / time.Duration(maxDataPoints); calc < scrape {
		interval = scrape
	}
	// Prometheus's limit of 11,000 points a series.
	if safe := roundInterval(to.Sub(from) / 11000); safe > interval {
		interval = safe
	}
	rate = max(interval+scrape, 4*scrape)
	return interval, rate
}

// varRef matches $name, ${name}, ${name:format} and [[name]].
var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]`)

// interpolate replaces every variable in expr, failing on one it does not
// know (Grafana would send it to Prometheus as it is, and the query would
// fail).
func interpolate(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, "$"+name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variable %s in %s", strings.Join(missing, ", "), expr)
	}
	return out, nil
}

// builtins are Grafana's global variables for one panel's query.
func builtins(vars map[string]string, from, to time.Time, interval, rate time.Duration) map[string]string {
	out := map[string]string{}
	for k, v := range vars {
		out[k] = v
	}
	rng := to.Sub(from)
	out["__interval"] = formatDuration(interval)
	out["__interval_ms"] = strconv.FormatInt(interval.Milliseconds(), 10)
	out["__rate_interval"] = formatDuration(rate)
	out["__rate_interval_ms"] = strconv.FormatInt(rate.Milliseconds(), 10)
	out["__range"] = strconv.FormatInt(int64(rng.Seconds()), 10) + "s"
	out["__range_s"] = strconv.FormatInt(int64(rng.Seconds()), 10)
	out["__range_ms"] = strconv.FormatInt(rng.Milliseconds(), 10)
	return out
}

// promAPI is Prometheus's HTTP API.
type promAPI struct {
	base string
	hc   *http.Client
}

func (a *promAPI) get(ctx context.Context, path string, q url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("prometheus %s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("prometheus %s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

func (a *promAPI) labelValues(ctx context.Context, label, selector string, from, to time.Time) ([]string, error) {
	q := url.Values{"start": {unix(from)}, "end": {unix(to)}}
	if selector != "" {
		q.Set("match[]", selector)
	}
	var vals []string
	if err := a.get(ctx, "/api/v1/label/"+url.PathEscape(label)+"/values", q, &vals); err != nil {
		return nil, err
	}
	sort.Strings(vals)
	return vals, nil
}

// series is one line of a range query's answer: NaN where Prometheus gave
// no sample at a step or a NaN or infinite one (Grafana draws neither).
type series struct {
	labels map[string]string
	name   string // the legend
	values []float64
}

// queryRange runs expr over the steps from start to end (both multiples
// of step, as Grafana aligns them) and returns one series per answer
// series with a value (or NaN) per step.
func (a *promAPI) queryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]series, error) {
	q := url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := a.get(ctx, "/api/v1/query_range", q, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("query_range answered a %s, not a matrix", data.ResultType)
	}
	n := int(end.Sub(start)/step) + 1
	out := make([]series, 0, len(data.Result))
	for _, r := range data.Result {
		s := series{labels: r.Metric, values: make([]float64, n)}
		for i := range s.values {
			s.values[i] = math.NaN()
		}
		for _, v := range r.Values {
			ts, ok := v[0].(float64)
			str, ok2 := v[1].(string)
			if !ok || !ok2 {
				return nil, errors.New("query_range: a sample is not [time, \"value\"]")
			}
			i := int(math.Round((ts - float64(start.Unix())) / step.Seconds()))
			f, err := strconv.ParseFloat(str, 64)
			if err != nil || i < 0 || i >= n || math.IsInf(f, 0) {
				continue
			}
			s.values[i] = f
		}
		out = append(out, s)
	}
	return out, nil
}

// queryInstant runs expr at t and returns one single-value series per
// answer series.
func (a *promAPI) queryInstant(ctx context.Context, expr string, t time.Time) ([]series, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     json.RawMessage
	}
	if err := a.get(ctx, "/api/v1/query", url.Values{"query": {expr}, "time": {unix(t)}}, &data); err != nil {
		return nil, err
	}
	parse := func(v [2]any) float64 {
		str, _ := v[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err != nil || math.IsInf(f, 0) {
			return math.NaN()
		}
		return f
	}
	switch data.ResultType {
	case "vector":
		var res []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &res); err != nil {
			return nil, err
		}
		out := make([]series, len(res))
		for i, r := range res {
			out[i] = series{labels: r.Metric, values: []float64{parse(r.Value)}}
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, err
		}
		return []series{{labels: map[string]string{}, values: []float64{parse(v)}}}, nil
	}
	return nil, fmt.Errorf("query answered a %s", data.ResultType)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// legendFormat is Grafana's legend for a series: legendFormat with each
// {{label}} replaced; without one, the series' labels as a selector (the
// expression when there are none).
var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

func legendName(format, expr string, labels map[string]string) string {
	if format != "" && format != "__auto" {
		return legendLabel.ReplaceAllStringFunc(format, func(m string) string {
			return labels[legendLabel.FindStringSubmatch(m)[1]]
		})
	}
	name := labels["__name__"]
	var parts []string
	for _, k := range sortedKeys(labels) {
		if k != "__name__" {
			parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
		}
	}
	if name == "" && len(parts) == 0 {
		return expr
	}
	if len(parts) == 0 {
		return name
	}
	return name + "{" + strings.Join(parts, ", ") + "}"
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
