package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// Scaling out with real binaries on S3 and PostgreSQL: a second agent
// joins a running one and gets its share of the partitions (and of the
// group coordinator slots) without a restart; REST produces through either
// agent reach every partition (forwarded to the leader when needed); a
// Kafka consumer group bootstrapped to the first agent reads everything
// produced before and after the move. With logins required too: the
// agents log in to each other (forwarded produces, group calls) with
// their own users.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	t.Run("logins off", func(t *testing.T) { t.Parallel(); scaleOut(t, false) })
	t.Run("logins on", func(t *testing.T) { t.Parallel(); scaleOut(t, true) })
}

func scaleOut(t *testing.T, logins bool) {
	dirA, dirB := t.TempDir(), t.TempDir()
	shared := e2e.S3Postgres.Env(t, dirA) // one bucket and one database for both
	var kafkaLogin []kgo.Opt
	if logins {
		// alice is a super user: ACLs (enforced with AUTH_ENABLED) are
		// not what this test is about.
		shared = append(shared, "AUTH_ENABLED=true", "AUTH_BOOTSTRAP_USERS=alice:alice-pw", "SUPER_USERS=alice")
		kafkaLogin = append(kafkaLogin, kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism()))
	}
	env := func(id string) []string {
		return append(append([]string(nil), shared...), "STREAMHOUSE_AGENT_ID="+id, "LEASE_TTL_MS=1500")
	}
	start := func(dir, id string) *e2e.Proc {
		p := e2e.Start(t, dir, env(id))
		if logins {
			p.User, p.Password = "alice", "alice-pw"
		}
		return p
	}
	a := start(dirA, "agent-a")
	const parts = 6
	if code := a.Call("POST", "/api/v1/topics", map[string]any{"name": "scale", "partitions": parts}, nil); code != 201 {
		t.Fatalf("create topic: %d", code)
	}
	produce := func(via *e2e.Proc, round int) {
		t.Helper()
		for p := range parts {
			body := map[string]any{"topic": "scale", "partition": p, "value": fmt.Sprintf("r%d-p%d", round, p)}
			if code := via.Call("POST", "/api/v1/produce", body, nil); code != 200 {
				t.Fatalf("round %d: produce to partition %d: %d", round, p, code)
			}
		}
	}
	produce(a, 0)

	b := start(dirB, "agent-b")
	leaders := func() map[string]int {
		var topic struct {
			PartitionStates []struct {
				Leader *string `json:"leader"`
			} `json:"partition_states"`
		}
		n := map[string]int{}
		if a.Call("GET", "/api/v1/topics/scale", nil, &topic) == 200 {
			for _, p := range topic.PartitionStates {
				if p.Leader != nil {
					n[*p.Leader]++
				}
			}
		}
		return n
	}
	testutil.WaitFor(t, "agent-b to lead some of the topic's partitions", func() bool {
		n := leaders()
		return n["agent-a"] > 0 && n["agent-b"] > 0 && n["agent-a"]+n["agent-b"] == parts
	})
	// Through either agent, every partition takes records (a retry covers
	// a partition caught between leaders).
	for round, via := range []*e2e.Proc{a, b} {
		testutil.WaitFor(t, fmt.Sprintf("round %d through agent %d", round+1, round), func() bool {
			for p := range parts {
				body := map[string]any{"topic": "scale", "partition": p, "value": fmt.Sprintf("r%d-p%d", round+1, p)}
				if code := via.Call("POST", "/api/v1/produce", body, nil); code != 200 {
					return false
				}
			}
			return true
		})
	}

	cl, err := kgo.NewClient(append(kafkaLogin, kgo.SeedBrokers(a.KafkaAddr), kgo.ConsumerGroup("scale-readers"), kgo.ConsumeTopics("scale"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]bool{}
	testutil.WaitFor(t, "the group to read every record", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
		for round := range 3 {
			for p := range parts {
				if !got[fmt.Sprintf("r%d-p%d", round, p)] {
					return false
				}
			}
		}
		return true
	})
	// Both agents show the group's live member, whichever coordinates it
	// (the other asks the coordinator).
	for i, via := range []*e2e.Proc{a, b} {
		testutil.WaitFor(t, fmt.Sprintf("agent %d to show the group's member", i), func() bool {
			var g struct {
				State   string `json:"state"`
				Members []struct {
					Assignment map[string][]int32 `json:"assignment"`
				} `json:"members"`
			}
			code := via.Call("GET", "/api/v1/consumer-groups/scale-readers", nil, &g)
			return code == 200 && g.State == "Stable" && len(g.Members) == 1 && len(g.Members[0].Assignment["scale"]) == parts
		})
	}
}
