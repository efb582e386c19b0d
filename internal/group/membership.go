package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// HeartbeatRequest is one Heartbeat.
type HeartbeatRequest struct {
	Group      string
	MemberID   string
	InstanceID string
	Generation int32
}

// Heartbeat keeps a member's session alive. During a rebalance it answers
// REBALANCE_IN_PROGRESS, which tells the member to rejoin.
func (c *Coordinator) Heartbeat(ctx context.Context, req HeartbeatRequest) error {
	if req.Group == "" {
		return kerr.InvalidGroupID
	}
	var res error
	err := c.withGroup(ctx, req.Group, false, func(g *group, _ metadata.GroupFence) { res = c.heartbeat(g, req) })
	if err != nil {
		return err
	}
	return res
}

func (c *Coordinator) heartbeat(g *group, req HeartbeatRequest) error {
	if g == nil {
		return kerr.UnknownMemberID
	}
	if err := g.checkMember(req.MemberID, req.InstanceID); err != nil {
		return err
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		c.scheduleSession(g, m)
		return kerr.RebalanceInProgress
	case CompletingRebalance, Stable:
		// Between the join answer and the leader's SyncGroup the member
		// has the new generation; it is alive (as in Kafka 3.x).
		c.scheduleSession(g, m)
		return nil
	}
	return kerr.UnknownMemberID
}

// LeaveMember is one member leaving (LeaveGroup v3+ leaves in batches).
// A static member may leave by instance id alone.
type LeaveMember struct {
	MemberID   string
	InstanceID string
	Reason     string
}

