package observability

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// The series count is bounded as docs/operations.md ("Metrics") says: keys
// and values never become label values, only the traffic series
// (streamhouse_topic_bytes_in_total, streamhouse_topic_bytes_out_total:
// one series per topic each) and the group lag (one series per committed
// partition of each coordinated group) have a topic label, and with
// METRICS_TOPIC_LABELS=false no series has one and only the group lag
// grows, by one series per group, not with topics or partitions.
func TestSeriesCardinality(t *testing.T) {
	t.Parallel()
	for _, labels := range []bool{true, false} {
		t.Run(fmt.Sprintf("topic_labels=%v", labels), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), fmt.Sprintf("METRICS_TOPIC_LABELS=%v", labels)))
			defer p.Stop(syscall.SIGTERM)

			// Round 1: 2 topics, 50 keys each, a group on the first.
			traffic(t, p, 0, 2, 50)
			before := seriesByName(t, scrape(t, p.URL))
			// Round 2: 10 more topics with 20 times the keys, the same
			// kinds of requests.
			traffic(t, p, 2, 12, 1000)
			after := seriesByName(t, scrape(t, p.URL))

			for name, series := range after {
				for _, s := range series {
					for k, v := range s {
						if strings.Contains(v, "key-") || strings.Contains(v, "value-") {
							t.Errorf("%s{%s=%q}: a key or value became a label value", name, k, v)
						}
						if k == "topic" && !labels {
							t.Errorf("%s has a topic label with METRICS_TOPIC_LABELS=false", name)
						}
					}
					if _, ok := s["topic"]; ok && !topicFamilies[name] {
						t.Errorf("%s has a topic label; only %v may", name, sortedKeys(topicFamilies))
					}
				}
			}
			// One lag series per group (labels off) or per committed
			// partition of each group (one each here): 12 either way.
			if n := len(after["streamhouse_consumer_group_lag"]); n != 12 {
				t.Errorf("streamhouse_consumer_group_lag: %d series for 12 groups of one committed partition, want 12", n)
			}
			if labels {
				for name := range topicFamilies {
					if name == "streamhouse_consumer_group_lag" {
						continue
					}
					if n := len(after[name]); n != 12 {
						t.Errorf("%s: %d series for 12 topics, want 12", name, n)
					}
				}
			}
			// Every other family has as many series as before, give or take
			// a few label values of outcomes that can differ between rounds
			// (a Kafka error code such as NOT_COORDINATOR while a group
			// starts, an object store outcome): never one per topic or key.
			grown := 0
			for name, series := range after {
				if (labels && topicFamilies[name]) || name == "streamhouse_consumer_group_lag" {
					continue
				}
				if d := len(series) - len(before[name]); d > 0 {
					grown += d
					t.Logf("%s: %d -> %d series", name, len(before[name]), len(series))
				}
			}
			if grown > 8 {
				t.Errorf("%d more series after 10 more topics and 20x the keys, want at most 8 (outcome labels)", grown)
			}
		})
	}
}

// topicFamilies are the metric families that carry a topic label (with
// METRICS_TOPIC_LABELS=true).
var topicFamilies = map[string]bool{
	"streamhouse_topic_bytes_in_total":  true,
	"streamhouse_topic_bytes_out_total": true,
	"streamhouse_consumer_group_lag":    true,
}

// traffic produces keys records with distinct keys and values to each of
// topics t<from>..t<to-1> and has a consumer group per topic read and
// commit one partition.
func traffic(t *testing.T, p *e2e.Proc, from, to, keys int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.ProducerLinger(0), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := from; i < to; i++ {
		topic := fmt.Sprintf("t%d", i)
		var recs []*kgo.Record
		for k := range keys {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(fmt.Sprintf("key-%d-%d", i, k)), Value: []byte(fmt.Sprintf("value-%d", k))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		g, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.ConsumerGroup("group-"+topic), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < keys/2; {
			fs := g.PollRecords(ctx, keys/2-n)
			if err := ctx.Err(); err != nil {
				g.Close()
				t.Fatalf("consume %s: %v", topic, err)
			}
			n += fs.NumRecords()
		}
		if err := g.CommitUncommittedOffsets(ctx); err != nil {
			g.Close()
			t.Fatalf("commit %s: %v", topic, err)
		}
		g.Close()
	}
	// The cluster series are refreshed at most every 10 s: wait for a
	// scrape that sees every group.
	want := to
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := seriesByName(t, scrape(t, p.URL))
		if groupsSeen(s) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group lag series for %d groups not exported within 30 s: %v", want, s["streamhouse_consumer_group_lag"])
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func groupsSeen(s map[string][]map[string]string) int {
	seen := map[string]bool{}
	for _, l := range s["streamhouse_consumer_group_lag"] {
		seen[l["group"]] = true
	}
	return len(seen)
}
