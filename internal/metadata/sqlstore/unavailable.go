package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Errors that say the database could not be used (as opposed to the
// statement failing) carry metadata.ErrUnavailable: the backends classify
// what their drivers return in their queriers and transactions. Errors of
// the store's own making (not found, fenced, conflicts) pass through.

// classifiedRows classifies the error of a result set cut off mid-read.
type classifiedRows struct{ rows }

func (r classifiedRows) Err() error { return unavailable(r.rows.Err()) }

// unavailable wraps err with metadata.ErrUnavailable if it is transient.
func unavailable(err error) error {
	if err == nil || !transient(err) || errors.Is(err, metadata.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", metadata.ErrUnavailable, err)
}

// transient reports whether err says the database could not serve the
// call now but may later: no connection, a connection lost or refused, the
// server shutting down or starting up, too many connections, a deadline
// passed, a deadlock or serialization failure left after the backend's own
// retries (PostgreSQL), or a database still locked after busy_timeout
// (SQLite). A caller's cancellation is not transient: nobody is waiting.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
			"53300",          // too_many_connections
			"40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08" // connection exception
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var sqliteErr interface{ Code() int }
	switch {
	case errors.As(err, &connectErr), errors.Is(err, pgconn.ErrConnClosed), pgconn.Timeout(err),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &sqliteErr):
		switch sqliteErr.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	return false
}
