package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

// End-to-end transactions with franz-go's transactional producer and
// read_committed consumers, on both metadata backends.

// forBackends runs f against a server on each metadata backend with the
// local folder, and on PostgreSQL with S3, all finalizing transactions V2
// (which franz-go then uses), and once more on SQLite with
// transaction.version 1, where franz-go keeps the original protocol.
func forBackends(t *testing.T, f func(t *testing.T, s *testServer)) {
	t.Helper()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, startServer(t, testOptions{store: open(t)}))
		})
	}
	t.Run("postgres-s3", func(t *testing.T) {
		t.Parallel()
		f(t, startServer(t, testOptions{store: metadatatest.OpenPostgres(t), bucket: objstoretest.S3(t, nil)}))
	})
	t.Run("sqlite-tv1", func(t *testing.T) {
		t.Parallel()
		f(t, startServer(t, testOptions{kafka: func(c *Config) { c.TransactionVersion = 1 }}))
	})
}

// franz-go follows the finalized transaction.version: at 2 (the default)
// it uses transactions V2 (no AddPartitionsToTxn or AddOffsetsToTxn, and
// every EndTxn bumps the epoch), at 1 the original protocol; both read
// committed the same.
func TestTxnVersionNegotiated(t *testing.T) {
	t.Parallel()
	for _, version := range []int16{1, 2} {
		t.Run(fmt.Sprintf("tv%d", version), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s := startServer(t, testOptions{kafka: func(c *Config) { c.TransactionVersion = version }})
			api := kmsg.NewPtrApiVersionsRequest()
			resp, err := api.RequestWith(ctx, s.client())
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.FinalizedFeatures) != 1 || resp.FinalizedFeatures[0].Name != "transaction.version" || resp.FinalizedFeatures[0].MaxVersionLevel != version ||
				len(resp.SupportedFeatures) != 1 || resp.SupportedFeatures[0].MaxVersion != 2 || resp.FinalizedFeaturesEpoch < 0 {
				t.Fatalf("ApiVersions features: supported %+v, finalized %+v (epoch %d)", resp.SupportedFeatures, resp.FinalizedFeatures, resp.FinalizedFeaturesEpoch)
			}
			s.dpTopic(t, "tv", 1, nil)
			cl := s.txnProducer("tv-tx", "tv")
			// The client learns the feature with its first response.
			if err := cl.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			txnProduce(t, ctx, cl, true, "c0", "c1")
			txnProduce(t, ctx, cl, false, "a0")
			txnProduce(t, ctx, cl, true, "c2")
			st, found, err := s.store.GetTxn(ctx, "tv-tx")
			if err != nil || !found {
				t.Fatalf("stored transaction: %v, %v", found, err)
			}
			wantEpoch, wantVersion := int16(0), int8(0)
			if version == 2 {
				wantEpoch, wantVersion = 3, 2 // one bump per transaction
			}
			if st.ProducerEpoch != wantEpoch || st.ClientVersion != wantVersion {
				t.Errorf("after three transactions: epoch %d, client version %d; want %d and %d", st.ProducerEpoch, st.ClientVersion, wantEpoch, wantVersion)
			}
			plain := s.client(kgo.DefaultProduceTopic("tv"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			got := s.consumeUntil(t, ctx, "tv", kgo.ReadCommitted(), "end")
			if want := []string{"0:c0", "1:c1", "5:c2"}; !slices.Equal(got, want) {
				t.Errorf("read_committed: %v, want %v", got, want)
			}
		})
	}
}

