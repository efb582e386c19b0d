package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// With two agents, every agent names the same coordinator for a group,
// the other agent refuses the group's requests with NOT_COORDINATOR, and a
// consumer bootstrapped to either agent ends up in one group.
func TestGroupCoordinatorAcrossAgents(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	servers := map[int32]*testServer{NodeID("agent-1"): s1, NodeID("agent-2"): s2}

	// direct sends req to one agent, bypassing the client's routing.
	direct := func(s *testServer, req kmsg.Request) kmsg.Response {
		t.Helper()
		cl := s.client()
		resp, err := cl.Broker(int(s.srv.nodeID)).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	seen := map[int32]int{}
	for i := 0; i < 12; i++ {
		group := fmt.Sprintf("group-%d", i)
		var coords []int32
		for _, s := range []*testServer{s1, s2} {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.CoordinatorKey = group
			req.CoordinatorKeys = []string{group}
			resp := direct(s, req).(*kmsg.FindCoordinatorResponse)
			node, code := resp.NodeID, resp.ErrorCode
			if len(resp.Coordinators) == 1 { // v4+: the batched form
				node, code = resp.Coordinators[0].NodeID, resp.Coordinators[0].ErrorCode
			}
			if code != 0 {
				t.Fatalf("%s: FindCoordinator error %d", group, code)
			}
			coords = append(coords, node)
		}
		if coords[0] != coords[1] || servers[coords[0]] == nil {
			t.Fatalf("%s: agents name coordinators %v", group, coords)
		}
		seen[coords[0]]++
		// The other agent refuses the group.
		other := s1
		if servers[coords[0]] == s1 {
			other = s2
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = group, "m", 1
		if code := direct(other, hb).(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.NotCoordinator.Code {
			t.Fatalf("%s: heartbeat at the other agent: code %d, want NOT_COORDINATOR", group, code)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("12 groups all placed on one agent: %v", seen)
	}

	// Consumers bootstrapped to different agents join one group.
	if _, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "shared", Partitions: 4}, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*testServer{s1, s2} {
		cl := s.client(kgo.ConsumerGroup("shared-group"), kgo.ConsumeTopics("shared"))
		go func() {
			for ctx.Err() == nil {
				cl.PollFetches(ctx)
			}
		}()
	}
	adm := kadm.NewClient(s1.client())
	testutil.WaitFor(t, "one group with both consumers", func() bool {
		described, err := adm.DescribeGroups(ctx, "shared-group")
		if err != nil {
			return false
		}
		g := described["shared-group"]
		return g.Err == nil && g.State == "Stable" && len(g.Members) == 2
	})
}
