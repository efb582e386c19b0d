// Package group is the consumer group coordinator of Kafka's classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup): membership,
// generations, the join barrier, protocol selection, leader election,
// handing out the leader's assignment, session expiry and static
// membership (KIP-345). Assignment itself is client-side (range,
// roundrobin, sticky, cooperative-sticky all work; cooperative rebalancing
// is driven by the clients, the coordinator just runs rebalances).
//
// Membership lives in memory, and with a Store each completed generation
// (generation, protocol, leader, members and assignments) is saved, and
// loaded by the next coordinator of the group (persist.go), so generations
// continue across coordinator moves and restarts. Committed offsets live
// in the metadata store and are reached through the broker; the
// coordinator decides whether a member may commit (ValidateCommit) and
// under which slot lease the commit is fenced.
//
// Outcomes a Kafka client branches on are returned as kerr errors
// (kerr.UnknownMemberID, kerr.RebalanceInProgress, ...): the classic
// protocol's own vocabulary, which the Kafka front end puts on the wire
// unchanged.
//
// Locking: one mutex guards every group. Nothing under it does I/O or
// blocks (but the admin offset commit of CommitValidated, bounded by its
// deadline): loads happen before it is taken, saves after it is released. Requests that must wait (a JoinGroup for the barrier, a
// follower's SyncGroup for the leader) park on a buffered channel of their
// own outside the lock, and are answered by whichever call or timer
// completes their step. Timers (join barrier, initial rebalance delay,
// pending sync, member sessions, unused member ids) are Clock.AfterFunc
// callbacks that take the mutex and check a token, so a timer that lost a
// race with Stop does nothing; Close stops them all and answers every
// waiting request.
package group

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

var (
	errUnknownMember  error = kerr.UnknownMemberID
	errFencedInstance error = kerr.FencedInstanceID
)

// Config configures a Coordinator. The zero value is usable.
type Config struct {
	Logger *slog.Logger
	Clock  Clock // default: real time
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// member may ask for (Kafka's group.min/max.session.timeout.ms).
	// Defaults 1 s and 30 min. Kafka's floor is 6 s; ours is lower so
	// development setups and tests can detect dead consumers quickly.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay (group.initial.rebalance.delay.ms) holds the
	// first rebalance of an empty group open so members starting together
	// join one generation. Default 0, as in Kafka's shipped
	// server.properties: the first member gets its assignment at once.
	InitialRebalanceDelay time.Duration
	// MaxGroupSize (group.max.size) bounds the members of a group; 0 means
	// no bound.
	MaxGroupSize int
	// Store persists completed generations and loads groups this
	// coordinator does not have in memory; nil keeps groups in memory only.
	Store Store
}

// Coordinator runs the groups of this agent.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	// root bounds every save; Close cancels it and waits for saves.
	root   context.Context
	cancel context.CancelFunc
	saves  sync.WaitGroup

	mu     sync.Mutex
	groups map[string]*group
	closed bool
	seq    uint64 // member join order and timer tokens
	// drops counts groups dropped from memory; a load that saw another
	// count may have read a state older than the dropped group's last
	// save, and is not restored (persist.go).
	drops uint64
}

// New creates a coordinator.
func New(cfg Config) *Coordinator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = time.Second
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = 30 * time.Minute
	}
	root, cancel := context.WithCancel(context.Background())
	return &Coordinator{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "group"),
		clock:  cfg.Clock,
		root:   root,
		cancel: cancel,
		groups: make(map[string]*group),
	}
}

// Close stops every timer and answers every waiting request with
// NOT_COORDINATOR (clients then look for the coordinator again). Calls
// after Close answer NOT_COORDINATOR too. Saves in flight are cancelled
// and waited for. Close is idempotent.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for id, g := range c.groups {
			c.dropLocked(id, g)
		}
	}
	c.mu.Unlock()
	c.cancel()
	c.saves.Wait()
	return nil
}

// dropLocked stops a group's timers, answers its waiting requests with
// NOT_COORDINATOR and forgets it. c.mu is held.
func (c *Coordinator) dropLocked(id string, g *group) {
	for _, m := range g.members {
		c.failWaiters(m, kerr.NotCoordinator)
		c.stop(&m.session)
	}
	for _, t := range g.pending {
		c.stop(t)
	}
	c.stop(&g.joinTimer)
	c.stop(&g.syncTimer)
	g.state = Dead
	delete(c.groups, id)
	c.drops++
}

