package broker

import (
	"context"
	"errors"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Run heartbeats this agent and places partition leadership on it until ctx
// is done: every LeaseTTL/3, and at once after a topic or partition is
// created. Placement takes partitions that have no live leader, up to this
// agent's fair share (partitions ÷ live agents, rounded up).
func (b *Broker) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		if err := b.store.HeartbeatAgent(ctx, b.agentID, b.now()); err != nil && ctx.Err() == nil {
			b.log.Warn("agent heartbeat", "err", err)
		}
		b.place(ctx)
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
func (b *Broker) Place(ctx context.Context) { b.place(ctx) }

// placeNow runs placement at once, so a topic just created can be produced
// to as soon as CreateTopic returns.
func (b *Broker) placeNow(ctx context.Context) {
	b.place(ctx)
	select {
	case b.placeKick <- struct{}{}:
	default:
	}
}

// place acquires leases of partitions without a live leader, up to the fair
// share.
func (b *Broker) place(ctx context.Context) {
	b.placeMu.Lock()
	defer b.placeMu.Unlock()
	now := b.now()
	agents, err := b.store.ListAgents(ctx, now.Add(-b.cfg.LeaseTTL))
	if err != nil {
		b.log.Warn("placement: list agents", "err", err)
		return
	}
	live := max(len(agents), 1)
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
	for _, t := range topics {
		parts, err := b.store.ListPartitions(ctx, t.ID)
		if err != nil {
			b.log.Warn("placement: list partitions", "topic", t.Name, "err", err)
			return
		}
		for _, p := range parts {
			total++
			tp := metadata.TopicPartition{TopicID: t.ID, Partition: p.Partition}
			held := p.Leader != "" && p.LeaseExpiresAt.After(now)
			switch {
			case b.plog.Leads(tp):
				mine++
			case !held || p.Leader == b.agentID:
				// No live leader, or a lease this agent held before a
				// restart: take it (with a new epoch).
				free = append(free, candidate{t, p.Partition})
			}
		}
	}
	share := (total + live - 1) / live
	for _, c := range free {
		if mine >= share {
			break
		}
		err := b.plog.Lead(ctx, c.t, c.p)
		switch {
		case err == nil:
			mine++
		case errors.Is(err, metadata.ErrLeaseHeld):
		default:
			if ctx.Err() == nil {
				b.log.Warn("placement: lead", "topic", c.t.Name, "partition", c.p, "err", err)
			}
		}
	}
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
	return errors.Join(errs...)
}
