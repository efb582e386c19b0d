package compat

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

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
