package broker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Run heartbeats this agent and places partition leadership on it until ctx
// is done: every LeaseTTL/3, and at once after a topic or partition is
// created. See place.
func (b *Broker) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		if err := b.store.HeartbeatAgent(ctx, b.agentID, b.now()); err != nil && ctx.Err() == nil {
			b.log.Warn("agent heartbeat", "err", err)
		}
		b.place(ctx, true)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.placeKick:
		}
	}
}

// Place runs placement once, synchronously: at start, so that an agent
// serves its partitions as soon as it listens.
func (b *Broker) Place(ctx context.Context) { b.place(ctx, true) }

// placeNow runs placement at once, so a topic just created can be produced
// to as soon as CreateTopic returns.
func (b *Broker) placeNow(ctx context.Context) {
	b.place(ctx, false)
	select {
	case b.placeKick <- struct{}{}:
	default:
	}
}

// shedPerRound bounds the partitions one agent hands over per placement
// round when it leads more than its share: each is unwritable for the
// moment it takes another agent to pick it up (up to LEASE_TTL_MS/3), so
// they move a few at a time.
const shedPerRound = 16

// place balances partition leadership across the live agents. Each agent
// aims at its fair share, the partitions divided by the live agents and
// rounded up:
//
//   - it takes partitions that have no live leader while it leads fewer
//     than its share, and any partition that has stayed without a leader
//     for a whole lease TTL (so that one is never orphaned because every
//     agent believes it has enough);
//   - it hands partitions over (after committing their buffered data) when
//     it leads more than its share and another live agent leads at least
//     two fewer, as after a new agent joins: at most shedPerRound per
//     round, first those that rendezvous hashing assigns to another agent,
//     so that the same partitions do not move back and forth; never while
//     some partition has no leader, and not for shedBackoff lease TTLs
//     after it had to take an unclaimed one.
//
// Handing over runs only when shed is set: from the agent's own placement
// loop (Run) and Place, never inside a client's request (placeNow).
func (b *Broker) place(ctx context.Context, shed bool) {
	b.placeMu.Lock()
	defer b.placeMu.Unlock()
	now := b.now()
	agents, err := b.store.ListAgents(ctx, now.Add(-b.cfg.LeaseTTL))
	if err != nil {
		b.log.Warn("placement: list agents", "err", err)
		return
	}
	live := max(len(agents), 1)
	liveIDs := make([]string, 0, len(agents))
	counts := make(map[string]int, len(agents)) // partitions led, per live agent
	for _, a := range agents {
		liveIDs = append(liveIDs, a.ID)
		counts[a.ID] = 0
	}
	topics, err := b.store.ListTopics(ctx)
	if err != nil {
		b.log.Warn("placement: list topics", "err", err)
		return
	}
	type candidate struct {
		t metadata.Topic
		p int32
	}
	var free []candidate
	total, mine := 0, 0
	sizes := make(map[metadata.TopicID]int, len(topics))
	for _, t := range topics {
		sizes[t.ID] = int(t.Partitions)
		parts, err := b.store.ListPartitions(ctx, t.ID)
		if err != nil {
			b.log.Warn("placement: list partitions", "topic", t.Name, "err", err)
			return
		}
		for _, p := range parts {
			total++
			tp := metadata.TopicPartition{TopicID: t.ID, Partition: p.Partition}
			held := p.Leader != "" && p.LeaseExpiresAt.After(now)
			if _, ok := counts[p.Leader]; ok && held && p.Leader != b.agentID {
				counts[p.Leader]++
			}
			_, holds := b.plog.LeaseDeadline(tp)
			switch {
			case holds:
				// Led here, or held with a lapsed deadline while renewals
				// fail: a renewal that succeeds resumes it at the same
				// epoch, so taking it again (a new epoch) would only fail
				// the writes in flight.
				mine++
			case !held || p.Leader == b.agentID:
				// No live leader, or a lease this agent held before a
				// restart: take it (with a new epoch).
				free = append(free, candidate{t, p.Partition})
			}
		}
	}
	counts[b.agentID] = mine
	share := (total + live - 1) / live

	// Remember since when each leaderless partition has been seen so.
	seen := make(map[metadata.TopicPartition]time.Time, len(free))
	for _, c := range free {
		tp := metadata.TopicPartition{TopicID: c.t.ID, Partition: c.p}
		since, ok := b.freeSince[tp]
		if !ok {
			since = now
		}
		seen[tp] = since
	}
	b.freeSince = seen

	left := 0 // leaderless partitions not taken this round
	for _, c := range free {
		tp := metadata.TopicPartition{TopicID: c.t.ID, Partition: c.p}
		beyond := mine >= share
		if beyond && now.Sub(seen[tp]) < b.cfg.LeaseTTL {
			left++
			continue
		}
		err := b.plog.Lead(ctx, c.t, c.p)
		switch {
		case err == nil:
			mine++
			delete(b.freeSince, tp)
			if beyond {
				b.orphanAt = now
			}
		case errors.Is(err, metadata.ErrLeaseHeld):
		default:
			if ctx.Err() == nil {
				b.log.Warn("placement: lead", "topic", c.t.Name, "partition", c.p, "err", err)
			}
		}
	}
	counts[b.agentID] = mine
	// Hand over only when every partition has a leader (otherwise agents
	// under their share have partitions to take), and not for a while
	// after partitions went unclaimed: some live agent is not taking its
	// share, and what is handed over would only come back.
	if shed && left == 0 && now.Sub(b.orphanAt) >= shedBackoff*b.cfg.LeaseTTL {
		b.shed(ctx, mine, share, counts, sizes, liveIDs)
	}
}

