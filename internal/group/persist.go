package group

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Persisted generations. A group's coordinator moves when its slot does
// (another agent, or this one after losing the slot); the new coordinator
// must continue the generation sequence, or a member that missed the move
// could rejoin claiming its partitions with a generation higher than the
// group's, and assignors that trust the highest generation
// (cooperative-sticky) would hand them back to it. So, as Kafka writes
// group metadata records, a coordinator with a Store saves the group when
// a generation completes (the leader's assignment, before anyone gets it;
// the group emptying; a static member replaced), and loads it when it
// first meets the group. Every save is made under the fence the group was
// loaded under (its slot, agent and lease epoch), so a coordinator that
// lost the slot cannot overwrite its successor's state.

// Store loads and saves group state; *broker.Broker implements it.
type Store interface {
	// LoadGroup returns the fence under which this agent coordinates the
	// group now and the group's stored state (found false: none). An
	// error wrapping broker.ErrNotCoordinator means the agent must not
	// coordinate the group.
	LoadGroup(ctx context.Context, group string) (metadata.GroupFence, metadata.GroupState, bool, error)
	// SaveGroup stores the group's state if fence still holds; an error
	// wrapping broker.ErrNotCoordinator when it does not.
	SaveGroup(ctx context.Context, fence metadata.GroupFence, st metadata.GroupState) error
	// Holds reports whether this agent still coordinates under fence: it
	// leads the slot at that epoch and the lease deadline has not passed.
	// No I/O: it is asked under the coordinator's lock.
	Holds(fence metadata.GroupFence) bool
}

// saveTimeout bounds one save of a group's state.
const saveTimeout = 10 * time.Second

// loaded is what the store said about a group not in memory.
type loaded struct {
	fence metadata.GroupFence
	state metadata.GroupState
	found bool
	drops uint64 // Coordinator.drops before the store was read
}

// storeErr is the Kafka error for a failed load or save.
func storeErr(err error) error {
	switch {
	case errors.Is(err, broker.ErrNotCoordinator):
		return fmt.Errorf("%w: %w", kerr.NotCoordinator, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", kerr.CoordinatorNotAvailable, err)
}

// load reads a group the coordinator does not have in memory from the
// store; nil when it is in memory, or there is no store.
func (c *Coordinator) load(ctx context.Context, id string) (*loaded, error) {
	if c.cfg.Store == nil || id == "" {
		return nil, nil
	}
	c.mu.Lock()
	known := c.groups[id] != nil || c.closed
	drops := c.drops
	c.mu.Unlock()
	if known {
		return nil, nil
	}
	fence, st, found, err := c.cfg.Store.LoadGroup(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	return &loaded{fence: fence, state: st, found: found, drops: drops}, nil
}

// withGroup runs fn under c.mu with the group (nil when there is none)
// and the fence its writes go under, loading the group from the store
// first when it is not in memory. With create, a group that does not
// exist is created (starting after the stored generation of an empty
// group). A group with members in the store is restored as it was saved.
func (c *Coordinator) withGroup(ctx context.Context, id string, create bool, fn func(g *group, fence metadata.GroupFence)) error {
	for range 5 {
		l, err := c.load(ctx, id)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return kerr.NotCoordinator
		}
		g := c.groups[id]
		if g == nil && c.cfg.Store != nil && id != "" && (l == nil || l.drops != c.drops) {
			// It was in memory a moment ago and was dropped since, or a
			// group was dropped while the store was read (its last save
			// may be newer than what was read: restoring the older state
			// would hand out a generation number twice): load it again.
			c.mu.Unlock()
			continue
		}
		var fence metadata.GroupFence
		if l != nil {
			fence = l.fence
		}
		switch {
		case g != nil:
			fence = g.fence
		case l != nil && l.found && len(l.state.Members) > 0:
			g = c.restore(id, l)
		case create:
			g = newGroup(id)
			g.fence = fence
			if l != nil && l.found {
				g.generation, g.protocolType = l.state.Generation, l.state.ProtocolType
			}
		}
		fn(g, fence)
		c.mu.Unlock()
		return nil
	}
	return fmt.Errorf("%w: group %s: groups keep being dropped while it is loaded", kerr.CoordinatorNotAvailable, id)
}

// restore puts a stored group with members in memory, Stable, with the
// saved generation, leader and assignments; each member's session starts
// now, so members that are gone are removed after their session timeout
// and the group rebalances without them. c.mu is held.
func (c *Coordinator) restore(id string, l *loaded) *group {
	st := l.state
	g := newGroup(id)
	g.fence = l.fence
	g.generation, g.protocolType, g.protocol = st.Generation, st.ProtocolType, st.Protocol
	g.state = Stable
	for _, sm := range st.Members {
		c.seq++
		m := &member{
			id: sm.MemberID, instanceID: sm.InstanceID, clientID: sm.ClientID, clientHost: sm.ClientHost,
			sessionTimeout: sm.SessionTimeout, rebalanceTimeout: sm.RebalanceTimeout,
			protocolType: st.ProtocolType, protocols: []Protocol{{Name: st.Protocol, Metadata: sm.Subscription}},
			assignment: sm.Assignment, order: c.seq,
		}
		if m.assignment == nil {
			m.assignment = []byte{}
		}
		g.members[m.id] = m
		if m.instanceID != "" {
			g.static[m.instanceID] = m.id
		}
	}
	g.leader = st.Leader
	if g.members[g.leader] == nil {
		g.leader = g.sortedMembers()[0].id
	}
	c.groups[id] = g
	for _, m := range g.members {
		c.scheduleSession(g, m)
	}
	c.log.Info("group loaded", "group", id, "generation", g.generation, "protocol", g.protocol, "members", len(g.members), "slot_epoch", g.fence.Epoch)
	return g
}

// snapshot is the group's state to save, with assign (by member id) as
// the assignments, or the members' own when assign is nil. c.mu is held.
func snapshot(g *group, assign map[string][]byte) metadata.GroupState {
	st := metadata.GroupState{Group: g.id, Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader}
	for _, m := range g.sortedMembers() {
		a := m.assignment
		if assign != nil {
			a = assign[m.id]
		}
		st.Members = append(st.Members, metadata.GroupMemberState{
			MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			SessionTimeout: m.sessionTimeout, RebalanceTimeout: m.rebalanceTimeout,
			Subscription: m.metadataFor(g.protocol), Assignment: a,
		})
	}
	return st
}

// pendingSave is a leader's assignment being saved before it is handed
// out.
type pendingSave struct {
	g          *group
	generation int32
	fence      metadata.GroupFence
	state      metadata.GroupState
	assign     map[string][]byte
}

// saveContext bounds a save; Close cancels it. The request's own context
// is not used: a client that gives up must not leave half a generation.
func (c *Coordinator) saveContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.root, saveTimeout)
}

