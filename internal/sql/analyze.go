package sql

// Query analysis: the statement parsed by DuckDB (json_serialize_sql) is
// walked here, in plain Go, to find the topics it reads, the predicates
// that limit what is read (pushdown), the windows to rewrite, and the
// spans of the text to rewrite. The rewrite is textual (edits at the
// parser's own byte positions), so the SQL DuckDB finally runs is the
// user's text with a few spans replaced.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type node = map[string]any

// unknownLocation is DuckDB's "no location" (optional_idx invalid).
const unknownLocation = math.MaxUint64

// parsed is json_serialize_sql's answer.
type parsed struct {
	Error        bool              `json:"error"`
	ErrorType    string            `json:"error_type"`
	ErrorMessage string            `json:"error_message"`
	Position     string            `json:"position"`
	Statements   []json.RawMessage `json:"statements"`
}

// tableRef is one reference to a topic in FROM.
type tableRef struct {
	name  string
	alias string
}

// window is a TUMBLE, HOP or SESSION in a GROUP BY over a topic.
type window struct {
	kind        string // tumble, hop, session
	size, slide int64  // ms (slide: HOP; size: gap for SESSION)
}

// bounds is what the predicates on one topic allow: partitions (nil: all),
// and inclusive offset and timestamp ranges.
type bounds struct {
	partitions   []int32 // sorted; nil means every partition
	pLo, pHi     int64   // and only those in [pLo, pHi]
	offLo, offHi int64
	tsLo, tsHi   int64
	empty        bool // the predicates admit nothing
}

func allBounds() bounds {
	return bounds{pLo: 0, pHi: math.MaxInt32, offLo: math.MinInt64, offHi: math.MaxInt64, tsLo: math.MinInt64, tsHi: math.MaxInt64}
}

// analysis is what a statement reads and how its text is rewritten.
type analysis struct {
	topics  []string          // distinct topic names, in order of appearance
	refs    map[string]int    // references per topic
	bounds  map[string]bounds // pushdown, for topics referenced once
	windows map[string]window // window over a topic (one per topic)
	edits   []edit            // text rewrites
	// notLive says why the statement cannot be a live query ("" if it can);
	// limit is its outermost LIMIT (-1: none).
	notLive string
	// grouped: GROUP BY, HAVING or an aggregate (live only over TUMBLE).
	grouped bool
	limit   int64
	// jsonPaths are the constant paths of JSON extractions, checked by
	// the engine (a malformed one is invalid_query, not a silent NULL).
	jsonPaths []string
}

// edit replaces text[start:end] by render(sub), where sub renders a span
// of the original text with the edits inside it applied.
type edit struct {
	start, end int
	render     func(sub func(start, end int) string) string
}

// analyze walks one SELECT statement's AST. text is the statement text
// the locations refer to.
// known are the names DuckDB's catalog has (engine.setup): its functions,
// and its tables and views. Nil sets check nothing.
type known struct {
	functions, catalog map[string]bool
}

func analyze(text string, stmt json.RawMessage, k known) (*analysis, error) {
	dec := json.NewDecoder(bytes.NewReader(stmt))
	dec.UseNumber()
	var root node
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("decode statement: %w", err)
	}
	a := &analysis{refs: map[string]int{}, bounds: map[string]bounds{}, windows: map[string]window{}, limit: -1}
	if top := asNode(root["node"]); top != nil {
		mods, _ := top["modifiers"].([]any)
		for _, m := range mods {
			if mn := asNode(m); str(mn, "type") == "LIMIT_MODIFIER" && mn["offset"] == nil {
				if k, ok := constant(asNode(mn["limit"]), ""); ok && k >= 0 {
					a.limit = k
				}
			}
		}
	}
	ctes := map[string]bool{}
	collectCTEs(root, ctes)
	for name := range ctes {
		// A table reference out of the CTE's scope would reach the
		// catalog object of that name (pg_settings, say), not a topic.
		if k.catalog[name] {
			return nil, &Error{Code: CodeUnsupported, Message: fmt.Sprintf("a WITH query may not be named %q, the name of a system table", name)}
		}
	}
	w := &walker{a: a, text: text, ctes: ctes, known: k}
	if err := w.visit(root, nil); err != nil {
		return nil, err
	}
	var named []edit // first: an alias wraps a rewrite of the same span
	for _, sp := range w.aliases {
		start, end := sp[0], sp[1]
		if !slices.ContainsFunc(a.edits, func(e edit) bool { return e.start >= start && e.end <= end }) {
			continue
		}
		name := text[start:end]
		named = append(named, edit{start: start, end: end, render: func(sub func(int, int) string) string {
			return sub(start, end) + " AS " + quoteIdent(name)
		}})
	}
	a.edits = append(named, a.edits...)
	// Each topic is a view named after it, and DuckDB's names ignore case.
	lower := make(map[string]string, len(a.refs))
	for name := range a.refs {
		if other, dup := lower[strings.ToLower(name)]; dup {
			return nil, &Error{Code: CodeUnsupported, Message: fmt.Sprintf("topics %q and %q differ only in case: one query may read only one of them", other, name)}
		}
		lower[strings.ToLower(name)] = name
	}
	// Pushdown only where a topic is read once (a self-join reads all).
	for name, b := range w.pushdown {
		if a.refs[name] == 1 {
			a.bounds[name] = b
		}
	}
	return a, nil
}

