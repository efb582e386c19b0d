package compat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// TestSaramaClientQuotas sets, describes and removes client quotas with
// sarama's ClusterAdmin, at DescribeClientQuotas / AlterClientQuotas v0
// (Kafka 2.6) and v1 (flexible, Kafka 2.8 and later), on every backend.
func TestSaramaClientQuotas(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			for _, v := range []sarama.KafkaVersion{sarama.V2_6_0_0, sarama.V3_6_0_0} {
				cfg := saramaConfig()
				cfg.Version = v
				admin, err := sarama.NewClusterAdmin([]string{s.KafkaAddr}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				user := "alice-" + strings.ReplaceAll(v.String(), ".", "-")
				entity := []sarama.QuotaEntityComponent{
					{EntityType: sarama.QuotaEntityUser, MatchType: sarama.QuotaMatchExact, Name: user},
					{EntityType: sarama.QuotaEntityClientID, MatchType: sarama.QuotaMatchDefault},
				}
				filter := []sarama.QuotaFilterComponent{{EntityType: sarama.QuotaEntityUser, MatchType: sarama.QuotaMatchExact, Match: user}}
				describe := func() []sarama.DescribeClientQuotasEntry {
					t.Helper()
					got, err := admin.DescribeClientQuotas(filter, false)
					if err != nil {
						t.Fatalf("%s: describe: %v", v, err)
					}
					return got
				}

				if err := admin.AlterClientQuotas(entity, sarama.ClientQuotasOp{Key: "producer_byte_rate", Value: 4096}, true); err != nil {
					t.Fatalf("%s: validate only: %v", v, err)
				}
				if got := describe(); len(got) != 0 {
					t.Fatalf("%s: after validate only: %+v", v, got)
				}
				for _, op := range []sarama.ClientQuotasOp{{Key: "producer_byte_rate", Value: 4096}, {Key: "consumer_byte_rate", Value: 8192}} {
					if err := admin.AlterClientQuotas(entity, op, false); err != nil {
						t.Fatalf("%s: set %s: %v", v, op.Key, err)
					}
				}
				got := describe()
				if len(got) != 1 || len(got[0].Entity) != 2 ||
					got[0].Entity[0] != entity[0] || got[0].Entity[1].EntityType != sarama.QuotaEntityClientID || got[0].Entity[1].MatchType != sarama.QuotaMatchDefault ||
					!maps.Equal(got[0].Values, map[string]float64{"producer_byte_rate": 4096, "consumer_byte_rate": 8192}) {
					t.Fatalf("%s: described %+v", v, got)
				}
				// Strictly the user alone: the user's client-id default is
				// not it.
				if strict, err := admin.DescribeClientQuotas(filter, true); err != nil || len(strict) != 0 {
					t.Fatalf("%s: strict describe: %+v, %v", v, strict, err)
				}
				err = admin.AlterClientQuotas(entity, sarama.ClientQuotasOp{Key: "request_percentage", Value: 10}, false)
				if err == nil || !strings.Contains(err.Error(), "request_percentage") {
					t.Fatalf("%s: request_percentage accepted or refused without a reason: %v", v, err)
				}
				for _, key := range []string{"producer_byte_rate", "consumer_byte_rate"} {
					if err := admin.AlterClientQuotas(entity, sarama.ClientQuotasOp{Key: key, Remove: true}, false); err != nil {
						t.Fatalf("%s: remove %s: %v", v, key, err)
					}
				}
				if got := describe(); len(got) != 0 {
					t.Fatalf("%s: after removing: %+v", v, got)
				}
				_ = admin.Close()
			}
		})
	}
}

