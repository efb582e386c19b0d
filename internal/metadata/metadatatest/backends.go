package metadatatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

// Environment variables of the PostgreSQL backend.
const (
	// EnvDatabaseURL is an admin URL of a PostgreSQL server; every test gets
	// its own database created through it and dropped afterwards.
	EnvDatabaseURL = "STREAMHOUSE_TEST_DATABASE_URL"
	// EnvRequireServices set to 1 turns "skipped for lack of a server" into
	// a failure (for CI, where the services must be there).
	EnvRequireServices = "STREAMHOUSE_REQUIRE_SERVICES"
)

// Backends returns an opener per implementation, keyed "sqlite" and
// "postgres". The PostgreSQL opener skips the test (or fails it, per
// EnvRequireServices) when no server is configured.
func Backends(t testing.TB) map[string]func(*testing.T) metadata.Store {
	t.Helper()
	return map[string]func(*testing.T) metadata.Store{
		"sqlite":   func(t *testing.T) metadata.Store { return OpenSQLite(t) },
		"postgres": func(t *testing.T) metadata.Store { return OpenPostgres(t) },
	}
}

// OpenSQLite returns a fresh SQLite store in a temporary directory, closed
// at t's cleanup.
func OpenSQLite(t testing.TB) metadata.Store {
	t.Helper()
	return SQLiteOpener(t)()
}

// OpenPostgres returns a store on a fresh PostgreSQL database, closed and
// dropped at t's cleanup.
func OpenPostgres(t testing.TB) metadata.Store {
	t.Helper()
	return PostgresOpener(t)()
}

// SQLiteOpener creates a fresh database location and returns a function
// that opens it; call it again after closing the previous store to reopen
// the same data. Every store it returns is closed at t's cleanup.
func SQLiteOpener(t testing.TB) func() metadata.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "metadata.db")
	return func() metadata.Store {
		t.Helper()
		s, err := sqlstore.OpenSQLite(openContext(t), path, testLogger(t))
		if err != nil {
			t.Fatalf("open sqlite store: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

// PostgresOpener is SQLiteOpener for PostgreSQL: a fresh database, dropped
// at t's cleanup after the stores are closed.
func PostgresOpener(t testing.TB) func() metadata.Store {
	t.Helper()
	dbURL := PostgresDatabase(t)
	return func() metadata.Store {
		t.Helper()
		s, err := sqlstore.OpenPostgres(openContext(t), dbURL, testLogger(t))
		if err != nil {
			t.Fatalf("open postgres store: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

// PostgresDatabase creates an empty database named sh_<random> on the
// server of EnvDatabaseURL, drops it at t's cleanup, and returns its URL.
// Without EnvDatabaseURL the test is skipped, or failed if
// EnvRequireServices is 1.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvDatabaseURL)
	if admin == "" {
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatalf("%s is not set and %s=1", EnvDatabaseURL, EnvRequireServices)
		}
		t.Skipf("%s is not set; skipping PostgreSQL", EnvDatabaseURL)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := "sh_" + hex.EncodeToString(rnd[:])
	adminExec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() { adminExec(t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("%s: %v", EnvDatabaseURL, err)
	}
	return dbURL
}

func adminExec(t testing.TB, admin, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvDatabaseURL, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// withDatabase points a postgres:// URL or keyword/value string at db.
func withDatabase(conn, db string) (string, error) {
	if !strings.Contains(conn, "://") {
		return conn + " dbname=" + db, nil
	}
	u, err := url.Parse(conn)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String(), nil
}

// openContext bounds an open (connecting and migrating).
func openContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testLogger shows warnings and errors in the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
