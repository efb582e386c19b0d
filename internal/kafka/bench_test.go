package kafka

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// Benchmarks of the Kafka data path with a franz-go client: 1 KiB records,
// acks=all (idempotent, the kgo default), 1 and 8 partitions, against
// StreamHouse (SQLite metadata, local folder storage, default log
// settings: every ack is a committed object) and against franz-go's kfake
// (an in-memory fake broker) as the yardstick. Values are random and
// uncompressed. Produce reports MB/s and
// the p99 time from Produce to its acknowledgement under that load;
// consume reports MB/s reading everything from the start.
//
//	go test ./internal/kafka -run XXX -bench Kafka -benchtime 20000x

const benchRecordSize = 1024

type benchTarget struct {
	name  string
	start func(b *testing.B, partitions int32) string // returns a bootstrap address
}

var benchTargets = []benchTarget{
	{"streamhouse", func(b *testing.B, partitions int32) string {
		srv, addr := dpServerTB(b)
		if _, err := srv.broker.CreateTopic(context.Background(), broker.TopicSpec{Name: "bench", Partitions: partitions}, false); err != nil {
			b.Fatal(err)
		}
		return addr
	}},
	{"kfake", func(b *testing.B, partitions int32) string {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return c.ListenAddrs()[0]
	}},
}

func benchClient(b *testing.B, addr string, opts ...kgo.Opt) *kgo.Client {
	b.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("bench"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}

// benchProduce produces n records and returns each one's ack latency.
func benchProduce(b *testing.B, cl *kgo.Client, n int) []time.Duration {
	b.Helper()
	ctx := context.Background()
	// Incompressible values, so the bytes counted are the bytes moved.
	random := make([]byte, 1<<20+benchRecordSize)
	if _, err := rand.Read(random); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		start := time.Now()
		at := (i * 4099) % (1 << 20)
		cl.Produce(ctx, &kgo.Record{Value: random[at : at+benchRecordSize]}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(start)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return lat
}

func BenchmarkKafkaProduce(b *testing.B) {
	for _, target := range benchTargets {
		for _, partitions := range []int32{1, 8} {
			b.Run(fmt.Sprintf("%s/partitions=%d", target.name, partitions), func(b *testing.B) {
				cl := benchClient(b, target.start(b, partitions))
				benchProduce(b, cl, 100) // connect and warm up
				b.SetBytes(benchRecordSize)
				b.ResetTimer()
				lat := benchProduce(b, cl, b.N)
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

func BenchmarkKafkaConsume(b *testing.B) {
	for _, target := range benchTargets {
		for _, partitions := range []int32{1, 8} {
			b.Run(fmt.Sprintf("%s/partitions=%d", target.name, partitions), func(b *testing.B) {
				addr := target.start(b, partitions)
				benchProduce(b, benchClient(b, addr), b.N)
				cl := benchClient(b, addr, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				b.SetBytes(benchRecordSize)
				b.ResetTimer()
				for got := 0; got < b.N; {
					fs := cl.PollFetches(ctx)
					if err := ctx.Err(); err != nil {
						b.Fatalf("consumed %d of %d: %v", got, b.N, err)
					}
					got += fs.NumRecords()
				}
			})
		}
	}
}

// BenchmarkKafkaProduceLatency produces one record at a time and waits for
// each acknowledgement: the durable round trip without queueing.
func BenchmarkKafkaProduceLatency(b *testing.B) {
	for _, target := range benchTargets {
		b.Run(target.name, func(b *testing.B) {
			cl := benchClient(b, target.start(b, 1))
			ctx := context.Background()
			value := make([]byte, benchRecordSize)
			if _, err := rand.Read(value); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(benchRecordSize)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkKafkaTxnCommit is one transaction per op with a franz-go
// transactional producer: begin, one 1 KiB record (acks=all), commit. It
// reports the p50 and p99 of the EndTxn call alone (the decision stored;
// markers follow) and ns/op for the whole transaction, which includes
// waiting at the next transaction's first add for the previous one's
// markers.
//
//	go test ./internal/kafka -run XXX -bench KafkaTxnCommit -benchtime 300x
func BenchmarkKafkaTxnCommit(b *testing.B) {
	for _, tgt := range benchTargets {
		b.Run(tgt.name, func(b *testing.B) {
			addr := tgt.start(b, 1)
			cl := benchClient(b, addr, kgo.TransactionalID("bench-tx"))
			ctx := context.Background()
			value := make([]byte, benchRecordSize)
			_, _ = rand.Read(value)
			ends := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				if err := cl.BeginTransaction(); err != nil {
					b.Fatal(err)
				}
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					b.Fatal(err)
				}
				ends = append(ends, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(ends)
			b.ReportMetric(float64(ends[len(ends)/2].Microseconds())/1000, "p50-end-ms")
			b.ReportMetric(float64(ends[len(ends)*99/100].Microseconds())/1000, "p99-end-ms")
		})
	}
}
