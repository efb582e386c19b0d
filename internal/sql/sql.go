// Package sql answers SQL over topics (SPEC.md "SQL over topics"): every
// topic is a read-only table of its committed records, queried with DuckDB
// behind the small interface below, so only this package, the server
// binary and end-to-end tests link the engine (cgo). Built without cgo,
// New returns ErrUnavailable and the front ends answer 501.
package sql

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/sqlapi"
)

// The interface types live in internal/sqlapi, which the front ends
// import without linking the engine; these aliases keep the engine's code
// in its own terms.
type (
	Code     = sqlapi.Code
	Error    = sqlapi.Error
	Request  = sqlapi.Request
	Column   = sqlapi.Column
	Result   = sqlapi.Result
	Engine   = sqlapi.Engine
	Streamer = sqlapi.Streamer
)

// ErrUnavailable: this binary has no SQL engine (built without cgo).
var ErrUnavailable = sqlapi.ErrUnavailable

// The refusal codes.
const (
	CodeParse         = sqlapi.CodeParse
	CodeInvalid       = sqlapi.CodeInvalid
	CodeUnsupported   = sqlapi.CodeUnsupported
	CodeResourceLimit = sqlapi.CodeResourceLimit
	CodeTopicNotFound = sqlapi.CodeTopicNotFound
	CodeTimeout       = sqlapi.CodeTimeout
)

// Source is what the engine reads: the broker's committed read path (the
// same caches and read-ahead as every reader). *broker.Broker implements it.
type Source interface {
	ListTopics(ctx context.Context) ([]metadata.Topic, error)
	Topic(ctx context.Context, name string) (metadata.Topic, error)
	// StableOffsets gives the snapshot a query reads: [logStart, lso).
	StableOffsets(ctx context.Context, topic string, partition int32) (logStart, lso, hw int64, err error)
	// OffsetForTime is ListOffsets by timestamp (time-predicate pushdown).
	OffsetForTime(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, found bool, err error)
	// Scan reads the committed records of [from, to) (never past the
	// LSO, no aborted or control records) batch by batch, without copies.
	Scan(ctx context.Context, topic string, partition int32, from, to int64) (*broker.Scanner, error)
}

var _ Source = (*broker.Broker)(nil)

// Config configures New.
type Config struct {
	Source Source
	Logger *slog.Logger
	// Registry receives the SQL metrics (nil: none registered).
	Registry prometheus.Registerer
	// MaxMemoryBytes caps the engine's memory (SQL_MAX_MEMORY_BYTES) and
	// Threads its worker threads (SQL_THREADS; 0: half the CPUs, at least
	// one, so the broker's own work always keeps the other half).
	MaxMemoryBytes int64
	Threads        int
	// Defaults of Request.MaxRows (SQL_MAX_ROWS) and Request.Timeout
	// (SQL_TIMEOUT_MS).
	MaxRows int
	Timeout time.Duration
	// MaxResultBytes bounds one answer's values held in Go (the engine's
	// memory limit does not cover them): beyond it the query answers
	// resource_limit. Default 64 MiB.
	MaxResultBytes int64
	// Access, when set, decides which topics a statement's caller may use
	// (ACLs). Nil: every topic.
	Access Access
}

// Access decides, for the caller a statement's context carries, which
// topics it may use. Every topic a statement names (FROM, JOIN,
// subqueries, CTE bodies, live queries) is asked before anything of it is
// read or even looked up.
type Access interface {
	// Use returns nil when the caller may read topic's records (read) or
	// describe it (DESCRIBE); otherwise an error that refuses the
	// statement and is returned as it is.
	Use(ctx context.Context, topic string, read bool) error
	// Visible returns the topics of names SHOW TOPICS lists.
	Visible(ctx context.Context, names []string) []string
}
