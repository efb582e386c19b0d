package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// OffsetDelete, key 47.
//
// Version 0 (KIP-496): delete a group's committed offsets of some
// partitions.
//
// A group neither the coordinator nor the metadata store knows is
// GROUP_ID_NOT_FOUND. While a consumer group has members, offsets of the
// topics they subscribe to (read from their consumer protocol metadata)
// are GROUP_SUBSCRIBED_TO_TOPIC, and a group of another protocol type is
// NON_EMPTY_GROUP. A partition that does not exist and has no offset is
// UNKNOWN_TOPIC_OR_PARTITION; offsets of deleted topics can still be
// deleted.

const offsetDeleteKey = 47

func init() { register(offsetDeleteKey, 0, 0, handleOffsetDelete) }

func handleOffsetDelete(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	s := c.s
	if !c.allowed(ctx, acl.OpDelete, acl.Group(req.Group)) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if code := s.notCoordinator(ctx, req.Group); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	stored, err := s.broker.GroupOffsets(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	d, live := s.groups.Describe(ctx, req.Group)
	if !live && len(stored) == 0 {
		groups, err := s.storedGroups(ctx)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		if !groups[req.Group] {
			resp.ErrorCode = kerr.GroupIDNotFound.Code
			return resp, nil
		}
	}
	// subscribed is nil when nothing is subscribed; all when the members'
	// subscriptions cannot be read.
	var subscribed map[string]bool
	all := false
	if live && len(d.Members) > 0 {
		if d.ProtocolType != group.ConsumerProtocolType {
			resp.ErrorCode = kerr.NonEmptyGroup.Code
			return resp, nil
		}
		var ok bool
		subscribed, ok = group.SubscribedTopics(d)
		all = !ok
	}
	has := make(map[string]map[int32]bool)
	for _, o := range stored {
		if has[o.Topic] == nil {
			has[o.Topic] = make(map[int32]bool)
		}
		has[o.Topic][o.Partition] = true
	}

	for _, rt := range req.Topics {
		t := kmsg.NewOffsetDeleteResponseTopic()
		t.Topic = rt.Topic
		// Asked once per topic: a refused topic is one denial, however
		// many of its partitions the request names.
		denied := !c.allowedTopic(ctx, acl.OpRead, rt.Topic)
		topic, terr := s.broker.Topic(ctx, rt.Topic)
		var del []int32
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetDeleteResponseTopicPartition()
			p.Partition = rp.Partition
			switch {
			case denied:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case all || subscribed[rt.Topic]:
				p.ErrorCode = kerr.GroupSubscribedToTopic.Code
			case has[rt.Topic][rp.Partition]:
				del = append(del, rp.Partition)
			case terr != nil:
				p.ErrorCode = errorCode(terr)
			case rp.Partition < 0 || rp.Partition >= topic.Partitions:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			t.Partitions = append(t.Partitions, p)
		}
		if len(del) > 0 {
			if err := s.broker.Store().DeleteGroupOffsets(ctx, req.Group, rt.Topic, del); err != nil {
				s.log.Warn("offset delete failed", "group", req.Group, "topic", rt.Topic, "err", err)
				for i := range t.Partitions {
					if t.Partitions[i].ErrorCode == 0 {
						t.Partitions[i].ErrorCode = errorCode(err)
					}
				}
			}
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}
