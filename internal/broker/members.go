package broker

import (
	"context"
	"errors"
)

// GroupMembership is a consumer group's live membership. It lives in the
// memory of the group coordinator (internal/group), not in the metadata
// store, so the broker API only names the shape; front ends that show
// members (REST) take a GroupMembers from whoever runs the coordinator.
type GroupMembership struct {
	// State is Kafka's group state: Empty, PreparingRebalance,
	// CompletingRebalance, Stable or Dead.
	State        string
	ProtocolType string // "consumer" for Kafka consumers
	Protocol     string // the assignor of the current generation, e.g. "range"
	Generation   int32
	Leader       string // member id of the leader
	Members      []GroupMember
}

// GroupMember is one member of a group.
type GroupMember struct {
	MemberID   string
	InstanceID string // group.instance.id of a static member
	ClientID   string
	ClientHost string
	// Assignment is the member's partitions by topic, decoded for the
	// "consumer" protocol type; nil for other types and before the
	// leader's assignment.
	Assignment map[string][]int32
}

// GroupMembers reports live group membership, asking the agent that
// coordinates the group. ok is false when no coordinator runs the group
// (it may still exist with committed offsets only: state Empty, no
// members) or the coordinator cannot be reached.
type GroupMembers interface {
	GroupMembers(ctx context.Context, group string) (m GroupMembership, ok bool)
}

// ErrGroupNotEmpty means an offset commit made from outside the group
// (an admin tool's, generation -1 and no member id) was refused because
// the group has live members: Kafka's UNKNOWN_MEMBER_ID to such a commit.
var ErrGroupNotEmpty = errors.New("consumer group has live members")

// GroupOffsetAdmin commits a group's offsets as an admin tool's Kafka
// OffsetCommit does (generation -1, no member id): at the agent that
// coordinates the group, under its coordinator slot's fence, and only
// while the group has no members (ErrGroupNotEmpty otherwise), so the
// write cannot race a consumer's own commits. ErrNotCoordinator when no
// agent coordinates the group now (retry).
type GroupOffsetAdmin interface {
	AdminCommitOffsets(ctx context.Context, group string, commits []OffsetCommit) error
}
