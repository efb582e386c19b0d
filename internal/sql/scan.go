//go:build cgo

package sql

// The scan: topics read as the sh_scan table function, from a snapshot of
// each partition's [logStart, lso) taken when the query is planned,
// narrowed by the pushdown bounds, through the broker's committed read
// path (Source.Scan), one stored batch at a time and without copying a
// record: DuckDB copies each value out of the log's cache (or the
// scanner's decompression buffer) as it fills a chunk.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// errScan marks a read failure of the scan (reported as is, not as bad SQL).
var errScan = errors.New("sql scan")

// partRange is what the query reads of one partition: [from, to), and
// the lower timestamp bound used to find from (for EXPLAIN).
type partRange struct {
	partition int32
	from, to  int64
	tsFrom    int64 // math.MinInt64: none
}

type topicPlan struct {
	name   string
	ranges []partRange
}

// queryState is a running query, found by the scan through its id.
type queryState struct {
	id         int64
	viewFilter string // a condition on the view's rows (live TUMBLE windows)
	topics     []*topicPlan
	records    atomic.Int64
	bytes      atomic.Int64
	mu         sync.Mutex
	err        error
}

func (q *queryState) fail(err error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
	return err
}

func (q *queryState) failed() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// plan resolves the topics, takes the snapshot and applies the bounds.
func (e *engine) plan(ctx context.Context, q *queryState, a *analysis) error {
	for _, name := range a.topics {
		t, err := e.topic(ctx, name, true)
		if err != nil {
			return err
		}
		b, bounded := a.bounds[name]
		if !bounded {
			b = allBounds()
		}
		tp := &topicPlan{name: name}
		q.topics = append(q.topics, tp)
		if b.empty {
			continue
		}
		parts := b.partitions
		if parts == nil {
			for p := int32(0); p < t.Partitions; p++ {
				parts = append(parts, p)
			}
		}
		for _, p := range parts {
			if p >= t.Partitions || int64(p) < b.pLo || int64(p) > b.pHi {
				continue
			}
			logStart, lso, _, err := e.cfg.Source.StableOffsets(ctx, name, p)
			if err != nil {
				return fmt.Errorf("snapshot %s/%d: %w", name, p, err)
			}
			r := partRange{partition: p, from: max(logStart, b.offLo), to: lso, tsFrom: math.MinInt64}
			if b.offHi < math.MaxInt64 {
				r.to = min(r.to, b.offHi+1)
			}
			if b.tsLo > math.MinInt64 && r.from < r.to {
				// Every record before OffsetForTime(tsLo) has a smaller
				// timestamp (ListOffsets semantics), so the scan may start there.
				off, _, found, err := e.cfg.Source.OffsetForTime(ctx, name, p, b.tsLo)
				if err != nil {
					return fmt.Errorf("offset for time %s/%d: %w", name, p, err)
				}
				r.tsFrom = b.tsLo
				if !found {
					r.from = r.to
				} else {
					r.from = max(r.from, off)
				}
			}
			if r.from < r.to {
				tp.ranges = append(tp.ranges, r)
			}
		}
	}
	return nil
}

// explainResult is EXPLAIN's answer: one row per partition read.
func explainResult(q *queryState) Result {
	res := Result{Columns: []Column{{Name: "topic", DataType: "VARCHAR"}, {Name: "partition", DataType: "INTEGER"},
		{Name: "start_offset", DataType: "BIGINT"}, {Name: "end_offset", DataType: "BIGINT"},
		{Name: "records", DataType: "BIGINT"}, {Name: "min_timestamp", DataType: "BIGINT"}}, Rows: [][]any{}}
	for _, t := range q.topics {
		for _, r := range t.ranges {
			var ts any
			if r.tsFrom != math.MinInt64 {
				ts = r.tsFrom
			}
			res.Rows = append(res.Rows, []any{t.name, int64(r.partition), r.from, r.to, r.to - r.from, ts})
		}
	}
	return res
}

