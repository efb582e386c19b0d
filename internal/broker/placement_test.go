package broker

import (
	"context"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// leaderOf returns which of the brokers leads partition p of topic.
func leaderOf(topic metadata.Topic, p int32, bs ...*Broker) *Broker {
	for _, b := range bs {
		if b.Leads(metadata.TopicPartition{TopicID: topic.ID, Partition: p}) {
			return b
		}
	}
	return nil
}

// An agent that joins gets its share: the agent leading everything hands
// partitions over, with their data, and the placement then stays put.
func TestPlacementRebalancesToNewAgent(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx := context.Background()
	a := agent(t, "a", store, bucket)
	topic, err := a.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 6}, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := ledCount(a, topic); n != 6 {
		t.Fatalf("alone, a leads %d of 6", n)
	}
	for p := int32(0); p < 6; p++ {
		if _, err := a.ProduceRecords(ctx, "t", p, []Record{{Value: []byte("before")}}, partlog.AckBuffered, defaultOpts()); err != nil {
			t.Fatal(err)
		}
	}

	b := agent(t, "b", store, bucket)
	b.Place(ctx) // nothing is free yet
	a.Place(ctx) // a leads 6, its share is 3: it hands 3 over
	b.Place(ctx)
	if na, nb := ledCount(a, topic), ledCount(b, topic); na != 3 || nb != 3 {
		t.Fatalf("after b joined: a leads %d, b leads %d; want 3 and 3", na, nb)
	}
	before := map[int32]*Broker{}
	for p := int32(0); p < 6; p++ {
		before[p] = leaderOf(topic, p, a, b)
	}
	for range 3 {
		a.Place(ctx)
		b.Place(ctx)
	}
	for p := int32(0); p < 6; p++ {
		if got := leaderOf(topic, p, a, b); got != before[p] {
			t.Fatalf("partition %d moved again once balanced", p)
		}
	}
	// Every partition has its record, buffered only when it moved, and
	// takes the next one at offset 1 on its leader.
	for p := int32(0); p < 6; p++ {
		l := before[p]
		res, err := l.ProduceRecords(ctx, "t", p, []Record{{Value: []byte("after")}}, partlog.AckDurable, defaultOpts())
		if err != nil {
			t.Fatalf("partition %d on %s: %v", p, l.AgentID(), err)
		}
		if len(res) != 1 || res[0].Offset != 1 {
			t.Fatalf("partition %d: next record at %+v, want offset 1", p, res)
		}
		got, err := l.Consume(ctx, "t", p, 0, 10, 0)
		if err != nil || len(got.Records) != 2 || string(got.Records[0].Value) != "before" {
			t.Fatalf("partition %d: consumed %+v, %v", p, got.Records, err)
		}
	}
}