// txnProducer is a transactional franz-go producer writing to topic.
func (s *testServer) txnProducer(id, topic string, opts ...kgo.Opt) *kgo.Client {
	return s.client(append([]kgo.Opt{
		kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
}

// txnProduce produces values to partition 0 of the producer's topic in one
// transaction, committed or aborted.
func txnProduce(t *testing.T, ctx context.Context, cl *kgo.Client, commit bool, values ...string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// consumeUntil reads partition 0 of topic from the start with the given
// isolation until it returns a record with value last, and returns the
// records before it (offset: value).
func (s *testServer) consumeUntil(t *testing.T, ctx context.Context, topic string, isolation kgo.IsolationLevel, last string) []string {
	t.Helper()
	cl := s.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(isolation))
	var out []string
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v, never %q: %v", out, last, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			if string(r.Value) == last {
				return out
			}
			out = append(out, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		}
	}
}

// listOffset is ListOffsets for partition 0 of topic at timestamp ts with
// the given isolation level (0 or 1).
func (s *testServer) listOffset(t *testing.T, ctx context.Context, topic string, ts int64, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, s.client())
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("list offsets %s at %d (isolation %d): %v", topic, ts, isolation, kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

// waitFor polls cond every 20 ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// A committed transaction's records are visible to read_committed
// consumers, an aborted one's are not; read_uncommitted sees both; each
// transaction takes its records' offsets and then one offset for its
// marker, and the last stable offset reaches the high watermark once
// every marker is written.
func TestTxnCommitAbortVisibility(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, s *testServer) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s.dpTopic(t, "vis", 1, nil)
		cl := s.txnProducer("vis-tx", "vis")
		txnProduce(t, ctx, cl, true, "c0", "c1", "c2") // 0-2, commit marker 3
		txnProduce(t, ctx, cl, false, "a0", "a1")      // 4-5, abort marker 6
		txnProduce(t, ctx, cl, true, "c3")             // 7, commit marker 8
		plain := s.client(kgo.DefaultProduceTopic("vis"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		// A transaction's records follow the previous one's marker (the
		// coordinator finishes the markers before the ID's next
		// transaction starts); the last marker and "end" may come in
		// either order (8 and 9).
		committed := s.consumeUntil(t, ctx, "vis", kgo.ReadCommitted(), "end")
		if want := []string{"0:c0", "1:c1", "2:c2", "7:c3"}; !slices.Equal(committed, want) {
			t.Errorf("read_committed: %v, want %v", committed, want)
		}
		all := s.consumeUntil(t, ctx, "vis", kgo.ReadUncommitted(), "end")
		if want := []string{"0:c0", "1:c1", "2:c2", "4:a0", "5:a1", "7:c3"}; !slices.Equal(all, want) {
			t.Errorf("read_uncommitted: %v, want %v", all, want)
		}
		for iso := int8(0); iso <= 1; iso++ {
			if got := s.listOffset(t, ctx, "vis", -1, iso); got != 10 {
				t.Errorf("latest offset (isolation %d) %d, want 10", iso, got)
			}
		}
	})
}

// A second producer with the same transactional.id fences the first: the
// first one's open transaction is aborted and it can neither commit nor
// produce any more.
func TestTxnZombieFencing(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, s *testServer) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s.dpTopic(t, "zombie", 1, nil)
		old := s.txnProducer("zombie-tx", "zombie")
		if err := old.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := old.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		fresh := s.txnProducer("zombie-tx", "zombie")
		txnProduce(t, ctx, fresh, true, "fresh")
		err := old.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie2")}).FirstErr()
		if !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidTxnState) {
			t.Fatalf("the fenced producer's produce: %v, want it fenced", err)
		}
		if err := old.EndTransaction(ctx, kgo.TryCommit); err == nil {
			t.Fatal("the fenced producer committed")
		}
		plain := s.client(kgo.DefaultProduceTopic("zombie"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got := s.consumeUntil(t, ctx, "zombie", kgo.ReadCommitted(), "end")
		if len(got) != 1 || !strings.HasSuffix(got[0], ":fresh") {
			t.Fatalf("read_committed: %v, want only the fresh producer's record", got)
		}
	})
}

