// Package sql answers SQL over topics (SPEC.md "SQL over topics"): every
// topic is a read-only table of its committed records, queried with DuckDB
// behind the small interface below, so only this package, the server
// binary and end-to-end tests link the engine (cgo). Built without cgo,
// New returns ErrUnavailable and the front ends answer 501.
package sql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
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
	// an error from emit ends the stream with it.
	Stream(ctx context.Context, req Request, emit func(columns []Column, row []any) error) error
}

// Source is what the engine reads: the broker's committed read path (the
// same caches and read-ahead as every reader). *broker.Broker implements it.
type Source interface {
	ListTopics(ctx context.Context) ([]metadata.Topic, error)
	Topic(ctx context.Context, name string) (metadata.Topic, error)
	// StableOffsets gives the snapshot a query reads: [logStart, lso).
	StableOffsets(ctx context.Context, topic string, partition int32) (logStart, lso, hw int64, err error)
	// OffsetForTime is ListOffsets by timestamp (time-predicate pushdown).
	OffsetForTime(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, found bool, err error)
	// ConsumeBytes reads committed records from offset (never past the
	// LSO, no aborted or control records), within a byte budget.
	ConsumeBytes(ctx context.Context, topic string, partition int32, offset int64, maxRecords, maxBytes int, maxWait time.Duration) (broker.ConsumedRecords, error)
}

var _ Source = (*broker.Broker)(nil)

// Config configures New.
type Config struct {
	Source Source
	Logger *slog.Logger
	// Registry receives the SQL metrics (nil: none registered).
	Registry prometheus.Registerer
	// MaxMemoryBytes caps the engine's memory (SQL_MAX_MEMORY_BYTES) and
	// Threads its worker threads (default 1: the broker's own work is never
	// starved on a small machine).
	MaxMemoryBytes int64
	Threads        int
	// Defaults of Request.MaxRows (SQL_MAX_ROWS) and Request.Timeout
	// (SQL_TIMEOUT_MS).
	MaxRows int
	Timeout time.Duration
}
