// Tests of the metrics and counting wrappers.

package objstore_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamhouse/streamhouse/internal/objstore"
)

// metricValue returns the value of the series name{labels} in reg (counter
// value, or histogram sample count), or -1 if absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func TestWithMetricsCounts(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := objstore.WithMetrics(objstore.NewMemory(), reg, "memory")
	ctx := t.Context()
	if err := b.Put(ctx, "k", make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetRange(ctx, "k", 10, 20); err != nil {
		t.Fatal(err)
	}
	b.Get(ctx, "missing")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	b.Get(canceled, "k")
	b.Put(ctx, "", nil) // invalid key: an error

	// A second wrapper on the same registry shares the series.
	b2 := objstore.WithMetrics(objstore.NewMemory(), reg, "memory")
	if err := b2.Put(ctx, "k2", make([]byte, 5)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"streamhouse_object_store_requests_total", map[string]string{"backend": "memory", "op": "put", "outcome": "ok"}, 2},
		{"streamhouse_object_store_requests_total", map[string]string{"op": "put", "outcome": "error"}, 1},
		{"streamhouse_object_store_requests_total", map[string]string{"op": "get", "outcome": "ok"}, 1},
		{"streamhouse_object_store_requests_total", map[string]string{"op": "get", "outcome": "not_found"}, 1},
		{"streamhouse_object_store_requests_total", map[string]string{"op": "get", "outcome": "canceled"}, 1},
		{"streamhouse_object_store_requests_total", map[string]string{"op": "get_range", "outcome": "ok"}, 1},
		{"streamhouse_object_store_bytes_total", map[string]string{"op": "put"}, 105},
		{"streamhouse_object_store_bytes_total", map[string]string{"op": "get"}, 100},
		{"streamhouse_object_store_bytes_total", map[string]string{"op": "get_range"}, 20},
		{"streamhouse_object_store_request_duration_seconds", map[string]string{"op": "get"}, 3},
	} {
		if got := metricValue(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// A nil registry is allowed (nothing exported).
	if err := objstore.WithMetrics(objstore.NewMemory(), nil, "x").Put(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
}

func TestCounting(t *testing.T) {
	t.Parallel()
	c := objstore.NewCounting(objstore.NewMemory())
	ctx := t.Context()
	c.Put(ctx, "a", make([]byte, 10))
	c.Put(ctx, "b", make([]byte, 5))
	c.Get(ctx, "a")
	c.GetRange(ctx, "a", 0, 3)
	c.Get(ctx, "missing")
	c.Delete(ctx, "a")
	c.List(ctx, "", func(objstore.ObjectInfo) error { return nil })
	if c.Puts() != 2 || c.PutBytes() != 15 || c.Gets() != 3 || c.GetRanges() != 1 ||
		c.GetBytes() != 13 || c.Deletes() != 1 || c.Lists() != 1 {
		t.Fatalf("counters: puts %d putBytes %d gets %d getRanges %d getBytes %d deletes %d lists %d",
			c.Puts(), c.PutBytes(), c.Gets(), c.GetRanges(), c.GetBytes(), c.Deletes(), c.Lists())
	}
}
