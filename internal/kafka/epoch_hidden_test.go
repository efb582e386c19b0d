package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// A read_committed consumer's position moves past batches it never
// returns (transaction markers, records of aborted transactions), while
// franz-go remembers as its epoch that of the last record it returned.
// When those skipped batches were written under a newer leader epoch than
// that record, the next leadership change makes the consumer ask
// OffsetForLeaderEpoch for the older epoch: answering with the first offset
// of the newer epoch (where the skipped batches begin) tells it the log
// lost what it had already read past, and franz-go reports "lost records"
// and moves back. The end of an epoch is therefore past the batches no
// reader returns (docs/reliability.md, read_committed).

// rcWatch counts what a franz-go consumer reads and keeps its log lines.
type rcWatch struct {
	read         atomic.Int64 // records read in fetched batches, markers included
	readTarget   int64        // set before the consumer starts
	fetchesAfter atomic.Int64 // Fetch requests sent once readTarget was read

	mu   sync.Mutex
	logs []string
}

func (w *rcWatch) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	w.read.Add(int64(m.NumRecords))
}

func (w *rcWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == fetchKey && err == nil && w.read.Load() >= w.readTarget {
		w.fetchesAfter.Add(1)
	}
}

func (w *rcWatch) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (w *rcWatch) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.logs = append(w.logs, fmt.Sprint(level, " ", msg, " ", keyvals))
}

func (w *rcWatch) lost() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.logs {
		if strings.Contains(l, "lost records") {
			out = append(out, l)
		}
	}
	return out
}

func TestReadCommittedEpochEndPastHiddenBatches(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	const topic = "rc-epoch"
	top := s.dpTopic(t, topic, 1, nil)
	tp := metadata.TopicPartition{TopicID: top.ID, Partition: 0}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newEpoch := func() int32 {
		t.Helper()
		if err := s.log.Release(ctx, tp); err != nil {
			t.Fatal(err)
		}
		s.broker.Place(ctx)
		e, ok := s.broker.LeaderEpoch(tp)
		if !ok {
			t.Fatal("partition not led again")
		}
		return e
	}
	tx := s.txnProducer("rc-epoch-tx", topic)

	// Epoch e1: a committed transaction, c0 (0) c1 (1) and its marker (2).
	e1, _ := s.broker.LeaderEpoch(tp)
	txnProduce(t, ctx, tx, true, "c0", "c1")

	w := &rcWatch{readTarget: 5}
	cl := s.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.WithHooks(w), kgo.WithLogger(w), kgo.FetchMaxWait(100*time.Millisecond))
	var got []string
	var errs []error
	poll := func() {
		t.Helper()
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer pcancel()
		fs := cl.PollFetches(pctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, err)
			}
		})
		for _, r := range fs.Records() {
			got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		}
		if ctx.Err() != nil {
			t.Fatalf("consumed %v (errors %v): %v", got, errs, ctx.Err())
		}
	}
	for len(got) < 2 {
		poll()
	}

	// Epoch e2: a transaction that aborts, a0 (3) and its marker (4).
	// Neither is returned to a read_committed reader, which still moves
	// past both: its position is 5 with the epoch of c1, e1.
	e2 := newEpoch()
	txnProduce(t, ctx, tx, false, "a0")
	for w.fetchesAfter.Load() == 0 { // a fetch from offset 5 went out
		poll()
	}

	// What the consumer will ask after the next leadership change: the
	// end of e1 may not be below 5.
	e3 := newEpoch()
	if !(e1 < e2 && e2 < e3) {
		t.Fatalf("epochs %d %d %d", e1, e2, e3)
	}
	wire := s.dpDial(t)
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version, req.ReplicaID = 4, -1
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, e3, e1
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
	p := wire.do(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.EndOffset < 5 {
		t.Errorf("end of epoch %d: code %v, epoch %d, end %d; want an end at or past 5, where a read_committed reader of c1 stands",
			e1, kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset)
	}

	// Epoch e3: c2 (5) and its marker (6). The consumer reads it after
	// validating its position, without a loss reported.
	txnProduce(t, ctx, tx, true, "c2")
	for len(got) < 3 {
		poll()
	}
	if want := []string{"0:c0", "1:c1", "5:c2"}; !slices.Equal(got, want) {
		t.Errorf("read_committed: %v, want %v", got, want)
	}
	for _, err := range errs {
		t.Errorf("consumer error: %v", err)
	}
	for _, l := range w.lost() {
		t.Errorf("consumer log: %s", l)
	}
}

// The end of an epoch moves over markers and aborted records of newer
// epochs only: it stops at the first batch a reader gets records from,
// committed or still in an open transaction, and moves over hidden
// batches past the last stable offset as well.
func TestOffsetForLeaderEpochSkipsHiddenBatches(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	const topic = "ofle-hidden"
	top := s.dpTopic(t, topic, 1, nil)
	tp := metadata.TopicPartition{TopicID: top.ID, Partition: 0}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newEpoch := func() int32 {
		t.Helper()
		if err := s.log.Release(ctx, tp); err != nil {
			t.Fatal(err)
		}
		s.broker.Place(ctx)
		e, ok := s.broker.LeaderEpoch(tp)
		if !ok {
			t.Fatal("partition not led again")
		}
		return e
	}
	plain := s.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(v string) {
		t.Helper()
		if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	txA := s.txnProducer("ofle-hidden-a", topic)
	txB := s.txnProducer("ofle-hidden-b", topic)

	e1, _ := s.broker.LeaderEpoch(tp)
	produce("p0") // 0
	e2 := newEpoch()
	txnProduce(t, ctx, txA, false, "a0") // 1, abort marker 2
	waitFor(t, ctx, "the abort marker at offset 2", func() bool { return s.listOffset(t, ctx, topic, -1, 0) == 3 })
	produce("p1") // 3
	e3 := newEpoch()
	if err := txB.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txB.ProduceSync(ctx, &kgo.Record{Value: []byte("b0")}).FirstErr(); err != nil { // 4, left open
		t.Fatal(err)
	}
	lso := s.listOffset(t, ctx, topic, -1, 1)
	e4 := newEpoch()
	if after := s.listOffset(t, ctx, topic, -1, 1); lso != 4 || after != lso {
		t.Fatalf("last stable offset %d before the move, %d after; want 4 both", lso, after)
	}
	txnProduce(t, ctx, txA, false, "a1") // 5, abort marker 6
	// Markers are written after EndTxn answers: wait for the abort
	// marker at 6 before asking (the answers below depend on it).
	waitFor(t, ctx, "the abort marker at offset 6", func() bool { return s.listOffset(t, ctx, topic, -1, 0) == 7 })

	wire := s.dpDial(t)
	for _, tc := range []struct {
		name      string
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{"over an aborted transaction to the next record", e1, e1, 3},
		{"stops at an open transaction", e2, e2, 4},
		{"over an aborted transaction past the LSO to the end", e3, e3, 7},
		{"current", e4, e4, 7},
	} {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version, req.ReplicaID = 4, -1
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, e4, tc.epoch
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
		p := wire.do(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.LeaderEpoch != tc.wantEpoch || p.EndOffset != tc.wantEnd {
			t.Errorf("%s (epoch %d): code %v, epoch %d, end %d; want epoch %d, end %d", tc.name, tc.epoch,
				kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset, tc.wantEpoch, tc.wantEnd)
		}
	}
}
