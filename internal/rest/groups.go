package rest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// The answers' types carry the original's camelCase names too (orig
// tags, aliases.go).

// groupOffsetJSON is one partition a group committed, with its lag. The
// high watermark and lag are 0 when the topic no longer exists.
type groupOffsetJSON struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition" orig:"partitionId"`
	CommittedOffset int64  `json:"committed_offset" orig:"committedOffset"`
	HighWatermark   int64  `json:"high_watermark" orig:"highWatermark"`
	Lag             int64  `json:"lag"`
}

// groupSummaryJSON is one group of GET /api/v1/consumer-groups. topics
// (by name) and partition_count are the original's (its ConsumerGroupInfo);
// state is Kafka's group state, as in GET .../{id}. No member count: the
// original's list had none, and our members is a list.
type groupSummaryJSON struct {
	GroupID        string            `json:"group_id" orig:"groupId"`
	TotalLag       int64             `json:"total_lag" orig:"totalLag"`
	Topics         []string          `json:"topics"`
	PartitionCount int               `json:"partition_count" orig:"partitionCount"`
	State          string            `json:"state"`
	Partitions     []groupOffsetJSON `json:"partitions"`
}

// groupDeletedJSON answers DELETE /api/v1/consumer-groups/{id}, as the
// original did.
type groupDeletedJSON struct {
	Success           bool   `json:"success"`
	GroupID           string `json:"group_id" orig:"groupId"`
	PartitionsDeleted int    `json:"partitions_deleted" orig:"partitionsDeleted"`
}

// memberJSON is one member of a group (filled by the Kafka group
// coordinator once it exists).
type memberJSON struct {
	MemberID   string             `json:"member_id" orig:"memberId"`
	InstanceID string             `json:"instance_id,omitempty" orig:"instanceId"`
	ClientID   string             `json:"client_id" orig:"clientId"`
	Host       string             `json:"host"`
	Assignment map[string][]int32 `json:"assignment"`
}

// groupJSON is GET /api/v1/consumer-groups/{id}. state is Kafka's group
// state; "Empty" while no member is connected.
type groupJSON struct {
	GroupID    string            `json:"group_id" orig:"groupId"`
	State      string            `json:"state"`
	Protocol   string            `json:"protocol,omitempty"`
	Generation int32             `json:"generation,omitempty"`
	Members    []memberJSON      `json:"members"`
	Offsets    []groupOffsetJSON `json:"offsets"`
	TotalLag   int64             `json:"total_lag" orig:"totalLag"`
}

