package broker

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// scrape gathers reg and returns each gauge's value by name (the first
// series of each family) and whether it was exported.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			out[mf.GetName()] = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			out[mf.GetName()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// A failed refresh of the cluster series is not retried by every scrape
// but once per clusterMetricsTTL; the snapshot's age is exported, and past
// clusterMetricsStaleAfter the stale cluster series are not.
func TestClusterMetricsBackOffAndStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := faulty.New(metadatatest.OpenSQLite(t))
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := partlog.Open(ctx, partlog.Config{AgentID: "a", Bucket: bucket, Store: store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	clock := &testClock{t: time.Now()}
	reg := prometheus.NewRegistry()
	b, err := New(ctx, Config{AgentID: "a", Store: store, Log: l, Logger: logger, Metrics: reg, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	// Read after the scrape: a registry collects its collectors at once,
	// so the scrape that fails a refresh may show the count before it.
	failed := func() float64 { return testutil.ToFloat64(b.metrics.cluster.failures) }
	const (
		age        = "streamhouse_cluster_metrics_age_seconds"
		leaderless = "streamhouse_cluster_partitions_without_leader"
		failures   = "streamhouse_cluster_metrics_refresh_failures_total"
	)

	m := scrape(t, reg)
	if _, ok := m[leaderless]; !ok || m[age] != 0 || failed() != 0 {
		t.Fatalf("first scrape: %v", m)
	}
	store.Inject(faulty.Fault{Op: faulty.OpListGroups})
	clock.advance(clusterMetricsTTL)
	calls := store.Calls(faulty.OpListGroups)
	m = scrape(t, reg)
	if failed() != 1 || store.Calls(faulty.OpListGroups) != calls+1 {
		t.Fatalf("refresh against a failing store: failures %v, ListGroups calls %d -> %d", failed(), calls, store.Calls(faulty.OpListGroups))
	}
	// Scrapes within the TTL of the failed try do not query again.
	for range 5 {
		m = scrape(t, reg)
	}
	if failed() != 1 || store.Calls(faulty.OpListGroups) != calls+1 {
		t.Fatalf("scrapes after a failed refresh: failures %v, ListGroups calls %d, want %d", failed(), store.Calls(faulty.OpListGroups), calls+1)
	}
	if _, ok := m[leaderless]; !ok || m[age] != clusterMetricsTTL.Seconds() {
		t.Fatalf("within the stale bound: %v, want the last snapshot, %v old", m, clusterMetricsTTL)
	}
	// One try per TTL until the snapshot is stale: the series go.
	for m[age] < clusterMetricsStaleAfter.Seconds() {
		clock.advance(clusterMetricsTTL)
		m = scrape(t, reg)
	}
	if _, ok := m[leaderless]; ok {
		t.Fatalf("snapshot %vs old still exported: %v", m[age], m)
	}
	if want := clusterMetricsStaleAfter / clusterMetricsTTL; failed() != float64(want) {
		t.Fatalf("failures %v, want %d (one per TTL)", failed(), want)
	}
	// The store back: fresh series at the next try.
	store.Clear()
	clock.advance(clusterMetricsTTL)
	m = scrape(t, reg)
	if _, ok := m[leaderless]; !ok || m[age] != 0 {
		t.Fatalf("after the store came back: %v", m)
	}
}
