package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// The partition of a keyed record is the one franz-go's default
// partitioner (Kafka's murmur2, as the Java client) picks.
func TestKeyPartitionMatchesKafkaClients(t *testing.T) {
	t.Parallel()
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int32{1, 3, 4, 7, 100} {
		for i := 0; i < 500; i++ {
			key := []byte(fmt.Sprintf("key-%d-%s", i, strings.Repeat("x", i%9)))
			want := part.Partition(&kgo.Record{Key: key}, int(n))
			if got := KeyPartition(key, n); int(got) != want {
				t.Fatalf("KeyPartition(%q, %d) = %d, franz-go picks %d", key, n, got, want)
			}
		}
	}
}

func TestValidateTopicName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "orders", "a.b_c-D9", strings.Repeat("x", 249)} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("x", 250)} {
		if err := ValidateTopicName(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q: %v, want ErrInvalidTopic", bad, err)
		}
	}
}

func TestValidateTopicConfig(t *testing.T) {
	t.Parallel()
	good := map[string]string{"retention.ms": "-1", "cleanup.policy": "compact,delete", "message.timestamp.type": "LogAppendTime", "max.message.bytes": "100"}
	if err := ValidateTopicConfig(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]string{
		{"retention.ms": "soon"}, {"retention.ms": "-2"}, {"cleanup.policy": "forever"},
		{"message.timestamp.type": "Now"}, {"no.such.config": "1"},
	} {
		if err := ValidateTopicConfig(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%v: %v, want ErrInvalidConfig", bad, err)
		}
	}
}

// sharedStorage returns one metadata store and bucket for several agents.
func sharedStorage(t *testing.T) (metadata.Store, objstore.Bucket) {
	t.Helper()
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	return metadatatest.OpenSQLite(t), bucket
}

// agent is one broker over a shared store and bucket; a positive ttl sets
// the lease TTL of its log and placement.
func agent(t *testing.T, id string, store metadata.Store, bucket objstore.Bucket, ttl ...time.Duration) *Broker {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var leaseTTL time.Duration
	if len(ttl) > 0 {
		leaseTTL = ttl[0]
	}
	l, err := partlog.Open(ctx, partlog.Config{AgentID: id, Bucket: bucket, Store: store, Logger: logger, LeaseTTL: leaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	b, err := New(ctx, Config{AgentID: id, Store: store, Log: l, Logger: logger, LeaseTTL: leaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ledCount(b *Broker, topic metadata.Topic) int {
	n := 0
	for p := int32(0); p < topic.Partitions; p++ {
		if b.Leads(metadata.TopicPartition{TopicID: topic.ID, Partition: p}) {
			n++
		}
	}
	return n
}

// Two agents share a topic's partitions fairly; when one leaves, the other
// takes everything at once (no lease expiry wait).
func TestPlacementSharesFairlyAndHandsOver(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx := context.Background()
	a := agent(t, "a", store, bucket)
	b := agent(t, "b", store, bucket)
	topic, err := a.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 6}, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Place(ctx)
	if na, nb := ledCount(a, topic), ledCount(b, topic); na != 3 || nb != 3 {
		t.Fatalf("a leads %d, b leads %d; want 3 and 3", na, nb)
	}
	if _, err := b.ProduceRecords(ctx, "t", -1, []Record{{Key: []byte("k"), Value: []byte("v")}}, partlog.AckDurable, defaultOpts()); err != nil && !errors.Is(err, partlog.ErrNotLeader) {
		t.Fatal(err)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.Place(ctx)
	if n := ledCount(b, topic); n != 6 {
		t.Fatalf("after a left, b leads %d of 6", n)
	}
	// Every partition accepts writes on b now.
	for p := int32(0); p < 6; p++ {
		if _, err := b.ProduceRecords(ctx, "t", p, []Record{{Value: []byte("x")}}, partlog.AckDurable, defaultOpts()); err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
}

func TestProduceRecordsAndConsume(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	bucket := objstore.NewMemory()
	ctx := context.Background()
	b := agent(t, "a", store, bucket)
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 4}, false); err != nil {
		t.Fatal(err)
	}
	recs := []Record{
		{Key: []byte("alpha"), Value: []byte("1")},
		{Key: []byte("beta"), Value: []byte("2")},
		{Key: []byte("alpha"), Value: []byte("3")},
		{Value: []byte("no key")},
	}
	offs, err := b.ProduceRecords(ctx, "t", -1, recs, partlog.AckDurable, defaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	if offs[0].Partition != KeyPartition([]byte("alpha"), 4) || offs[2].Partition != offs[0].Partition || offs[2].Offset <= offs[0].Offset {
		t.Fatalf("keyed records: %+v", offs)
	}
	got, err := b.Consume(ctx, "t", offs[0].Partition, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, r := range got.Records {
		vals = append(vals, string(r.Value))
	}
	if !strings.HasPrefix(strings.Join(vals, ","), "1,") || !strings.HasSuffix(strings.Join(vals, ","), ",3") || got.NextOffset != got.HighWatermark {
		t.Fatalf("consumed %v next %d hw %d", vals, got.NextOffset, got.HighWatermark)
	}
	if _, err := b.ProduceRecords(ctx, "t", 9, recs[:1], partlog.AckDurable, defaultOpts()); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("partition 9: %v", err)
	}
	if _, err := b.ProduceRecords(ctx, "nope", -1, recs[:1], partlog.AckDurable, defaultOpts()); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	// Long poll: a consume at the end waits for the next record.
	done := make(chan ConsumedRecords, 1)
	go func() {
		c, err := b.Consume(ctx, "t", 3, 0, 10, time.Minute)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	if _, err := b.ProduceRecords(ctx, "t", 3, []Record{{Value: []byte("late")}}, partlog.AckDurable, defaultOpts()); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-done:
		if len(c.Records) == 0 {
			t.Fatal("long poll returned nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not wake")
	}
}

func defaultOpts() batch.BuildOptions { return batch.DefaultBuildOptions() }

// The records one REST or gRPC consume asks for: 0 is the default, more
// than the cap is the cap.
func TestConsumeRecordsLimit(t *testing.T) {
	for n, want := range map[int64]int{0: DefaultConsumeRecords, 1: 1, 100: 100, 9999: 9999, 10000: MaxConsumeRecords,
		10001: MaxConsumeRecords, 1 << 40: MaxConsumeRecords} {
		if got := ConsumeRecordsLimit(n); got != want {
			t.Errorf("ConsumeRecordsLimit(%d) = %d, want %d", n, got, want)
		}
	}
	if DefaultConsumeRecords != 100 || MaxConsumeRecords != 10000 {
		t.Errorf("limits %d and %d, the documented ones are 100 and 10000", DefaultConsumeRecords, MaxConsumeRecords)
	}
}
