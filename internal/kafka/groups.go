package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/group"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Shared by the group coordinator's API files (08-16, 42, 47). The
// coordinator itself is internal/group; offsets live in the metadata store
// and are reached through the broker.

// GroupMembers reports the live membership of consumer groups, for front
// ends that show members (REST).
func (s *Server) GroupMembers() broker.GroupMembers { return groupMembers{s} }

// groupMembers answers from this agent's coordinator for the groups whose
// slot it holds, and asks the coordinating agent over Kafka
// (DescribeGroups) for the others, so a REST client behind a load
// balancer sees a group's members whichever agent it reaches.
type groupMembers struct{ s *Server }

func (g groupMembers) GroupMembers(ctx context.Context, id string) (broker.GroupMembership, bool) {
	s := g.s
	b, self, ok := s.groupCoordinator(ctx, id)
	switch {
	case self:
		return s.groups.GroupMembers(ctx, id)
	case !ok:
		return broker.GroupMembership{}, false
	}
	cl, err := s.broker.KafkaClient(net.JoinHostPort(b.host, strconv.Itoa(int(b.port))))
	if err != nil {
		return broker.GroupMembership{}, false
	}
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{id}
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		s.log.Debug("describe group at its coordinator", "group", id, "err", err)
		return broker.GroupMembership{}, false
	}
	resp := kresp.(*kmsg.DescribeGroupsResponse)
	if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 || resp.Groups[0].State == "Dead" {
		return broker.GroupMembership{}, false
	}
	d := resp.Groups[0]
	out := broker.GroupMembership{State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol,
		Members: make([]broker.GroupMember, 0, len(d.Members))}
	for _, m := range d.Members {
		bm := broker.GroupMember{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if m.InstanceID != nil {
			bm.InstanceID = *m.InstanceID
		}
		if d.ProtocolType == group.ConsumerProtocolType {
			bm.Assignment = group.DecodeAssignment(m.MemberAssignment)
		}
		out.Members = append(out.Members, bm)
	}
	return out, true
}

var _ broker.GroupOffsetAdmin = groupMembers{}

// AdminCommitOffsets implements broker.GroupOffsetAdmin for front ends
// that reset a group's offsets (REST): the commit is the one an admin
// tool's OffsetCommit makes (generation -1, no member id), validated by
// the group's coordinator here when this agent coordinates the group (the
// check that the group has no members and the write under one hold of
// the group's lock), else sent as that OffsetCommit to the agent that
// does. Bounded by broker.ForwardTimeout when ctx has no deadline; an
// unreachable coordinator is broker.ErrNotCoordinator (retry).
func (g groupMembers) AdminCommitOffsets(ctx context.Context, id string, commits []broker.OffsetCommit) error {
	s := g.s
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, broker.ForwardTimeout)
		defer cancel()
	}
	b, self, ok := s.groupCoordinator(ctx, id)
	switch {
	case !ok:
		return fmt.Errorf("group %s: no agent coordinates it now: %w", id, broker.ErrNotCoordinator)
	case self:
		var werr error
		err := s.groups.CommitValidated(ctx, id, -1, "", "", func(fence metadata.GroupFence) {
			werr = s.broker.CommitGroupOffsets(ctx, fence, id, commits)
		})
		if err != nil {
			return adminCommitErr(id, err)
		}
		return werr
	}
	// The topics' IDs (OffsetCommit v10 names topics by ID), before
	// reaching out.
	ids := make(map[string][16]byte)
	for _, c := range commits {
		if _, seen := ids[c.Topic]; !seen {
			topic, err := s.broker.Topic(ctx, c.Topic)
			if err != nil {
				return err
			}
			ids[c.Topic] = [16]byte(topic.ID)
		}
	}
	cl, err := s.broker.KafkaClient(net.JoinHostPort(b.host, strconv.Itoa(int(b.port))))
	if err != nil {
		return fmt.Errorf("group %s: reach its coordinator: %w: %w", id, broker.ErrNotCoordinator, err)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = id, -1
	at := make(map[string]int) // topic -> index in req.Topics
	for _, c := range commits {
		i, seen := at[c.Topic]
		if !seen {
			i = len(req.Topics)
			at[c.Topic] = i
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic, t.TopicID = c.Topic, ids[c.Topic]
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset, p.LeaderEpoch = c.Partition, c.Offset, c.LeaderEpoch
		if c.Metadata != "" {
			p.Metadata = &c.Metadata
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return fmt.Errorf("group %s: commit at its coordinator: %w: %w", id, broker.ErrNotCoordinator, err)
	}
	for _, t := range kresp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return adminCommitErr(id, err)
			}
		}
	}
	return nil
}

// adminCommitErr maps the Kafka error refusing an admin commit to the
// broker's.
func adminCommitErr(id string, err error) error {
	switch {
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.RebalanceInProgress):
		return fmt.Errorf("group %s: %w", id, broker.ErrGroupNotEmpty)
	case errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable):
		return fmt.Errorf("group %s: %w: %w", id, broker.ErrNotCoordinator, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("group %s: %w: %w", id, broker.ErrUnknownPartition, err)
	case errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("group %s: %w: %w", id, broker.ErrUnknownTopic, err)
	}
	return fmt.Errorf("group %s: commit offsets: %w", id, err)
}

// allGroupOps is the authorized operations bitfield (KIP-430) of a group
// with no authorizer: everything a group supports.
const allGroupOps = 1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDescribe | 1<<kmsg.ACLOperationDelete

// clientIDKey carries the request header's client ID in a handler's ctx.
// Handlers must not read conn.clientID: the read loop writes it for the
// next request while handlers run.
type clientIDKey struct{}

// requestClientID is the client ID of the request being handled, "" when
// the connection does not provide it.
func requestClientID(ctx context.Context) string {
	id, _ := ctx.Value(clientIDKey{}).(string)
	return id
}

// clientHost is the client's address as Kafka reports it in
// DescribeGroups ("/" and the IP).
func clientHost(c *conn) string {
	addr := c.nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return "/" + addr
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// storedGroups is the set of groups the metadata store knows (registered
// or with committed offsets).
func (s *Server) storedGroups(ctx context.Context) (map[string]bool, error) {
	names, err := s.broker.Store().ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}
