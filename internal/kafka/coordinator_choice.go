package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// Which agent coordinates a consumer group. Group membership lives in the
// memory of one coordinator, so every agent must name the same one: it is
// chosen among the live agents by rendezvous hashing (the agent with the
// highest hash of agent ID and group ID), which every agent computes alike
// from the metadata store's agent list, and which moves only the groups of
// an agent that joins or leaves. Other agents answer group requests with
// NOT_COORDINATOR, so clients look the coordinator up again.
//
// This is an interim placement: while the live agent lists of two agents
// differ (an agent just joined or its heartbeat just expired), both may
// briefly believe they coordinate a group. DESIGN §5's leased coordinator
// slots remove that window.

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

// groupCoordinator returns the coordinator of group and whether it is this
// agent.
func (s *Server) groupCoordinator(ctx context.Context, group string) (brokerInfo, bool) {
	live := s.cachedLiveBrokers(ctx)
	self := s.broker.AgentID()
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	best := broker.Rendezvous(group, ids)
	if best == "" {
		best = self
	}
	return live[best], best == self
}

// notCoordinator is the error code for a group request this agent must not
// serve (0 when it coordinates the group).
func (s *Server) notCoordinator(ctx context.Context, group string) int16 {
	if _, self := s.groupCoordinator(ctx, group); self {
		return 0
	}
	return kerr.NotCoordinator.Code
}