// An open transaction holds read_committed readers at its first offset:
// ListOffsets latest answers the last stable offset under read_committed
// and the high watermark otherwise, a timestamp lookup finds nothing at or
// past the LSO, and a read_committed fetch returns nothing there until the
// transaction commits.
func TestTxnOpenTransactionHoldsLSO(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, s *testServer) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s.dpTopic(t, "lso", 1, nil)
		tx := s.txnProducer("lso-tx", "lso")
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		plain := s.client(kgo.DefaultProduceTopic("lso"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for i := range 3 {
			if err := plain.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "plain%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if got := s.listOffset(t, ctx, "lso", -1, 0); got != 4 {
			t.Errorf("latest read_uncommitted %d, want 4", got)
		}
		if got := s.listOffset(t, ctx, "lso", -1, 1); got != 0 {
			t.Errorf("latest read_committed %d, want 0 (the open transaction's first offset)", got)
		}
		if got := s.listOffset(t, ctx, "lso", 0, 0); got != 0 {
			t.Errorf("timestamp 0 read_uncommitted: offset %d, want 0", got)
		}
		if got := s.listOffset(t, ctx, "lso", 0, 1); got != -1 {
			t.Errorf("timestamp 0 read_committed: offset %d, want -1 (nothing below the LSO)", got)
		}
		// A read_committed fetch at 0 waits and returns nothing.
		w := s.dpDial(t)
		freq := dpFetchReq(12, "lso", map[int32]int64{0: 0})
		freq.IsolationLevel, freq.MaxWaitMillis = 1, 100
		fp := w.do(freq).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if fp.ErrorCode != 0 || len(fp.RecordBatches) != 0 || fp.LastStableOffset != 0 || fp.HighWatermark != 4 {
			t.Fatalf("read_committed fetch: code %d, %d bytes, lso %d, hw %d; want nothing, lso 0, hw 4", fp.ErrorCode, len(fp.RecordBatches), fp.LastStableOffset, fp.HighWatermark)
		}
		freq.IsolationLevel = 0
		fp = w.do(freq).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if fp.ErrorCode != 0 || len(fp.RecordBatches) == 0 || fp.LastStableOffset != 0 {
			t.Fatalf("read_uncommitted fetch: code %d, %d bytes, lso %d; want records and lso 0", fp.ErrorCode, len(fp.RecordBatches), fp.LastStableOffset)
		}
		if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the LSO to pass the commit marker", func() bool { return s.listOffset(t, ctx, "lso", -1, 1) == 5 })
		if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got := s.consumeUntil(t, ctx, "lso", kgo.ReadCommitted(), "end")
		if want := []string{"0:open", "1:plain0", "2:plain1", "3:plain2"}; !slices.Equal(got, want) {
			t.Fatalf("read_committed after the commit: %v, want %v", got, want)
		}
	})
}

// A transaction left open past transaction.timeout.ms is aborted by the
// coordinator: its records never become visible to read_committed, the
// LSO moves past it, and the stalled producer can no longer commit.
func TestTxnTimeoutAborts(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, s *testServer) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s.dpTopic(t, "timeout", 1, nil)
		tx := s.txnProducer("timeout-tx", "timeout", kgo.TransactionTimeout(time.Second))
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("stalled")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		// The producer stalls; the coordinator aborts and writes the abort
		// marker at offset 1.
		waitFor(t, ctx, "the timed-out transaction's abort", func() bool { return s.listOffset(t, ctx, "timeout", -1, 1) == 2 })
		if got := s.listOffset(t, ctx, "timeout", -1, 0); got != 2 {
			t.Fatalf("high watermark %d, want 2 (the record and its abort marker)", got)
		}
		if err := tx.EndTransaction(ctx, kgo.TryCommit); err == nil {
			t.Fatal("the timed-out transaction committed")
		}
		plain := s.client(kgo.DefaultProduceTopic("timeout"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if got := s.consumeUntil(t, ctx, "timeout", kgo.ReadCommitted(), "end"); len(got) != 0 {
			t.Fatalf("read_committed sees %v of an aborted transaction", got)
		}
		if got := s.consumeUntil(t, ctx, "timeout", kgo.ReadUncommitted(), "end"); !slices.Equal(got, []string{"0:stalled"}) {
			t.Fatalf("read_uncommitted: %v, want the stalled record", got)
		}
	})
}

