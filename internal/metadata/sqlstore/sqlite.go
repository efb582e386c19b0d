package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ErrLocked is returned by OpenSQLite when another process, or another
// Store in this process, has the database open.
var ErrLocked = errors.New("sqlite metadata database is in use by another process")

// Connection settings. synchronous=FULL makes every commit fsync the WAL:
// a committed CommitObject backs a durable ack and must survive power loss.
// busy_timeout only matters for checkpoints and readers: writers queue on the
// single writer connection, and the lock file keeps other processes out.
// A commit dirties about one index page per partition it carries, mostly
// the same pages as the previous commit, so checkpointing every 10000 pages
// rather than 1000 writes each page back once instead of many times;
// journal_size_limit trims the WAL file after a checkpoint.
const (
	sqliteCommon = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	sqliteWriter = sqliteCommon + "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=wal_autocheckpoint(10000)&_pragma=journal_size_limit(67108864)&_txlock=immediate"
	sqliteReader = sqliteCommon + "&_pragma=query_only(1)"
)

// OpenSQLite opens, creating it if needed, the SQLite metadata database at
// path and migrates it to the current schema. It holds an exclusive lock on
// path+".lock" until Close; a second open fails with ErrLocked.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	logger = defaultLogger(logger)
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite metadata %q: path must be non-empty and free of '?'", path)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("open sqlite metadata %s: %w", path, err)
	}
	b := &sqliteBackend{lock: lock}
	if err := b.open(ctx, path, logger); err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite metadata %s: %w", path, err), b.close())
	}
	logger.InfoContext(ctx, "metadata store open", "backend", "sqlite", "path", path)
	return &Store{b: b, logger: logger}, nil
}

// sqliteBackend writes through one connection (SQLite has one writer anyway;
// queueing in Go avoids SQLITE_BUSY) and reads through a pool.
type sqliteBackend struct {
	writer  *sql.DB
	readers *sql.DB
	lock    *os.File
}

func (b *sqliteBackend) open(ctx context.Context, path string, logger *slog.Logger) error {
	var err error
	if b.writer, err = sql.Open("sqlite", path+"?"+sqliteWriter); err != nil {
		return err
	}
	b.writer.SetMaxOpenConns(1)
	b.writer.SetMaxIdleConns(1)
	b.writer.SetConnMaxIdleTime(0)
	b.writer.SetConnMaxLifetime(0)
	var mode string
	if err := b.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		logger.WarnContext(ctx, "sqlite metadata is not in WAL mode; readers will block the writer", "journal_mode", mode)
	}
	if err := migrate(ctx, b.writer, goose.DialectSQLite3, "sqlite", logger); err != nil {
		return err
	}
	if b.readers, err = sql.Open("sqlite", path+"?"+sqliteReader); err != nil {
		return err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	b.readers.SetMaxOpenConns(n)
	b.readers.SetMaxIdleConns(n)
	return b.readers.PingContext(ctx)
}

func (b *sqliteBackend) reader() querier { return sqlQuerier{b.readers} }

func (b *sqliteBackend) tx(ctx context.Context, fn func(q querier) error) error {
	return b.rawTx(ctx, func(tx *sql.Tx) error { return fn(sqlQuerier{tx}) })
}

func (b *sqliteBackend) rawTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := b.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from _txlock
	if err != nil {
		return unavailable(fmt.Errorf("begin: %w", err))
	}
	if err := fn(tx); err != nil {
		return unavailable(errors.Join(err, ignoreDone(tx.Rollback())))
	}
	if err := tx.Commit(); err != nil {
		return unavailable(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// ignoreDone drops the error of rolling back a transaction that a canceled
// context already rolled back.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func (b *sqliteBackend) lockRows() string { return "" }

func (b *sqliteBackend) commitObject(ctx context.Context, c *metadata.ObjectCommit) error {
	return b.rawTx(ctx, func(tx *sql.Tx) error { return commitSQLite(ctx, tx, c) })
}

// commitSQLite fences each partition with one execution of a prepared
// primary-key UPDATE (in-process, so no round trips to save; a single
// UPDATE ... FROM (VALUES ...) let the planner pick a quadratic join), then
// inserts the index and producer rows with multi-row INSERTs.
func commitSQLite(ctx context.Context, tx *sql.Tx, c *metadata.ObjectCommit) error {
	q := sqlQuerier{tx}
	n, err := q.exec(ctx, objectInsert, c.ObjectKey, c.Size, c.AgentID, toMillis(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert object: %w", err)
	}
	if n == 0 {
		return errAlreadyCommitted
	}
	fence, err := tx.PrepareContext(ctx, `UPDATE partitions SET high_watermark = $1, last_stable_offset = $7
		WHERE topic_id = $2 AND partition_id = $3 AND leader_agent = $4 AND leader_epoch = $5 AND high_watermark = $6`)
	if err != nil {
		return fmt.Errorf("advance high watermarks: %w", err)
	}
	defer func() { _ = fence.Close() }()
	var failed []metadata.TopicPartition
	for _, p := range c.Partitions {
		res, err := fence.ExecContext(ctx, p.NewHighWatermark, p.TopicID[:], p.Partition, c.AgentID, p.Epoch, p.ExpectedHighWatermark, lastStable(&p))
		if err != nil {
			return fmt.Errorf("advance high watermark of %s: %w", p.TopicPartition, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("advance high watermark of %s: %w", p.TopicPartition, err)
		} else if n == 0 {
			failed = append(failed, p.TopicPartition)
		}
	}
	if len(failed) > 0 {
		return &metadata.FencedError{Partitions: failed}
	}
	r, err := buildCommitRows(c)
	if err != nil {
		return err
	}
	if err := insertRows(ctx, q, segmentInsert, "", r.segments); err != nil {
		return fmt.Errorf("insert index entries: %w", err)
	}
	if err := insertRows(ctx, q, producerUpsert, producerTail, r.producers); err != nil {
		return fmt.Errorf("upsert producer state: %w", err)
	}
	if err := insertRows(ctx, q, abortedInsert, abortedTail, r.aborted); err != nil {
		return fmt.Errorf("insert aborted transactions: %w", err)
	}
	return nil
}

func (b *sqliteBackend) ping(ctx context.Context) error {
	_, err := sqlQuerier{b.readers}.exec(ctx, "SELECT 1")
	return err
}

func (b *sqliteBackend) close() error {
	var errs []error
	for _, db := range []*sql.DB{b.readers, b.writer} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if b.lock != nil {
		errs = append(errs, b.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}

// sqlQuerier adapts database/sql (a DB or a Tx) to querier.
type sqlQuerier struct {
	c interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

func (q sqlQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.c.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, unavailable(err)
	}
	return res.RowsAffected()
}

func (q sqlQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	rs, err := q.c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	return classifiedRows{sqlRows{rs}}, nil
}

func (sqlQuerier) bulkParam(int) string { return "?" }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() } // a failure surfaces through Err
