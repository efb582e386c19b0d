package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// dpListReq asks for one partition's offset at ts.
func dpListReq(version int16, topic string, partition int32, ts int64) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = version
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, ts
	req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{rp}}}
	return req
}

func TestListOffsets(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	top := s.dpTopic(t, "lo", 2, nil)
	w := s.dpDial(t)
	ctx := dpCtx(t)
	// Offsets 0-2 at 1000, 2000, 3000; then one batch with 5000 (offset 3)
	// and 4000 (offset 4).
	for i, ts := range []int64{1000, 2000, 3000} {
		b := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: []byte{byte(i)}, Timestamp: ts})
		w.do(dpProduceReq(9, "lo", 0, -1, b))
	}
	b := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: []byte("a"), Timestamp: 5000}, batch.Record{Value: []byte("b"), Timestamp: 4000})
	w.do(dpProduceReq(9, "lo", 0, -1, b))
	epoch, _ := s.broker.LeaderEpoch(metadata.TopicPartition{TopicID: top.ID, Partition: 0})

	adm := kadm.NewClient(s.client())
	starts, err := adm.ListStartOffsets(ctx, "lo")
	if err != nil || starts["lo"][0].Offset != 0 || starts["lo"][1].Offset != 0 {
		t.Fatalf("start offsets %+v, %v", starts, err)
	}
	ends, err := adm.ListEndOffsets(ctx, "lo")
	if err != nil || ends["lo"][0].Offset != 5 || ends["lo"][1].Offset != 0 || ends["lo"][0].LeaderEpoch != epoch {
		t.Fatalf("end offsets %+v, %v", ends, err)
	}
	after, err := adm.ListOffsetsAfterMilli(ctx, 1500, "lo")
	if err != nil || after["lo"][0].Offset != 1 || after["lo"][0].Timestamp != 2000 {
		t.Fatalf("offsets after 1500ms %+v, %v", after, err)
	}

	for _, tc := range []struct {
		name      string
		version   int16
		partition int32
		ts        int64
		code      int16
		offset    int64
		timestamp int64
	}{
		{"earliest", 1, 0, -2, 0, 0, -1},
		{"latest", 1, 0, -1, 0, 5, -1},
		{"by time", 4, 0, 2500, 0, 2, 3000},
		{"by time, exact", 4, 0, 4000, 0, 3, 5000},
		{"by time, none after", 4, 0, 6000, 0, -1, -1},
		{"max timestamp", 7, 0, -3, 0, 3, 5000},
		{"max timestamp, empty", 7, 1, -3, 0, -1, -1},
		{"max timestamp below v7", 6, 0, -3, kerr.UnsupportedVersion.Code, -1, -1},
		{"earliest local", 8, 0, -4, 0, 0, -1},
		{"latest tiered", 9, 0, -5, 0, -1, -1},
		{"unknown special", 10, 0, -7, kerr.UnsupportedVersion.Code, -1, -1},
		{"unknown topic", 4, 0, -1, kerr.UnknownTopicOrPartition.Code, -1, -1},
		{"unknown partition", 4, 9, -1, kerr.UnknownTopicOrPartition.Code, -1, -1},
	} {
		topic := "lo"
		if tc.name == "unknown topic" {
			topic = "nope"
		}
		resp := w.do(dpListReq(tc.version, topic, tc.partition, tc.ts)).(*kmsg.ListOffsetsResponse)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != tc.code || p.Offset != tc.offset || p.Timestamp != tc.timestamp {
			t.Errorf("%s: code %v offset %d ts %d; want %v %d %d", tc.name, kerr.ErrorForCode(p.ErrorCode), p.Offset, p.Timestamp,
				kerr.ErrorForCode(tc.code), tc.offset, tc.timestamp)
		}
		if tc.code == 0 && tc.offset >= 0 && tc.version >= 4 && p.LeaderEpoch != epoch {
			t.Errorf("%s: leader epoch %d, want %d", tc.name, p.LeaderEpoch, epoch)
		}
	}

	// Leader epoch fencing, and a partition asked for twice.
	req := dpListReq(4, "lo", 0, -1)
	req.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch - 1
	if p := w.do(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("fenced: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	req.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch + 1
	if p := w.do(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("unknown epoch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	req = dpListReq(4, "lo", 0, -1)
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, req.Topics[0].Partitions[0])
	for _, p := range w.do(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions {
		if p.ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("duplicate partition: %v", kerr.ErrorForCode(p.ErrorCode))
		}
	}

	// After DeleteRecords the log starts later, and time lookups skip the
	// deleted records.
	if _, err := s.broker.DeleteRecords(ctx, "lo", 0, 2); err != nil {
		t.Fatal(err)
	}
	if p := w.do(dpListReq(4, "lo", 0, -2)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.Offset != 2 {
		t.Fatalf("earliest after delete: %+v", p)
	}
	if p := w.do(dpListReq(4, "lo", 0, 0)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.Offset != 2 || p.Timestamp != 3000 {
		t.Fatalf("by time after delete: %+v", p)
	}
}

func TestListOffsetsNotLeader(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	bucket := dpLocalBucket(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s1.dpTopic(t, "lonl", 1, nil)
	dpProduceRaw(t, s1.dpDial(t), "lonl", 0, 3, 10)
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	w := s2.dpDial(t)
	if p := w.do(dpListReq(4, "lonl", 0, -1)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("consumer at another agent: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	req := dpListReq(4, "lonl", 0, -1)
	req.ReplicaID = -2 // debugging: any agent answers from the store
	if p := w.do(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 3 {
		t.Fatalf("debug replica at another agent: %+v", p)
	}
}

func TestOffsetForLeaderEpoch(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	top := s.dpTopic(t, "ofle", 1, nil)
	tp := metadata.TopicPartition{TopicID: top.ID, Partition: 0}
	w := s.dpDial(t)
	ctx := dpCtx(t)

	// A consumer follows along while leadership changes.
	cl := s.client(kgo.ConsumeTopics("ofle"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var consumed []int64
	consume := func(n int) {
		t.Helper()
		for len(consumed) < n && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(_ string, _ int32, err error) { t.Logf("consumer: %v", err) })
			for _, r := range fs.Records() {
				consumed = append(consumed, r.Offset)
			}
		}
	}
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

	e1, _ := s.broker.LeaderEpoch(tp)
	for range 3 {
		dpProduceRaw(t, w, "ofle", 0, 1, 10) // offsets 0-2
	}
	consume(3)
	e2 := newEpoch()
	dpProduceRaw(t, w, "ofle", 0, 1, 10) // 3
	dpProduceRaw(t, w, "ofle", 0, 1, 10) // 4
	e3 := newEpoch()                     // nothing written under e3
	e4 := newEpoch()
	dpProduceRaw(t, w, "ofle", 0, 1, 10) // 5
	if !(e1 < e2 && e2 < e3 && e3 < e4) {
		t.Fatalf("epochs %d %d %d %d", e1, e2, e3, e4)
	}
	consume(6)
	for i, off := range consumed {
		if off != int64(i) {
			t.Fatalf("consumed offsets %v across leader changes", consumed)
		}
	}

	ask := func(version int16, topic string, partition, current, epoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version, req.ReplicaID = version, -1
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = partition, current, epoch
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
		return w.do(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	}
	for _, tc := range []struct {
		name           string
		current, epoch int32
		wantEpoch      int32
		wantEnd        int64
		code           int16
	}{
		{"current", e4, e4, e4, 6, 0},
		{"no current given", -1, e4, e4, 6, 0},
		{"first epoch", e4, e1, e1, 3, 0},
		{"second epoch", e4, e2, e2, 5, 0},
		{"epoch without data", e4, e3, e2, 5, 0},
		{"before any data", e4, e1 - 1, e1 - 1, 0, 0},
		{"future", e4, e4 + 1, -1, -1, 0},
		{"fenced", e4 - 1, e4, -1, -1, kerr.FencedLeaderEpoch.Code},
		{"unknown current", e4 + 1, e4, -1, -1, kerr.UnknownLeaderEpoch.Code},
	} {
		for _, v := range []int16{2, 3, 4} {
			p := ask(v, "ofle", 0, tc.current, tc.epoch)
			if p.ErrorCode != tc.code || p.LeaderEpoch != tc.wantEpoch || p.EndOffset != tc.wantEnd {
				t.Errorf("%s v%d: code %v epoch %d end %d; want %v %d %d", tc.name, v, kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset,
					kerr.ErrorForCode(tc.code), tc.wantEpoch, tc.wantEnd)
			}
		}
	}
	if p := ask(3, "nope", 0, -1, 1); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := ask(3, "ofle", 4, -1, 1); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version, req.ReplicaID = 3, 1
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "ofle", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: e1}}}}
	if p := w.do(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("follower request: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}

// OffsetForLeaderEpoch reads batch headers from stored runs; a batch that
// lies across chunks of the read cache (the read returns it in pieces) is
// read like any other.
func TestOffsetForLeaderEpochAcrossChunks(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{readChunkBytes: 4096})
	top := s.dpTopic(t, "ofle-chunks", 1, nil)
	tp := metadata.TopicPartition{TopicID: top.ID, Partition: 0}
	w := s.dpDial(t)
	ctx := dpCtx(t)
	e1, _ := s.broker.LeaderEpoch(tp)
	dpProduceRaw(t, w, "ofle-chunks", 0, 3, 3000) // offsets 0-2, one ~9 KB batch over three chunks
	if err := s.log.Release(ctx, tp); err != nil {
		t.Fatal(err)
	}
	s.broker.Place(ctx)
	e2, ok := s.broker.LeaderEpoch(tp)
	if !ok || e2 <= e1 {
		t.Fatalf("epoch %d after %d (led: %v)", e2, e1, ok)
	}
	dpProduceRaw(t, w, "ofle-chunks", 0, 2, 3000) // offsets 3-4
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version, req.ReplicaID = 3, -1
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, e2, e1
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "ofle-chunks", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
	p := w.do(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.LeaderEpoch != e1 || p.EndOffset != 3 {
		t.Fatalf("epoch %d: code %v, epoch %d, end %d; want epoch %d ending at 3", e1, kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset, e1)
	}
}
