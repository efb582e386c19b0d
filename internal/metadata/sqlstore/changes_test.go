package sqlstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// A quota change made through one store (agent) reaches the change
// watchers of another on the same PostgreSQL database; after the listening
// connection is cut, the watch says notices may have been lost, reconnects
// and hears the next change.
func TestChangeNoticesAcrossAgents(t *testing.T) {
	t.Parallel()
	url := metadatatest.PostgresDatabase(t)
	open := func() *sqlstore.Store {
		s, err := sqlstore.OpenPostgres(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	writer, watcher := open(), open()
	ctx := t.Context()
	w := metadatatest.WatchChanges(t, watcher)
	alter := func(v float64) {
		t.Helper()
		if err := writer.AlterClientQuotas(ctx, []metadata.QuotaAlteration{
			{Entity: metadata.QuotaEntity{HasUser: true, User: "alice"}, Set: map[string]float64{"producer_byte_rate": v}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	alter(1)
	w.WaitFor(t, metadata.ChangeQuotas, 1)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN streamhouse_changes'`); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the watch to reconnect", func() bool { ok, downs := w.State(); return ok && downs == 1 })
	alter(2)
	w.WaitFor(t, metadata.ChangeQuotas, 2)
}
