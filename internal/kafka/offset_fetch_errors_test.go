package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
)

// offsetFetchAt is an OffsetFetch of partitions 0 and 3 of topic (by ID
// from v10) for group, in the shape of version v.
func offsetFetchAt(v int16, group, topic string, id [16]byte) *kmsg.OffsetFetchRequest {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = v
	if v < 8 {
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 3}
		req.Group, req.Topics = group, []kmsg.OffsetFetchRequestTopic{rt}
		return req
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	gt := kmsg.NewOffsetFetchRequestGroupTopic()
	gt.Partitions = []int32{0, 3}
	if v >= 10 {
		gt.TopicID = id
	} else {
		gt.Topic = topic
	}
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{gt}
	req.Groups = []kmsg.OffsetFetchRequestGroup{rg}
	return req
}

// checkGroupError checks that an OffsetFetch answer of version v carries
// the group-level error want where v has it: in every asked partition
// (offset -1, empty metadata) for v1, which has no group-level ErrorCode,
// as Kafka's OffsetFetchRequest.getErrorResponse answers; the top-level
// ErrorCode with no topics for v2-v7; the group's ErrorCode with no topics
// from v8.
func checkGroupError(t *testing.T, v int16, resp *kmsg.OffsetFetchResponse, topic string, want *kerr.Error) {
	t.Helper()
	switch {
	case v < 2:
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != topic || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: %s lost: topics %+v", v, want.Message, resp.Topics)
		}
		for i, p := range resp.Topics[0].Partitions {
			if p.Partition != []int32{0, 3}[i] || p.ErrorCode != want.Code || p.Offset != -1 || p.Metadata == nil || *p.Metadata != "" {
				t.Errorf("v%d partition %d: %+v, want %s with offset -1", v, i, p, want.Message)
			}
		}
	case v < 8:
		if resp.ErrorCode != want.Code || len(resp.Topics) != 0 {
			t.Errorf("v%d: error %d, topics %+v, want %s and none", v, resp.ErrorCode, resp.Topics, want.Message)
		}
	default:
		if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != want.Code || len(resp.Groups[0].Topics) != 0 {
			t.Errorf("v%d: groups %+v, want %s and no topics", v, resp.Groups, want.Message)
		}
	}
}

// A caller that may DESCRIBE the topic but not the group gets
// GROUP_AUTHORIZATION_FAILED at every version OffsetFetch is served at,
// where that version carries a group's error; it is never an answer
// with no offsets and no error. Each refusal is counted once.
func TestOffsetFetchGroupDeniedAtEveryVersion(t *testing.T) {
	t.Parallel()
	s := startACLServer(t)
	s.setACLs(t, onTopic(acl.OpDescribe))
	topic, err := s.broker.Topic(dpCtx(t), aclTopic)
	if err != nil {
		t.Fatal(err)
	}
	w := s.dpDial(t)
	if resp := w.login(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret")); resp.ErrorCode != 0 {
		t.Fatalf("login: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	for v := int16(1); v <= 10; v++ {
		resp := w.do(offsetFetchAt(v, aclGroup, aclTopic, topic.ID)).(*kmsg.OffsetFetchResponse)
		checkGroupError(t, v, resp, aclTopic, kerr.GroupAuthorizationFailed)
	}
	if n := counter(t, s.aclReg, "streamhouse_authorization_denials_total",
		map[string]string{"listener": "kafka", "resource_type": "GROUP", "operation": "DESCRIBE"}); n != 10 {
		t.Errorf("GROUP DESCRIBE denials: %v, want 10", n)
	}
	// With DESCRIBE on the group too, v1 answers offsets again.
	s.setACLs(t, onTopic(acl.OpDescribe), onGroup(acl.OpDescribe))
	resp := w.do(offsetFetchAt(1, aclGroup, aclTopic, topic.ID)).(*kmsg.OffsetFetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("v1 allowed: %+v", resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Offset != -1 {
			t.Errorf("v1 allowed, no offset committed: %+v", p)
		}
	}
}

// The coordinator's errors are group-level too: an agent that does not
// coordinate the group answers NOT_COORDINATOR, and an empty group ID is
// INVALID_GROUP_ID, in each version's place (per partition in v1).
func TestOffsetFetchCoordinatorErrorsAtEveryVersion(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	ctx := grpCtx(t)
	s1.grpTopic(t, "t", 4)
	topic, err := s1.broker.Topic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	// A group agent-2 does not coordinate. Slots may still move while the
	// agents settle, so a group is chosen for each request, and the
	// answer checked only if agent-2 was not its coordinator after it too.
	next := 0
	notAt2 := func() string {
		t.Helper()
		for range 64 {
			next++
			g := fmt.Sprintf("nc-%d", next)
			if s2.srv.notCoordinator(ctx, g) != 0 {
				return g
			}
		}
		t.Fatal("agent-2 coordinates 64 groups in a row")
		return ""
	}
	w := s2.grpDial(t)
	for v := int16(1); v <= 10; v++ {
		for attempt := 0; ; attempt++ {
			group := notAt2()
			resp := w.do(v, offsetFetchAt(v, group, "t", topic.ID)).(*kmsg.OffsetFetchResponse)
			if s2.srv.notCoordinator(ctx, group) == 0 && attempt < 5 {
				continue // the slot moved to agent-2 meanwhile
			}
			checkGroupError(t, v, resp, "t", kerr.NotCoordinator)
			break
		}
		checkGroupError(t, v, w.do(v, offsetFetchAt(v, "", "t", topic.ID)).(*kmsg.OffsetFetchResponse), "t", kerr.InvalidGroupID)
	}
}