// Evict drops every group whose ID matches, members and all, answering
// their waiting requests with NOT_COORDINATOR (their clients then look for
// the coordinator again); committed offsets are not touched. It returns
// how many groups it dropped. The agent calls it for the groups of a
// coordinator slot it no longer holds.
func (c *Coordinator) Evict(match func(groupID string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, g := range c.groups {
		if match(id) {
			c.dropLocked(id, g)
			n++
		}
	}
	return n
}

// JoinRequest is one JoinGroup.
type JoinRequest struct {
	Group      string
	MemberID   string // "" for a member joining for the first time
	InstanceID string // group.instance.id; "" for dynamic members
	ClientID   string
	ClientHost string

	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration // ≤ 0: the session timeout (JoinGroup v0)
	ProtocolType     string
	Protocols        []Protocol
	Reason           string

	// RequireKnownMemberID (JoinGroup v4+, KIP-394): a dynamic member
	// joining without a member id gets one with MEMBER_ID_REQUIRED and
	// must join again with it, so ids of clients that give up are never
	// part of a generation.
	RequireKnownMemberID bool
	// SkipAssignmentOK (JoinGroup v9+, KIP-814): a static leader that
	// rejoins a stable group is told it leads, with SkipAssignment set.
	SkipAssignmentOK bool
}

// JoinMember is one member in the leader's JoinGroup answer.
type JoinMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte // for the selected protocol
}

// JoinResult answers a JoinGroup. On error, Generation is -1 and MemberID
// is the request's (or, with MEMBER_ID_REQUIRED, the id to join with).
type JoinResult struct {
	Err            error
	Generation     int32
	ProtocolType   string
	Protocol       string
	LeaderID       string
	MemberID       string
	SkipAssignment bool
	Members        []JoinMember // the leader's only
}

func joinErr(err error, memberID string) JoinResult {
	return JoinResult{Err: err, MemberID: memberID, Generation: -1}
}

// Join handles a JoinGroup. It returns at once on error, for a member id
// round (MEMBER_ID_REQUIRED), and for a rejoin that changes nothing;
// otherwise it waits for the join barrier, bounded by the group's
// rebalance timeout, or until ctx ends.
func (c *Coordinator) Join(ctx context.Context, req JoinRequest) JoinResult {
	if req.Group == "" {
		return joinErr(kerr.InvalidGroupID, req.MemberID)
	}
	if req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout {
		return joinErr(kerr.InvalidSessionTimeout, req.MemberID)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	var (
		res  JoinResult
		wait chan JoinResult
	)
	err := c.withGroup(ctx, req.Group, req.MemberID == "", func(g *group, _ metadata.GroupFence) {
		res, wait = c.join(g, req)
	})
	if err != nil {
		return joinErr(err, req.MemberID)
	}
	if wait == nil {
		return res
	}
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		return joinErr(ctx.Err(), req.MemberID)
	}
}

// join handles a JoinGroup for g (nil: the group does not exist and the
// member claims a member id).
func (c *Coordinator) join(g *group, req JoinRequest) (JoinResult, chan JoinResult) {
	if g == nil {
		return joinErr(kerr.UnknownMemberID, req.MemberID), nil
	}
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		return joinErr(kerr.InconsistentGroupProtocol, req.MemberID), nil
	}
	c.groups[g.id] = g
	defer c.maybeDrop(g)
	if req.MemberID == "" {
		return c.joinNew(g, req)
	}
	return c.joinKnown(g, req)
}

// joinNew handles a member without a member id.
func (c *Coordinator) joinNew(g *group, req JoinRequest) (JoinResult, chan JoinResult) {
	oldID, rejoining := g.static[req.InstanceID]
	rejoining = rejoining && req.InstanceID != ""
	if !rejoining && c.cfg.MaxGroupSize > 0 && len(g.members)+len(g.pending) >= c.cfg.MaxGroupSize {
		return joinErr(kerr.GroupMaxSizeReached, ""), nil
	}
	// Kafka's shapes: static members are "<instance>-<uuid>" (clients
	// recognise their own leadership by the prefix before KIP-814),
	// dynamic ones "<client id>-<uuid>".
	prefix := req.ClientID
	if req.InstanceID != "" {
		prefix = req.InstanceID
	}
	id := prefix + "-" + newUUID()
	switch {
	case rejoining:
		return c.replaceStatic(g, oldID, id, req)
	case req.InstanceID == "" && req.RequireKnownMemberID:
		t := &timer{}
		g.pending[id] = t
		c.schedule(t, req.SessionTimeout, func() { c.expirePending(g, id) })
		return joinErr(kerr.MemberIDRequired, id), nil
	}
	return c.addMember(g, id, req)
}

