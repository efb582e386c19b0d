//go:build cgo

package sql

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// newBroker is one broker over store and a local bucket.
func newBroker(t testing.TB, store metadata.Store) *broker.Broker {
	t.Helper()
	ctx := context.Background()
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
	b, err := broker.New(ctx, broker.Config{AgentID: "a", Store: store, Log: l, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newEngine(t testing.TB, b *broker.Broker, cfg Config) Engine {
	t.Helper()
	cfg.Source = b
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// eachBackend runs f on SQLite and PostgreSQL.
func eachBackend(t *testing.T, f func(t *testing.T, store metadata.Store)) {
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) { f(t, open(t)) })
	}
}

// rec is a generated record, with where it was written.
type rec struct {
	partition int32
	offset    int64
	broker.Record
}

// genRecords is n records over parts partitions: JSON objects with nested
// fields and nulls, some non-JSON text, null values, binary values, keys
// and headers. Record i goes to partition i%parts at timestamp base+i*1000.
func genRecords(n, parts int) []rec {
	cats := []string{"books", "games", "tools", "food"}
	out := make([]rec, n)
	for i := range n {
		r := broker.Record{Timestamp: 1_767_225_600_000 + int64(i)*1000} // 2026-01-01T00:00:00Z
		switch {
		case i%17 == 5:
			r.Value = []byte(fmt.Sprintf("plain text %d", i))
		case i%19 == 7:
			r.Value = nil
		case i%23 == 11:
			r.Value = []byte{0xff, 0xfe, byte(i)}
		default:
			v := map[string]any{"id": i, "category": cats[i%len(cats)], "price": float64(i%50) + 0.5,
				"nested": map[string]any{"a": map[string]any{"b": []int{i % 5, i % 3}}}, "opt": nil}
			if i%3 == 0 {
				v["opt"] = fmt.Sprintf("o%d", i%4)
			}
			r.Value, _ = json.Marshal(v)
		}
		if i%4 != 0 {
			r.Key = []byte(fmt.Sprintf("k%d", i%7))
		}
		if i%5 == 0 {
			r.Headers = []batch.RecordHeader{{Key: "h", Value: []byte(fmt.Sprintf("v%d", i%3))}}
		}
		out[i] = rec{partition: int32(i % parts), Record: r}
	}
	return out
}

// produce creates topic with parts partitions and writes recs, filling
// in their offsets.
func produce(t testing.TB, b *broker.Broker, topic string, parts int, recs []rec) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: topic, Partitions: int32(parts)}, false); err != nil {
		t.Fatal(err)
	}
	next := make([]int64, parts)
	byPart := make([][]broker.Record, parts)
	for i := range recs {
		p := recs[i].partition
		recs[i].offset = next[p]
		next[p]++
		byPart[p] = append(byPart[p], recs[i].Record)
	}
	for p, rs := range byPart {
		for len(rs) > 0 {
			n := min(len(rs), 500)
			if _, err := b.ProduceRecords(ctx, topic, int32(p), rs[:n], broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
				t.Fatal(err)
			}
			rs = rs[n:]
		}
	}
}

func openSQLite(t testing.TB) metadata.Store { return metadatatest.OpenSQLite(t) }