// shedBackoff is how many lease TTLs an agent that had to take unclaimed
// partitions waits before handing any over.
const shedBackoff = 10

// shed hands over up to shedPerRound partitions when this agent leads more
// than its share and another live agent at least two fewer.
func (b *Broker) shed(ctx context.Context, mine, share int, counts map[string]int, sizes map[metadata.TopicID]int, liveIDs []string) {
	fewest := mine
	for id, n := range counts {
		if id != b.agentID {
			fewest = min(fewest, n)
		}
	}
	if mine <= share || mine-fewest < 2 {
		return
	}
	n := min(mine-share, (mine-fewest)/2, shedPerRound)
	led := shedOrder(b.plog.Led(), b.agentID, sizes, len(liveIDs), liveIDs)
	// One round may take a third of a lease TTL, so the agent's heartbeat
	// (same loop) is never late; what is left waits for the next round.
	rctx, cancel := context.WithTimeout(ctx, b.cfg.LeaseTTL/3)
	defer cancel()
	for _, tp := range led[:min(n, len(led))] {
		err := b.plog.Release(rctx, tp)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Warn("placement: hand over", "partition", tp, "err", err)
			}
			if rctx.Err() != nil {
				return
			}
			continue
		}
		b.log.Info("placement: handed partition over to balance agents", "partition", tp, "led", mine, "share", share)
	}
}

// shedOrder orders the partitions an agent leads for handing over, so that
// each topic ends up spread over the agents, not only the totals: first,
// taking the topics in turn, the partitions of topics of which the agent
// leads more than that topic's share (its partitions divided by the live
// agents, rounded up), then the rest. Within a topic, partitions that
// rendezvous hashing gives to another agent come first, so a balanced
// cluster does not shuffle. sizes holds each topic's partition count.
func shedOrder(led []metadata.TopicPartition, self string, sizes map[metadata.TopicID]int, live int, liveIDs []string) []metadata.TopicPartition {
	owner := func(tp metadata.TopicPartition) string {
		return Rendezvous(fmt.Sprintf("%x/%d", tp.TopicID[:], tp.Partition), liveIDs)
	}
	slices.SortFunc(led, func(x, y metadata.TopicPartition) int {
		if c := bytes.Compare(x.TopicID[:], y.TopicID[:]); c != 0 {
			return c
		}
		ox, oy := owner(x) == self, owner(y) == self
		if ox != oy {
			if ox {
				return 1
			}
			return -1
		}
		return cmp.Compare(x.Partition, y.Partition)
	})
	// Split by topic, in topic order.
	var topics [][]metadata.TopicPartition
	for i, tp := range led {
		if i == 0 || tp.TopicID != led[i-1].TopicID {
			topics = append(topics, nil)
		}
		topics[len(topics)-1] = append(topics[len(topics)-1], tp)
	}
	out := make([]metadata.TopicPartition, 0, len(led))
	var rest []metadata.TopicPartition
	excess := make([]int, len(topics))
	for i, ps := range topics {
		share := (sizes[ps[0].TopicID] + live - 1) / max(live, 1)
		excess[i] = max(len(ps)-share, 0)
		rest = append(rest, ps[excess[i]:]...)
	}
	for taken := true; taken; {
		taken = false
		for i := range topics {
			if excess[i] > 0 {
				out = append(out, topics[i][0])
				topics[i], excess[i], taken = topics[i][1:], excess[i]-1, true
			}
		}
	}
	return append(out, rest...)
}

// Shutdown hands this agent's partitions over (after their buffered data is
// committed) and deregisters the agent. Call it before closing the log.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.placeMu.Lock()
	defer b.placeMu.Unlock()
	var errs []error
	for _, tp := range b.plog.Led() {
		if err := b.plog.Release(ctx, tp); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.store.DeregisterAgent(ctx, b.agentID); err != nil {
		errs = append(errs, err)
	}
	b.fwd.close()
	return errors.Join(errs...)
}

// LeadForReplay takes the lease of each partition of tps that this agent
// does not lead and that no other agent holds (a restart within the lease
// TTL finds its own leases still held: it takes them back whatever its
// fair share), so the WAL's entries of them are replayed rather than
// dropped. Placement sheds what is beyond the share afterwards. A partition
// another agent holds is left to it; a store error stops the start (the
// WAL is kept for the next one).
func (b *Broker) LeadForReplay(ctx context.Context, tps []metadata.TopicPartition) error {
	for _, tp := range tps {
		if b.plog.Leads(tp) {
			continue
		}
		t, err := b.store.GetTopicByID(ctx, tp.TopicID)
		if errors.Is(err, metadata.ErrTopicNotFound) {
			continue // deleted since: its entries are dropped at replay
		}
		if err != nil {
			return fmt.Errorf("lead %s for wal replay: %w", tp, err)
		}
		err = b.plog.Lead(ctx, t, tp.Partition)
		switch {
		case errors.Is(err, metadata.ErrLeaseHeld):
			b.log.Info("wal replay: partition led by another agent", "topic", t.Name, "partition", tp.Partition)
		case err != nil:
			return fmt.Errorf("lead %s for wal replay: %w", tp, err)
		}
	}
	return nil
}