// joinKnown handles a member rejoining with its member id.
func (c *Coordinator) joinKnown(g *group, req JoinRequest) (JoinResult, chan JoinResult) {
	id := req.MemberID
	if t, ok := g.pending[id]; ok {
		c.stop(t)
		delete(g.pending, id)
		return c.addMember(g, id, req)
	}
	if err := g.checkMember(id, req.InstanceID); err != nil {
		return joinErr(err, id), nil
	}
	m := g.members[id]
	switch g.state {
	case PreparingRebalance:
		ch := c.updateMember(m, req)
		c.tryCompleteJoin(g)
		return JoinResult{}, ch
	case CompletingRebalance:
		if m.sameProtocols(req.Protocols) {
			// A retry whose answer was lost: answer it again.
			c.scheduleSession(g, m)
			return c.joinResult(g, m, g.leader == id), nil
		}
		ch := c.updateMember(m, req)
		c.prepareRebalance(g, "member "+id+" rejoined with other protocols")
		return JoinResult{}, ch
	case Stable:
		if g.leader != id && m.sameProtocols(req.Protocols) {
			// A follower with nothing new: no rebalance.
			c.scheduleSession(g, m)
			return c.joinResult(g, m, false), nil
		}
		ch := c.updateMember(m, req)
		reason := "leader " + id + " rejoined"
		if g.leader != id {
			reason = "member " + id + " rejoined with other protocols"
		}
		c.prepareRebalance(g, reason)
		return JoinResult{}, ch
	}
	return joinErr(kerr.UnknownMemberID, id), nil
}

// addMember adds a member and starts (or joins) a rebalance.
func (c *Coordinator) addMember(g *group, id string, req JoinRequest) (JoinResult, chan JoinResult) {
	c.seq++
	m := &member{id: id, instanceID: req.InstanceID, order: c.seq}
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	if g.leader == "" {
		g.leader = id
	}
	g.members[id] = m
	if m.instanceID != "" {
		g.static[m.instanceID] = id
	}
	g.newMemberAdded = true
	ch := c.updateMember(m, req)
	c.log.Debug("member joined group", "group", g.id, "member", id, "instance", req.InstanceID, "client", req.ClientID, "reason", req.Reason)
	if g.state == PreparingRebalance {
		c.tryCompleteJoin(g)
	} else {
		c.prepareRebalance(g, "member "+id+" joined")
	}
	return JoinResult{}, ch
}

// updateMember takes a rejoin's settings and parks the member at the
// barrier.
func (c *Coordinator) updateMember(m *member, req JoinRequest) chan JoinResult {
	if m.join != nil {
		// An earlier JoinGroup of this member is still waiting; the client
		// gave up on it.
		m.join <- joinErr(kerr.RebalanceInProgress, m.id)
	}
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.protocolType, m.protocols = req.ProtocolType, req.Protocols
	m.join = make(chan JoinResult, 1)
	return m.join
}

// replaceStatic gives a static member's instance id to the member id just
// created for it (KIP-345). The old member id is fenced. A stable group
// whose protocol choice does not change is not rebalanced: the member gets
// the current generation and, on SyncGroup, its old assignment.
func (c *Coordinator) replaceStatic(g *group, oldID, newID string, req JoinRequest) (JoinResult, chan JoinResult) {
	m := g.members[oldID]
	c.failWaiters(m, kerr.FencedInstanceID)
	oldLeader := g.leader
	delete(g.members, oldID)
	m.id = newID
	g.members[newID] = m
	g.static[m.instanceID] = newID
	if g.leader == oldID {
		g.leader = newID
	}
	if _, ok := g.pendingSync[oldID]; ok {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = struct{}{}
	}
	c.log.Info("static member replaced", "group", g.id, "instance", m.instanceID, "old_member", oldID, "member", newID)
	switch g.state {
	case Stable:
		ch := c.updateMember(m, req)
		if g.selectProtocol() == g.protocol {
			m.join = nil
			c.scheduleSession(g, m)
			c.saveLater(g) // the stored generation names the new member id
			res := c.joinResult(g, m, false)
			res.LeaderID = oldLeader
			if oldLeader == oldID && req.SkipAssignmentOK {
				// KIP-814: tell the restarted leader it leads, but that
				// the group keeps its assignment.
				res.LeaderID, res.SkipAssignment, res.Members = newID, true, c.joinMembers(g)
			}
			return res, nil
		}
		c.prepareRebalance(g, "static member "+m.instanceID+" rejoined with other protocols")
		return JoinResult{}, ch
	case CompletingRebalance:
		ch := c.updateMember(m, req)
		c.prepareRebalance(g, "static member "+m.instanceID+" rejoined during a rebalance")
		return JoinResult{}, ch
	default: // PreparingRebalance
		ch := c.updateMember(m, req)
		c.tryCompleteJoin(g)
		return JoinResult{}, ch
	}
}

// joinResult is the answer for the current generation.
func (c *Coordinator) joinResult(g *group, m *member, withMembers bool) JoinResult {
	res := JoinResult{
		Generation:   g.generation,
		ProtocolType: g.protocolType,
		Protocol:     g.protocol,
		LeaderID:     g.leader,
		MemberID:     m.id,
	}
	if withMembers {
		res.Members = c.joinMembers(g)
	}
	return res
}

