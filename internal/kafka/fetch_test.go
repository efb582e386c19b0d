package kafka

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// dpProduceRaw appends one batch of n records of size bytes each and
// returns the batch as stored.
func dpProduceRaw(t *testing.T, w *dpWire, topic string, partition int32, n, size int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: bytes.Repeat([]byte{byte('a' + i%26)}, size), Timestamp: 1000}
	}
	b := dpBatch(t, batch.DefaultBuildOptions(), recs...)
	p := w.do(dpProduceReq(9, topic, partition, -1, b)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("produce to %s/%d: %v", topic, partition, kerr.ErrorForCode(p.ErrorCode))
	}
	return b
}

// dpParts indexes a fetch response's partitions of its first topic.
func dpParts(resp *kmsg.FetchResponse) map[int32]kmsg.FetchResponseTopicPartition {
	out := map[int32]kmsg.FetchResponseTopicPartition{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			out[p.Partition] = p
		}
	}
	return out
}

func TestFetchLongPoll(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "poll", 2, nil)
	w := s.dpDial(t)

	// MaxWait is honoured when nothing arrives.
	req := dpFetchReq(11, "poll", map[int32]int64{0: 0, 1: 0})
	req.MaxWaitMillis = 300
	start := time.Now()
	resp := w.do(req).(*kmsg.FetchResponse)
	if d := time.Since(start); d < 280*time.Millisecond || d > 10*time.Second {
		t.Fatalf("empty fetch answered after %v, want about 300ms", d)
	}
	for _, p := range dpParts(resp) {
		if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 0 {
			t.Fatalf("empty fetch: %+v", p)
		}
	}

	// A produce to any requested partition wakes a waiting fetch.
	req.MaxWaitMillis = 20000
	corr := w.send(req)
	prod := s.dpDial(t)
	sent := dpProduceRaw(t, prod, "poll", 1, 2, 10)
	start = time.Now()
	kresp, err := w.read(req, corr)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("fetch woke %v after the produce", d)
	}
	got := dpParts(kresp.(*kmsg.FetchResponse))
	if p := got[1]; p.HighWatermark != 2 || len(p.RecordBatches) != len(sent) || p.LastStableOffset != 2 || p.LogStartOffset != 0 {
		t.Fatalf("woken fetch, partition 1: hw %d lso %d, %d bytes", p.HighWatermark, p.LastStableOffset, len(p.RecordBatches))
	}

	// MinBytes counts over all partitions: one partition's bytes are not
	// enough, so the fetch waits out MaxWait and then answers with them.
	dpProduceRaw(t, prod, "poll", 0, 1, 10)
	req.MinBytes = 1 << 20
	req.MaxWaitMillis = 400
	start = time.Now()
	got = dpParts(w.do(req).(*kmsg.FetchResponse))
	if d := time.Since(start); d < 380*time.Millisecond {
		t.Fatalf("fetch below MinBytes answered after %v", d)
	}
	total := len(got[0].RecordBatches) + len(got[1].RecordBatches)
	if len(got[0].RecordBatches) == 0 || len(got[1].RecordBatches) == 0 {
		t.Fatalf("after MaxWait: %d and %d bytes", len(got[0].RecordBatches), len(got[1].RecordBatches))
	}
	// Exactly the bytes of both partitions: answered at once.
	req.MinBytes, req.MaxWaitMillis = int32(total), 20000
	start = time.Now()
	w.do(req)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("fetch with MinBytes met waited %v", d)
	}
	// One byte more: answered when a produce brings it.
	req.MinBytes = int32(total + 1)
	corr = w.send(req)
	dpProduceRaw(t, prod, "poll", 0, 1, 10)
	kresp, err = w.read(req, corr)
	if err != nil {
		t.Fatal(err)
	}
	if got := dpParts(kresp.(*kmsg.FetchResponse)); got[0].HighWatermark != 2 {
		t.Fatalf("fetch waiting for MinBytes: %+v", got[0])
	}

	// A fetch from a kgo consumer waiting at the end sees new records.
	ctx := dpCtx(t)
	cl := s.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"poll": {0: kgo.NewOffset().At(2)}}))
	done := make(chan []*kgo.Record, 1)
	go func() { done <- cl.PollFetches(ctx).Records() }()
	dpProduceRaw(t, prod, "poll", 0, 1, 10)
	select {
	case recs := <-done:
		if len(recs) != 1 || recs[0].Offset != 2 {
			t.Fatalf("consumer got %d records", len(recs))
		}
	case <-ctx.Done():
		t.Fatal("consumer did not see the new record")
	}
}