// Consume-transform-produce with GroupTransactSession: a first session
// commits one batch, then dies mid-transaction (its output produced, not
// committed); a second session with the same transactional.id takes over.
// The output, read_committed, holds every input record exactly once, and
// the group's committed offset is the end of the input.
func TestTxnGroupTransactSessionExactlyOnce(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, s *testServer) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		s.dpTopic(t, "eos-in", 1, nil)
		s.dpTopic(t, "eos-out", 1, nil)
		const n = 30
		in := s.client(kgo.DefaultProduceTopic("eos-in"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for i := range n {
			if err := in.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%02d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		session := func() *kgo.GroupTransactSession {
			sess, err := kgo.NewGroupTransactSession(
				kgo.SeedBrokers(s.addr), kgo.TransactionalID("eos-tx"), kgo.ConsumerGroup("eos-group"),
				kgo.ConsumeTopics("eos-in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.DefaultProduceTopic("eos-out"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			)
			if err != nil {
				t.Fatal(err)
			}
			return sess
		}
		// process polls up to max records and produces their transforms in
		// the session's transaction; it returns the last input offset.
		process := func(sess *kgo.GroupTransactSession, max int) int64 {
			t.Helper()
			if err := sess.Begin(); err != nil {
				t.Fatal(err)
			}
			last := int64(-1)
			for last < 0 {
				fs := sess.PollRecords(ctx, max)
				if ctx.Err() != nil {
					t.Fatal(ctx.Err())
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				for _, r := range fs.Records() {
					out := &kgo.Record{Value: []byte(strings.ToUpper(string(r.Value)))}
					if err := sess.ProduceSync(ctx, out).FirstErr(); err != nil {
						t.Fatalf("produce: %v", err)
					}
					last = r.Offset
				}
			}
			return last
		}
		first := session()
		process(first, 10)
		if committed, err := first.End(ctx, kgo.TryCommit); err != nil || !committed {
			t.Fatalf("first session's commit: %v, %v", committed, err)
		}
		process(first, 10) // produced, never committed: the session dies here
		first.Client().Close()

		second := session()
		defer second.Close()
		for {
			last := process(second, 10)
			committed, err := second.End(ctx, kgo.TryCommit)
			if err != nil {
				t.Fatal(err)
			}
			if committed && last == n-1 {
				break
			}
		}
		plain := s.client(kgo.DefaultProduceTopic("eos-out"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got := s.consumeUntil(t, ctx, "eos-out", kgo.ReadCommitted(), "end")
		values := make([]string, len(got))
		for i, g := range got {
			values[i] = g[strings.IndexByte(g, ':')+1:]
		}
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("R%02d", i)
		}
		if !slices.Equal(values, want) {
			t.Fatalf("output %v, want each of %v exactly once", values, want)
		}
		offs, err := s.admin().FetchOffsets(ctx, "eos-group")
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := offs.Lookup("eos-in", 0); !ok || o.At != n {
			t.Fatalf("group offset %+v, want %d", o, n)
		}
	})
}

// A transaction over partitions led by two agents: the coordinator writes
// the marker of the partition the other agent leads over WriteTxnMarkers
// (broker.WriteMarker), and read_committed readers of both partitions see
// the committed transaction and not the aborted one. A marker the leader
// refuses comes back as the broker's error.
func TestTxnMarkersAcrossAgents(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "xa", Partitions: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	s2.broker.Place(ctx)
	leader := map[int32]*testServer{}
	for p := int32(0); p < 2; p++ {
		for _, s := range []*testServer{s1, s2} {
			if s.broker.Leads(metadata.TopicPartition{TopicID: topic.ID, Partition: p}) {
				leader[p] = s
			}
		}
	}
	if leader[0] == nil || leader[1] == nil || leader[0] == leader[1] {
		t.Fatalf("each agent should lead one partition: %v", leader)
	}
	tx := s1.client(kgo.SeedBrokers(s1.addr, s2.addr), kgo.TransactionalID("xa-tx"), kgo.DefaultProduceTopic("xa"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// Transactions V2 from the first transaction: the leader that does not
	// coordinate xa-tx adds its partition at the other agent.
	if err := tx.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for i, commit := range []bool{true, false, true} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := int32(0); p < 2; p++ {
			r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "t%d-p%d", i, p)}
			if err := tx.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	if st, _, err := store.GetTxn(ctx, "xa-tx"); err != nil || st.ClientVersion != 2 || st.ProducerEpoch != 3 {
		t.Fatalf("stored transaction %+v, %v; want transactions V2 at epoch 3", st, err)
	}
	plain := s1.client(kgo.SeedBrokers(s1.addr, s2.addr), kgo.DefaultProduceTopic("xa"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 2; p++ {
		if err := plain.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl := s1.client(kgo.SeedBrokers(s1.addr, s2.addr), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"xa": {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
	got := map[int32][]string{}
	ends := 0
	for ends < 2 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %v: %v", got, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			if string(r.Value) == "end" {
				ends++
				continue
			}
			got[r.Partition] = append(got[r.Partition], string(r.Value))
		}
	}
	for p := int32(0); p < 2; p++ {
		want := []string{fmt.Sprintf("t0-p%d", p), fmt.Sprintf("t2-p%d", p)}
		if !slices.Equal(got[p], want) {
			t.Errorf("partition %d read_committed: %v, want %v", p, got[p], want)
		}
	}

	// A marker for no decided transaction, sent by the agent that does not
	// lead partition 1 to the one that does, is refused there.
	other := s1
	if leader[1] == s1 {
		other = s2
	}
	err = other.broker.WriteMarker(ctx, metadata.TxnPartition{TopicID: topic.ID, Topic: "xa", Partition: 1},
		broker.Marker{ProducerID: 1 << 40, ProducerEpoch: 0, Commit: true})
	if !errors.Is(err, broker.ErrInvalidTxnState) {
		t.Fatalf("remote marker of no transaction: %v, want ErrInvalidTxnState", err)
	}
}
