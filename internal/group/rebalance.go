package group

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// prepareRebalance opens the join barrier. Answers waiting for the
// leader's assignment of the abandoned generation get
// REBALANCE_IN_PROGRESS, so those members rejoin.
func (c *Coordinator) prepareRebalance(g *group, reason string) {
	if g.state == CompletingRebalance {
		for _, m := range g.members {
			m.assignment = nil
			if m.sync != nil {
				m.sync <- SyncResult{Err: kerr.RebalanceInProgress}
				m.sync = nil
			}
		}
	}
	c.stop(&g.syncTimer)
	clear(g.pendingSync)
	wasEmpty := g.state == Empty
	g.state = PreparingRebalance
	timeout := g.rebalanceTimeout()
	c.log.Info("group rebalancing", "group", g.id, "reason", reason, "generation", g.generation, "members", len(g.members), "rebalance_timeout", timeout)
	if delay := c.cfg.InitialRebalanceDelay; wasEmpty && delay > 0 {
		g.initialDelay, g.newMemberAdded = true, false
		g.delayRemaining = max(timeout-delay, 0)
		c.schedule(&g.joinTimer, min(delay, timeout), func() { c.initialDelayPassed(g) })
		return
	}
	c.schedule(&g.joinTimer, timeout, func() { c.joinTimedOut(g) })
	c.tryCompleteJoin(g)
}

// maybePrepareRebalance starts a rebalance unless one is under way.
func (c *Coordinator) maybePrepareRebalance(g *group, reason string) {
	switch g.state {
	case Stable, CompletingRebalance, Empty:
		c.prepareRebalance(g, reason)
	}
}

func (c *Coordinator) tryCompleteJoin(g *group) {
	if g.state == PreparingRebalance && !g.initialDelay && g.allJoined() {
		c.completeJoin(g)
	}
}

// initialDelayPassed extends the initial delay while members keep
// arriving, then closes the barrier.
func (c *Coordinator) initialDelayPassed(g *group) {
	if c.lostFence(g) {
		return
	}
	if g.state != PreparingRebalance || c.groups[g.id] != g {
		return
	}
	if g.newMemberAdded && g.delayRemaining > 0 {
		d := min(c.cfg.InitialRebalanceDelay, g.delayRemaining)
		g.newMemberAdded = false
		g.delayRemaining -= d
		c.schedule(&g.joinTimer, d, func() { c.initialDelayPassed(g) })
		return
	}
	c.completeJoin(g)
}

func (c *Coordinator) joinTimedOut(g *group) {
	if c.lostFence(g) {
		return
	}
	if g.state == PreparingRebalance && c.groups[g.id] == g {
		c.completeJoin(g)
	}
}

