package group

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// ConsumerProtocolType is the protocol type of Kafka consumers, whose
// member metadata and assignments follow Kafka's consumer protocol.
const ConsumerProtocolType = "consumer"

// SubscribedTopics returns the topics the members of a consumer group
// subscribe to, read from their metadata for the group's protocol (every
// protocol they offered, before the first generation). ok is false when
// some metadata cannot be read: callers must then assume every topic is
// subscribed.
func SubscribedTopics(d Description) (topics map[string]bool, ok bool) {
	topics = make(map[string]bool)
	for _, m := range d.Members {
		var metas [][]byte
		if d.Protocol != "" && m.Metadata != nil {
			metas = append(metas, m.Metadata)
		} else {
			for _, p := range m.Protocols {
				metas = append(metas, p.Metadata)
			}
		}
		for _, b := range metas {
			var meta kmsg.ConsumerMemberMetadata
			if err := meta.ReadFrom(b); err != nil {
				return nil, false
			}
			for _, t := range meta.Topics {
				topics[t] = true
			}
		}
	}
	return topics, true
}

// DecodeAssignment reads a consumer protocol assignment (partitions by
// topic, sorted); nil if it cannot.
func DecodeAssignment(b []byte) map[string][]int32 {
	if b == nil {
		return nil
	}
	out := make(map[string][]int32)
	if len(b) == 0 {
		return out // the leader assigned nothing to this member
	}
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(b); err != nil {
		return nil
	}
	for _, t := range a.Topics {
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		out[t.Topic] = append(out[t.Topic], ps...)
	}
	return out
}

// GroupMembers returns the live membership of a group this coordinator
// runs, for front ends that show it without speaking Kafka.
func (c *Coordinator) GroupMembers(ctx context.Context, groupID string) (broker.GroupMembership, bool) {
	d, ok := c.Describe(ctx, groupID)
	if !ok {
		return broker.GroupMembership{}, false
	}
	out := broker.GroupMembership{
		State: d.State.String(), ProtocolType: d.ProtocolType, Protocol: d.Protocol,
		Generation: d.Generation, Leader: d.Leader, Members: make([]broker.GroupMember, 0, len(d.Members)),
	}
	for _, m := range d.Members {
		bm := broker.GroupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if d.ProtocolType == ConsumerProtocolType {
			bm.Assignment = DecodeAssignment(m.Assignment)
		}
		out.Members = append(out.Members, bm)
	}
	return out, true
}
