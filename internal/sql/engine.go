//go:build cgo

package sql

// The DuckDB engine. One in-memory database, capped in memory and
// threads, with no file, network or extension access. A query runs on its
// own connection: the statement is parsed by DuckDB (json_serialize_sql),
// analysed (analyze.go), its topics snapshotted and bounded (scan.go),
// each topic defined as a temporary view over the sh_scan table function,
// and the rewritten text run under an outer LIMIT of MaxRows+1.

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

const (
	defaultMaxMemory = 256 << 20
	defaultMaxRows   = 10000
	// defaultMaxResultBytes is Config.MaxResultBytes's default.
	defaultMaxResultBytes = 64 << 20
	defaultTimeout        = 30 * time.Second
	// maxConcurrent bounds the queries running at once (each holds a
	// DuckDB connection); more wait for one, within their timeout.
	maxConcurrent = 4
	maxQueryBytes = 1 << 20
)

type engine struct {
	cfg       Config
	connector *duckdb.Connector
	db        *stdsql.DB
	metrics   *metrics
	nextID    atomic.Int64
	queries   sync.Map // query id → *queryState
	// functions and catalog are the names DuckDB knows (setup).
	functions, catalog map[string]bool
}

// New opens the engine.
func New(cfg Config) (Engine, error) {
	if cfg.Source == nil {
		return nil, errors.New("sql: Config.Source is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxMemoryBytes <= 0 {
		cfg.MaxMemoryBytes = defaultMaxMemory
	}
	if cfg.Threads <= 0 {
		cfg.Threads = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = defaultMaxResultBytes
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = defaultMaxRows
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	// temp_directory empty: grouping and sorting never spill to disk, so
	// MaxMemoryBytes is a hard bound (beyond it: resource_limit).
	dsn := fmt.Sprintf("?threads=%d&memory_limit=%dB&autoload_known_extensions=false"+
		"&autoinstall_known_extensions=false&allow_community_extensions=false",
		cfg.Threads, cfg.MaxMemoryBytes)
	connector, err := duckdb.NewConnector(dsn, nil)
	if err != nil {
		return nil, fmt.Errorf("sql: open duckdb: %w", err)
	}
	e := &engine{cfg: cfg, connector: connector, metrics: m}
	e.db = stdsql.OpenDB(connector)
	// A query holds one connection at a time (parse, then execute), so
	// the pool is the bound on queries running at once.
	e.db.SetMaxOpenConns(maxConcurrent)
	e.db.SetMaxIdleConns(0) // a fresh connection per query: no temporary views left behind
	if err := e.setup(context.Background()); err != nil {
		_ = e.Close()
		return nil, err
	}
	return e, nil
}

// setup registers the scan and the JSON macros (database-wide).
func (e *engine) setup(ctx context.Context) error {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sql: connect: %w", err)
	}
	defer conn.Close()
	if err := duckdb.RegisterTableUDF(conn, "sh_scan", e.scanFunction()); err != nil {
		return fmt.Errorf("sql: register scan: %w", err)
	}
	for _, stmt := range []string{
		`SET GLOBAL temp_directory = ''`,
		`SET GLOBAL enable_external_access = false`,
		`SET GLOBAL lock_configuration = true`,
		// JSON extraction is NULL (not an error) for a value that is not
		// JSON, and for a JSON null. TRY costs nothing on valid input.
		// Where a number is wanted, only a JSON number is one: through
		// VARCHAR, a JSON string ("12", quotes included) or a boolean does
		// not cast to DOUBLE, where the JSON type's own cast would take it.
		`CREATE MACRO sh_json_num(j, p) AS TRY_CAST(TRY(json_extract(j, p))::VARCHAR AS DOUBLE)`,
		`CREATE MACRO sh_json(j, p) AS nullif(TRY(json_extract(j, p)), 'null')`,
		`CREATE MACRO sh_json_text(j, p) AS TRY(json_extract_string(j, p))`,
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sql: setup: %w", err)
		}
	}
	// The names DuckDB knows: a call of one of them that is not allowed
	// is unsupported_operation, of any other invalid_query; a CTE may not
	// take a catalog object's name (a reference out of the CTE's scope
	// would reach the object).
	for _, q := range []struct {
		sql string
		set *map[string]bool
	}{
		{`SELECT DISTINCT lower(function_name) FROM duckdb_functions()`, &e.functions},
		{`SELECT DISTINCT lower(view_name) FROM duckdb_views() UNION SELECT DISTINCT lower(table_name) FROM duckdb_tables()`, &e.catalog},
	} {
		names, err := queryNames(ctx, conn, q.sql)
		if err != nil {
			return fmt.Errorf("sql: setup: %w", err)
		}
		*q.set = names
	}
	return nil
}