func (c *Coordinator) joinMembers(g *group) []JoinMember {
	ms := g.sortedMembers()
	out := make([]JoinMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, JoinMember{MemberID: m.id, InstanceID: m.instanceID, Metadata: m.metadataFor(g.protocol)})
	}
	return out
}

// SyncRequest is one SyncGroup.
type SyncRequest struct {
	Group        string
	MemberID     string
	InstanceID   string
	Generation   int32
	ProtocolType *string // v5+: checked when set
	Protocol     *string
	// Assignments is the leader's plan by member id; members without an
	// entry get an empty assignment. Ignored from followers.
	Assignments map[string][]byte
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err          error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// Sync handles a SyncGroup. The leader's call hands out the assignment; a
// follower arriving first waits for it, bounded by the rebalance timeout
// (after which the group rebalances and the wait ends with
// REBALANCE_IN_PROGRESS), or until ctx ends.
func (c *Coordinator) Sync(ctx context.Context, req SyncRequest) SyncResult {
	if req.Group == "" {
		return SyncResult{Err: kerr.InvalidGroupID}
	}
	var (
		res  SyncResult
		wait chan SyncResult
		save *pendingSave
	)
	err := c.withGroup(ctx, req.Group, false, func(g *group, _ metadata.GroupFence) {
		res, wait, save = c.syncGroup(g, req)
	})
	if err != nil {
		return SyncResult{Err: err}
	}
	if save != nil {
		c.saveAssignment(save)
	}
	if wait == nil {
		return res
	}
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		return SyncResult{Err: ctx.Err()}
	}
}

// syncGroup handles a SyncGroup. The leader's assignment is handed out at
// once without a Store; with one, it is returned to be saved first.
func (c *Coordinator) syncGroup(g *group, req SyncRequest) (SyncResult, chan SyncResult, *pendingSave) {
	if g == nil {
		return SyncResult{Err: kerr.UnknownMemberID}, nil, nil
	}
	if err := g.checkMember(req.MemberID, req.InstanceID); err != nil {
		return SyncResult{Err: err}, nil, nil
	}
	if req.Generation != g.generation {
		return SyncResult{Err: kerr.IllegalGeneration}, nil, nil
	}
	if req.ProtocolType != nil && *req.ProtocolType != g.protocolType || req.Protocol != nil && *req.Protocol != g.protocol {
		return SyncResult{Err: kerr.InconsistentGroupProtocol}, nil, nil
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		return SyncResult{Err: kerr.RebalanceInProgress}, nil, nil
	case CompletingRebalance:
		c.synced(g, m)
		if m.sync != nil {
			m.sync <- SyncResult{Err: kerr.RebalanceInProgress}
		}
		m.sync = make(chan SyncResult, 1)
		ch := m.sync
		if m.id != g.leader {
			return SyncResult{}, ch, nil
		}
		assign := make(map[string][]byte, len(g.members))
		for id := range g.members {
			a := req.Assignments[id]
			if a == nil {
				a = []byte{}
			}
			assign[id] = a
		}
		if c.cfg.Store == nil {
			c.handOut(g, assign)
			return SyncResult{}, ch, nil
		}
		g.saving++
		return SyncResult{}, ch, &pendingSave{g: g, generation: g.generation, fence: g.fence, state: snapshot(g, assign), assign: assign}
	case Stable:
		c.synced(g, m)
		return c.syncResult(g, m), nil, nil
	}
	return SyncResult{Err: kerr.UnknownMemberID}, nil, nil
}

// handOut makes the leader's assignment the generation's and answers
// every member waiting in SyncGroup: the group is Stable.
func (c *Coordinator) handOut(g *group, assign map[string][]byte) {
	for id, m := range g.members {
		m.assignment = assign[id]
		if m.assignment == nil {
			m.assignment = []byte{}
		}
	}
	g.state = Stable
	c.log.Info("group stable", "group", g.id, "generation", g.generation, "protocol", g.protocol, "members", len(g.members))
	for _, m := range g.members {
		if m.sync != nil {
			m.sync <- c.syncResult(g, m)
			m.sync = nil
		}
	}
}

func (c *Coordinator) syncResult(g *group, m *member) SyncResult {
	return SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}
}

// synced notes a member's SyncGroup: it is alive and no longer pending.
func (c *Coordinator) synced(g *group, m *member) {
	c.scheduleSession(g, m)
	delete(g.pendingSync, m.id)
	if len(g.pendingSync) == 0 {
		c.stop(&g.syncTimer)
	}
}

// failWaiters answers a member's waiting JoinGroup and SyncGroup with err.
func (c *Coordinator) failWaiters(m *member, err error) {
	if m.join != nil {
		m.join <- joinErr(err, m.id)
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- SyncResult{Err: err}
		m.sync = nil
	}
}

// newUUID is a random (version 4) UUID, the suffix of member ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
