//go:build cgo

package sql

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Golden queries: each answer is computed here in Go from the generated
// records, never by the engine.

const goldenTopic = "orders.v1-test"

type golden struct {
	query   string
	ordered bool // rows compared in order (else as a multiset)
	want    func(recs []rec) [][]any
}

// obj is a record's value as a JSON object, nil when it is not one.
func obj(r rec) map[string]any {
	if r.Value == nil || !utf8.Valid(r.Value) {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(r.Value, &m) != nil {
		return nil
	}
	return m
}

func count(recs []rec, f func(r rec) bool) [][]any {
	n := 0
	for _, r := range recs {
		if f(r) {
			n++
		}
	}
	return [][]any{{n}}
}

// keyOf is the key as the engine shows it: base64 when the key or the
// value is not UTF-8.
func keyOf(r rec) any {
	if r.Key == nil {
		return nil
	}
	if !utf8.Valid(r.Key) || !utf8.Valid(r.Value) {
		return base64.StdEncoding.EncodeToString(r.Key)
	}
	return string(r.Key)
}

// key is keyOf as a string ("" for null).
func key(r rec) string { s, _ := keyOf(r).(string); return s }

func price(r rec) (float64, bool) {
	m := obj(r)
	if m == nil {
		return 0, false
	}
	p, ok := m["price"].(float64)
	return p, ok
}

func category(r rec) any {
	if m := obj(r); m != nil {
		return m["category"]
	}
	return nil
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// groupCount is GROUP BY f(r) with COUNT(*).
func groupCount(recs []rec, f func(r rec) any) [][]any {
	m := map[any]int{}
	var order []any
	for _, r := range recs {
		k := f(r)
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k]++
	}
	var out [][]any
	for _, k := range order {
		out = append(out, []any{k, m[k]})
	}
	return out
}

const t0 = 1_767_225_600_000 // 2026-01-01T00:00:00Z, the first record's timestamp

func goldenQueries() []golden {
	q := func(s string) string { return strings.ReplaceAll(s, "$T", `"`+goldenTopic+`"`) }
	return []golden{
		{query: q(`SELECT count(*) FROM $T`), want: func(rs []rec) [][]any { return count(rs, func(rec) bool { return true }) }},
		{query: q(`SELECT count(*) FROM $T WHERE partition = 2`), want: func(rs []rec) [][]any { return count(rs, func(r rec) bool { return r.partition == 2 }) }},
		{query: q(`SELECT count(*) FROM $T WHERE partition IN (0, 3)`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.partition == 0 || r.partition == 3 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE "offset" BETWEEN 10 AND 20`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.offset >= 10 && r.offset <= 20 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE timestamp >= '2026-01-01T00:05:00Z'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.Timestamp >= t0+300_000 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE timestamp < 1767225700000`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.Timestamp < 1767225700000 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE timestamp BETWEEN '2026-01-01T00:01:00Z' AND '2026-01-01T00:02:00.000Z'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.Timestamp >= t0+60_000 && r.Timestamp <= t0+120_000 })
		}},
		{query: q(`SELECT count(key) FROM $T`), want: func(rs []rec) [][]any { return count(rs, func(r rec) bool { return r.Key != nil }) }},
		{query: q(`SELECT count(DISTINCT key) FROM $T`), want: func(rs []rec) [][]any {
			m := map[string]bool{}
			for _, r := range rs {
				if r.Key != nil {
					m[key(r)] = true
				}
			}
			return [][]any{{len(m)}}
		}},
		{query: q(`SELECT count(value) FROM $T`), want: func(rs []rec) [][]any { return count(rs, func(r rec) bool { return r.Value != nil }) }},
		{query: q(`SELECT key, count(*) FROM $T GROUP BY key`), want: func(rs []rec) [][]any { return groupCount(rs, keyOf) }},
		{query: q(`SELECT json_extract(value, '$.category') AS c, count(*) FROM $T GROUP BY c`), want: func(rs []rec) [][]any { return groupCount(rs, category) }},
		{query: q(`SELECT value->>'category', count(*) FROM $T GROUP BY 1`), want: func(rs []rec) [][]any { return groupCount(rs, category) }},
		{query: q(`SELECT json_extract(value, '$.category'), round(avg(json_extract(value, '$.price')), 6) FROM $T GROUP BY 1`), want: func(rs []rec) [][]any {
			sum, n := map[any]float64{}, map[any]int{}
			var order []any
			for _, r := range rs {
				c := category(r)
				if _, ok := n[c]; !ok {
					order = append(order, c)
					n[c] = 0
				}
				if p, ok := price(r); ok {
					sum[c] += p
					n[c]++
				}
			}
			var out [][]any
			for _, c := range order {
				if n[c] == 0 {
					out = append(out, []any{c, nil})
				} else {
					out = append(out, []any{c, round6(sum[c] / float64(n[c]))})
				}
			}
			return out
		}},
		{query: q(`SELECT key, count(*) AS n FROM $T GROUP BY key HAVING count(*) > 80`), want: func(rs []rec) [][]any {
			var out [][]any
			for _, g := range groupCount(rs, keyOf) {
				if g[1].(int) > 80 {
					out = append(out, g)
				}
			}
			return out
		}},
		{query: q(`SELECT sum(json_extract(value, '$.price')) FROM $T`), want: func(rs []rec) [][]any {
			s := 0.0
			for _, r := range rs {
				if p, ok := price(r); ok {
					s += p
				}
			}
			return [][]any{{s}}
		}},
		{query: q(`SELECT min(json_extract(value, '$.price')), max(value->'price') FROM $T`), want: func(rs []rec) [][]any {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, r := range rs {
				if p, ok := price(r); ok {
					lo, hi = min(lo, p), max(hi, p)
				}
			}
			return [][]any{{lo, hi}}
		}},
		{query: q(`SELECT count(*) FROM $T WHERE value->>'category' = 'books'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return category(r) == "books" })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE json_extract(value, '$.category') = 'games'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return category(r) == "games" })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE json_extract(value, '$.nested.a.b[0]') = 3`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool {
				m := obj(r)
				return m != nil && m["id"].(float64) >= 0 && int(m["id"].(float64))%5 == 3
			})
		}},
		{query: q(`SELECT count(*) FROM $T WHERE json_extract(value, '$.opt') IS NULL`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { m := obj(r); return m == nil || m["opt"] == nil })
		}},
		{query: q(`SELECT value->>'opt' AS o, count(*) FROM $T GROUP BY o`), want: func(rs []rec) [][]any {
			return groupCount(rs, func(r rec) any {
				if m := obj(r); m != nil {
					return m["opt"]
				}
				return nil
			})
		}},
		{query: q(`SELECT count(*) FROM $T WHERE lower(json_extract(value, '$.category')) = 'tools'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return category(r) == "tools" })
		}},
		{query: q(`SELECT upper(value->>'category') AS u, count(*) FROM $T WHERE value->>'category' IS NOT NULL GROUP BY u`), want: func(rs []rec) [][]any {
			var out [][]any
			for _, g := range groupCount(rs, category) {
				if g[0] != nil {
					out = append(out, []any{strings.ToUpper(g[0].(string)), g[1]})
				}
			}
			return out
		}},
		{query: q(`SELECT length(key), count(*) FROM $T GROUP BY 1`), want: func(rs []rec) [][]any {
			return groupCount(rs, func(r rec) any {
				if r.Key == nil {
					return nil
				}
				return len(key(r))
			})
		}},
		{query: q(`SELECT substr(key, 2, 1) AS d, count(*) FROM $T WHERE key IS NOT NULL GROUP BY d`), want: func(rs []rec) [][]any {
			var out [][]any
			for _, g := range groupCount(rs, keyOf) {
				if g[0] != nil {
					out = append(out, []any{g[0].(string)[1:2], g[1]})
				}
			}
			return mergeCounts(out)
		}},
		{query: q(`SELECT abs(-"offset"), round("offset" / 4.0, 1) FROM $T WHERE partition = 1 AND "offset" = 6`), want: func([]rec) [][]any {
			return [][]any{{6, 1.5}}
		}},
		{query: q(`SELECT CASE WHEN json_extract(value, '$.price') > 25 THEN 'hi' WHEN json_extract(value, '$.price') IS NULL THEN 'none' ELSE 'lo' END AS b, count(*) FROM $T GROUP BY b`), want: func(rs []rec) [][]any {
			return groupCount(rs, func(r rec) any {
				p, ok := price(r)
				switch {
				case !ok:
					return "none"
				case p > 25:
					return "hi"
				}
				return "lo"
			})
		}},
		{query: q(`SELECT sum(CAST(json_extract(value, '$.id') AS INTEGER)) FROM $T`), want: func(rs []rec) [][]any {
			s := 0
			for _, r := range rs {
				if m := obj(r); m != nil {
					s += int(m["id"].(float64))
				}
			}
			return [][]any{{s}}
		}},
		{query: q(`SELECT COALESCE(key, 'none') AS k, count(*) FROM $T GROUP BY k`), want: func(rs []rec) [][]any {
			return groupCount(rs, func(r rec) any {
				if r.Key == nil {
					return "none"
				}
				return key(r)
			})
		}},
		{query: q(`SELECT count(*) FROM $T WHERE key LIKE 'k1%'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.Key != nil && strings.HasPrefix(key(r), "k1") })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE key ILIKE 'K2'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return key(r) == "k2" })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE key NOT IN ('k1', 'k2')`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.Key != nil && key(r) != "k1" && key(r) != "k2" })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE key IS NULL`), want: func(rs []rec) [][]any { return count(rs, func(r rec) bool { return r.Key == nil }) }},
		{query: q(`SELECT count(*) FROM $T WHERE key IS NOT NULL AND partition = 1`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.Key != nil && r.partition == 1 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE NOT (partition = 0)`), want: func(rs []rec) [][]any { return count(rs, func(r rec) bool { return r.partition != 0 }) }},
		{query: q(`SELECT count(*) FROM $T WHERE partition = 0 OR "offset" < 5`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.partition == 0 || r.offset < 5 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE partition <> 3 AND partition != 2`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.partition < 2 })
		}},
		{query: q(`SELECT DISTINCT partition FROM $T`), want: func([]rec) [][]any { return [][]any{{0}, {1}, {2}, {3}} }},
		{query: q(`SELECT "offset" FROM $T WHERE partition = 2 ORDER BY "offset" DESC LIMIT 3`), ordered: true, want: func(rs []rec) [][]any {
			n := count(rs, func(r rec) bool { return r.partition == 2 })[0][0].(int)
			return [][]any{{n - 1}, {n - 2}, {n - 3}}
		}},
		{query: q(`SELECT timestamp FROM $T ORDER BY timestamp LIMIT 2 OFFSET 3`), ordered: true, want: func([]rec) [][]any {
			return [][]any{{t0 + 3000}, {t0 + 4000}}
		}},
		{query: q(`SELECT count(*) FROM $T WHERE headers->>'h' = 'v1'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return len(r.Headers) > 0 && string(r.Headers[0].Value) == "v1" })
		}},
		{query: q(`SELECT value FROM $T WHERE partition = 3 AND "offset" = 2`), want: func(rs []rec) [][]any {
			// record 11 (partition 3, offset 2) has a binary value: base64.
			for _, r := range rs {
				if r.partition == 3 && r.offset == 2 {
					return [][]any{{base64.StdEncoding.EncodeToString(r.Value)}}
				}
			}
			return nil
		}},
		{query: q(`SELECT * FROM $T WHERE partition = 1 AND "offset" = 1`), want: func(rs []rec) [][]any {
			for _, r := range rs {
				if r.partition == 1 && r.offset == 1 {
					h := map[string]any{}
					for _, x := range r.Headers {
						h[x.Key] = string(x.Value)
					}
					return [][]any{{1, 1, r.Timestamp, keyOf(r), string(r.Value), h}}
				}
			}
			return nil
		}},
		{query: q(`SELECT "offset" * 2 + 1 FROM $T WHERE partition = 0 AND "offset" = 7`), want: func([]rec) [][]any { return [][]any{{15}} }},
		{query: q(`SELECT json_extract(value, '$.nested') FROM $T WHERE partition = 0 AND "offset" = 1`), want: func(rs []rec) [][]any {
			for _, r := range rs {
				if r.partition == 0 && r.offset == 1 {
					return [][]any{{obj(r)["nested"]}}
				}
			}
			return nil
		}},
		{query: q(`SELECT count(*) FROM $T WHERE value = 'plain text 5'`), want: func([]rec) [][]any { return [][]any{{1}} }},
		{query: q(`SELECT count(*) FROM $T WHERE json_extract(value, '$.price') BETWEEN 10 AND 20`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { p, ok := price(r); return ok && p >= 10 && p <= 20 })
		}},
		{query: q(`SELECT count(*) FROM $T WHERE json_extract(value, '$.price') > 40`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { p, ok := price(r); return ok && p > 40 })
		}},
		{query: q(`SELECT partition, sum("offset") FROM $T GROUP BY partition`), want: func(rs []rec) [][]any {
			s := map[int32]int64{}
			for _, r := range rs {
				s[r.partition] += r.offset
			}
			return [][]any{{0, s[0]}, {1, s[1]}, {2, s[2]}, {3, s[3]}}
		}},
		{query: q(`SELECT count(*) FROM (SELECT DISTINCT key FROM $T)`), want: func(rs []rec) [][]any {
			return [][]any{{len(groupCount(rs, keyOf))}}
		}},
		{query: q(`WITH x AS (SELECT key FROM $T WHERE partition = 1) SELECT count(*) FROM x WHERE key = 'k1'`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool { return r.partition == 1 && key(r) == "k1" })
		}},
		{query: q(`SELECT min(timestamp), max(timestamp) FROM $T`), want: func(rs []rec) [][]any {
			return [][]any{{rs[0].Timestamp, rs[len(rs)-1].Timestamp}}
		}},
		{query: q(`SELECT key, count(*) AS n FROM $T WHERE key IS NOT NULL GROUP BY key ORDER BY n DESC, key LIMIT 2`), ordered: true, want: func(rs []rec) [][]any {
			g := groupCount(rs, keyOf)
			g = slicesDeleteNil(g)
			sort.Slice(g, func(i, j int) bool {
				if g[i][1].(int) != g[j][1].(int) {
					return g[i][1].(int) > g[j][1].(int)
				}
				return g[i][0].(string) < g[j][0].(string)
			})
			return g[:2]
		}},
		{query: `SELECT 1 + 1`, want: func([]rec) [][]any { return [][]any{{2}} }},
		{query: q(`SELECT count(*) FROM $T WHERE partition = 99`), want: func([]rec) [][]any { return [][]any{{0}} }},
		{query: q(`SELECT count(*) FROM $T WHERE "offset" > 1000000`), want: func([]rec) [][]any { return [][]any{{0}} }},
		{query: q(`SELECT count(*) FROM $T WHERE key IN ('k1', 'k3') AND partition IN (1, 2)`), want: func(rs []rec) [][]any {
			return count(rs, func(r rec) bool {
				return (key(r) == "k1" || key(r) == "k3") && (r.partition == 1 || r.partition == 2)
			})
		}},
		{query: q(`SELECT "offset", partition FROM $T WHERE json_extract(value, '$.price') IS NOT NULL ORDER BY json_extract(value, '$.price') DESC, partition, "offset" LIMIT 3`), ordered: true, want: func(rs []rec) [][]any {
			var ps []rec
			for _, r := range rs {
				if _, ok := price(r); ok {
					ps = append(ps, r)
				}
			}
			sort.SliceStable(ps, func(i, j int) bool {
				a, _ := price(ps[i])
				b, _ := price(ps[j])
				if a != b {
					return a > b
				}
				if ps[i].partition != ps[j].partition {
					return ps[i].partition < ps[j].partition
				}
				return ps[i].offset < ps[j].offset
			})
			var out [][]any
			for _, r := range ps[:3] {
				out = append(out, []any{r.offset, r.partition})
			}
			return out
		}},
		{query: q(`SELECT window_start, window_end, count(*) FROM $T GROUP BY TUMBLE(timestamp, INTERVAL '1' MINUTE)`), want: func(rs []rec) [][]any {
			return windowCounts(rs, 60_000, 60_000)
		}},
		{query: q(`SELECT window_start, count(*) FROM $T WHERE partition = 0 GROUP BY TUMBLE(timestamp, INTERVAL '30' SECOND) HAVING count(*) > 1`), want: func(rs []rec) [][]any {
			var out [][]any
			var p0 []rec
			for _, r := range rs {
				if r.partition == 0 {
					p0 = append(p0, r)
				}
			}
			for _, w := range windowCounts(p0, 30_000, 30_000) {
				if w[2].(int) > 1 {
					out = append(out, []any{w[0], w[2]})
				}
			}
			return out
		}},
		{query: q(`SELECT window_start, window_end, count(*) FROM $T GROUP BY HOP(timestamp, INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)`), want: func(rs []rec) [][]any {
			return windowCounts(rs, 60_000, 120_000)
		}},
		{query: q(`SELECT window_start, window_end, count(*) FROM $T GROUP BY SESSION(timestamp, INTERVAL '2' SECOND)`), want: func(rs []rec) [][]any {
			// Records are 1 s apart: one session.
			return [][]any{{rs[0].Timestamp, rs[len(rs)-1].Timestamp + 2000, len(rs)}}
		}},
	}
}

func slicesDeleteNil(g [][]any) [][]any {
	var out [][]any
	for _, x := range g {
		if x[0] != nil {
			out = append(out, x)
		}
	}
	return out
}

// mergeCounts adds the counts of equal first columns.
func mergeCounts(g [][]any) [][]any {
	m := map[any]int{}
	var order []any
	for _, x := range g {
		if _, ok := m[x[0]]; !ok {
			order = append(order, x[0])
		}
		m[x[0]] += x[1].(int)
	}
	var out [][]any
	for _, k := range order {
		out = append(out, []any{k, m[k]})
	}
	return out
}

// windowCounts counts records per window of size, starting every slide.
func windowCounts(rs []rec, slide, size int64) [][]any {
	m := map[int64]int{}
	for _, r := range rs {
		for s := r.Timestamp - r.Timestamp%slide; s > r.Timestamp-size; s -= slide {
			m[s]++
		}
	}
	var out [][]any
	for s, n := range m {
		out = append(out, []any{s, s + size, n})
	}
	return out
}

// canon is rows as comparable JSON lines (sorted unless ordered).
func canon(t *testing.T, rows [][]any, ordered bool) []string {
	t.Helper()
	var out []string
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var v any // through any: numbers compare as JSON numbers
		d := json.NewDecoder(bytes.NewReader(b))
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(v)
		out = append(out, string(b))
	}
	if !ordered {
		sort.Strings(out)
	}
	return out
}

func TestGolden(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		b := newBroker(t, store)
		recs := genRecords(600, 4)
		produce(t, b, goldenTopic, 4, recs)
		e := newEngine(t, b, Config{})
		qs := goldenQueries()
		if len(qs) < 60 {
			t.Errorf("%d golden queries, want at least 60", len(qs))
		}
		for i, g := range qs {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				res, err := e.Query(context.Background(), Request{Query: g.query})
				if err != nil {
					t.Fatalf("%s: %v", g.query, err)
				}
				got, want := canon(t, res.Rows, g.ordered), canon(t, g.want(recs), g.ordered)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s\n got: %v\nwant: %v", g.query, got, want)
				}
			})
		}
	})
}