// saveAssignment stores the generation the leader's SyncGroup completes
// and then hands the assignment out; if the store refuses, the group is
// dropped (this agent no longer coordinates it) or rebalanced (the store
// failed).
func (c *Coordinator) saveAssignment(p *pendingSave) {
	ctx, cancel := c.saveContext()
	err := c.cfg.Store.SaveGroup(ctx, p.fence, p.state)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	g := p.g
	g.saving--
	if c.closed || c.groups[g.id] != g || g.state != CompletingRebalance || g.generation != p.generation {
		// The generation was abandoned (or the group dropped) meanwhile;
		// its waiters were answered then.
		c.maybeDrop(g)
		return
	}
	switch {
	case err == nil:
		c.handOut(g, p.assign)
	case errors.Is(err, broker.ErrNotCoordinator):
		c.log.Warn("group dropped: its coordinator slot is no longer held here", "group", g.id, "generation", g.generation, "err", err)
		c.dropLocked(g.id, g)
	default:
		c.log.Warn("saving the group's assignment failed; rebalancing", "group", g.id, "generation", g.generation, "err", err)
		c.prepareRebalance(g, "saving the assignment failed")
	}
}

// saveLater stores the group's current state in the background (the group
// emptied, or a static member was replaced). While the save is in flight
// an empty group stays in memory, so a member joining meanwhile continues
// its generations. c.mu is held.
func (c *Coordinator) saveLater(g *group) {
	if c.cfg.Store == nil || c.closed {
		return
	}
	st, fence := snapshot(g, nil), g.fence
	g.saving++
	c.saves.Add(1)
	go func() {
		defer c.saves.Done()
		ctx, cancel := c.saveContext()
		err := c.cfg.Store.SaveGroup(ctx, fence, st)
		cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		g.saving--
		if err != nil {
			c.log.Warn("saving the group's state failed", "group", g.id, "generation", st.Generation, "members", len(st.Members), "err", err)
			if errors.Is(err, broker.ErrNotCoordinator) && !c.closed && c.groups[g.id] == g {
				c.dropLocked(g.id, g)
			}
		}
		c.maybeDrop(g)
	}()
}

// lostFence drops g when this agent no longer coordinates under its fence
// (the slot was lost, or its lease deadline passed: an agent paused past
// its lease resumes with every timer overdue), answering its waiting
// requests with NOT_COORDINATOR, and reports whether it did. Timers call it
// before acting, so a coordinator that lost the slot neither completes a
// join nor expires sessions: its in-memory generation would otherwise run
// alongside the successor's. c.mu is held.
func (c *Coordinator) lostFence(g *group) bool {
	if c.cfg.Store == nil || c.groups[g.id] != g || c.cfg.Store.Holds(g.fence) {
		return false
	}
	c.log.Info("group dropped: its coordinator slot is no longer held", "group", g.id, "slot", g.fence.Slot.Partition, "epoch", g.fence.Epoch)
	c.dropLocked(g.id, g)
	return true
}
