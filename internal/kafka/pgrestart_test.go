package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

// TestPostgresRestartIsRetriable restarts the metadata database under an
// idempotent franz-go producer: every record is delivered, once and in
// order, and what clients are told while the database is down is a code
// they retry, never UNKNOWN_SERVER_ERROR.
func TestPostgresRestartIsRetriable(t *testing.T) {
	t.Parallel()
	pg := metadatatest.StartPrivatePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := sqlstore.OpenPostgres(ctx, pg.URL(), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s := startServer(t, testOptions{store: store})
	s.dpTopic(t, "pgr", 2, nil)
	// A topic this agent has not looked up yet, so that a request for it
	// must ask the database.
	if _, err := store.CreateTopic(ctx, metadata.Topic{ID: metadata.TopicID{0xc0, 0x1d}, Name: "cold", Partitions: 1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	const total = 3000
	cl := s.client(kgo.DefaultProduceTopic("pgr"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.RecordRetries(1<<30), kgo.ProduceRequestTimeout(3*time.Second))
	defer cl.Close()
	var (
		mu       sync.Mutex
		failures []error
		acked    int
	)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		var wg sync.WaitGroup
		for i := range total {
			wg.Add(1)
			r := &kgo.Record{Key: []byte{byte(i % 2)}, Value: []byte(strconv.Itoa(i))}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
				} else {
					acked++
				}
			})
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond) // spread the records over the outage
			}
		}
		wg.Wait()
	}()

	// Let some records through, then stop the database.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := acked
		mu.Unlock()
		if n >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged before the restart", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pg.Stop()

	// While it is down, raw requests that need the database get codes a
	// client retries.
	w := s.dpDial(t)
	good := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: []byte("raw"), Timestamp: 1})
	var seen []string
	check := func(what string, code int16) {
		t.Helper()
		seen = append(seen, fmt.Sprintf("%s=%v", what, kerr.ErrorForCode(code)))
		if code == kerr.UnknownServerError.Code || (code != 0 && !kerr.IsRetriable(kerr.ErrorForCode(code))) {
			t.Errorf("%s while the database is down: %v, which clients do not retry", what, kerr.ErrorForCode(code))
		}
	}
	pr := dpProduceReq(9, "cold", 0, -1, good)
	pr.TimeoutMillis = 2000
	check("produce to a topic not cached", w.do(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)
	md := w.do(dpMetadataReq(9, false, "cold")).(*kmsg.MetadataResponse)
	check("metadata", md.Topics[0].ErrorCode)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group, oc.Generation = 8, "g", -1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "pgr", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	ocr := w.do(oc).(*kmsg.OffsetCommitResponse)
	check("offset commit", ocr.Topics[0].Partitions[0].ErrorCode)
	t.Logf("codes while the database was down: %v", seen)

	time.Sleep(time.Second) // the outage lasts a while
	pg.Start()

	select {
	case <-produced:
	case <-ctx.Done():
		t.Fatal("records not all acknowledged after the database came back")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d records failed (first: %v); %d acknowledged", len(failures), failures[0], acked)
	}
	// Every record is there once, in order per partition.
	got := s.dpConsume(t, ctx, "pgr", total)
	next := map[int32]int{}
	values := map[string]bool{}
	for _, r := range got {
		if values[string(r.Value)] {
			t.Fatalf("record %s read twice", r.Value)
		}
		values[string(r.Value)] = true
		i, _ := strconv.Atoi(string(r.Value))
		if i < next[r.Partition] {
			t.Fatalf("partition %d: record %d after %d", r.Partition, i, next[r.Partition])
		}
		next[r.Partition] = i
	}
	if len(values) != total {
		t.Fatalf("%d distinct records consumed, want %d", len(values), total)
	}
}