// A partition nobody takes because every agent is at its share (a live
// agent that does not place, here) is taken anyway after a lease TTL.
func TestPlacementNeverOrphansAPartition(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx := context.Background()
	const ttl = 3 * time.Second
	a, b := agent(t, "a", store, bucket, ttl), agent(t, "b", store, bucket, ttl)
	// c heartbeats but never places.
	if err := store.RegisterAgent(ctx, metadata.Agent{ID: "c", StartedAt: time.Now(), HeartbeatAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	topic, err := a.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 6}, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Place(ctx)
	if na, nb := ledCount(a, topic), ledCount(b, topic); na != 2 || nb != 2 {
		t.Fatalf("a leads %d, b leads %d; want 2 and 2 (share of 6 over 3 agents)", na, nb)
	}
	testutil.WaitFor(t, "the two partitions left to c taken by a or b", func() bool {
		now := time.Now()
		for _, id := range []string{"a", "b", "c"} {
			if err := store.HeartbeatAgent(ctx, id, now); err != nil {
				t.Fatal(err)
			}
		}
		a.Place(ctx)
		b.Place(ctx)
		return ledCount(a, topic)+ledCount(b, topic) == 6
	})
	// And they stay: nothing is handed over to c, which would not take it.
	for range 3 {
		a.Place(ctx)
		b.Place(ctx)
		if n := ledCount(a, topic) + ledCount(b, topic); n != 6 {
			t.Fatalf("a and b lead %d of 6 after taking c's share", n)
		}
	}
}

// Handing over spreads each topic over the agents, not only the totals: a
// small topic next to a big one ends up split too.
func TestPlacementBalancesEachTopic(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx := context.Background()
	a := agent(t, "a", store, bucket)
	big, err := a.CreateTopic(ctx, TopicSpec{Name: "big", Partitions: 50}, false)
	if err != nil {
		t.Fatal(err)
	}
	small, err := a.CreateTopic(ctx, TopicSpec{Name: "small", Partitions: 6}, false)
	if err != nil {
		t.Fatal(err)
	}
	b := agent(t, "b", store, bucket)
	for range 6 { // more rounds than balancing needs
		a.Place(ctx)
		b.Place(ctx)
	}
	if na, nb := ledCount(a, small), ledCount(b, small); na != 3 || nb != 3 {
		t.Fatalf("small topic: a leads %d, b leads %d; want 3 and 3", na, nb)
	}
	if na, nb := ledCount(a, big), ledCount(b, big); na != 25 || nb != 25 {
		t.Fatalf("big topic: a leads %d, b leads %d; want 25 and 25", na, nb)
	}
}

func TestShedOrderInterleavesTopicsOverTheirShare(t *testing.T) {
	var x, y metadata.TopicID
	x[0], y[0] = 1, 2
	var led []metadata.TopicPartition
	for p := range int32(6) {
		led = append(led, metadata.TopicPartition{TopicID: x, Partition: p})
	}
	for p := range int32(50) {
		led = append(led, metadata.TopicPartition{TopicID: y, Partition: p})
	}
	order := shedOrder(led, "a", map[metadata.TopicID]int{x: 6, y: 50}, 2, []string{"a", "b"})
	if len(order) != 56 {
		t.Fatalf("%d partitions in the order, want 56", len(order))
	}
	inFirst := 0
	for _, tp := range order[:16] {
		if tp.TopicID == x {
			inFirst++
		}
	}
	if inFirst != 3 {
		t.Fatalf("%d of the small topic's partitions among the first 16, want its excess, 3", inFirst)
	}
}

// A restarted agent takes back, for its WAL's replay, the partitions whose
// leases it still holds (whatever its fair share), leaves those another
// agent holds, and skips deleted topics.
func TestLeadForReplay(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx := context.Background()
	ttl := 30 * time.Second
	before := agent(t, "a", store, bucket, ttl)
	topic, err := before.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := before.CreateTopic(ctx, TopicSpec{Name: "gone", Partitions: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	other := agent(t, "b", store, bucket, ttl)
	held, err := other.CreateTopic(ctx, TopicSpec{Name: "held", Partitions: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := before.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// The restarted process: same agent id, its leases still held, leads
	// nothing yet.
	after := agent(t, "a", store, bucket, ttl)
	if n := ledCount(after, topic); n != 0 {
		t.Fatalf("the restarted agent leads %d partitions before replay", n)
	}
	tps := []metadata.TopicPartition{
		{TopicID: topic.ID, Partition: 0}, {TopicID: topic.ID, Partition: 2},
		{TopicID: held.ID, Partition: 0}, {TopicID: gone.ID, Partition: 0},
	}
	if err := after.LeadForReplay(ctx, tps); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tp   metadata.TopicPartition
		want bool
	}{{tps[0], true}, {tps[1], true}, {metadata.TopicPartition{TopicID: topic.ID, Partition: 1}, false}, {tps[2], false}} {
		if got := after.plog.Leads(c.tp); got != c.want {
			t.Errorf("after LeadForReplay, leads %v = %v, want %v", c.tp, got, c.want)
		}
	}
	if !other.plog.Leads(tps[2]) {
		t.Error("the other agent lost its partition")
	}
}
