package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

// upTo migrates db to version with the embedded migrations of dir.
func upTo(t *testing.T, db *sql.DB, dialect goose.Dialect, dir string, version int64) {
	t.Helper()
	p, err := goose.NewProvider(dialect, db, os.DirFS(filepath.Join("migrations", dir)), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
}

// Producer state stored before migration 4 counts as updated when the
// migration runs, so upgrading does not expire every producer at once.
func TestMigrationKeepsProducersFresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	insert := `INSERT INTO producer_state (topic_id, partition_id, producer_id, epoch, batches) VALUES ($1, 0, 7, 0, '[]')`
	topic := make([]byte, 16)
	check := func(t *testing.T, s *sqlstore.Store, before time.Time) {
		t.Helper()
		defer s.Close()
		var id metadata.TopicID
		copy(id[:], topic)
		ps, err := s.ProducerStates(ctx, metadata.TopicPartition{TopicID: id})
		if err != nil || len(ps) != 1 {
			t.Fatalf("ProducerStates after upgrade = %+v, %v", ps, err)
		}
		if up := ps[0].UpdatedAt; up.Before(before.Add(-time.Second)) || up.After(time.Now().Add(time.Second)) {
			t.Fatalf("upgraded producer updated at %v, want about %v", up, before)
		}
	}
	for _, b := range []struct {
		name, driver string
		dialect      goose.Dialect
		url          func(t *testing.T) string
		open         func(url string) (*sqlstore.Store, error)
	}{
		{"sqlite", "sqlite", goose.DialectSQLite3,
			func(t *testing.T) string { return filepath.Join(t.TempDir(), "metadata.db") },
			func(url string) (*sqlstore.Store, error) { return sqlstore.OpenSQLite(ctx, url, nil) }},
		{"postgres", "pgx", goose.DialectPostgres,
			func(t *testing.T) string { return metadatatest.PostgresDatabase(t) },
			func(url string) (*sqlstore.Store, error) { return sqlstore.OpenPostgres(ctx, url, nil) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url := b.url(t)
			db, err := sql.Open(b.driver, url)
			if err != nil {
				t.Fatal(err)
			}
			upTo(t, db, b.dialect, b.name, 3)
			if _, err := db.Exec(insert, topic); err != nil {
				t.Fatal(err)
			}
			db.Close()
			before := time.Now()
			s, err := b.open(url)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s, before)
		})
	}
}

var _ = stdlib.GetDefaultDriver // registers the "pgx" database/sql driver
