package compat

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// saramaConfig is a client of a recent Kafka version with short timeouts
// and enough retries to ride out a server restart.
func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "streamhouse-compat"
	c.Version = sarama.V3_6_0_0
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 15 * time.Second
	c.Metadata.Retry.Max = 50
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	return c
}

// saramaClient is a client closed at the end of the test.
func saramaClient(t *testing.T, addr string, cfg *sarama.Config) sarama.Client {
	t.Helper()
	if cfg == nil {
		cfg = saramaConfig()
	}
	c, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// consumePartition reads partition p of topic from offset until n messages
// have arrived, or fails after timeout.
func consumePartition(t *testing.T, client sarama.Client, topic string, p int32, offset int64, n int, timeout time.Duration) []*sarama.ConsumerMessage {
	t.Helper()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, p, offset)
	if err != nil {
		t.Fatalf("consume %s/%d from %d: %v", topic, p, offset, err)
	}
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		case <-deadline:
			t.Fatalf("consume %s/%d: %d of %d messages in %v", topic, p, len(got), n, timeout)
		}
	}
	return got
}

// encoder is a sarama.Encoder for bytes, or nil for a null key or value.
func encoder(b []byte) sarama.Encoder {
	if b == nil {
		return nil
	}
	return sarama.ByteEncoder(b)
}

func showBytes(b []byte) string {
	if b == nil {
		return "<null>"
	}
	if len(b) > 40 {
		return fmt.Sprintf("%q…(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// sameBytes tells null from empty, as the record format does.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func sameHeaders(got []*sarama.RecordHeader, want []sarama.RecordHeader) bool {
	if len(got) != len(want) {
		return false
	}
	for i, h := range got {
		if !bytes.Equal(h.Key, want[i].Key) || !sameBytes(h.Value, want[i].Value) {
			return false
		}
	}
	return true
}

func showHeaders[H sarama.RecordHeader | *sarama.RecordHeader](hs []H) string {
	var parts []string
	for _, h := range hs {
		var rh sarama.RecordHeader
		switch v := any(h).(type) {
		case sarama.RecordHeader:
			rh = v
		case *sarama.RecordHeader:
			rh = *v
		}
		parts = append(parts, fmt.Sprintf("%s=%s", rh.Key, showBytes(rh.Value)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

type saramaRecord struct {
	partition  int32
	key, value []byte
	headers    []sarama.RecordHeader
	ts         time.Time
}

// TestSaramaProduceConsume sends batches with every codec through a
// SyncProducer and reads them back with a partition consumer: keys, values,
// headers, null and empty values and create timestamps must come back
// exactly, at the offsets the producer was told.
func TestSaramaProduceConsume(t *testing.T) {
	t.Parallel()
	codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP,
		sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD}
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			base := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
			big := bytes.Repeat([]byte("sarama compresses this line; "), 2000)
			recs := []saramaRecord{
				{0, []byte("k1"), []byte("hello"), []sarama.RecordHeader{{Key: []byte("trace"), Value: []byte("abc")}}, base},
				{0, nil, []byte("no key"), nil, base.Add(time.Millisecond)},
				{0, []byte("tombstone"), nil, []sarama.RecordHeader{{Key: []byte("null-header"), Value: nil}}, base.Add(2 * time.Millisecond)},
				{0, []byte("empty"), []byte{}, []sarama.RecordHeader{{Key: []byte("empty"), Value: []byte{}}}, base.Add(3 * time.Millisecond)},
				{1, []byte{0, 1, 2, 0xff}, []byte{0xde, 0xad, 0xbe, 0xef, 0}, []sarama.RecordHeader{
					{Key: []byte("dup"), Value: []byte("1")}, {Key: []byte("dup"), Value: []byte("2")},
					{Key: []byte("bin"), Value: []byte{0, 0xff}}}, base.Add(-time.Hour)},
				{1, []byte("big"), big, nil, base.Add(5 * time.Millisecond)},
				{1, []byte("after-big"), []byte("x"), nil, base.Add(6 * time.Millisecond)},
			}
			client := saramaClient(t, s.KafkaAddr, nil)
			for _, codec := range codecs {
				t.Run(codec.String(), func(t *testing.T) {
					topic := "sarama-codec-" + codec.String()
					s.createTopic(topic, 2)
					cfg := saramaConfig()
					cfg.Producer.Compression = codec
					prod, err := sarama.NewSyncProducer([]string{s.KafkaAddr}, cfg)
					if err != nil {
						t.Fatal(err)
					}
					defer prod.Close()
					var msgs []*sarama.ProducerMessage
					for _, r := range recs {
						msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: r.partition,
							Key: encoder(r.key), Value: encoder(r.value), Headers: r.headers, Timestamp: r.ts})
					}
					// Twice: the second round lands after the first batch,
					// at offsets the producer reports.
					for round := range 2 {
						if err := prod.SendMessages(msgs); err != nil {
							t.Fatalf("round %d: %v", round, err)
						}
					}
					byPart := map[int32][]saramaRecord{}
					for range 2 {
						for _, r := range recs {
							byPart[r.partition] = append(byPart[r.partition], r)
						}
					}
					for p, want := range byPart {
						got := consumePartition(t, client, topic, p, sarama.OffsetOldest, len(want), 30*time.Second)
						for i, m := range got {
							w := want[i]
							if m.Offset != int64(i) {
								t.Errorf("%s/%d message %d: offset %d", topic, p, i, m.Offset)
							}
							if !sameBytes(m.Key, w.key) || !sameBytes(m.Value, w.value) {
								t.Errorf("%s/%d offset %d: key %s value %s, want key %s value %s", topic, p, m.Offset,
									showBytes(m.Key), showBytes(m.Value), showBytes(w.key), showBytes(w.value))
							}
							if !sameHeaders(m.Headers, w.headers) {
								t.Errorf("%s/%d offset %d: headers %s, want %s", topic, p, m.Offset, showHeaders(m.Headers), showHeaders(w.headers))
							}
							if !m.Timestamp.Equal(w.ts) {
								t.Errorf("%s/%d offset %d: timestamp %v, want %v", topic, p, m.Offset, m.Timestamp, w.ts)
							}
						}
					}
					// The offsets the producer was told are where the
					// consumer found the records.
					for i, m := range msgs {
						want := int64(slices.IndexFunc(byPart[m.Partition], func(r saramaRecord) bool {
							return bytes.Equal(r.key, recs[i].key) && r.ts.Equal(recs[i].ts)
						})) + int64(len(byPart[m.Partition])/2)
						if m.Offset != want {
							t.Errorf("%s/%d: producer reported offset %d for record %d, want %d", topic, m.Partition, m.Offset, i, want)
						}
					}
				})
			}
		})
	}
}

