package kafka

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// Produce looks inside every batch, as Kafka's broker does: compressed
// records that do not decompress are CORRUPT_MESSAGE, records that do not
// add up INVALID_RECORD, records decompressing past 32 times
// max.message.bytes MESSAGE_TOO_LARGE, and record timestamps outside the
// topic's bounds INVALID_TIMESTAMP; none of them stores anything, and
// readers of the partition (fetch, ListOffsets by timestamp) go on.
func TestProduceHostileBatches(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "h", 1, map[string]string{"max.message.bytes": "16384"})
	w := s.dpDial(t)
	now := time.Now()
	ms := now.UnixMilli()
	three := dpBatch(t, batch.BuildOptions{Codec: batch.CodecZstd, ProducerID: -1},
		batch.Record{Value: []byte("a")}, batch.Record{Value: []byte("b")}, batch.Record{Value: []byte("c")})
	cases := []struct {
		name    string
		records []byte
		code    int16
	}{
		{"zstd garbage", testutil.GarbageBatch(batch.CodecZstd, ms), kerr.CorruptMessage.Code},
		{"lz4 garbage", testutil.GarbageBatch(batch.CodecLZ4, ms), kerr.CorruptMessage.Code},
		{"zstd miscounted", testutil.FramedBatch(batch.CodecZstd, 4, three[batch.HeaderSize:], ms, ms), kerr.InvalidRecord.Code},
		{"zstd bomb", testutil.BombBatch(t, batch.CodecZstd, 1, 1<<20, ms), kerr.MessageTooLarge.Code},
		{"two hours ahead", dpBatch(t, batch.BuildOptions{Codec: batch.CodecGzip, ProducerID: -1},
			batch.Record{Value: []byte("x"), Timestamp: now.Add(2 * time.Hour).UnixMilli()}), kerr.InvalidTimestamp.Code},
	}
	for _, tc := range cases {
		p := w.do(dpProduceReq(9, "h", 0, -1, tc.records)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		if p.ErrorCode != tc.code || p.BaseOffset != -1 {
			t.Errorf("%s: code %d (%v), base %d; want %v", tc.name, p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, kerr.ErrorForCode(tc.code))
		}
	}
	if _, hw := s.dpHW(t, "h", 0); hw != 0 {
		t.Fatalf("high watermark %d after refused batches, want 0", hw)
	}
	if p := w.do(dpProduceReq(9, "h", 0, -1, three)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("good batch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	ctx := dpCtx(t)
	if got := s.dpConsume(t, ctx, "h", 3); len(got) != 3 {
		t.Fatalf("consumed %d records", len(got))
	}
	listed, err := s.admin().ListOffsetsAfterMilli(ctx, 0, "h")
	if err != nil || listed.Error() != nil {
		t.Fatalf("list offsets by time: %v %v", err, listed.Error())
	}
	if o, ok := listed.Lookup("h", 0); !ok || o.Offset != 0 {
		t.Fatalf("offset for time 0: %+v", o)
	}
}

// message.timestamp.before.max.ms and after.max.ms are topic configs like
// the others: described with Kafka's defaults, altered, validated and then
// enforced.
func TestTimestampBoundConfigs(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "ts", 1, nil)
	adm, ctx := s.admin(), dpCtx(t)
	describe := func() map[string]kadm.Config {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "ts")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("ts", nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe: %v %v", err, rc.Err)
		}
		out := map[string]kadm.Config{}
		for _, c := range rc.Configs {
			out[c.Key] = c
		}
		return out
	}
	cfg := describe()
	if c := cfg["message.timestamp.before.max.ms"]; c.Value == nil || *c.Value != "9223372036854775807" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("before.max.ms: %+v", c)
	}
	if c := cfg["message.timestamp.after.max.ms"]; c.Value == nil || *c.Value != "3600000" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("after.max.ms: %+v", c)
	}
	bad := "-5"
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.timestamp.after.max.ms", Value: &bad}}, "ts")
	if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, kerr.InvalidConfig) {
		t.Fatalf("negative after.max.ms: %+v %v", rs, err)
	}
	one := "1000"
	rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.timestamp.after.max.ms", Value: &one}}, "ts")
	if err != nil || len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("alter: %+v %v", rs, err)
	}
	if c := describe()["message.timestamp.after.max.ms"]; c.Value == nil || *c.Value != "1000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("after.max.ms after alter: %+v", c)
	}
	w := s.dpDial(t)
	ahead := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: []byte("x"), Timestamp: time.Now().Add(time.Minute).UnixMilli()})
	if p := w.do(dpProduceReq(9, "ts", 0, -1, ahead)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.InvalidTimestamp.Code {
		t.Fatalf("a minute ahead with after.max.ms 1000: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}