// TestKcatProduceQuota: librdkafka (kcat) producing 10 MiB under a
// producer_byte_rate of 1 MiB/s takes at least 7 s.
func TestKcatProduceQuota(t *testing.T) {
	t.Parallel()
	s := startServer(t, e2e.Local)
	s.createTopic("kcat-quota", 1)
	cfg := saramaConfig()
	admin, err := sarama.NewClusterAdmin([]string{s.KafkaAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	entity := []sarama.QuotaEntityComponent{{EntityType: sarama.QuotaEntityClientID, MatchType: sarama.QuotaMatchExact, Name: "kcat-limited"}}
	if err := admin.AlterClientQuotas(entity, sarama.ClientQuotasOp{Key: "producer_byte_rate", Value: 1 << 20}, false); err != nil {
		t.Fatal(err)
	}
	// 10 MiB of random hex, sent uncompressed: 1280 lines of 8 KiB.
	var in strings.Builder
	line := make([]byte, 4<<10)
	for range 1280 {
		_, _ = rand.Read(line)
		in.WriteString(hex.EncodeToString(line))
		in.WriteByte('\n')
	}
	start := time.Now()
	run(t, 90*time.Second, in.String(), "kcat", "-b", s.KafkaAddr, "-P", "-t", "kcat-quota", "-p", "0",
		"-X", "client.id=kcat-limited", "-X", "compression.codec=none", "-X", "linger.ms=5")
	took := time.Since(start)
	t.Logf("kcat: 10 MiB at 1 MiB/s in %v", took)
	if took < 7*time.Second {
		t.Fatalf("kcat sent 10 MiB at 1 MiB/s in %v, want at least 7 s", took)
	}
}

// throttleClient is one Kafka client producing a burst of 4 KiB records
// (256 KiB; sarama, which waits out each throttle before its next
// request, 64 KiB) as clientID, returning the throttles it reported to its
// user: until the first one when stopAtFirst, else once everything is
// sent.
type throttleClient struct {
	name    string
	produce func(t *testing.T, addr, topic, clientID string, stopAtFirst bool) []time.Duration
}

var throttleClients = []throttleClient{
	{"franz-go", func(t *testing.T, addr, topic, clientID string, stopAtFirst bool) []time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		hook := &franzThrottles{first: make(chan struct{})}
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID(clientID), kgo.DefaultProduceTopic(topic), kgo.WithHooks(hook),
			// Uncompressed, as the others: franz-go compresses with snappy by
			// default, and 256 KiB of one byte would fit the burst.
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for range 64 {
			recs = append(recs, &kgo.Record{Value: bytes.Repeat([]byte("x"), 4<<10)})
		}
		if stopAtFirst {
			for _, r := range recs {
				cl.Produce(ctx, r, nil)
			}
			select {
			case <-hook.first:
			case <-ctx.Done():
			}
		} else if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			cl.Close()
			t.Fatalf("franz-go produce as %s: %v", clientID, err)
		}
		cl.Close() // the hook sees nothing after this
		return hook.got()
	}},
	{"sarama", func(t *testing.T, addr, topic, clientID string, _ bool) []time.Duration {
		// The first response reports the throttle and SendMessages returns
		// with it: sarama waits out a throttle before its next request.
		cfg := saramaConfig()
		cfg.ClientID = clientID
		cfg.Producer.Return.Successes = true
		prod, err := sarama.NewSyncProducer([]string{addr}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		var msgs []*sarama.ProducerMessage
		for range 16 {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(bytes.Repeat([]byte("x"), 4<<10))})
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatalf("sarama produce as %s: %v", clientID, err)
		}
		// sarama's histogram of the throttle times responses reported, per
		// broker ("throttle-time-in-ms-for-broker-<id>").
		var got []time.Duration
		cfg.MetricRegistry.Each(func(name string, m any) {
			h, ok := m.(interface {
				Count() int64
				Max() int64
			})
			if ok && strings.HasPrefix(name, "throttle-time-in-ms") && h.Count() > 0 {
				got = append(got, time.Duration(h.Max())*time.Millisecond)
			}
		})
		return got
	}},
	{"confluent-kafka", func(t *testing.T, addr, topic, clientID string, stopAtFirst bool) []time.Duration {
		mode := "throttle"
		if !stopAtFirst {
			mode = "throttle-all"
		}
		sum := runSASLPy(t, confluentPython(t), mode, addr, topic, clientID)
		if err := pyResult(sum.Errors); err != nil || (!stopAtFirst && sum.Undelivered != 0) {
			t.Fatalf("confluent-kafka produce as %s: %v, %d undelivered", clientID, err, sum.Undelivered)
		}
		var got []time.Duration
		for _, th := range sum.Throttles {
			got = append(got, time.Duration(th.Ms)*time.Millisecond)
		}
		return got
	}},
}

// franzThrottles is a franz-go hook recording OnBrokerThrottle.
type franzThrottles struct {
	mu    sync.Mutex
	ds    []time.Duration
	first chan struct{}
}

func (h *franzThrottles) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ds) == 0 {
		close(h.first)
	}
	h.ds = append(h.ds, d)
}

func (h *franzThrottles) got() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ds)
}

// TestClientThrottleReported: under a producer_byte_rate of 16 KiB/s (a
// one-second burst), a burst of 64 KiB or more makes the broker report a throttle (throttle_time_ms,
// KIP-219) that each client passes on to its user: franz-go's
// OnBrokerThrottle hook, sarama's throttle-time metric, librdkafka's
// throttle_cb. The same client under another client id, without a quota,
// sends it all and reports none.
func TestClientThrottleReported(t *testing.T) {
	t.Parallel()
	confluentPython(t)
	s := startServer(t, e2e.Local)
	admin, err := sarama.NewClusterAdmin([]string{s.KafkaAddr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, c := range throttleClients {
		entity := []sarama.QuotaEntityComponent{{EntityType: sarama.QuotaEntityClientID, MatchType: sarama.QuotaMatchExact, Name: c.name + "-limited"}}
		if err := admin.AlterClientQuotas(entity, sarama.ClientQuotasOp{Key: "producer_byte_rate", Value: 16 << 10}, false); err != nil {
			t.Fatal(err)
		}
		s.createTopic(c.name+"-throttle", 1)
	}
	for _, c := range throttleClients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			topic := c.name + "-throttle"
			got := c.produce(t, s.KafkaAddr, topic, c.name+"-limited", true)
			if len(got) == 0 || slices.Max(got) <= 0 {
				t.Fatalf("%s with producer_byte_rate 16 KiB/s sent its burst and reported no throttle (%v)", c.name, got)
			}
			t.Logf("%s reported throttles %v", c.name, got)
			if got := c.produce(t, s.KafkaAddr, topic, c.name+"-free", false); len(got) != 0 {
				t.Fatalf("%s without a quota reported throttles %v", c.name, got)
			}
		})
	}
}
