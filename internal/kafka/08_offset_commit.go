package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// OffsetCommit, key 8.
//
// Versions 2-10 (v0 and v1, which Kafka 4 dropped too, stored offsets in
// ZooKeeper or with a per-partition timestamp). v2-v4 RetentionTimeMillis
// is accepted and ignored: offsets are kept until the group or topic is
// deleted. v3 ThrottleMillis; v6 LeaderEpoch; v7 (KIP-345) InstanceID; v8
// flexible; v9 GROUP_ID_NOT_FOUND instead of ILLEGAL_GENERATION for a
// member commit to a group the coordinator does not run; v10 (KIP-848)
// topics by TopicID (UNKNOWN_TOPIC_ID when unknown).
//
// The coordinator (internal/group) decides whether the commit may write:
// a member's commit must carry its current member id and generation
// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID,
// REBALANCE_IN_PROGRESS while the assignment is pending); generation -1
// without a member id (admin tools, consumers that assign themselves) may
// commit while the group has no members. Accepted offsets of existing
// partitions are written to the metadata store in one transaction, which
// also checks that this agent still holds the group's coordinator slot at
// the lease epoch the group is held under: a coordinator that lost the
// slot (paused past its lease, cut off) gets NOT_COORDINATOR and writes
// nothing, whatever its memory says.

const offsetCommitKey = 8

func init() { register(offsetCommitKey, 2, 10, handleOffsetCommit) }

// maxOffsetMetadata is Kafka's offset.metadata.max.bytes.
const maxOffsetMetadata = 4096

func handleOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	s := c.s
	// Answer every partition asked about, in the request's order.
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetCommitResponseTopic()
		t.Topic, t.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetCommitResponseTopicPartition()
			p.Partition = rp.Partition
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	setAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
	}
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		setAll(kerr.GroupAuthorizationFailed.Code)
		return resp, nil
	}
	if req.Group == "" {
		setAll(kerr.InvalidGroupID.Code)
		return resp, nil
	}
	if code := s.notCoordinator(ctx, req.Group); code != 0 {
		setAll(code)
		return resp, nil
	}
	// An admin commit (generation -1, no member) is checked and written
	// under one hold of the group's lock, so no member joins in between;
	// a member's is checked first (its generation fences it).
	admin := req.Generation < 0 && req.MemberID == "" && deref(req.InstanceID) == ""
	var fence metadata.GroupFence
	if !admin {
		var err error
		fence, err = s.groups.ValidateCommit(ctx, req.Group, req.Generation, req.MemberID, deref(req.InstanceID))
		if errors.Is(err, kerr.GroupIDNotFound) && req.Version < 9 {
			err = kerr.IllegalGeneration
		}
		if err != nil {
			setAll(errorCode(err))
			return resp, nil
		}
	}

	var commits []broker.OffsetCommit
	for i, rt := range req.Topics {
		rtopic := &resp.Topics[i]
		topic, err := c.offsetTopic(ctx, acl.OpRead, req.Version >= 10, rt.Topic, rt.TopicID)
		for j, rp := range rt.Partitions {
			epoch := rp.LeaderEpoch
			if req.Version < 6 {
				epoch = -1
			}
			c, code := offsetCommitOf(topic, err, rp.Partition, rp.Metadata, rp.Offset, epoch)
			if rtopic.Partitions[j].ErrorCode = code; code == 0 {
				commits = append(commits, c)
			}
		}
	}
	if len(commits) == 0 {
		return resp, nil
	}
	var err error
	if admin {
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok {
			wctx, cancel = context.WithTimeout(ctx, broker.ForwardTimeout)
		}
		var werr error
		err = s.groups.CommitValidated(wctx, req.Group, req.Generation, "", "", func(f metadata.GroupFence) {
			werr = s.broker.CommitGroupOffsets(wctx, f, req.Group, commits)
		})
		cancel()
		if err != nil {
			// Refused: the partitions without an error of their own get it.
			setAll(errorCode(err))
			return resp, nil
		}
		err = werr
	} else {
		err = s.broker.CommitGroupOffsets(ctx, fence, req.Group, commits)
	}
	if err != nil {
		s.log.Warn("offset commit failed", "group", req.Group, "err", err)
		code := errorCode(err)
		if errors.Is(err, broker.ErrNotCoordinator) {
			code = kerr.NotCoordinator.Code
		}
		setAll(code)
	}
	return resp, nil
}

// offsetTopic resolves a topic named by name (v0-9) or by ID (v10+) on
// which the principal may perform op: kerr.TopicAuthorizationFailed
// otherwise (for a name, whether the topic exists or not).
func (c *conn) offsetTopic(ctx context.Context, op acl.Operation, byID bool, name string, id [16]byte) (metadata.Topic, error) {
	if !byID {
		if !c.allowedTopic(ctx, op, name) {
			return metadata.Topic{}, kerr.TopicAuthorizationFailed
		}
		return c.s.broker.Topic(ctx, name)
	}
	t, err := c.s.broker.CachedTopicByID(ctx, metadata.TopicID(id))
	if errors.Is(err, broker.ErrUnknownTopic) {
		return t, kerr.UnknownTopicID
	}
	if err == nil && !c.allowedTopic(ctx, op, t.Name) {
		return metadata.Topic{}, kerr.TopicAuthorizationFailed
	}
	return t, err
}

// offsetCommitOf is what OffsetCommit and TxnOffsetCommit check of one
// partition's offset before committing it: the commit and 0 when it may be
// committed, else the partition's error code. topicErr is the error of
// looking the topic up; leaderEpoch is -1 when the request version has none.
func offsetCommitOf(topic metadata.Topic, topicErr error, partition int32, meta *string, offset int64, leaderEpoch int32) (broker.OffsetCommit, int16) {
	switch {
	case topicErr != nil:
		return broker.OffsetCommit{}, errorCode(topicErr)
	case partition < 0 || partition >= topic.Partitions:
		return broker.OffsetCommit{}, kerr.UnknownTopicOrPartition.Code
	case meta != nil && len(*meta) > maxOffsetMetadata:
		return broker.OffsetCommit{}, kerr.OffsetMetadataTooLarge.Code
	case offset < 0:
		return broker.OffsetCommit{}, kerr.InvalidRequest.Code // the store keeps offsets ≥ 0
	}
	return broker.OffsetCommit{Topic: topic.Name, Partition: partition, Offset: offset, LeaderEpoch: leaderEpoch, Metadata: deref(meta)}, 0
}
