// Package sqlapi is the interface of SQL over topics (SPEC.md "SQL over
// topics") that the front ends (REST, streamctl through REST) program
// against: requests, results, the refusal codes and the engine interface.
// The engine itself (internal/sql, DuckDB through cgo) is linked only by
// the server binary and the end-to-end tests; this package links nothing.
package sqlapi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable: this binary has no SQL engine (built without cgo).
var ErrUnavailable = errors.New("SQL is not available in this build (it needs cgo)")

// Code is the error code of a refused query (SPEC.md): the front ends map
// it to their status (REST: 400, 404 or 408).
type Code string

const (
	CodeParse         Code = "parse_error"           // the text is not SQL; Line and Column say where
	CodeInvalid       Code = "invalid_query"         // unknown column, function, or a type mismatch
	CodeUnsupported   Code = "unsupported_operation" // anything but SELECT, SHOW TOPICS, DESCRIBE, EXPLAIN
	CodeResourceLimit Code = "resource_limit"        // SQL_MAX_MEMORY_BYTES or another bound
	CodeTopicNotFound Code = "topic_not_found"
	CodeTimeout       Code = "query_timeout"
)

// Error is a query the engine refused, in SPEC.md's terms.
type Error struct {
	Code    Code
	Message string
	// Line and Column (1-based) locate a parse error; 0 otherwise.
	Line, Column int
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Request is one query.
type Request struct {
	Query string
	// Timeout bounds the query (0: Config.Timeout). MaxRows bounds the
	// rows returned (0: Config.MaxRows); more make Result.Truncated.
	Timeout time.Duration
	MaxRows int
}

// Column is a result column: its name and SQL type (DuckDB's name for it,
// e.g. BIGINT, VARCHAR, DOUBLE, JSON).
type Column struct {
	Name     string
	DataType string
}

// Result is a query's answer, in the original's shape. Row values are
// JSON-ready: int64, float64, string, bool, nil, or json.RawMessage.
type Result struct {
	Columns       []Column
	Rows          [][]any
	Truncated     bool
	ExecutionTime time.Duration
	// Scanned counts what the query read: records and their stored bytes.
	ScannedRecords int64
	ScannedBytes   int64
}

// Engine runs queries. Safe for concurrent use.
type Engine interface {
	Query(ctx context.Context, req Request) (Result, error)
	Close() error
}

// Streamer runs live queries (SPEC.md: POST /api/v1/sql/stream). The
// engine New returns implements it.
type Streamer interface {
	// Stream runs a SELECT … WHERE … without aggregates, grouping,
	// ordering or joins (else unsupported_operation), or one grouped by
	// TUMBLE (each window sent once, when it closes), over the records
	// committed after the call, calling emit for each row (columns is the
	// same every time) as they are committed, until the
	// query's LIMIT is reached, ctx is done (ctx.Err()), or req.Timeout
	// passes (nil). Errors before the first row are *Error as for Query;
	// an error from emit ends the stream with it. Once the query is
	// accepted (parsed, checked, and its starting offsets fixed), emit is
	// called once with no columns and no row, so a front end can answer
	// its headers before any record is committed.
	Stream(ctx context.Context, req Request, emit func(columns []Column, row []any) error) error
}