// TestSaramaIdempotentRestart runs an idempotent producer from several
// goroutines while the server is killed and restarted on the same storage:
// retried batches must be deduplicated and none lost, so a consumer reads
// every value exactly once, in each goroutine's order.
func TestSaramaIdempotentRestart(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 4, 150
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			topic := "sarama-idempotent"
			s.createTopic(topic, 1)
			addr := s.KafkaAddr

			cfg := saramaConfig()
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Retry.Max = 100
			cfg.Producer.Retry.Backoff = 100 * time.Millisecond
			cfg.Producer.Flush.Frequency = 2 * time.Millisecond
			prod, err := sarama.NewSyncProducer([]string{addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()

			var sentCount atomic.Int64
			errs := make(chan error, writers*perWriter)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWriter {
						_, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic,
							Key: sarama.StringEncoder(fmt.Sprintf("w%d", w)), Value: sarama.StringEncoder(fmt.Sprintf("w%d-%04d", w, i))})
						if err != nil {
							errs <- fmt.Errorf("writer %d message %d: %w", w, i, err)
							return
						}
						sentCount.Add(1)
					}
				}()
			}
			// Stop the server with batches in flight, a third and two
			// thirds of the way: once killed, once gracefully.
			var atStop []int64
			for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
				want := int64(writers * perWriter * (i + 1) / 3)
				eventually(t, 60*time.Second, fmt.Sprintf("%d messages acknowledged", want), func() error {
					if n := sentCount.Load(); n < want {
						return fmt.Errorf("%d acknowledged", n)
					}
					return nil
				})
				atStop = append(atStop, sentCount.Load())
				s.restart(sig)
			}
			afterRestarts := sentCount.Load()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				return
			}
			if afterRestarts == writers*perWriter {
				t.Fatalf("all messages were acknowledged before the last restart; the test did not exercise retries")
			}

			client := saramaClient(t, addr, nil)
			got := consumePartition(t, client, topic, 0, sarama.OffsetOldest, writers*perWriter, 60*time.Second)
			seen := map[string]int64{}
			next := make([]int, writers)
			for i, m := range got {
				v := string(m.Value)
				if m.Offset != int64(i) {
					t.Errorf("message %d at offset %d: a gap", i, m.Offset)
				}
				if prev, dup := seen[v]; dup {
					t.Errorf("value %s at offsets %d and %d: a duplicate", v, prev, m.Offset)
					continue
				}
				seen[v] = m.Offset
				var w, seq int
				if _, err := fmt.Sscanf(v, "w%d-%d", &w, &seq); err != nil || w < 0 || w >= writers {
					t.Errorf("offset %d: unexpected value %q", m.Offset, v)
					continue
				}
				if seq != next[w] {
					t.Errorf("offset %d: writer %d message %d, want %d (order broken)", m.Offset, w, seq, next[w])
				}
				next[w] = seq + 1
			}
			// Nothing beyond what was sent.
			hwm, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			if hwm != writers*perWriter {
				t.Errorf("high watermark %d, want %d", hwm, writers*perWriter)
			}
			t.Logf("acknowledged when the server was stopped: %v of %d", atStop, writers*perWriter)
		})
	}
}
