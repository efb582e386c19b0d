package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// sqliteCoded stands for a SQLite driver error, which reports its result
// code through Code().
type sqliteCoded int

func (c sqliteCoded) Error() string { return fmt.Sprintf("sqlite error %d", int(c)) }
func (c sqliteCoded) Code() int     { return int(c) }

func TestTransientClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"serialization failure left after retries", &pgconn.PgError{Code: "40001"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"connection closed", fmt.Errorf("exec: %w", pgconn.ErrConnClosed), true},
		{"cut off mid-message", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"store call deadline", context.DeadlineExceeded, true},
		{"caller cancelled", context.Canceled, false},
		{"sqlite busy", sqliteCoded(5), true},
		{"sqlite busy snapshot", sqliteCoded(5 | 2<<8), true},
		{"sqlite constraint", sqliteCoded(19), false},
		{"not found", metadata.ErrTopicNotFound, false},
		{"fenced", &metadata.FencedError{}, false},
	} {
		got := errors.Is(unavailable(tc.err), metadata.ErrUnavailable)
		if got != tc.want {
			t.Errorf("%s: unavailable %v, want %v", tc.name, got, tc.want)
		}
		if !errors.Is(unavailable(tc.err), tc.err) {
			t.Errorf("%s: the original error is lost", tc.name)
		}
	}
}