// viewSQL defines topic i of query id as a temporary view under the
// topic's own name, with the window columns when the query groups by one.
func viewSQL(id int64, i int, t *topicPlan, w window, filter string) string {
	scan := fmt.Sprintf(`SELECT "partition", "offset", "timestamp", "key", "value", "headers"::JSON AS "headers" FROM sh_scan(%d, %d)`, id, i)
	switch w.kind {
	case "tumble":
		scan = fmt.Sprintf(`SELECT *, "timestamp" - (("timestamp" %% %[1]d) + %[1]d) %% %[1]d AS window_start, "timestamp" - (("timestamp" %% %[1]d) + %[1]d) %% %[1]d + %[1]d AS window_end FROM (%s)`, w.size, scan)
	case "hop":
		// A record at ts is in every window [s, s+size) with s a multiple
		// of slide and s <= ts < s+size.
		scan = fmt.Sprintf(`SELECT *, ws AS window_start, ws + %[2]d AS window_end FROM (SELECT *, UNNEST(generate_series(`+
			`"timestamp" - (("timestamp" %% %[1]d) + %[1]d) %% %[1]d - %[2]d + %[1]d, "timestamp" - (("timestamp" %% %[1]d) + %[1]d) %% %[1]d, %[1]d)) AS ws FROM (%[3]s))`,
			w.slide, w.size, scan)
	case "session":
		// Sessions over the topic's records in timestamp order: a gap
		// longer than the window's starts a new one.
		scan = fmt.Sprintf(`SELECT * EXCLUDE (sh_new, sh_sid), min("timestamp") OVER (PARTITION BY sh_sid) AS window_start, `+
			`max("timestamp") OVER (PARTITION BY sh_sid) + %[1]d AS window_end FROM (SELECT *, sum(sh_new) OVER (ORDER BY "timestamp", "partition", "offset" ROWS UNBOUNDED PRECEDING) AS sh_sid FROM (`+
			`SELECT *, CASE WHEN "timestamp" - lag("timestamp") OVER (ORDER BY "timestamp", "partition", "offset") <= %[1]d THEN 0 ELSE 1 END AS sh_new FROM (%[2]s)))`,
			w.size, scan)
	}
	if filter != "" {
		scan = "SELECT * FROM (" + scan + ") WHERE " + filter
	}
	// OR REPLACE: database/sql may hand a connection straight to a waiting
	// query, with the views of the one before.
	return "CREATE OR REPLACE TEMP VIEW " + quoteIdent(t.name) + " AS " + scan
}

func (e *engine) scanFunction() duckdb.ParallelChunkTableFunction {
	return duckdb.ParallelChunkTableFunction{
		Config: duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{mustType(duckdb.TYPE_BIGINT), mustType(duckdb.TYPE_INTEGER)}},
		BindArgumentsContext: func(ctx context.Context, _ map[string]any, args ...any) (_ duckdb.ParallelChunkTableSource, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%w: panic binding the scan: %v", errScan, r)
				}
			}()
			id, _ := args[0].(int64)
			i, _ := args[1].(int32)
			v, ok := e.queries.Load(id)
			if !ok {
				return nil, errors.New("sh_scan is internal")
			}
			q := v.(*queryState)
			if int(i) < 0 || int(i) >= len(q.topics) {
				return nil, errors.New("sh_scan is internal")
			}
			return &topicScan{ctx: ctx, e: e, q: q, t: q.topics[i]}, nil
		},
	}
}

func mustType(t duckdb.Type) duckdb.TypeInfo {
	ti, err := duckdb.NewTypeInfo(t)
	if err != nil {
		panic(err) // a primitive type always has one
	}
	return ti
}

// topicScan reads one topic's ranges: each of DuckDB's threads (up to
// Config.Threads) claims a whole range (a partition) at a time and reads it
// in order with its own cursor. The ctx is the query's (DuckDB calls
// FillChunk within the query's execution).
type topicScan struct {
	ctx     context.Context
	e       *engine
	q       *queryState
	t       *topicPlan
	mu      sync.Mutex
	claimed int // ranges handed out
}

// cursor is one thread's position.
type cursor struct {
	r   partRange
	sc  *broker.Scanner // reads r; nil between ranges
	buf []broker.Record // the current batch's records (valid until sc.Next)
	pos int
	// projected says which columns the query uses.
	projected []bool
	text      [3]*duckdb.VectorWriter[string] // key, value, headers: nil when not projected
}

func (s *topicScan) ColumnInfos() []duckdb.ColumnInfo {
	return []duckdb.ColumnInfo{
		{Name: "partition", T: mustType(duckdb.TYPE_INTEGER)},
		{Name: "offset", T: mustType(duckdb.TYPE_BIGINT)},
		{Name: "timestamp", T: mustType(duckdb.TYPE_BIGINT)},
		{Name: "key", T: mustType(duckdb.TYPE_VARCHAR)},
		{Name: "value", T: mustType(duckdb.TYPE_VARCHAR)},
		{Name: "headers", T: mustType(duckdb.TYPE_VARCHAR)},
	}
}

