//go:build cgo

package sql

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// newTxnBroker is a broker with its transaction coordinator (which admits
// transactional batches and writes the markers).
func newTxnBroker(t *testing.T, store metadata.Store) (*broker.Broker, *txn.Coordinator) {
	t.Helper()
	ctx := context.Background()
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var coord *txn.Coordinator
	verify := func(ctx context.Context, tp metadata.TopicPartition, pid int64, epoch int16) error {
		return coord.Verify(ctx, tp, pid, epoch)
	}
	l, err := partlog.Open(ctx, partlog.Config{AgentID: "a", Bucket: bucket, Store: store, Logger: logger, VerifyTxn: verify})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	b, err := broker.New(ctx, broker.Config{AgentID: "a", Store: store, Log: l, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureGroupSlots(ctx); err != nil {
		t.Fatal(err)
	}
	coord, err = txn.New(txn.Config{Backend: b, Logger: logger, ScanInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); coord.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	return b, coord
}

// Reads are read_committed: an aborted transaction's records never
// appear, an open one's neither (nor anything after it: the LSO), and a
// committed one's do.
func TestReadCommitted(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		ctx := context.Background()
		b, coord := newTxnBroker(t, store)
		topic, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "tx", Partitions: 1}, false)
		if err != nil {
			t.Fatal(err)
		}
		type producer struct {
			id    string
			pid   int64
			epoch int16
		}
		producers := map[int64]*producer{}
		plain := func(v string) {
			if _, err := b.ProduceRecords(ctx, "tx", 0, []broker.Record{{Value: []byte(v)}}, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
				t.Fatal(err)
			}
		}
		// txn starts transaction n and writes vs in it.
		write := func(n int64, seq int32, vs ...string) {
			id := fmt.Sprint("p", n)
			pid, epoch, err := coord.InitProducerID(ctx, id, 60000, -1, -1)
			if err != nil {
				t.Fatal(err)
			}
			producers[n] = &producer{id: id, pid: pid, epoch: epoch}
			if err := coord.AddPartitions(ctx, id, pid, epoch, []metadata.TxnPartition{{TopicID: topic.ID, Topic: "tx", Partition: 0}}); err != nil {
				t.Fatal(err)
			}
			opts := batch.DefaultBuildOptions()
			opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, epoch, seq, true
			var rs []broker.Record
			for _, v := range vs {
				rs = append(rs, broker.Record{Value: []byte(v)})
			}
			if _, err := b.AppendRecords(ctx, "tx", 0, rs, broker.AckDurable, opts); err != nil {
				t.Fatal(err)
			}
		}
		end := func(n int64, commit bool) {
			p := producers[n]
			if err := coord.EndTxn(ctx, p.id, p.pid, p.epoch, commit); err != nil {
				t.Fatal(err)
			}
		}
		e := newEngine(t, b, Config{})
		// The markers are written asynchronously: wait for the answer.
		values := func(want string) string {
			var got string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				res := mustQuery(t, e, `SELECT value FROM tx ORDER BY "offset"`)
				if got = fmt.Sprint(res.Rows); got == want {
					break
				}
			}
			return got
		}
		plain("p1")
		write(100, 0, "a1", "a2")
		write(200, 0, "c1")
		end(100, false)
		end(200, true)
		plain("p2")
		if got := values("[[p1] [c1] [p2]]"); got != "[[p1] [c1] [p2]]" {
			t.Fatalf("after abort and commit: %s", got)
		}
		write(300, 0, "open1")
		plain("p3")
		// Open: neither its records nor those after it (the LSO).
		if got := fmt.Sprint(mustQuery(t, e, `SELECT value FROM tx ORDER BY "offset"`).Rows); got != "[[p1] [c1] [p2]]" {
			t.Fatalf("with a transaction open: %s", got)
		}
		end(300, true)
		if got := values("[[p1] [c1] [p2] [open1] [p3]]"); got != "[[p1] [c1] [p2] [open1] [p3]]" {
			t.Fatalf("after its commit: %s", got)
		}
	})
}
