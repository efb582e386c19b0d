package quota

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// run starts m.Run until the test ends and checks it returns then.
func run(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// A quota set through one agent is in effect on another at once: the
// store's change notice makes it reload, long before its periodic reload
// (an hour here). Both backends: on PostgreSQL through NOTIFY between two
// stores (agents) on one database, on SQLite within the one process.
func TestChangesApplyAtOnce(t *testing.T) {
	t.Parallel()
	openers := map[string]func(t *testing.T) (writer, reader metadata.Store){
		"sqlite": func(t *testing.T) (metadata.Store, metadata.Store) {
			s := metadatatest.OpenSQLite(t)
			return s, s
		},
		"postgres": func(t *testing.T) (metadata.Store, metadata.Store) {
			open := metadatatest.PostgresOpener(t)
			return open(), open()
		},
	}
	for backend, open := range openers {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			writer, reader := open(t)
			a := New(Config{Store: writer, ReloadInterval: time.Hour})
			b := New(Config{Store: reader, ReloadInterval: time.Hour})
			run(t, b)
			c := Client{User: "alice", ClientID: "app"}
			// b has loaded (and listens) once it answers for a quota set
			// before: wait for that, then change it through a.
			if errs := a.Alter(t.Context(), []AlterEntry{{[]EntityComponent{user(name("alice"))}, []Op{{Key: KeyProducerByteRate, Value: 100}}}}, false); errs[0] != nil {
				t.Fatal(errs[0])
			}
			testutil.WaitFor(t, "the first quota on the other agent", func() bool { v, _ := b.Limit(Produce, c); return v == 100 })
			if errs := a.Alter(t.Context(), []AlterEntry{{[]EntityComponent{user(name("alice")), client(name("app"))}, []Op{{Key: KeyProducerByteRate, Value: 5}}}}, false); errs[0] != nil {
				t.Fatal(errs[0])
			}
			testutil.WaitFor(t, "the change on the other agent", func() bool { v, level := b.Limit(Produce, c); return v == 5 && level == 1 })
		})
	}
}

// quotaOnly hides a store's change notices: only periodic reloads see
// changes.
type quotaOnly struct{ metadata.QuotaStore }

// Without notices, changes apply at the next periodic reload; the live
// agents are counted periodically too.
func TestPeriodicReload(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	var agents atomic.Int64
	agents.Store(1)
	m := New(Config{
		Store: quotaOnly{store}, ReloadInterval: 50 * time.Millisecond, AgentsInterval: 50 * time.Millisecond,
		LiveAgents: func(context.Context) (int, error) { return int(agents.Load()), nil },
	})
	run(t, m)
	if err := store.AlterClientQuotas(t.Context(), []metadata.QuotaAlteration{set(metadata.QuotaEntity{HasClientID: true}, KeyConsumerByteRate, 42)}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the periodic reload", func() bool { v, _ := m.Limit(Fetch, Client{ClientID: "x"}); return v == 42 })
	agents.Store(4)
	testutil.WaitFor(t, "the agent count", func() bool { return m.Share() == 0.25 })
}
