package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations holds one directory of versioned goose migrations per dialect.
// The two directories must keep the same versions with the same meaning.
//
//go:embed migrations
var migrations embed.FS

// migrate brings the schema up to date. On PostgreSQL a session advisory
// lock serializes agents that start at the same time.
func migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, dir string, logger *slog.Logger) error {
	sub, err := fs.Sub(migrations, "migrations/"+dir)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", dir, err)
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger.With("component", "migrate")),
	}
	if dialect == goose.DialectPostgres {
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", dir, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "applied metadata migration", "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}
