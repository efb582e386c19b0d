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

	"github.com/streamhouse/streamhouse/internal/acl"
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

// Migration 6 (transactions) upgrades a database holding data: existing
// partitions get a last stable offset at their high watermark (no
// transaction can be open), existing producers none open, and the store
// goes on committing and storing transactions.
func TestMigrationTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	topic := make([]byte, 16)
	topic[0] = 7
	var id metadata.TopicID
	copy(id[:], topic)
	tp := metadata.TopicPartition{TopicID: id}
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
			upTo(t, db, b.dialect, b.name, 5)
			for _, stmt := range []string{
				`INSERT INTO topics (id, name, partitions, config, created_at) VALUES ($1, 't', 2, '{}', 1)`,
				`INSERT INTO partitions (topic_id, partition_id, high_watermark, log_start_offset, leader_agent, leader_epoch, lease_expires_at)
					VALUES ($1, 0, 42, 10, 'a', 3, 9999999999999)`,
				`INSERT INTO partitions (topic_id, partition_id) VALUES ($1, 1)`,
				`INSERT INTO producer_state (topic_id, partition_id, producer_id, epoch, batches, updated_at) VALUES ($1, 0, 7, 2, '[]', 1)`,
			} {
				if _, err := db.Exec(stmt, topic); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			db.Close()
			s, err := b.open(url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ps, err := s.ListPartitions(ctx, id)
			if err != nil || len(ps) != 2 || ps[0].HighWatermark != 42 || ps[0].LastStableOffset != 42 || ps[1].LastStableOffset != 0 {
				t.Fatalf("partitions after upgrade = %+v, %v; want last stable offsets 42 and 0", ps, err)
			}
			prods, err := s.ProducerStates(ctx, tp)
			if err != nil || len(prods) != 1 || prods[0].Epoch != 2 || prods[0].InTxn || prods[0].TxnFirstOffset != -1 || prods[0].CoordinatorEpoch != -1 {
				t.Fatalf("producers after upgrade = %+v, %v; want producer 7 with no transaction", prods, err)
			}
			// Expiry may forget it: no transaction is open.
			if n, err := s.ExpireProducers(ctx, time.UnixMilli(2)); err != nil || n != 1 {
				t.Errorf("ExpireProducers after upgrade = %d, %v; want 1", n, err)
			}
			// The upgraded store commits with the new fields.
			err = s.CommitObject(ctx, metadata.ObjectCommit{ObjectKey: "k", AgentID: "a", Partitions: []metadata.PartitionCommit{{
				TopicPartition: tp, Epoch: 3, ExpectedHighWatermark: 42, NewHighWatermark: 45,
				Entries:    []metadata.IndexEntry{{BaseOffset: 42, LastOffset: 44, ObjectKey: "k", Len: 1, Records: 3}},
				HasOpenTxn: true, OpenTxnFirstOffset: 44,
				AbortedTxns: []metadata.AbortedTxn{{ProducerID: 7, FirstOffset: 40, LastOffset: 43}},
			}}})
			if err != nil {
				t.Fatalf("commit after upgrade: %v", err)
			}
			if p, err := s.GetPartition(ctx, tp); err != nil || p.HighWatermark != 45 || p.LastStableOffset != 44 {
				t.Errorf("partition after a commit = %+v, %v; want high watermark 45, last stable offset 44", p, err)
			}
			if as, err := s.ListAbortedTxns(ctx, tp, 0, 100); err != nil || len(as) != 1 {
				t.Errorf("aborted transactions after a commit = %+v, %v", as, err)
			}
		})
	}
}

// Migration 12 gives an existing ACL version row a random change ID and
// keeps its number; the next change writes a new ID.
func TestMigrationACLChangeID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
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
			upTo(t, db, b.dialect, b.name, 11)
			if _, err := db.Exec(`UPDATE acl_version SET version = 5 WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			db.Close()
			s, err := b.open(url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v, err := s.ACLVersion(ctx)
			if err != nil || v.Number != 5 || len(v.ChangeID) < 32 {
				t.Fatalf("ACL version after the migration: %+v, %v; want number 5 and a random change ID", v, err)
			}
			if err := s.CreateACLs(ctx, []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
				Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}}); err != nil {
				t.Fatal(err)
			}
			if w, err := s.ACLVersion(ctx); err != nil || w.Number != 6 || w.ChangeID == v.ChangeID || len(w.ChangeID) != 32 {
				t.Fatalf("ACL version after a change: %+v, %v (before %+v)", w, err, v)
			}
		})
	}
}
