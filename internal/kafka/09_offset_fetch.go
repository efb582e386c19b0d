package kafka

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// OffsetFetch, key 9.
//
// Versions 1-10 (v0 read offsets from ZooKeeper; Kafka 4 dropped it). v1
// has no group-level error: a group's error (not authorized to DESCRIBE
// it, not its coordinator, an invalid ID, a failed read) is every asked
// partition's ErrorCode, as in Kafka. v2 a null topic list means every
// committed offset of the group, and a top-level ErrorCode (and no topics
// with it); v3 ThrottleMillis; v5 LeaderEpoch; v6 flexible; v7
// RequireStable (KIP-447): a partition with transactional offsets not yet
// committed or aborted (TxnOffsetCommit of an open transaction) is
// UNSTABLE_OFFSET_COMMIT with offset -1, which consumers retry, so a
// read_committed consumer starting after a transactional producer never
// begins at an offset that transaction is about to replace; v8 (KIP-709) a batch of groups; v9 MemberID and
// MemberEpoch of KIP-848 consumers, ignored for classic groups as Kafka
// does; v10 (KIP-848) topics by TopicID.
//
// Offsets come from the metadata store, never from coordinator memory, so
// they survive restarts. A partition without a committed offset is -1
// with no error, as in Kafka.

const offsetFetchKey = 9

func init() { register(offsetFetchKey, 1, 10, handleOffsetFetch) }

func handleOffsetFetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, c.fetchOffsets(ctx, req.Version, req.RequireStable, rg))
		}
		return resp, nil
	}
	// One group before v8: ask in the batched shape, answer in the old.
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil {
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
		for _, t := range req.Topics {
			gt := kmsg.NewOffsetFetchRequestGroupTopic()
			gt.Topic, gt.Partitions = t.Topic, t.Partitions
			rg.Topics = append(rg.Topics, gt)
		}
	}
	g := c.fetchOffsets(ctx, req.Version, req.RequireStable, rg)
	resp.ErrorCode = g.ErrorCode
	if req.Version < 2 && g.ErrorCode != 0 {
		// v0-v1 have no group-level ErrorCode: as Kafka does
		// (OffsetFetchRequest.getErrorResponse), every partition asked
		// for carries the group's error (GROUP_AUTHORIZATION_FAILED,
		// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ...) with offset
		// -1 and empty metadata, which clients read as the group's
		// error. Without this the answer would be no offsets and no
		// error.
		for _, reqT := range req.Topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = reqT.Topic
			for _, part := range reqT.Partitions {
				p := kmsg.NewOffsetFetchResponseTopicPartition()
				p.Partition, p.Offset, p.Metadata, p.ErrorCode = part, -1, kmsg.StringPtr(""), g.ErrorCode
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
	for _, gt := range g.Topics {
		t := kmsg.NewOffsetFetchResponseTopic()
		t.Topic = gt.Topic
		for _, gp := range gt.Partitions {
			p := kmsg.NewOffsetFetchResponseTopicPartition()
			p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata, gp.ErrorCode
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// fetchOffsets answers one group of an OffsetFetch: DESCRIBE on the group
// is needed (else GROUP_AUTHORIZATION_FAILED), and DESCRIBE on each topic:
// the topics asked for that the principal may not DESCRIBE are
// TOPIC_AUTHORIZATION_FAILED, and those it may not are left out of an
// answer for all topics, as in Kafka.
func (c *conn) fetchOffsets(ctx context.Context, version int16, requireStable bool, rg kmsg.OffsetFetchRequestGroup) kmsg.OffsetFetchResponseGroup {
	s := c.s
	out := kmsg.NewOffsetFetchResponseGroup()
	out.Group = rg.Group
	byID := version >= 10
	if !c.allowed(ctx, acl.OpDescribe, acl.Group(rg.Group)) {
		out.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return out
	}
	if rg.Group == "" {
		out.ErrorCode = kerr.InvalidGroupID.Code
		return out
	}
	if code := s.notCoordinator(ctx, rg.Group); code != 0 {
		out.ErrorCode = code
		return out
	}
	type tp struct {
		topic     string
		partition int32
	}
	// Pending transactional offsets are read BEFORE the committed ones: a
	// transaction's decision moves its pending offsets into the committed
	// ones in one metadata transaction, so a partition read as stable here
	// (no pending offset) has, in the committed read that follows, an
	// offset at least as new as any decided before the pending read. In
	// the other order a decision landing between the reads would answer
	// the old offset as stable.
	unstable := make(map[tp]bool)
	if requireStable && version >= 7 {
		pending, err := s.broker.PendingTxnOffsets(ctx, rg.Group)
		if err != nil {
			s.log.Warn("offset fetch failed", "group", rg.Group, "err", err)
			out.ErrorCode = errorCode(err)
			return out
		}
		for _, o := range pending {
			unstable[tp{o.Topic, o.Partition}] = true
		}
	}
	stored, err := s.broker.GroupOffsets(ctx, rg.Group)
	if err != nil {
		s.log.Warn("offset fetch failed", "group", rg.Group, "err", err)
		out.ErrorCode = errorCode(err)
		return out
	}
	committed := make(map[tp]metadata.GroupOffset, len(stored))
	for _, o := range stored {
		committed[tp{o.Topic, o.Partition}] = o
	}
	partition := func(topic string, p int32) kmsg.OffsetFetchResponseGroupTopicPartition {
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition, rp.Offset = p, -1
		rp.Metadata = kmsg.StringPtr("")
		if unstable[tp{topic, p}] {
			rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			return rp
		}
		if o, ok := committed[tp{topic, p}]; ok {
			rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Offset, o.LeaderEpoch, kmsg.StringPtr(o.Metadata)
		}
		return rp
	}

	if rg.Topics == nil { // every committed offset
		byTopic := make(map[string][]int32)
		var names []string
		for _, o := range stored {
			if _, ok := byTopic[o.Topic]; !ok {
				names = append(names, o.Topic)
			}
			byTopic[o.Topic] = append(byTopic[o.Topic], o.Partition)
		}
		sort.Strings(names)
		for _, name := range names {
			if !c.permits(ctx, acl.OpDescribe, acl.Topic(name)) {
				continue // left out, not refused
			}
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = name
			if byID {
				t, err := s.broker.Topic(ctx, name)
				if err != nil {
					continue // deleted: it has no ID to name it by
				}
				rt.TopicID = t.ID
			}
			for _, p := range byTopic[name] {
				rt.Partitions = append(rt.Partitions, partition(name, p))
			}
			out.Topics = append(out.Topics, rt)
		}
		return out
	}
	for _, reqT := range rg.Topics {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic, rt.TopicID = reqT.Topic, reqT.TopicID
		name, code := reqT.Topic, int16(0)
		if byID {
			t, err := c.offsetTopic(ctx, acl.OpDescribe, true, "", reqT.TopicID)
			name, code = t.Name, errorCode(err)
		} else if !c.allowedTopic(ctx, acl.OpDescribe, name) {
			code = kerr.TopicAuthorizationFailed.Code
		}
		for _, p := range reqT.Partitions {
			rp := partition(name, p)
			if code != 0 {
				rp.ErrorCode = code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out.Topics = append(out.Topics, rt)
	}
	return out
}