// completeJoin closes the barrier: dynamic members that did not rejoin are
// removed (static ones stay until their session expires, KIP-345), a
// leader is chosen among those that rejoined, the protocol is selected,
// and the next generation starts.
func (c *Coordinator) completeJoin(g *group) {
	c.stop(&g.joinTimer)
	g.initialDelay = false
	for _, m := range g.sortedMembers() {
		if m.join == nil && m.instanceID == "" {
			c.log.Info("member removed: did not rejoin within the rebalance timeout", "group", g.id, "member", m.id)
			c.removeMember(g, m, kerr.UnknownMemberID)
		}
	}
	var joined []*member
	for _, m := range g.sortedMembers() {
		if m.join != nil {
			joined = append(joined, m)
		}
	}
	if len(joined) == 0 && len(g.members) > 0 {
		// Only static members that did not rejoin are left: wait for them
		// to rejoin or for their sessions to expire.
		c.schedule(&g.joinTimer, g.rebalanceTimeout(), func() { c.joinTimedOut(g) })
		return
	}
	if l := g.members[g.leader]; l == nil || l.join == nil {
		g.leader = ""
		if len(joined) > 0 {
			g.leader = joined[0].id
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol = Empty, ""
		c.log.Info("group empty", "group", g.id, "generation", g.generation)
		c.saveLater(g)
		c.maybeDrop(g)
		return
	}
	g.protocol = g.selectProtocol()
	g.state = CompletingRebalance
	c.log.Info("group generation formed", "group", g.id, "generation", g.generation, "protocol", g.protocol, "leader", g.leader, "members", len(g.members))
	for _, m := range joined {
		m.join <- c.joinResult(g, m, m.id == g.leader)
		m.join = nil
		c.scheduleSession(g, m)
	}
	for id := range g.members {
		g.pendingSync[id] = struct{}{}
	}
	c.schedule(&g.syncTimer, g.rebalanceTimeout(), func() { c.syncTimedOut(g) })
}

// syncTimedOut removes the members of the generation that never sent
// SyncGroup, and rebalances without them.
func (c *Coordinator) syncTimedOut(g *group) {
	if c.lostFence(g) {
		return
	}
	if (g.state != CompletingRebalance && g.state != Stable) || len(g.pendingSync) == 0 || c.groups[g.id] != g {
		return
	}
	for _, m := range g.sortedMembers() {
		if _, ok := g.pendingSync[m.id]; ok {
			c.log.Info("member removed: no SyncGroup within the rebalance timeout", "group", g.id, "member", m.id)
			c.removeMember(g, m, kerr.UnknownMemberID)
		}
	}
	c.maybePrepareRebalance(g, "members did not sync in time")
}

// scheduleSession (re)starts a member's session timer.
func (c *Coordinator) scheduleSession(g *group, m *member) {
	c.schedule(&m.session, m.sessionTimeout, func() { c.sessionExpired(g, m) })
}

// sessionExpired removes a member that stopped heartbeating. A member
// waiting in JoinGroup or SyncGroup cannot heartbeat and is kept alive;
// those waits are bounded by the rebalance timeout.
func (c *Coordinator) sessionExpired(g *group, m *member) {
	if c.lostFence(g) {
		return
	}
	if c.groups[g.id] != g || g.members[m.id] != m {
		return
	}
	if m.join != nil || m.sync != nil {
		c.scheduleSession(g, m)
		return
	}
	c.log.Info("member removed: session expired", "group", g.id, "member", m.id, "session_timeout", m.sessionTimeout)
	c.removeMemberAndUpdate(g, m, "member "+m.id+" session expired")
}

// expirePending forgets a member id handed out with MEMBER_ID_REQUIRED
// that was not used within the session timeout.
func (c *Coordinator) expirePending(g *group, id string) {
	if c.lostFence(g) {
		return
	}
	if c.groups[g.id] != g {
		return
	}
	if _, ok := g.pending[id]; !ok {
		return
	}
	delete(g.pending, id)
	c.tryCompleteJoin(g)
	c.maybeDrop(g)
}

// removeMember takes a member out of the group without changing state;
// its waiting requests get err.
func (c *Coordinator) removeMember(g *group, m *member, err error) {
	c.failWaiters(m, err)
	c.stop(&m.session)
	delete(g.members, m.id)
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// removeMemberAndUpdate removes a member and rebalances the rest.
func (c *Coordinator) removeMemberAndUpdate(g *group, m *member, reason string) {
	c.removeMember(g, m, kerr.UnknownMemberID)
	switch g.state {
	case Stable, CompletingRebalance:
		c.prepareRebalance(g, reason)
	case PreparingRebalance:
		c.tryCompleteJoin(g)
	}
}

// lingering reports whether the group is in memory only until the save
// of its emptying lands: it is reported as dropped.
func (g *group) lingering() bool {
	return g.state == Empty && len(g.members) == 0 && len(g.pending) == 0
}

// maybeDrop forgets a group with no members, no member ids pending and no
// save in flight. Its committed offsets stay in the metadata store, so it
// is still listed and described as Empty; the next member continues after
// its stored generation (at generation 1 without a Store).
func (c *Coordinator) maybeDrop(g *group) {
	if g.state != Empty || len(g.members) > 0 || len(g.pending) > 0 || g.saving > 0 || c.groups[g.id] != g {
		return
	}
	c.stop(&g.joinTimer)
	c.stop(&g.syncTimer)
	g.state = Dead
	delete(c.groups, g.id)
	c.drops++
}
