// Package sqlstore implements metadata.Store over SQL: SQLite (one agent,
// embedded) and PostgreSQL (many agents). Both run the same SQL text, written
// in the common subset of the two dialects with $N placeholders; a backend
// supplies connections, transactions and the hot CommitObject path, where
// each database has its own fastest way to batch.
//
// Concurrency model: on SQLite every write transaction is BEGIN IMMEDIATE on
// a single writer connection, so writers are serial and reads run on a pool
// of read-only connections against WAL snapshots. On PostgreSQL write
// transactions run at READ COMMITTED and every check-then-write is either a
// conditional UPDATE (re-evaluated by PostgreSQL against the newest row
// version after a lock wait) or guarded by SELECT ... FOR UPDATE; deadlocks
// and serialization failures are retried a bounded number of times.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Store is a metadata.Store backed by SQLite or PostgreSQL.
type Store struct {
	b         backend
	logger    *slog.Logger
	local     watchSet[metadata.CommitWatch] // see WatchCommits
	aclLocal  watchSet[acl.Watch]            // see WatchACLs
	changes   watchSet[metadata.ChangeWatch] // see WatchChanges
	closeOnce sync.Once
	closeErr  error
}

var _ metadata.Store = (*Store)(nil)

// backend is what differs between SQLite and PostgreSQL.
type backend interface {
	// reader returns a querier for reads outside a transaction.
	reader() querier
	// tx runs fn in a write transaction, committing if fn returns nil. fn
	// may run more than once when the backend retries a conflict, so it must
	// not leak results from a failed attempt.
	tx(ctx context.Context, fn func(q querier) error) error
	// lockRows is appended to a SELECT whose rows the transaction goes on
	// to change: " FOR UPDATE" where transactions run concurrently, "" where
	// write transactions are already serial.
	lockRows() string
	// commitObject runs a validated commit. It returns errAlreadyCommitted
	// when the object key is already committed.
	commitObject(ctx context.Context, c *metadata.ObjectCommit) error
	ping(ctx context.Context) error
	close() error
}

// querier is the part of a connection or transaction the shared SQL uses.
type querier interface {
	exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	query(ctx context.Context, query string, args ...any) (rows, error)
	// bulkParam is the placeholder of the i-th (from 1) parameter of a
	// generated statement whose parameters appear in order in its text.
	// SQLite gets "?": it resolves "$N" names by a linear search, which
	// makes a statement with thousands of them quadratic to prepare.
	bulkParam(i int) string
}

// rows is a result set; both database/sql and pgx rows fit it via adapters.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// errAlreadyCommitted rolls back a commit whose object key is already
// committed; CommitObject turns it into success.
var errAlreadyCommitted = errors.New("object already committed")

// Ping checks the store answers.
// RetriedTransactions counts the transactions retried after a deadlock or
// a serialization failure (PostgreSQL; always 0 on SQLite, which has one
// writer). Each such retry cost a wait of up to deadlock_timeout.
func (s *Store) RetriedTransactions() int64 {
	if b, ok := s.b.(*pgBackend); ok {
		return b.retried.Load()
	}
	return 0
}

func (s *Store) Ping(ctx context.Context) error {
	if err := s.b.ping(ctx); err != nil {
		return fmt.Errorf("ping metadata store: %w", err)
	}
	return nil
}

// Close releases the store's connections (and, for SQLite, its file lock).
// Closing again is a no-op returning the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.b.close(); err != nil {
			s.closeErr = fmt.Errorf("close metadata store: %w", err)
		}
	})
	return s.closeErr
}

// queryOne runs query and scans its first row into dest. found is false if
// the query returned no row.
func queryOne(ctx context.Context, q querier, dest []any, query string, args ...any) (found bool, err error) {
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rs.Close()
	if !rs.Next() {
		return false, rs.Err()
	}
	if err := rs.Scan(dest...); err != nil {
		return false, err
	}
	return true, nil
}

// queryAll runs query and appends one scanned value per row.
func queryAll[T any](ctx context.Context, q querier, scan func(rows) (T, error), query string, args ...any) ([]T, error) {
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}

// maxParams bounds the placeholders of one statement: SQLite allows 32766,
// PostgreSQL 65535.
const maxParams = 30000

// insertRows inserts rows with multi-row VALUES statements of at most
// maxParams placeholders each: head is "INSERT INTO t (a, b)", tail follows
// the VALUES list (e.g. an ON CONFLICT clause). Every row has the same width.
func insertRows(ctx context.Context, q querier, head, tail string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	width := len(rows[0])
	per := max(1, maxParams/width)
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var sb strings.Builder
		args := make([]any, 0, len(chunk)*width)
		sb.WriteString(head)
		sb.WriteString(" VALUES ")
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j := range r {
				if j > 0 {
					sb.WriteByte(',')
				}
				sb.WriteString(q.bulkParam(len(args) + j + 1))
			}
			sb.WriteByte(')')
			args = append(args, r...)
		}
		sb.WriteByte(' ')
		sb.WriteString(tail)
		if _, err := q.exec(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// placeholders returns the bulk placeholders of parameters from, from+1,
// ... from+n-1, separated by commas.
func placeholders(q querier, from, n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(q.bulkParam(from + i))
	}
	return sb.String()
}

func dollarParam(i int) string { return "$" + strconv.Itoa(i) }

// Times are stored as unix milliseconds; 0 stands for the zero time.

func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func topicIDFrom(b []byte) (metadata.TopicID, error) {
	var id metadata.TopicID
	if len(b) != len(id) {
		return id, fmt.Errorf("stored topic id has %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

func defaultLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