// queryNames returns the strings of a one-column query as a set.
func queryNames(ctx context.Context, conn *stdsql.Conn, q string) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]bool)
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

func (e *engine) Close() error {
	err := e.db.Close()
	if cerr := e.connector.Close(); err == nil {
		err = cerr
	}
	return err
}

// Query runs one statement.
func (e *engine) Query(ctx context.Context, req Request) (Result, error) {
	start := time.Now()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = e.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := e.query(ctx, req)
	res.ExecutionTime = time.Since(start)
	if err != nil {
		err = e.classify(ctx, err)
		res = Result{ExecutionTime: res.ExecutionTime, ScannedRecords: res.ScannedRecords, ScannedBytes: res.ScannedBytes}
	}
	e.metrics.observe(res, err, false)
	return res, err
}

// classify maps an engine error to the SPEC's codes; a broker error
// stays what it is (the front end answers 500 or 503 for it).
func (e *engine) classify(ctx context.Context, err error) error {
	var qe *Error
	if errors.As(err, &qe) {
		return qe
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeTimeout, Message: "the query ran out of time"}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, errScan) {
		return err
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return err
	}
	msg := firstLine(de.Msg)
	switch de.Type {
	case duckdb.ErrorTypeOutOfMemory:
		return &Error{Code: CodeResourceLimit, Message: "the query needs more memory than SQL_MAX_MEMORY_BYTES: " + msg}
	case duckdb.ErrorTypeInterrupt:
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ctx.Err()
		}
		return &Error{Code: CodeTimeout, Message: "the query ran out of time"}
	case duckdb.ErrorTypeParser, duckdb.ErrorTypeSyntax:
		return &Error{Code: CodeParse, Message: msg}
	case duckdb.ErrorTypePermission, duckdb.ErrorTypeNotImplemented, duckdb.ErrorTypeMissingExtension,
		duckdb.ErrorTypeAutoLoad, duckdb.ErrorTypeHTTP, duckdb.ErrorTypeIO, duckdb.ErrorTypeNetwork:
		return &Error{Code: CodeUnsupported, Message: msg}
	case duckdb.ErrorTypeFatal, duckdb.ErrorTypeInternal, duckdb.ErrorTypeConnection:
		return fmt.Errorf("sql engine: %s", msg)
	}
	if strings.Contains(msg, "Out of Memory") || strings.Contains(msg, "memory limit") {
		return &Error{Code: CodeResourceLimit, Message: msg}
	}
	return &Error{Code: CodeInvalid, Message: msg}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func (e *engine) query(ctx context.Context, req Request) (Result, error) {
	if len(req.Query) > maxQueryBytes {
		return Result{}, &Error{Code: CodeResourceLimit, Message: fmt.Sprintf("a query is at most %d bytes", maxQueryBytes)}
	}
	maxRows := req.MaxRows
	if maxRows <= 0 {
		maxRows = e.cfg.MaxRows
	}
	st, err := classifyStatement(req.Query)
	if err != nil {
		return Result{}, err
	}
	switch st.kind {
	case stmtShowTopics:
		return e.showTopics(ctx)
	case stmtDescribe:
		return e.describe(ctx, st.topic)
	}
	a, err := e.parse(ctx, req.Query, st)
	if err != nil {
		return Result{}, err
	}
	q := &queryState{}
	q.id = e.nextID.Add(1)
	if err := e.plan(ctx, q, a); err != nil {
		return Result{}, err
	}
	if st.kind == stmtExplain {
		return explainResult(q), nil
	}
	return e.execute(ctx, q, a, st.text, maxRows)
}