func TestFetchMaxBytes(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "limits", 2, nil)
	w := s.dpDial(t)
	var size int
	for p := int32(0); p < 2; p++ {
		for range 3 {
			size = len(dpProduceRaw(t, w, "limits", p, 1, 10000))
		}
	}
	cases := []struct {
		name              string
		maxBytes, partMax int32
		want0, want1      int // batches
	}{
		{"response limit", int32(2*size + size/2), 1 << 20, 2, 0},
		{"response limit below one batch", 1, 1 << 20, 1, 0},
		{"partition limit below one batch", 50 << 20, 1, 1, 0},
		{"partition limit", 50 << 20, int32(size + size/2), 1, 1},
		{"no limit", 50 << 20, 1 << 20, 3, 3},
	}
	for _, tc := range cases {
		req := dpFetchReq(11, "limits", map[int32]int64{0: 0, 1: 0})
		req.MaxBytes = tc.maxBytes
		for i := range req.Topics[0].Partitions {
			req.Topics[0].Partitions[i].PartitionMaxBytes = tc.partMax
		}
		got := dpParts(w.do(req).(*kmsg.FetchResponse))
		if len(got[0].RecordBatches) != tc.want0*size || len(got[1].RecordBatches) != tc.want1*size {
			t.Errorf("%s: %d and %d bytes, want %d and %d batches of %d", tc.name, len(got[0].RecordBatches), len(got[1].RecordBatches), tc.want0, tc.want1, size)
		}
		if got[1].HighWatermark != 3 || got[1].ErrorCode != 0 {
			t.Errorf("%s: partition 1 %+v", tc.name, got[1])
		}
	}
}

