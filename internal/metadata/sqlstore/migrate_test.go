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
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "metadata.db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		upTo(t, db, goose.DialectSQLite3, "sqlite", 3)
		if _, err := db.Exec(insert, topic); err != nil {
			t.Fatal(err)
		}
		db.Close()
		before := time.Now()
		s, err := sqlstore.OpenSQLite(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, before)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := metadatatest.PostgresDatabase(t)
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		upTo(t, db, goose.DialectPostgres, "postgres", 3)
		if _, err := db.Exec(insert, topic); err != nil {
			t.Fatal(err)
		}
		db.Close()
		before := time.Now()
		s, err := sqlstore.OpenPostgres(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, before)
	})
}

var _ = stdlib.GetDefaultDriver // registers the "pgx" database/sql driver