// parse has DuckDB parse a SELECT and analyses it.
func (e *engine) parse(ctx context.Context, query string, st statement) (*analysis, error) {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sql: connect: %w", err)
	}
	defer conn.Close()
	var p parsed
	var out string
	if err := conn.QueryRowContext(ctx, `SELECT json_serialize_sql(?::VARCHAR)::VARCHAR`, st.text).Scan(&out); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("sql: parse answer: %w", err)
	}
	if p.Error {
		return nil, parseError(query, st, p)
	}
	if len(p.Statements) != 1 {
		return nil, &Error{Code: CodeUnsupported, Message: "one statement at a time"}
	}
	a, err := analyze(st.text, p.Statements[0], known{functions: e.functions, catalog: e.catalog})
	if err != nil {
		return nil, err
	}
	// The extraction macros answer NULL where DuckDB raises an error (a
	// value that is not JSON), which would hide a malformed path too:
	// each constant path is tried once here.
	for _, path := range a.jsonPaths {
		var v stdsql.NullString
		// The path as a literal: DuckDB takes wildcards only in a constant.
		q := `SELECT json_extract('{}'::JSON, ` + quoteString(path) + `)::VARCHAR`
		if err := conn.QueryRowContext(ctx, q).Scan(&v); err != nil {
			var de *duckdb.Error
			if errors.As(err, &de) {
				return nil, &Error{Code: CodeInvalid, Message: fmt.Sprintf("JSON path %q: %s", path, firstLine(de.Msg))}
			}
			return nil, err
		}
	}
	return a, nil
}

// execute runs a planned query on its own connection.
func (e *engine) execute(ctx context.Context, q *queryState, a *analysis, text string, maxRows int) (Result, error) {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("sql: connect: %w", err)
	}
	defer conn.Close()
	e.queries.Store(q.id, q)
	defer e.queries.Delete(q.id)
	for i, t := range q.topics {
		if _, err := conn.ExecContext(ctx, viewSQL(q.id, i, t, a.windows[t.name], q.viewFilter)); err != nil {
			return Result{}, fmt.Errorf("sql: define %s: %w", t.name, err)
		}
		defer func() {
			// Best effort: the next query replaces a view it needs anyway.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS temp."+quoteIdent(t.name))
		}()
	}
	body := strings.TrimRight(strings.TrimSpace(rewrite(text, a.edits)), ";")
	final := "SELECT * FROM (\n" + body + "\n) LIMIT " + strconv.Itoa(maxRows+1)
	res, err := e.run(ctx, conn, final, maxRows)
	res.ScannedRecords, res.ScannedBytes = q.records.Load(), q.bytes.Load()
	if serr := q.failed(); serr != nil {
		return res, serr
	}
	return res, err
}

// parseError turns DuckDB's parser error into line and column of the
// user's text.
func parseError(query string, st statement, p parsed) error {
	if p.ErrorType != "parser" {
		if strings.Contains(p.ErrorMessage, "Only SELECT") {
			return &Error{Code: CodeUnsupported, Message: "read-only: only SELECT, EXPLAIN SELECT, SHOW TOPICS and DESCRIBE are supported"}
		}
		return &Error{Code: CodeInvalid, Message: p.ErrorMessage}
	}
	pos, err := strconv.Atoi(p.Position)
	if err != nil || pos < 0 {
		pos = 0
	}
	pos = st.queryPos(pos)
	if pos > len(query) {
		pos = len(query)
	}
	line := 1 + strings.Count(query[:pos], "\n")
	col := pos - strings.LastIndexByte(query[:pos], '\n')
	return &Error{Code: CodeParse, Line: line, Column: col, Message: fmt.Sprintf("%s (line %d, column %d)", p.ErrorMessage, line, col)}
}