func TestFetchOffsetOutOfRange(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "oor", 1, nil)
	w := s.dpDial(t)
	for range 5 {
		dpProduceRaw(t, w, "oor", 0, 1, 10)
	}
	ctx := dpCtx(t)
	if _, err := s.broker.DeleteRecords(ctx, "oor", 0, 2); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{-1, 0, 1, 6, 100} {
		req := dpFetchReq(11, "oor", map[int32]int64{0: off})
		req.MaxWaitMillis = 10000
		p := dpParts(w.do(req).(*kmsg.FetchResponse))[0]
		if p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != -1 || p.LogStartOffset != -1 || len(p.RecordBatches) != 0 {
			t.Fatalf("fetch at %d: %+v", off, p)
		}
	}
	// kgo resets to the log start and goes on.
	cl := s.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"oor": {0: kgo.NewOffset().At(1)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < 3 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	if len(got) != 3 || got[0].Offset != 2 {
		t.Fatalf("after reset: %d records, first %+v", len(got), got)
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	bucket := dpLocalBucket(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	top := s1.dpTopic(t, "errs", 1, nil)
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	w1, w2 := s1.dpDial(t), s2.dpDial(t)
	epoch, ok := s1.broker.LeaderEpoch(metadata.TopicPartition{TopicID: top.ID, Partition: 0})
	if !ok {
		t.Fatal("agent-1 does not lead errs/0")
	}

	fetch := func(w *dpWire, version int16, edit func(*kmsg.FetchRequest)) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := dpFetchReq(version, "errs", map[int32]int64{0: 0})
		req.MaxWaitMillis = 10000 // errors answer at once
		edit(req)
		resp := w.do(req).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("response %+v", resp)
		}
		return resp.Topics[0].Partitions[0]
	}
	none := func(*kmsg.FetchRequest) {}
	for _, tc := range []struct {
		name    string
		w       *dpWire
		version int16
		edit    func(*kmsg.FetchRequest)
		code    int16
	}{
		{"fenced epoch", w1, 11, func(r *kmsg.FetchRequest) { r.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch - 1 }, kerr.FencedLeaderEpoch.Code},
		{"unknown epoch", w1, 11, func(r *kmsg.FetchRequest) { r.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch + 1 }, kerr.UnknownLeaderEpoch.Code},
		{"unknown topic", w1, 11, func(r *kmsg.FetchRequest) { r.Topics[0].Topic = "nope" }, kerr.UnknownTopicOrPartition.Code},
		{"unknown partition", w1, 11, func(r *kmsg.FetchRequest) { r.Topics[0].Partitions[0].Partition = 3 }, kerr.UnknownTopicOrPartition.Code},
		{"unknown topic id", w1, 13, func(r *kmsg.FetchRequest) { r.Topics[0].TopicID = [16]byte{9} }, kerr.UnknownTopicID.Code},
		{"not leader", w2, 11, none, kerr.NotLeaderForPartition.Code},
	} {
		if p := fetch(tc.w, tc.version, tc.edit); p.ErrorCode != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, kerr.ErrorForCode(p.ErrorCode), kerr.ErrorForCode(tc.code))
		}
	}
	dpProduceRaw(t, w1, "errs", 0, 2, 10)
	if p := fetch(w1, 11, func(r *kmsg.FetchRequest) { r.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch }); p.ErrorCode != 0 {
		t.Fatalf("current epoch: %v", kerr.ErrorForCode(p.ErrorCode))
	}

	// KIP-951: the agent that does not lead names the one that does.
	req := dpFetchReq(16, "", map[int32]int64{0: 0})
	req.Topics[0].TopicID = top.ID
	resp := w2.do(req).(*kmsg.FetchResponse)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.NotLeaderForPartition.Code || p.CurrentLeader.LeaderID != NodeID("agent-1") || p.CurrentLeader.LeaderEpoch != epoch {
		t.Fatalf("not leader v16: %+v", p)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != NodeID("agent-1") {
		t.Fatalf("not leader v16 brokers: %+v", resp.Brokers)
	}

	// read_committed reads the same: no transactions exist.
	for _, iso := range []int8{0, 1} {
		p := fetch(w1, 11, func(r *kmsg.FetchRequest) { r.IsolationLevel = iso })
		if p.ErrorCode != 0 || p.HighWatermark != 2 || p.LastStableOffset != 2 || len(p.RecordBatches) == 0 || len(p.AbortedTransactions) != 0 {
			t.Fatalf("isolation %d: %+v", iso, p)
		}
	}

	// A client bootstrapped at the agent that does not lead still works.
	ctx := dpCtx(t)
	cl := s2.client(kgo.DefaultProduceTopic("errs"), kgo.ConsumeTopics("errs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("via agent-2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []*kgo.Record
	for len(got) < 3 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	if len(got) != 3 || string(got[2].Value) != "via agent-2" {
		t.Fatalf("consumed %d records through agent-2", len(got))
	}
}

func TestFetchSessions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	top := s.dpTopic(t, "sess", 2, nil)
	w := s.dpDial(t)
	prod := s.dpDial(t)

	fetch := func(id, epoch int32, offsets map[int32]int64, forget []int32, maxWait int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 13
		req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 50<<20, 1, maxWait
		req.SessionID, req.SessionEpoch = id, epoch
		if len(offsets) > 0 {
			rt := kmsg.FetchRequestTopic{TopicID: top.ID}
			for p, off := range offsets {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = []kmsg.FetchRequestTopic{rt}
		}
		if len(forget) > 0 {
			req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{TopicID: top.ID, Partitions: forget}}
		}
		return w.do(req).(*kmsg.FetchResponse)
	}
	partsOf := func(resp *kmsg.FetchResponse) []int32 {
		var out []int32
		for _, rt := range resp.Topics {
			if rt.TopicID != top.ID {
				t.Fatalf("topic id %x", rt.TopicID)
			}
			for _, p := range rt.Partitions {
				out = append(out, p.Partition)
			}
		}
		return out
	}

	full := fetch(0, 0, map[int32]int64{0: 0, 1: 0}, nil, 0)
	id := full.SessionID
	if full.ErrorCode != 0 || id == 0 || len(partsOf(full)) != 2 {
		t.Fatalf("full fetch: %+v", full)
	}
	// Nothing changed: an incremental fetch waits out MaxWait and lists no
	// partition.
	start := time.Now()
	if resp := fetch(id, 1, nil, nil, 200); resp.ErrorCode != 0 || resp.SessionID != id || len(partsOf(resp)) != 0 {
		t.Fatalf("idle incremental fetch: %+v", resp)
	}
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Fatalf("idle incremental fetch answered after %v", d)
	}
	// A produce to partition 1: only it is listed.
	dpProduceRaw(t, prod, "sess", 1, 1, 10)
	resp := fetch(id, 2, nil, nil, 5000)
	if ps := partsOf(resp); len(ps) != 1 || ps[0] != 1 || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("incremental fetch after a produce: %+v", resp)
	}
	// The client moves its offset; nothing new.
	if resp := fetch(id, 3, map[int32]int64{1: 1}, nil, 0); len(partsOf(resp)) != 0 {
		t.Fatalf("after moving the offset: %v", partsOf(resp))
	}
	// Forget partition 0, then produce to it: not listed.
	fetch(id, 4, nil, []int32{0}, 0)
	dpProduceRaw(t, prod, "sess", 0, 1, 10)
	if resp := fetch(id, 5, nil, nil, 0); len(partsOf(resp)) != 0 {
		t.Fatalf("forgotten partition listed: %v", partsOf(resp))
	}
	// Errors.
	if resp := fetch(id, 99, nil, nil, 0); resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code || len(resp.Topics) != 0 {
		t.Fatalf("wrong epoch: %+v", resp)
	}
	if resp := fetch(id+1000, 1, nil, nil, 0); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: %+v", resp)
	}
	// The session survived both errors; epoch -1 closes it.
	if resp := fetch(id, 6, nil, nil, 0); resp.ErrorCode != 0 {
		t.Fatalf("epoch 6: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := fetch(id, -1, map[int32]int64{0: 0}, nil, 0); resp.ErrorCode != 0 || resp.SessionID != 0 || len(partsOf(resp)) != 1 {
		t.Fatalf("closing fetch: %+v", resp)
	}
	if resp := fetch(id, 7, nil, nil, 0); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session: %+v", resp)
	}

	// kgo consumers use sessions by default.
	before := s.srv.sessions.len()
	got := s.dpConsume(t, dpCtx(t), "sess", 2)
	if len(got) != 2 || s.srv.sessions.len() <= before {
		t.Fatalf("consumed %d records; sessions %d before, %d after", len(got), before, s.srv.sessions.len())
	}
}