func collectCTEs(v any, out map[string]bool) {
	switch x := v.(type) {
	case node:
		if cm, ok := x["cte_map"].(node); ok {
			if m, ok := cm["map"].([]any); ok {
				for _, e := range m {
					if en, ok := e.(node); ok {
						if k, ok := en["key"].(string); ok {
							out[strings.ToLower(k)] = true
						}
					}
				}
			}
		}
		for _, c := range x {
			collectCTEs(c, out)
		}
	case []any:
		for _, c := range x {
			collectCTEs(c, out)
		}
	}
}

type walker struct {
	known    known
	a        *analysis
	text     string
	ctes     map[string]bool
	pushdown map[string]bounds
	aliases  [][2]int // select-list spans to name by their text when rewritten
	orderBy  map[[2]int]bool
}

func str(n node, k string) string { s, _ := n[k].(string); return s }

// span returns a node's [start, end) in the text, ok false when unknown.
func (w *walker) span(n node) (int, int, bool) {
	loc, ok1 := n["query_location"].(json.Number)
	ln, ok2 := n["query_location_length"].(json.Number)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(loc), 10, 64)
	l, err2 := strconv.ParseUint(string(ln), 10, 64)
	if err1 != nil || err2 != nil || s == unknownLocation || l == 0 || s+l > uint64(len(w.text)) {
		return 0, 0, false
	}
	return int(s), int(s + l), true
}