// committedJSON is one entry of GET /api/v1/consumer-groups/{id}/offsets.
type committedJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition" orig:"partitionId"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata"`
}

func (v groupOffsetJSON) MarshalJSON() ([]byte, error)  { return marshalWithOriginal(v) }
func (v groupSummaryJSON) MarshalJSON() ([]byte, error) { return marshalWithOriginal(v) }
func (v memberJSON) MarshalJSON() ([]byte, error)       { return marshalWithOriginal(v) }
func (v groupJSON) MarshalJSON() ([]byte, error)        { return marshalWithOriginal(v) }
func (v committedJSON) MarshalJSON() ([]byte, error)    { return marshalWithOriginal(v) }
func (v groupDeletedJSON) MarshalJSON() ([]byte, error) { return marshalWithOriginal(v) }

func toGroupOffsets(gl broker.GroupLag) []groupOffsetJSON {
	out := make([]groupOffsetJSON, 0, len(gl.Partitions))
	for _, p := range gl.Partitions {
		out = append(out, groupOffsetJSON{Topic: p.Topic, Partition: p.Partition,
			CommittedOffset: p.Committed, HighWatermark: p.HighWatermark, Lag: p.Lag})
	}
	return out
}

// topicsOf is the topics a group committed offsets in, in order.
func topicsOf(gl broker.GroupLag) []string {
	out := []string{}
	for _, p := range gl.Partitions {
		if !slices.Contains(out, p.Topic) {
			out = append(out, p.Topic)
		}
	}
	return out
}

func (s *server) toGroupJSON(ctx context.Context, gl broker.GroupLag) groupJSON {
	gl = s.describable(ctx, gl)
	g := groupJSON{GroupID: gl.Group, State: "Empty", Members: []memberJSON{},
		Offsets: toGroupOffsets(gl), TotalLag: gl.TotalLag}
	if m, ok := s.liveGroup(ctx, gl.Group); ok {
		g.State, g.Protocol, g.Generation = m.State, m.Protocol, m.Generation
		for _, mem := range m.Members {
			g.Members = append(g.Members, memberJSON{MemberID: mem.MemberID, InstanceID: mem.InstanceID,
				ClientID: mem.ClientID, Host: mem.ClientHost, Assignment: s.describableAssignment(ctx, mem.Assignment)})
		}
	}
	return g
}

// liveGroup returns the coordinator's view of a group, if one runs it.
func (s *server) liveGroup(ctx context.Context, group string) (broker.GroupMembership, bool) {
	if s.members == nil {
		return broker.GroupMembership{}, false
	}
	return s.members.GroupMembers(ctx, group)
}

// groupErr names the group in a 404.
func groupErr(group string, err error) error {
	if errors.Is(err, broker.ErrUnknownGroup) {
		return notFound("consumer group %q does not exist", group)
	}
	return err
}

func (s *server) listGroups(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r); err != nil { // a login; the list is filtered
		return err
	}
	groups, err := s.b.ListGroups(r.Context())
	if err != nil {
		return err
	}
	// Kafka's ListGroups: every group with DESCRIBE on the cluster, else
	// those the caller may DESCRIBE.
	if !s.acl.May(r.Context(), acl.OpDescribe, acl.Cluster()) {
		ids := make([]string, len(groups))
		for i, g := range groups {
			ids[i] = g.Group
		}
		visible := make(map[string]bool, len(ids))
		for _, id := range s.acl.Allowed(r.Context(), acl.OpDescribe, acl.ResourceGroup, ids) {
			visible[id] = true
		}
		groups = slices.DeleteFunc(groups, func(g broker.GroupLag) bool { return !visible[g.Group] })
	}
	for i := range groups {
		groups[i] = s.describable(r.Context(), groups[i])
	}
	out := make([]groupSummaryJSON, len(groups))
	// Each group's state comes from its coordinator, maybe another agent:
	// asked listStateParallel at a time, all within listStateTimeout (a
	// state not known by then is reported Empty, as for a group with no
	// live coordinator).
	ctx, cancel := context.WithTimeout(r.Context(), listStateTimeout)
	defer cancel()
	var eg errgroup.Group
	eg.SetLimit(listStateParallel)
	for i, g := range groups {
		out[i] = groupSummaryJSON{GroupID: g.Group, TotalLag: g.TotalLag, Topics: topicsOf(g),
			PartitionCount: len(g.Partitions), State: "Empty", Partitions: toGroupOffsets(g)}
		eg.Go(func() error {
			if m, ok := s.liveGroup(ctx, g.Group); ok {
				out[i].State = m.State
			}
			return nil
		})
	}
	_ = eg.Wait() // the lookups return no error
	writeJSON(w, http.StatusOK, out)
	return nil
}

// The group list's state lookups: at most listStateParallel at once, all
// within listStateTimeout.
const (
	listStateParallel = 8
	listStateTimeout  = 5 * time.Second
)

// createGroup answers 201 with the new, empty group.
func (s *server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		GroupID     *string `json:"group_id"`
		OrigGroupID *string `json:"groupId"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	id, err := either(req.GroupID, "group_id", req.OrigGroupID, "groupId")
	if err != nil {
		return err
	}
	if id == nil {
		return badRequest("group_id is required")
	}
	if err := s.authorize(r, authz.Need(acl.OpRead, acl.Group(*id))); err != nil {
		return err
	}
	err = s.b.CreateGroup(r.Context(), *id)
	if errors.Is(err, broker.ErrGroupExists) {
		return &apiError{status: http.StatusConflict, code: codeConflict, msg: sprintf("consumer group %q already exists", *id)}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/consumer-groups/"+url.PathEscape(*id))
	writeJSON(w, http.StatusCreated, s.toGroupJSON(r.Context(), broker.GroupLag{Group: *id}))
	return nil
}

