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
const (
	sqliteCommon = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	sqliteWriter = sqliteCommon + "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
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
	tx, err := b.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from _txlock
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(sqlQuerier{tx}); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
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
	return b.tx(ctx, func(q querier) error { return commitWithValues(ctx, q, c) })
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
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	rs, err := q.c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rs}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() } // a failure surfaces through Err