func (s *topicScan) Cardinality() *duckdb.CardinalityInfo {
	var n int64
	for _, r := range s.t.ranges {
		n += r.to - r.from
	}
	return &duckdb.CardinalityInfo{Cardinality: uint(n), Exact: false}
}

func (s *topicScan) Init() duckdb.ParallelTableSourceInfo {
	return duckdb.ParallelTableSourceInfo{MaxThreads: max(1, min(s.e.cfg.Threads, len(s.t.ranges)))}
}

func (s *topicScan) NewLocalState() any { return &cursor{} }

// claim hands out the next range; false when all are.
func (s *topicScan) claim() (partRange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimed >= len(s.t.ranges) {
		return partRange{}, false
	}
	s.claimed++
	return s.t.ranges[s.claimed-1], true
}

// fill reads c's next batch into its buf; false at the end of the ranges.
func (s *topicScan) fill(c *cursor) (bool, error) {
	for {
		if c.sc == nil {
			r, ok := s.claim()
			if !ok {
				return false, nil
			}
			sc, err := s.e.cfg.Source.Scan(s.ctx, s.t.name, r.partition, r.from, r.to)
			if err != nil {
				return false, s.q.fail(fmt.Errorf("%w: read %s/%d: %w", errScan, s.t.name, r.partition, err))
			}
			c.r, c.sc = r, sc
		}
		recs, err := c.sc.Next(s.ctx)
		if err != nil {
			return false, s.q.fail(fmt.Errorf("%w: %w", errScan, err))
		}
		if len(recs) == 0 {
			c.sc.Close()
			c.sc, c.buf, c.pos = nil, nil, 0
			continue
		}
		c.buf, c.pos = recs, 0
		return true, nil
	}
}

