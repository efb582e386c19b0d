package observability

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/streamhouse/streamhouse/internal/e2e"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// workload touches every subsystem the dashboards and alerts watch, in a
// bounded amount of work: topics through REST, Kafka produce (plain and
// transactional), a consumer group that commits, a read_committed
// reader, REST and gRPC produce and consume, a compacted topic and one
// with a short retention, the schema registry and SQL.
func workload(t *testing.T, p *e2e.Proc, prefix string, keys int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	orders, compacted, short, txnTopic := prefix+"orders", prefix+"compacted", prefix+"short", prefix+"txn"
	for _, tc := range []struct {
		name string
		cfg  map[string]string
	}{
		{orders, nil},
		{compacted, map[string]string{"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}},
		{short, map[string]string{"retention.ms": "1000"}},
		{txnTopic, nil},
	} {
		body := map[string]any{"name": tc.name, "partitions": 3}
		if tc.cfg != nil {
			body["config"] = tc.cfg
		}
		if code := p.Call(http.MethodPost, "/api/v1/topics", body, nil); code != http.StatusCreated {
			t.Fatalf("create topic %s: HTTP %d", tc.name, code)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range keys {
		k := []byte(fmt.Sprintf("key-%d", i))
		recs = append(recs,
			&kgo.Record{Topic: orders, Key: k, Value: []byte(fmt.Sprintf(`{"n":%d,"category":"c%d"}`, i, i%3))},
			&kgo.Record{Topic: compacted, Key: []byte(fmt.Sprintf("key-%d", i%5)), Value: []byte("v")},
			&kgo.Record{Topic: short, Key: k, Value: []byte("old")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// Transactions: one committed, one aborted.
	tx, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.TransactionalID(prefix+"tx"), kgo.DefaultProduceTopic(txnTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("t")}).FirstErr(); err != nil {
			t.Fatalf("transactional produce: %v", err)
		}
		if err := tx.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}

	// A consumer group reads half of orders and commits; the rest is lag.
	group, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.ConsumerGroup(prefix+"billing"), kgo.ConsumeTopics(orders),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for read < keys/2 {
		fs := group.PollRecords(ctx, keys/2-read)
		if err := ctx.Err(); err != nil {
			t.Fatalf("group consume: %d of %d records: %v", read, keys/2, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("group fetch: %v", err) })
		read += fs.NumRecords()
		if err := group.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	group.Close()
	// Produce more so that the lag grows past what was committed.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: orders, Key: []byte("key-0"), Value: []byte(`{"n":-1}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// REST and gRPC produce and consume.
	if code := p.Call(http.MethodPost, "/api/v1/produce", map[string]any{"topic": orders, "key": "rest", "value": `{"n":0}`}, nil); code != http.StatusOK {
		t.Fatalf("REST produce: HTTP %d", code)
	}
	if code := p.Call(http.MethodGet, "/api/v1/consume?topic="+orders+"&partition=0&offset=0", nil, nil); code != http.StatusOK {
		t.Fatalf("REST consume: HTTP %d", code)
	}
	conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g := pb.NewStreamHouseClient(conn)
	if _, err := g.Produce(ctx, &pb.ProduceRequest{Topic: orders, Partition: 1, Value: []byte("grpc")}); err != nil {
		t.Fatalf("gRPC produce: %v", err)
	}
	if _, err := g.Consume(ctx, &pb.ConsumeRequest{Topic: orders, Partition: 1, MaxRecords: 10}); err != nil {
		t.Fatalf("gRPC consume: %v", err)
	}

	// Schema registry and SQL.
	if code := p.Call(http.MethodPost, "/schemas/subjects/"+orders+"-value/versions",
		map[string]any{"schemaType": "JSON", "schema": `{"type":"object"}`}, nil); code != http.StatusOK {
		t.Fatalf("register schema: HTTP %d", code)
	}
	if code := p.Call(http.MethodPost, "/api/v1/sql", map[string]any{"query": fmt.Sprintf(`SELECT value->>'category' AS c, COUNT(*) FROM "%s" GROUP BY 1`, orders)}, nil); code != http.StatusOK {
		t.Fatalf("SQL: HTTP %d", code)
	}
}