// run executes the final SQL and converts its rows.
func (e *engine) run(ctx context.Context, conn *stdsql.Conn, final string, maxRows int) (Result, error) {
	rows, err := conn.QueryContext(ctx, final)
	if err != nil {
		return Result{}, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return Result{}, err
	}
	res := Result{Columns: make([]Column, len(types)), Rows: [][]any{}}
	var size int64 // the answer's values, roughly as they are held
	for i, t := range types {
		res.Columns[i] = Column{Name: t.Name(), DataType: t.DatabaseTypeName()}
	}
	for rows.Next() {
		if len(res.Rows) == maxRows {
			res.Truncated = true
			break
		}
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Result{}, err
		}
		for i, v := range vals {
			vals[i] = jsonValue(v, res.Columns[i].DataType)
			size += valueSize(vals[i])
		}
		if size > e.cfg.MaxResultBytes {
			return Result{}, &Error{Code: CodeResourceLimit, Message: fmt.Sprintf("the answer is larger than %d bytes: select fewer rows or smaller values", e.cfg.MaxResultBytes)}
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return Result{}, err
	}
	return res, nil
}

func (e *engine) showTopics(ctx context.Context) (Result, error) {
	ts, err := e.cfg.Source.ListTopics(ctx)
	if err != nil {
		return Result{}, err
	}
	var visible map[string]bool
	if e.cfg.Access != nil {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = t.Name
		}
		visible = make(map[string]bool, len(ts))
		for _, n := range e.cfg.Access.Visible(ctx, names) {
			visible[n] = true
		}
	}
	res := Result{Columns: []Column{{Name: "name", DataType: "VARCHAR"}, {Name: "partitions", DataType: "INTEGER"}}, Rows: [][]any{}}
	for _, t := range ts {
		if visible == nil || visible[t.Name] {
			res.Rows = append(res.Rows, []any{t.Name, int64(t.Partitions)})
		}
	}
	return res, nil
}

func (e *engine) describe(ctx context.Context, topic string) (Result, error) {
	if _, err := e.topic(ctx, topic, false); err != nil {
		return Result{}, err
	}
	res := Result{Columns: []Column{{Name: "column_name", DataType: "VARCHAR"}, {Name: "column_type", DataType: "VARCHAR"}, {Name: "null", DataType: "VARCHAR"}}}
	for _, c := range topicColumns {
		res.Rows = append(res.Rows, []any{c.Name, c.DataType, c.null})
	}
	return res, nil
}

// topic resolves a topic name the statement reads (read) or describes;
// an unknown one is topic_not_found, one the caller may not use Access's
// refusal (asked first, so existence does not show).
func (e *engine) topic(ctx context.Context, name string, read bool) (metadata.Topic, error) {
	if e.cfg.Access != nil {
		if err := e.cfg.Access.Use(ctx, name, read); err != nil {
			return metadata.Topic{}, err
		}
	}
	t, err := e.cfg.Source.Topic(ctx, name)
	if errors.Is(err, broker.ErrUnknownTopic) || errors.Is(err, metadata.ErrTopicNotFound) {
		return t, &Error{Code: CodeTopicNotFound, Message: fmt.Sprintf("topic %q does not exist", name)}
	}
	return t, err
}

// topicColumns are a topic's columns in SELECT * order.
var topicColumns = []struct {
	Column
	null string
}{
	{Column{Name: "partition", DataType: "INTEGER"}, "NO"},
	{Column{Name: "offset", DataType: "BIGINT"}, "NO"},
	{Column{Name: "timestamp", DataType: "BIGINT"}, "NO"},
	{Column{Name: "key", DataType: "VARCHAR"}, "YES"},
	{Column{Name: "value", DataType: "VARCHAR"}, "YES"},
	{Column{Name: "headers", DataType: "JSON"}, "NO"},
}

// valueSize is about what a result value holds in memory.
func valueSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(x)) + 16
	case []byte:
		return int64(len(x)) + 24
	case json.RawMessage:
		return int64(len(x)) + 24
	}
	return 16
}