func TestFetchSessionCacheEviction(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	c := newFetchSessionCache(2)
	c.now = func() time.Time { return now }
	owner := &conn{ctx: context.Background()}
	wants := func(n int) ([]fetchWant, []fetchResult) {
		ws := make([]fetchWant, n)
		for i := range ws {
			ws[i] = fetchWant{key: sessionKey{topic: "t", partition: int32(i)}, topic: "t", partition: int32(i)}
		}
		return ws, make([]fetchResult, n)
	}
	create := func(n int) int32 {
		ws, rs := wants(n)
		return c.create(owner, ws, rs)
	}
	a := create(1)
	b := create(3)
	if a == 0 || b == 0 || a == b {
		t.Fatalf("sessions %d, %d", a, b)
	}
	if id := create(5); id != 0 {
		t.Fatalf("a full cache of fresh sessions admitted %d", id)
	}
	// Old enough to be judged but in use: the smallest goes for a bigger
	// one, not for a smaller one.
	now = now.Add(fetchSessionStaleAfter + time.Second)
	use := func(id int32) {
		s := c.sessions[id]
		s.mu.Lock()
		s.lastUsed = now
		s.mu.Unlock()
	}
	use(a)
	use(b)
	if id := create(1); id != 0 {
		t.Fatalf("a session no bigger than any evicted one: %d", id)
	}
	d := create(2)
	if d == 0 || c.sessions[a] != nil || c.sessions[b] == nil {
		t.Fatalf("size eviction: new %d, cached %v", d, c.sessions)
	}
	// Stale sessions go first, least recently used first.
	now = now.Add(fetchSessionStaleAfter)
	use(d)
	e := create(1)
	if e == 0 || c.sessions[b] != nil || c.sessions[d] == nil {
		t.Fatalf("stale eviction: new %d, cached %v", e, c.sessions)
	}
}

// dpLocalBucket is a local folder bucket agents of one test can share.
func dpLocalBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	b, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A fetch whose request names a topic's partitions apart (topic a, then b,
// then a again, as a fetch session also orders them after partitions are
// added) gets each partition's own records: the response groups them by
// topic, and the records written from memory follow that order. Small and
// large record sets, classic and flexible versions.
func TestFetchScatteredTopicPartitions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "sa", 2, nil)
	s.dpTopic(t, "sb", 1, nil)
	w := s.dpDial(t)
	type shape struct{ records, size int }
	sent := map[string]shape{"sa/0": {3, 100}, "sb/0": {5, 20000}, "sa/1": {2, 300}} // sb/0 is over the writev threshold
	for key, sh := range sent {
		var topic string
		var p int32
		fmt.Sscanf(strings.Replace(key, "/", " ", 1), "%s %d", &topic, &p)
		dpProduceRaw(t, w, topic, p, sh.records, sh.size)
	}
	for _, v := range []int16{4, 11, 12} { // v13+ names topics by ID
		req := dpFetchReq(v, "sa", map[int32]int64{0: 0})
		for _, tp := range []struct {
			topic string
			p     int32
		}{{"sb", 0}, {"sa", 1}} {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = tp.topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = tp.p, 0, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		resp := w.do(req).(*kmsg.FetchResponse)
		n := 0
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				key := fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)
				raws, err := batch.Split(rp.RecordBatches)
				if err != nil || len(raws) != 1 {
					t.Fatalf("v%d: %s: %d batches, %v", v, key, len(raws), err)
				}
				_, recs, err := batch.Records(raws[0])
				if err != nil || len(recs) != sent[key].records || len(recs[0].Value) != sent[key].size {
					t.Fatalf("v%d: %s got %d records of %d bytes (%v), want its own %+v", v, key, len(recs), len(recs[0].Value), err, sent[key])
				}
				n++
			}
		}
		if n != 3 {
			t.Fatalf("v%d: %d partitions in the response, want 3", v, n)
		}
	}
}