// Leave removes members and rebalances the rest. It returns one error
// (nil: left) per member, or a group-level error.
func (c *Coordinator) Leave(ctx context.Context, groupID string, members []LeaveMember) ([]error, error) {
	if groupID == "" {
		return nil, kerr.InvalidGroupID
	}
	errs := make([]error, len(members))
	err := c.withGroup(ctx, groupID, false, func(g *group, _ metadata.GroupFence) {
		if g == nil {
			for i := range errs {
				errs[i] = kerr.UnknownMemberID
			}
			return
		}
		for i, lm := range members {
			errs[i] = c.leave(g, lm)
		}
		c.maybeDrop(g)
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

func (c *Coordinator) leave(g *group, lm LeaveMember) error {
	id := lm.MemberID
	if id == "" && lm.InstanceID != "" {
		cur, ok := g.static[lm.InstanceID]
		if !ok {
			return kerr.UnknownMemberID
		}
		id = cur
	}
	if t, ok := g.pending[id]; ok && lm.InstanceID == "" {
		c.stop(t)
		delete(g.pending, id)
		c.tryCompleteJoin(g)
		return nil
	}
	if err := g.checkMember(id, lm.InstanceID); err != nil {
		return err
	}
	c.log.Info("member left group", "group", g.id, "member", id, "instance", lm.InstanceID, "reason", lm.Reason)
	c.removeMemberAndUpdate(g, g.members[id], "member "+id+" left")
	return nil
}

// ValidateCommit decides whether an OffsetCommit may write, as Kafka's
// classic groups do, and returns the fence the write must be made under
// (the coordinator slot lease the group is held under). A commit with generation -1 and no member id (kadm,
// consumers assigning partitions themselves) is accepted while the group
// has no members. A member's commit must carry its current generation; it
// is refused with REBALANCE_IN_PROGRESS while the leader's assignment is
// pending, and accepted while rebalancing otherwise (members commit what
// they consumed before they rejoin). kerr.GroupIDNotFound means a member
// commit for a group this coordinator does not run (Kafka answers
// ILLEGAL_GENERATION to OffsetCommit before v9).
func (c *Coordinator) ValidateCommit(ctx context.Context, groupID string, generation int32, memberID, instanceID string) (metadata.GroupFence, error) {
	if groupID == "" {
		return metadata.GroupFence{}, kerr.InvalidGroupID
	}
	var (
		fence metadata.GroupFence
		res   error
	)
	err := c.withGroup(ctx, groupID, false, func(g *group, f metadata.GroupFence) {
		fence, res = f, validateCommit(g, generation, memberID, instanceID)
	})
	if err != nil {
		return metadata.GroupFence{}, err
	}
	return fence, res
}

// CommitValidated is ValidateCommit and the write under one hold of the
// group's lock: write runs with the fence only when the commit is
// accepted, before the lock is released, so no member can join between
// the check and the write (Kafka holds the group lock across both). It
// returns ValidateCommit's verdict; write reports its own outcome. The one
// write made under the lock (an exception to "nothing under it does
// I/O"): for admin commits, which are rare, and write must be bounded by
// a deadline.
func (c *Coordinator) CommitValidated(ctx context.Context, groupID string, generation int32, memberID, instanceID string, write func(fence metadata.GroupFence)) error {
	if groupID == "" {
		return kerr.InvalidGroupID
	}
	var res error
	err := c.withGroup(ctx, groupID, false, func(g *group, f metadata.GroupFence) {
		if res = validateCommit(g, generation, memberID, instanceID); res == nil {
			write(f)
		}
	})
	if err != nil {
		return err
	}
	return res
}

func validateCommit(g *group, generation int32, memberID, instanceID string) error {
	if g == nil {
		if generation < 0 {
			return nil
		}
		return kerr.GroupIDNotFound
	}
	if generation < 0 && g.state == Empty {
		return nil
	}
	if generation >= 0 || memberID != "" || instanceID != "" {
		if err := g.checkMember(memberID, instanceID); err != nil {
			return err
		}
		if generation != g.generation {
			return kerr.IllegalGeneration
		}
	} else if g.state != Empty {
		return kerr.UnknownMemberID
	}
	if g.state == CompletingRebalance {
		return kerr.RebalanceInProgress
	}
	return nil
}

// Description is a group's live state.
type Description struct {
	Group        string
	State        State
	ProtocolType string
	Protocol     string // of the current generation; "" before the first
	Generation   int32
	Leader       string
	Members      []MemberDescription // in join order
}

// MemberDescription is one member of a Description.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Protocols  []Protocol // as the member last joined, in its order
	Metadata   []byte     // its metadata for the group's protocol
	Assignment []byte     // nil until the leader's SyncGroup
}

// Describe returns a group's live state (loading it from the store when
// it is not in memory); ok is false when the coordinator runs no such
// group (it may still have committed offsets) or cannot load it.
func (c *Coordinator) Describe(ctx context.Context, groupID string) (Description, bool) {
	var (
		d  Description
		ok bool
	)
	err := c.withGroup(ctx, groupID, false, func(g *group, _ metadata.GroupFence) {
		if g != nil && !g.lingering() {
			d, ok = describe(g), true
		}
	})
	if err != nil {
		return Description{}, false
	}
	return d, ok
}

// Groups describes every group the coordinator runs, ordered by id.
func (c *Coordinator) Groups() []Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Description, 0, len(c.groups))
	for _, g := range c.groups {
		if !g.lingering() {
			out = append(out, describe(g))
		}
	}
	slices.SortFunc(out, func(a, b Description) int { return strings.Compare(a.Group, b.Group) })
	return out
}

func describe(g *group) Description {
	d := Description{Group: g.id, State: g.state, ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation, Leader: g.leader}
	for _, m := range g.sortedMembers() {
		d.Members = append(d.Members, MemberDescription{
			MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			Protocols: slices.Clone(m.protocols), Metadata: m.metadataFor(g.protocol), Assignment: m.assignment,
		})
	}
	return d
}

// Delete drops an empty group from the coordinator. found is false when
// the coordinator runs no such group; NON_EMPTY_GROUP when it has members.
// The caller deletes the group's offsets.
func (c *Coordinator) Delete(ctx context.Context, groupID string) (found bool, err error) {
	werr := c.withGroup(ctx, groupID, false, func(g *group, _ metadata.GroupFence) {
		if g == nil || g.lingering() {
			return
		}
		found = true
		if g.state != Empty || len(g.members) > 0 {
			err = kerr.NonEmptyGroup
			return
		}
		for id, t := range g.pending {
			c.stop(t)
			delete(g.pending, id)
		}
		c.maybeDrop(g)
	})
	if werr != nil {
		return false, werr
	}
	return found, err
}
