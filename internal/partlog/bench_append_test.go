package partlog

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// BenchmarkAppendPath is the CPU cost of the in-memory append path alone
// (checks, producer state, offsets, buffering; AckBuffered) for small
// batches of a plain and of an idempotent producer, with sealing held off
// so no upload or commit runs meanwhile: what every produce pays before
// any I/O.
func BenchmarkAppendPath(b *testing.B) {
	for _, mode := range []string{"plain", "idempotent"} {
		b.Run(mode, func(b *testing.B) {
			store := metadatatest.OpenSQLite(b)
			l, err := Open(context.Background(), Config{
				AgentID: "bench", Bucket: objstore.NewMemory(), Store: store,
				Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
				FlushInterval:    time.Hour,
				FlushMinInterval: time.Hour,
				MaxObjectBytes:   1 << 30,
				MaxObjectRecords: 1 << 30,
				MaxPendingBytes:  1 << 30,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = l.Close(ctx)
			})
			topic, err := store.CreateTopic(context.Background(), metadata.Topic{Name: "bench", Partitions: 1})
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Lead(context.Background(), topic, 0); err != nil {
				b.Fatal(err)
			}
			tp := tpOf(topic, 0)
			// The first append seals at once (the log is idle); the rest
			// stay buffered.
			if _, err := l.Append(context.Background(), tp, mkBatch(b, "first", 1), AckDurable); err != nil {
				b.Fatal(err)
			}
			recs := make([][]byte, b.N)
			tmpl := mkBatch(b, "v", 1)
			for i := range recs {
				if mode == "idempotent" {
					recs[i] = idemBatch(b, 7, 0, int32(i), 1)
				} else {
					recs[i] = append([]byte(nil), tmpl...)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(context.Background(), tp, recs[i], AckBuffered); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