// visit walks every node; parent is the enclosing expression node.
func (w *walker) visit(v any, parent node) error {
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			if err := w.visit(c, parent); err != nil {
				return err
			}
		}
		return nil
	case node:
		if err := w.node(x, parent); err != nil {
			return err
		}
		next := parent
		if _, isExpr := x["class"]; isExpr {
			next = x
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic order of topics and errors
		for _, k := range keys {
			if err := w.visit(x[k], next); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) node(n node, parent node) error {
	switch str(n, "type") {
	case "BASE_TABLE":
		name := str(n, "table_name")
		if str(n, "schema_name") == "" && str(n, "catalog_name") == "" && w.ctes[strings.ToLower(name)] {
			return nil
		}
		if str(n, "schema_name") != "" || str(n, "catalog_name") != "" {
			return &Error{Code: CodeTopicNotFound, Message: fmt.Sprintf("%q is not a topic: topics have no schema (quote a name with dots: \"a.b\")", str(n, "schema_name")+"."+name)}
		}
		if n["at_clause"] != nil {
			return &Error{Code: CodeUnsupported, Message: "AT clauses are not supported"}
		}
		if w.a.refs[name] == 0 {
			w.a.topics = append(w.a.topics, name)
		}
		w.a.refs[name]++
	case "TABLE_FUNCTION":
		return &Error{Code: CodeUnsupported, Message: "table functions are not supported: read topics by name"}
	case "SHOW_REF":
		return &Error{Code: CodeUnsupported, Message: "only SHOW TOPICS is supported"}
	case "SELECT_NODE":
		if gs, _ := n["group_expressions"].([]any); len(gs) > 0 {
			w.a.grouped = true
		}
		if n["having"] != nil {
			w.a.grouped = true
		}
		return w.selectNode(n)
	case "ORDER_MODIFIER":
		if orders, _ := n["orders"].([]any); len(orders) > 0 {
			w.a.notLive = "ORDER BY"
		}
	case "DISTINCT_MODIFIER":
		w.a.notLive = "DISTINCT"
	case "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER":
		if n["offset"] != nil {
			w.a.notLive = "OFFSET"
		}
	case "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "JOIN":
		w.a.notLive = "a join or set operation"
	case "FUNCTION":
		if name := strings.ToLower(str(n, "function_name")); !allowedFunctions[name] && !aggregates[name] {
			if w.known.functions != nil && !w.known.functions[name] {
				return &Error{Code: CodeInvalid, Message: fmt.Sprintf("unknown function %s", name)}
			}
			return &Error{Code: CodeUnsupported, Message: fmt.Sprintf("function %s is not available in SQL over topics (see the list in the README)", name)}
		}
		if aggregates[strings.ToLower(str(n, "function_name"))] {
			w.a.grouped = true
		}
		return w.function(n, parent)
	case "LAMBDA":
		// value->'a' parses as a lambda; DuckDB binds it to json_extract
		// when its right side is not a lambda body.
		if str(n, "syntax_type") == "SINGLE_ARROW" && str(asNode(n["expr"]), "class") == "CONSTANT" {
			return w.jsonEdit(n, parent, "sh_json", asNode(n["lhs"]), asNode(n["expr"]))
		}
		// A real lambda (list_transform, list_reduce ...) can build values
		// without bound, outside SQL_MAX_MEMORY_BYTES.
		return &Error{Code: CodeUnsupported, Message: "lambda functions are not available in SQL over topics"}
	case "COMPARE_EQUAL", "COMPARE_NOTEQUAL", "COMPARE_LESSTHAN", "COMPARE_GREATERTHAN",
		"COMPARE_LESSTHANOREQUALTO", "COMPARE_GREATERTHANOREQUALTO", "COMPARE_BETWEEN", "COMPARE_IN", "COMPARE_NOT_IN":
		w.timestampLiterals(n)
	}
	if str(n, "class") == "WINDOW" {
		w.a.notLive = "a window function"
	}
	if str(n, "class") == "PARAMETER" {
		return &Error{Code: CodeInvalid, Message: "parameters ($1, ?) are not supported"}
	}
	return nil
}

// selectNode records the pushdown bounds and the window of a SELECT that
// reads one topic directly.
func (w *walker) selectNode(n node) error {
	// Rewritten expressions keep the user's text as their column name.
	sel, _ := n["select_list"].([]any)
	for _, x := range sel {
		xn := asNode(x)
		if xn == nil || str(xn, "alias") != "" || str(xn, "class") == "STAR" || str(xn, "class") == "COLUMN_REF" {
			continue
		}
		if start, end, ok := w.span(xn); ok && w.within(xn) {
			w.aliases = append(w.aliases, [2]int{start, end})
		}
	}
	mods, _ := n["modifiers"].([]any)
	for _, m := range mods {
		orders, _ := asNode(m)["orders"].([]any)
		for _, o := range orders {
			if start, end, ok := w.span(asNode(asNode(o)["expression"])); ok {
				if w.orderBy == nil {
					w.orderBy = map[[2]int]bool{}
				}
				w.orderBy[[2]int{start, end}] = true
			}
		}
	}
	from, _ := n["from_table"].(node)
	isTopic := from != nil && str(from, "type") == "BASE_TABLE" && !w.ctes[strings.ToLower(str(from, "table_name"))] &&
		str(from, "schema_name") == ""
	var name, alias string
	if isTopic {
		name, alias = str(from, "table_name"), str(from, "alias")
	}
	groups, _ := n["group_expressions"].([]any)
	for _, g := range groups {
		gn, ok := g.(node)
		if !ok || str(gn, "class") != "FUNCTION" {
			continue
		}
		kind := strings.ToLower(str(gn, "function_name"))
		if kind != "tumble" && kind != "hop" && kind != "session" {
			continue
		}
		if !isTopic {
			return &Error{Code: CodeUnsupported, Message: strings.ToUpper(kind) + " needs FROM a topic directly"}
		}
		win, err := w.window(kind, gn, name, alias)
		if err != nil {
			return err
		}
		if old, ok := w.a.windows[name]; ok && old != win {
			return &Error{Code: CodeUnsupported, Message: "one window per topic and query"}
		}
		w.a.windows[name] = win
		start, end, ok := w.span(gn)
		if !ok {
			return &Error{Code: CodeUnsupported, Message: strings.ToUpper(kind) + " could not be located in the query"}
		}
		w.a.edits = append(w.a.edits, edit{start: start, end: end, render: func(func(int, int) string) string {
			return "window_start, window_end"
		}})
	}
	if !isTopic {
		return nil
	}
	b := allBounds()
	if where, ok := n["where_clause"].(node); ok {
		for _, c := range conjuncts(where) {
			w.restrict(&b, c, name, alias)
		}
	}
	if w.pushdown == nil {
		w.pushdown = map[string]bounds{}
	}
	if old, ok := w.pushdown[name]; ok {
		b = union(old, b)
	}
	w.pushdown[name] = b
	return nil
}

// union is the bounds that admit what either admits (a topic read from
// two SELECTs, e.g. in a UNION).
func union(a, b bounds) bounds {
	if a.empty {
		return b
	}
	if b.empty {
		return a
	}
	out := bounds{pLo: min(a.pLo, b.pLo), pHi: max(a.pHi, b.pHi), offLo: min(a.offLo, b.offLo), offHi: max(a.offHi, b.offHi), tsLo: min(a.tsLo, b.tsLo), tsHi: max(a.tsHi, b.tsHi)}
	if a.partitions != nil && b.partitions != nil {
		out.partitions = append(slices.Clone(a.partitions), b.partitions...)
		slices.Sort(out.partitions)
		out.partitions = slices.Compact(out.partitions)
	}
	return out
}

func conjuncts(n node) []node {
	if str(n, "type") != "CONJUNCTION_AND" {
		return []node{n}
	}
	var out []node
	for _, c := range children(n) {
		out = append(out, conjuncts(c)...)
	}
	return out
}

func children(n node) []node {
	cs, _ := n["children"].([]any)
	out := make([]node, 0, len(cs))
	for _, c := range cs {
		if cn, ok := c.(node); ok {
			out = append(out, cn)
		}
	}
	return out
}

// column returns which pushdown column n refers to ("" for none).
func column(n node, table, alias string) string {
	if n == nil || str(n, "class") != "COLUMN_REF" {
		return ""
	}
	names, _ := n["column_names"].([]any)
	var parts []string
	for _, p := range names {
		s, _ := p.(string)
		parts = append(parts, s)
	}
	var col string
	switch len(parts) {
	case 1:
		col = parts[0]
	case 2:
		q := parts[0]
		if !strings.EqualFold(q, alias) && !(alias == "" && strings.EqualFold(q, table)) {
			return ""
		}
		col = parts[1]
	default:
		return ""
	}
	switch c := strings.ToLower(col); c {
	case "partition", "offset", "timestamp":
		return c
	}
	return ""
}

// constant returns an integer constant (an RFC 3339 string for timestamp).
func constant(n node, col string) (int64, bool) {
	if n == nil || str(n, "class") != "CONSTANT" {
		return 0, false
	}
	lit, _ := n["literal"].(node)
	if lit == nil {
		return 0, false
	}
	text := str(lit, "text")
	switch str(lit, "kind") {
	case "INTEGER", "BIGINT", "HUGEINT", "SMALLINT", "TINYINT":
		v, err := strconv.ParseInt(text, 10, 64)
		return v, err == nil
	case "STRING":
		if col == "timestamp" {
			return parseTime(text)
		}
	}
	return 0, false
}

func parseTime(s string) (int64, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// restrict narrows b by one conjunct when it is a predicate on partition,
// offset or timestamp against constants; anything else leaves b as is
// (the engine still applies every predicate: pushdown only reads less).
func (w *walker) restrict(b *bounds, c node, table, alias string) {
	switch t := str(c, "type"); t {
	case "COMPARE_EQUAL", "COMPARE_LESSTHAN", "COMPARE_GREATERTHAN", "COMPARE_LESSTHANOREQUALTO", "COMPARE_GREATERTHANOREQUALTO":
		left, _ := c["left"].(node)
		right, _ := c["right"].(node)
		col := column(left, table, alias)
		k, ok := constant(right, col)
		if col == "" || !ok {
			col = column(right, table, alias)
			k, ok = constant(left, col)
			t = flip(t)
		}
		if col == "" || !ok {
			return
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		switch t {
		case "COMPARE_EQUAL":
			lo, hi = k, k
		case "COMPARE_LESSTHAN":
			if k == math.MinInt64 {
				b.empty = true
				return
			}
			hi = k - 1
		case "COMPARE_LESSTHANOREQUALTO":
			hi = k
		case "COMPARE_GREATERTHAN":
			if k == math.MaxInt64 {
				b.empty = true
				return
			}
			lo = k + 1
		case "COMPARE_GREATERTHANOREQUALTO":
			lo = k
		}
		b.narrow(col, lo, hi)
	case "COMPARE_BETWEEN":
		in, _ := c["input"].(node)
		col := column(in, table, alias)
		lo, ok1 := constant(asNode(c["lower"]), col)
		hi, ok2 := constant(asNode(c["upper"]), col)
		if col != "" && ok1 && ok2 {
			b.narrow(col, lo, hi)
		}
	case "COMPARE_IN":
		cs := children(c)
		if len(cs) < 2 || column(cs[0], table, alias) != "partition" {
			return
		}
		var ps []int32
		for _, e := range cs[1:] {
			k, ok := constant(e, "partition")
			if !ok {
				return
			}
			if k >= 0 && k <= math.MaxInt32 {
				ps = append(ps, int32(k))
			}
		}
		b.keep(ps)
	}
}

func asNode(v any) node { n, _ := v.(node); return n }

func flip(t string) string {
	switch t {
	case "COMPARE_LESSTHAN":
		return "COMPARE_GREATERTHAN"
	case "COMPARE_GREATERTHAN":
		return "COMPARE_LESSTHAN"
	case "COMPARE_LESSTHANOREQUALTO":
		return "COMPARE_GREATERTHANOREQUALTO"
	case "COMPARE_GREATERTHANOREQUALTO":
		return "COMPARE_LESSTHANOREQUALTO"
	}
	return t
}

func (b *bounds) narrow(col string, lo, hi int64) {
	switch col {
	case "partition":
		b.pLo, b.pHi = max(b.pLo, lo), min(b.pHi, hi)
		b.empty = b.empty || b.pLo > b.pHi
	case "offset":
		b.offLo, b.offHi = max(b.offLo, lo), min(b.offHi, hi)
		b.empty = b.empty || b.offLo > b.offHi
	case "timestamp":
		b.tsLo, b.tsHi = max(b.tsLo, lo), min(b.tsHi, hi)
		b.empty = b.empty || b.tsLo > b.tsHi
	}
}

// keep intersects the partition set with ps.
func (b *bounds) keep(ps []int32) {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if b.partitions != nil {
		ps = slices.DeleteFunc(ps, func(p int32) bool { return !slices.Contains(b.partitions, p) })
	}
	if ps == nil {
		ps = []int32{}
	}
	b.partitions = ps
	b.empty = b.empty || len(ps) == 0
}

// timestampLiterals rewrites an RFC 3339 string compared with a column
// named timestamp into its milliseconds, so `timestamp >= '2026-01-01T00:00:00Z'`
// compares integers (SPEC: timestamp compares with RFC 3339 strings).
func (w *walker) timestampLiterals(c node) {
	var cols, consts []node
	for _, k := range []string{"left", "right", "input", "lower", "upper"} {
		if n := asNode(c[k]); n != nil {
			if str(n, "class") == "COLUMN_REF" {
				cols = append(cols, n)
			} else {
				consts = append(consts, n)
			}
		}
	}
	for i, n := range children(c) {
		if i == 0 && str(n, "class") == "COLUMN_REF" {
			cols = append(cols, n)
		} else {
			consts = append(consts, n)
		}
	}
	isTS := false
	for _, col := range cols {
		names, _ := col["column_names"].([]any)
		if len(names) > 0 {
			if s, _ := names[len(names)-1].(string); strings.EqualFold(s, "timestamp") {
				isTS = true
			}
		}
	}
	if !isTS {
		return
	}
	for _, k := range consts {
		lit := asNode(k["literal"])
		if str(k, "class") != "CONSTANT" || lit == nil || str(lit, "kind") != "STRING" {
			continue
		}
		ms, ok := parseTime(str(lit, "text"))
		start, end, known := w.span(k)
		if !ok || !known || w.text[start] != '\'' {
			continue
		}
		w.a.edits = append(w.a.edits, edit{start: start, end: end, render: func(func(int, int) string) string {
			return strconv.FormatInt(ms, 10)
		}})
	}
}

// allowedFunctions are the scalar functions (and operators, which the
// parser names as functions) a query may call, besides the aggregates:
// SPEC.md's, and more of the same kind, each one whose result is bounded by
// its inputs' size. Anything else is refused: DuckDB's memory limit does
// not cover a scalar function's own allocations and one call cannot be
// interrupted, so functions that make values of any size (repeat,
// generate_series, regexp_replace with an empty pattern, lambdas over
// lists ...) would escape SQL_MAX_MEMORY_BYTES and SQL_TIMEOUT_MS.
var allowedFunctions = func() map[string]bool {
	m := make(map[string]bool)
	for _, f := range []string{
		// operators
		"+", "-", "*", "/", "//", "%", "||", "~~", "!~~", "~~*", "!~~*", "->", "->>", "^", "**",
		// strings
		"lower", "upper", "lcase", "ucase", "length", "len", "strlen", "substr", "substring", "trim", "ltrim", "rtrim",
		"starts_with", "ends_with", "suffix", "prefix", "contains", "strpos", "instr", "position", "left", "right",
		"reverse", "split_part", "regexp_matches", "regexp_extract", "regexp_full_match", "concat", "concat_ws",
		"like_escape", "ilike_escape", "md5", "hash", "ascii", "chr", "base64", "to_base64", "from_base64",
		// numbers
		"abs", "round", "floor", "ceil", "ceiling", "sqrt", "cbrt", "ln", "log", "log10", "log2", "exp", "pow",
		"power", "sign", "greatest", "least", "mod", "trunc", "even", "isnan", "isinf", "isfinite",
		// conditions
		"nullif", "ifnull", "if", "coalesce",
		// JSON
		"json_extract", "json_extract_string", "json_extract_path", "json_extract_path_text", "json_valid",
		"json_type", "json_array_length", "json_keys", "json_exists", "json_value",
		// time
		"epoch_ms", "epoch", "to_timestamp", "make_timestamp", "date_trunc", "date_part", "datepart", "strftime",
		"now", "current_timestamp", "to_milliseconds", "to_seconds", "to_minutes", "to_hours", "to_days",
		"to_microseconds", "year", "month", "day", "hour", "minute", "second", "dayofweek", "dayofyear",
		// windows (rewritten) and types
		"tumble", "hop", "session", "typeof",
	} {
		m[f] = true
	}
	return m
}()

var aggregates = map[string]bool{"count": true, "count_star": true, "sum": true, "avg": true, "min": true, "max": true,
	"list": true, "array_agg": true, "string_agg": true, "median": true, "stddev": true, "any_value": true, "first": true,
	"last": true, "arg_min": true, "arg_max": true, "bool_and": true, "bool_or": true, "mode": true, "quantile": true}

// Contexts of a JSON extraction: a number is wanted (aggregates,
// arithmetic, comparison with a number), a string, or the JSON value.
const (
	ctxJSON = iota
	ctxNumber
	ctxString
	ctxOrder // numbers by value, then strings
)

var numberFuncs = map[string]bool{"sum": true, "avg": true, "min": true, "max": true, "+": true, "-": true, "*": true,
	"/": true, "//": true, "%": true, "abs": true, "round": true, "ceil": true, "floor": true, "stddev": true, "median": true}
var stringFuncs = map[string]bool{"lower": true, "upper": true, "length": true, "substr": true, "substring": true,
	"~~": true, "!~~": true, "~~*": true, "!~~*": true, "concat": true, "||": true, "contains": true, "starts_with": true,
	"trim": true, "replace": true}

// jsonContext says what the parent of a JSON extraction wants.
func jsonContext(self, parent node) int {
	if parent == nil {
		return ctxJSON
	}
	if str(parent, "class") == "FUNCTION" {
		name := strings.ToLower(str(parent, "function_name"))
		switch {
		case numberFuncs[name]:
			return ctxNumber
		case stringFuncs[name]:
			return ctxString
		}
		return ctxJSON
	}
	// A comparison: the kind of the constant on the other side decides.
	for _, k := range []string{"left", "right", "lower", "upper", "input"} {
		if o := asNode(parent[k]); o != nil && !sameNode(o, self) {
			if c := constKind(o); c != ctxJSON {
				return c
			}
		}
	}
	for _, o := range children(parent) {
		if !sameNode(o, self) {
			if c := constKind(o); c != ctxJSON {
				return c
			}
		}
	}
	return ctxJSON
}

func sameNode(a, b node) bool {
	return a["query_location"] == b["query_location"] && a["query_location_length"] == b["query_location_length"] && str(a, "class") == str(b, "class")
}

func constKind(n node) int {
	if str(n, "class") != "CONSTANT" {
		return ctxJSON
	}
	switch str(asNode(n["literal"]), "kind") {
	case "STRING":
		return ctxString
	case "NULL":
		return ctxJSON
	default:
		return ctxNumber
	}
}

// function rewrites JSON extraction (json_extract, ->, ->>) into the
// engine's null-on-malformed macros, typed by context (a JSON number is a
// number where a number is wanted), and refuses TUMBLE outside GROUP BY.
func (w *walker) function(n, parent node) error {
	name := strings.ToLower(str(n, "function_name"))
	var macro string
	switch name {
	case "json_extract", "->", "json_extract_path":
		macro = "sh_json"
	case "->>", "json_extract_string", "json_extract_path_text":
		macro = "sh_json_text"
	default:
		return nil
	}
	args, _ := n["arguments"].([]any)
	if len(args) != 2 {
		return nil
	}
	if path := asNode(asNode(args[1])["expression"]); str(path, "class") == "CONSTANT" {
		if lit, _ := path["literal"].(node); lit != nil && str(lit, "kind") == "STRING" && !slices.Contains(w.a.jsonPaths, str(lit, "text")) {
			w.a.jsonPaths = append(w.a.jsonPaths, str(lit, "text"))
		}
	}
	return w.jsonEdit(n, parent, macro, asNode(asNode(args[0])["expression"]), asNode(asNode(args[1])["expression"]))
}

// within reports whether every located node under n lies in n's span
// (the parser's spans are not exact for every expression: a rewrite is
// only made where they are).
func (w *walker) within(n node) bool {
	start, end, ok := w.span(n)
	if !ok {
		return false
	}
	inside := true
	var check func(v any)
	check = func(v any) {
		switch x := v.(type) {
		case node:
			if s, e, ok := w.span(x); ok && (s < start || e > end) {
				inside = false
			}
			for _, c := range x {
				check(c)
			}
		case []any:
			for _, c := range x {
				check(c)
			}
		}
	}
	for _, c := range n {
		check(c)
	}
	return inside
}

func (w *walker) jsonEdit(n, parent node, macro string, doc, path node) error {
	var spans [2][2]int
	for i, e := range []node{doc, path} {
		s, en, ok := w.span(e)
		if !ok || !w.within(e) {
			return nil
		}
		spans[i] = [2]int{s, en}
	}
	start, end, ok := w.span(n)
	if !ok || !w.within(n) || spans[0][1] > spans[1][0] {
		return nil
	}
	ctx := jsonContext(n, parent)
	if w.orderBy[[2]int{start, end}] {
		ctx = ctxOrder
	}
	w.a.edits = append(w.a.edits, edit{start: start, end: end, render: func(sub func(int, int) string) string {
		call := macro + "(" + sub(spans[0][0], spans[0][1]) + ", " + sub(spans[1][0], spans[1][1]) + ")"
		switch {
		case ctx == ctxOrder && macro == "sh_json":
			// Only a JSON number sorts as a number.
			num := "sh_json_num(" + sub(spans[0][0], spans[0][1]) + ", " + sub(spans[1][0], spans[1][1]) + ")"
			return "struct_pack(n := " + num + ", s := " + call + "::VARCHAR)"
		case ctx == ctxOrder:
			return "struct_pack(n := TRY_CAST(" + call + " AS DOUBLE), s := " + call + "::VARCHAR)"
		case ctx == ctxNumber && macro == "sh_json":
			return "sh_json_num(" + sub(spans[0][0], spans[0][1]) + ", " + sub(spans[1][0], spans[1][1]) + ")"
		case ctx == ctxNumber:
			return "TRY_CAST(" + call + " AS DOUBLE)"
		case ctx == ctxString && macro == "sh_json":
			return "sh_json_text(" + sub(spans[0][0], spans[0][1]) + ", " + sub(spans[1][0], spans[1][1]) + ")"
		}
		return call
	}})
	return nil
}

// window reads TUMBLE(ts, size), HOP(ts, slide, size), SESSION(ts, gap).
func (w *walker) window(kind string, n node, table, alias string) (window, error) {
	args, _ := n["arguments"].([]any)
	want := map[string]int{"tumble": 2, "hop": 3, "session": 2}[kind]
	usage := map[string]string{"tumble": "TUMBLE(timestamp, INTERVAL '1' HOUR)", "hop": "HOP(timestamp, INTERVAL slide, INTERVAL size)",
		"session": "SESSION(timestamp, INTERVAL gap)"}[kind]
	if len(args) != want {
		return window{}, &Error{Code: CodeInvalid, Message: "use " + usage}
	}
	if column(asNode(asNode(args[0])["expression"]), table, alias) != "timestamp" {
		return window{}, &Error{Code: CodeInvalid, Message: "windows are over timestamp: use " + usage}
	}
	var ms []int64
	for _, a := range args[1:] {
		v, ok := intervalMillis(asNode(asNode(a)["expression"]))
		if !ok || v <= 0 {
			return window{}, &Error{Code: CodeInvalid, Message: "a window needs a positive constant INTERVAL (MILLISECOND … DAY): use " + usage}
		}
		ms = append(ms, v)
	}
	switch kind {
	case "hop":
		if ms[1]%ms[0] != 0 {
			return window{}, &Error{Code: CodeInvalid, Message: "HOP's size must be a multiple of its slide"}
		}
		if ms[1]/ms[0] > 1000 {
			return window{}, &Error{Code: CodeResourceLimit, Message: "HOP's size may be at most 1000 slides"}
		}
		return window{kind: kind, slide: ms[0], size: ms[1]}, nil
	default:
		return window{kind: kind, size: ms[0]}, nil
	}
}

var unitMillis = map[string]int64{
	"to_milliseconds": 1, "to_seconds": 1000, "to_minutes": 60_000, "to_hours": 3_600_000, "to_days": 86_400_000,
	"millisecond": 1, "milliseconds": 1, "ms": 1, "second": 1000, "seconds": 1000, "s": 1000, "minute": 60_000,
	"minutes": 60_000, "m": 60_000, "hour": 3_600_000, "hours": 3_600_000, "h": 3_600_000, "day": 86_400_000,
	"days": 86_400_000, "d": 86_400_000,
}

// intervalMillis reads INTERVAL '5' MINUTE (parsed as to_minutes(…'5'…))
// and INTERVAL '5 minutes' (a cast of a string to INTERVAL).
func intervalMillis(n node) (int64, bool) {
	if n == nil {
		return 0, false
	}
	if str(n, "class") == "FUNCTION" {
		unit, ok := unitMillis[strings.ToLower(str(n, "function_name"))]
		if !ok || !strings.HasPrefix(str(n, "function_name"), "to_") {
			return 0, false
		}
		lit := firstLiteral(n)
		v, err := strconv.ParseFloat(lit, 64)
		if err != nil || v != math.Trunc(v) || v > 1e12 {
			return 0, false
		}
		return int64(v) * unit, true
	}
	if str(n, "class") == "CAST" && strings.EqualFold(str(asNode(n["type_expr"]), "type_name"), "INTERVAL") ||
		str(n, "class") == "CAST" && strings.EqualFold(str(asNode(n["cast_type"]), "id"), "INTERVAL") {
		f := strings.Fields(firstLiteral(n))
		if len(f) != 2 {
			return 0, false
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		unit, ok := unitMillis[strings.ToLower(f[1])]
		if err != nil || !ok || v > 1e12 {
			return 0, false
		}
		return v * unit, true
	}
	return 0, false
}

func firstLiteral(v any) string {
	switch x := v.(type) {
	case node:
		if str(x, "class") == "CONSTANT" {
			return str(asNode(x["literal"]), "text")
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s := firstLiteral(x[k]); s != "" {
				return s
			}
		}
	case []any:
		for _, c := range x {
			if s := firstLiteral(c); s != "" {
				return s
			}
		}
	}
	return ""
}

// rewrite applies the edits to text. Edits nest (a JSON extraction inside
// another); overlapping edits that do not nest are dropped (the inner one
// stays the user's text), which can only lose a rewrite, never corrupt.
func rewrite(text string, edits []edit) string {
	es := slices.Clone(edits)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].start != es[j].start {
			return es[i].start < es[j].start
		}
		return es[i].end > es[j].end
	})
	var sub func(start, end int, from int) string
	sub = func(start, end int, from int) string {
		var sb strings.Builder
		pos := start
		for i := from; i < len(es); i++ {
			e := es[i]
			if e.start < pos || e.end > end {
				continue // nested in an edit already rendered, or outside
			}
			if e.start >= end {
				break
			}
			sb.WriteString(text[pos:e.start])
			next := i + 1
			sb.WriteString(e.render(func(s, en int) string { return sub(s, en, next) }))
			pos = e.end
		}
		sb.WriteString(text[pos:end])
		return sb.String()
	}
	return sub(0, len(text), 0)
}