func (s *server) getGroup(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Group(r.PathValue("id")))); err != nil {
		return err
	}
	gl, err := s.describeGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.toGroupJSON(r.Context(), gl))
	return nil
}

// deleteGroup answers 200 with the number of partitions the group had
// committed offsets for, as the original did.
func (s *server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.authorize(r, authz.Need(acl.OpDelete, acl.Group(id))); err != nil {
		return err
	}
	if m, ok := s.liveGroup(r.Context(), id); ok && len(m.Members) > 0 {
		return &apiError{status: http.StatusConflict, code: codeConflict,
			msg: sprintf("consumer group %q has %d active members; stop them before deleting it", id, len(m.Members))}
	}
	gl, err := s.b.DescribeGroupLag(r.Context(), id)
	if err != nil {
		return groupErr(id, err)
	}
	if err := s.b.DeleteGroup(r.Context(), id); err != nil {
		return groupErr(id, err)
	}
	writeJSON(w, http.StatusOK, groupDeletedJSON{Success: true, GroupID: id, PartitionsDeleted: len(gl.Partitions)})
	return nil
}

func (s *server) groupOffsets(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Group(id))); err != nil {
		return err
	}
	gl, err := s.b.DescribeGroupLag(r.Context(), id)
	if err != nil {
		return groupErr(id, err)
	}
	gl = s.describable(r.Context(), gl)
	out := make([]committedJSON, 0, len(gl.Partitions))
	for _, p := range gl.Partitions {
		out = append(out, committedJSON{Topic: p.Topic, Partition: p.Partition, Offset: p.Committed, Metadata: p.Metadata})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// commitRequest is POST /api/v1/consumer-groups/commit. Committing for a
// group that does not exist creates it, as Kafka does. groupId is the
// original's spelling.
type commitRequest struct {
	GroupID     *string `json:"group_id"`
	OrigGroupID *string `json:"groupId"`
	Topic       *string `json:"topic"`
	Partition   *int32  `json:"partition"`
	Offset      *int64  `json:"offset"`
	Metadata    string  `json:"metadata"`
}

func (s *server) commitOffset(w http.ResponseWriter, r *http.Request) error {
	var req commitRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	var err error
	if req.GroupID, err = either(req.GroupID, "group_id", req.OrigGroupID, "groupId"); err != nil {
		return err
	}
	switch {
	case req.GroupID == nil:
		return badRequest("group_id is required")
	case req.Topic == nil || *req.Topic == "":
		return badRequest("topic is required")
	case req.Partition == nil:
		return badRequest("partition is required")
	case req.Offset == nil:
		return badRequest("offset is required")
	case *req.Partition < 0:
		return badRequest("partition %d is negative", *req.Partition)
	case *req.Offset < 0:
		return badRequest("offset %d is negative", *req.Offset)
	}
	if err := s.authorize(r, authz.Need(acl.OpRead, acl.Group(*req.GroupID)), authz.Need(acl.OpRead, acl.Topic(*req.Topic))); err != nil {
		return err
	}
	err = s.b.CommitOffsets(r.Context(), *req.GroupID, []broker.OffsetCommit{{
		Topic: *req.Topic, Partition: *req.Partition, Offset: *req.Offset, LeaderEpoch: -1, Metadata: req.Metadata,
	}})
	if errors.Is(err, broker.ErrUnknownTopic) {
		return notFound("topic %q does not exist", *req.Topic)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}