func (s *topicScan) FillChunk(local any, chunk duckdb.DataChunk) (err error) {
	// A panic here would cross DuckDB's C frames and end the process:
	// it fails the query instead.
	defer func() {
		if r := recover(); r != nil {
			err = s.q.fail(fmt.Errorf("%w: panic reading %s: %v", errScan, s.t.name, r))
		}
	}()
	c := local.(*cursor)
	capacity := duckdb.GetDataChunkCapacity()
	if c.projected == nil {
		// Only the columns the query uses are filled (projection pushdown).
		c.projected = make([]bool, len(s.ColumnInfos()))
		for i := range c.projected {
			_, err := chunk.GetVector(i)
			c.projected[i] = err == nil
		}
	}
	// Text columns are written through typed writers (no per-value type
	// dispatch); a writer checks rows against the chunk's size.
	if err := chunk.SetSize(capacity); err != nil {
		return err
	}
	for i := 3; i <= 5; i++ {
		c.text[i-3] = nil
		if !c.projected[i] {
			continue
		}
		vec, err := chunk.GetVector(i)
		if err != nil {
			return err
		}
		w, err := duckdb.GetVectorWriter[string](vec)
		if err != nil {
			return err
		}
		c.text[i-3] = &w
	}
	n, bytes := 0, int64(0)
	for n < capacity {
		if c.pos >= len(c.buf) {
			more, err := s.fill(c)
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
		rec := &c.buf[c.pos]
		c.pos++
		if err := row(c, chunk, n, rec); err != nil {
			return err
		}
		bytes += int64(len(rec.Key) + len(rec.Value))
		for _, h := range rec.Headers {
			bytes += int64(len(h.Key) + len(h.Value))
		}
		n++
	}
	// Scanned is what the query was handed: a scan stopped early (a
	// LIMIT) counts the rows it produced, not the rest of their batch.
	s.q.records.Add(int64(n))
	s.q.bytes.Add(bytes)
	return chunk.SetSize(n)
}

func row(c *cursor, chunk duckdb.DataChunk, i int, rec *broker.Record) error {
	pr := c.projected
	if pr[0] {
		if err := duckdb.SetChunkValue(chunk, 0, i, c.r.partition); err != nil {
			return err
		}
	}
	if pr[1] {
		if err := duckdb.SetChunkValue(chunk, 1, i, rec.Offset); err != nil {
			return err
		}
	}
	if pr[2] {
		if err := duckdb.SetChunkValue(chunk, 2, i, rec.Timestamp); err != nil {
			return err
		}
	}
	b64 := (pr[3] || pr[4]) && (!validUTF8(rec.Key) || !validUTF8(rec.Value))
	for col, b := range [2][]byte{rec.Key, rec.Value} {
		w := c.text[col]
		var err error
		switch {
		case w == nil:
			continue
		case b == nil:
			err = w.SetNull(i)
		case b64:
			err = w.Set(i, base64.StdEncoding.EncodeToString(b))
		default:
			// DuckDB copies the bytes before Set returns.
			err = w.Set(i, unsafe.String(unsafe.SliceData(b), len(b)))
		}
		if err != nil {
			return err
		}
	}
	if c.text[2] == nil {
		return nil
	}
	return c.text[2].Set(i, headersJSON(rec))
}

func validUTF8(b []byte) bool { return b == nil || utf8.Valid(b) }

// textOrBase64 is REST consume's rule: nil is NULL; key and value are
// both base64 when either is not UTF-8.
func textOrBase64(b []byte, b64 bool) *string {
	if b == nil {
		return nil
	}
	var s string
	if b64 {
		s = base64.StdEncoding.EncodeToString(b)
	} else {
		s = string(b)
	}
	return &s
}

// headersJSON is the headers as a JSON object: text values, all base64
// when any is not UTF-8 (REST consume's rule); a repeated key keeps its
// last value.
func headersJSON(rec *broker.Record) string {
	if len(rec.Headers) == 0 {
		return "{}"
	}
	b64 := false
	for _, h := range rec.Headers {
		if !utf8.Valid(h.Value) {
			b64 = true
		}
	}
	m := make(map[string]string, len(rec.Headers))
	for _, h := range rec.Headers {
		m[h.Key] = *textOrBase64(append([]byte{}, h.Value...), b64)
	}
	out, _ := json.Marshal(m) // strings only: cannot fail
	return string(out)
}

// jsonValue makes a DuckDB value JSON-ready: numbers as numbers, dates
// and times as ISO 8601 text, intervals and UUIDs as DuckDB prints them.
func jsonValue(v any, dataType string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		switch dataType {
		case "DATE":
			return x.Format(time.DateOnly)
		case "TIME":
			return x.Format("15:04:05.999999")
		case "TIME WITH TIME ZONE", "TIMETZ":
			return x.Format("15:04:05.999999Z07:00")
		}
		return x.UTC().Format(time.RFC3339Nano)
	case duckdb.Interval:
		return intervalString(x)
	case duckdb.UUID:
		return (&x).String()
	case duckdb.Decimal:
		// Up to 15 digits a decimal is a float64 that prints back the
		// same (parsed from its text: Decimal.Float64 rounds twice).
		if f, err := strconv.ParseFloat(x.String(), 64); err == nil && x.Width <= 15 {
			return f
		}
		return x.String()
	case []byte:
		if dataType == "UUID" && len(x) == 16 {
			u := duckdb.UUID(x)
			return u.String()
		}
		return base64.StdEncoding.EncodeToString(x)
	case bool, string, int64, float64:
		// A JSON column arrives decoded (duckdb-go unmarshals it): a JSON
		// string is a Go string and stays one, whatever it holds.
		if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return x
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return strconv.FormatUint(x, 10)
		}
		return int64(x)
	case float32:
		return jsonValue(float64(x), dataType)
	case *big.Int:
		if x.IsInt64() {
			return x.Int64()
		}
		return x.String()
	case fmt.Stringer:
		return x.String()
	case map[string]any, []any, duckdb.Map:
		out, err := json.Marshal(normalize(x))
		if err != nil {
			return fmt.Sprint(x)
		}
		return json.RawMessage(out)
	}
	return fmt.Sprint(v)
}

// intervalString prints an interval as DuckDB does: "1 year 2 months
// 3 days 01:30:00.5", each part only when not zero.
func intervalString(iv duckdb.Interval) string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n != 1 && n != -1 {
			unit += "s"
		}
		parts = append(parts, strconv.FormatInt(n, 10)+" "+unit)
	}
	plural(int64(iv.Months/12), "year")
	plural(int64(iv.Months%12), "month")
	plural(int64(iv.Days), "day")
	if us := iv.Micros; us != 0 || len(parts) == 0 {
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, us/3_600_000_000, us/60_000_000%60, us/1_000_000%60)
		if frac := us % 1_000_000; frac != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return jsonValue(v, "")
}
