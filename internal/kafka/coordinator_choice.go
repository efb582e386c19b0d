package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Which agent coordinates a consumer group: the holder of the lease of
// the group's coordinator slot (broker.GroupCoordinator, DESIGN §5). Every
// agent reads the same lease table, and a lease has one holder at a time,
// so agents never disagree for longer than it takes a handover to show;
// during a handover the slot has no holder and FindCoordinator answers
// COORDINATOR_NOT_AVAILABLE, which clients retry. Other agents answer the
// group's requests with NOT_COORDINATOR, so clients look the coordinator
// up again. When this agent sees a slot it leads change epoch (it lost the
// slot and took it back) or sees it held elsewhere, it drops what it knew
// of the slot's groups: their members rejoin wherever the slot now is.

// liveCacheTTL bounds how stale the cached live-agent list may be.
const liveCacheTTL = time.Second

type liveCache struct {
	mu   sync.Mutex
	at   time.Time
	live liveBrokers
}

// cachedLiveBrokers returns liveBrokers, refreshed at most every second.
func (s *Server) cachedLiveBrokers(ctx context.Context) liveBrokers {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.live == nil || time.Since(s.live.at) > liveCacheTTL {
		s.live.live, s.live.at = s.liveBrokers(ctx), time.Now()
	}
	return s.live.live
}

// slotEpochs remembers, per slot, the lease epoch under which this agent
// holds the groups it runs (0: it holds none).
type slotEpochs struct {
	mu     sync.Mutex
	epochs map[int32]int32
}

// groupCoordinator returns the coordinator of group and whether it is this
// agent; ok is false when no live agent holds the group's slot.
func (s *Server) groupCoordinator(ctx context.Context, group string) (b brokerInfo, self, ok bool) {
	agent, self := s.coordinatorAgent(ctx, group)
	if agent == "" {
		return brokerInfo{node: -1}, false, false
	}
	b, ok = s.cachedLiveBrokers(ctx)[agent] // always has this agent
	if !ok {
		// An agent that joined within the cache's second.
		s.live.mu.Lock()
		s.live.live = nil
		s.live.mu.Unlock()
		if b, ok = s.cachedLiveBrokers(ctx)[agent]; !ok {
			return brokerInfo{node: -1}, false, false
		}
	}
	return b, self, true
}

// coordinatorAgent returns the ID of the agent coordinating group ("" when
// none does) and whether it is this agent.
func (s *Server) coordinatorAgent(ctx context.Context, group string) (string, bool) {
	agent, epoch, err := s.broker.GroupCoordinator(ctx, group)
	if err != nil {
		s.log.Warn("group coordinator lookup", "group", group, "err", err)
		return "", false
	}
	self := agent == s.broker.AgentID()
	s.syncSlot(ctx, group, self, epoch)
	return agent, self
}

// syncSlot drops this agent's groups of group's slot when the slot is no
// longer held here under the epoch they were created under.
func (s *Server) syncSlot(ctx context.Context, group string, self bool, epoch int32) {
	tp, err := s.broker.GroupSlot(ctx, group)
	if err != nil {
		return
	}
	if !self {
		epoch = 0
	}
	s.slots.mu.Lock()
	if s.slots.epochs == nil {
		s.slots.epochs = make(map[int32]int32)
	}
	prev := s.slots.epochs[tp.Partition]
	s.slots.epochs[tp.Partition] = epoch
	s.slots.mu.Unlock()
	if prev == epoch || prev == 0 {
		return
	}
	n := s.groups.Evict(func(id string) bool {
		other, err := s.broker.GroupSlot(ctx, id)
		return err == nil && other.Partition == tp.Partition
	})
	if n > 0 {
		s.log.Info("dropped the groups of a coordinator slot this agent no longer holds", "slot", tp.Partition, "groups", n)
	}
}

// notCoordinator is the error code for a group request this agent must not
// serve (0 when it coordinates the group). It is asked on every group
// request: whether this agent leads the slot comes from the partition
// log's lease, which stops counting once the lease's deadline has passed,
// so an agent cut off from the metadata store stops coordinating then,
// with or without a slot change seen. NOT_COORDINATOR whether or not
// another agent holds the slot yet: either way this agent is not the
// coordinator, and the client looks it up again (FindCoordinator answers
// COORDINATOR_NOT_AVAILABLE while nobody holds the slot).
func (s *Server) notCoordinator(ctx context.Context, group string) int16 {
	if _, self := s.coordinatorAgent(ctx, group); self {
		return 0
	}
	return kerr.NotCoordinator.Code
}
