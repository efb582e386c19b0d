package rest

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// The original's consumer-group endpoints beyond ours: a group's lag by
// topic, and moving its committed offsets (reset to earliest, latest, a
// given offset or a time; seek is reset to a time). Offsets are moved as
// Kafka's kafka-consumer-groups --reset-offsets moves them: with the
// OffsetCommit an admin tool sends (broker.GroupOffsetAdmin), which the
// group's coordinator refuses while the group has members.

// codeGroupNotEmpty is the error of a reset or seek while the group has
// live members.
const codeGroupNotEmpty = "group_not_empty"

// topicLagJSON is one topic of GET /api/v1/consumer-groups/{id}/lag.
type topicLagJSON struct {
	Topic      string            `json:"topic"`
	TotalLag   int64             `json:"total_lag" orig:"totalLag"`
	Partitions []groupOffsetJSON `json:"partitions"`
}

// lagJSON is GET /api/v1/consumer-groups/{id}/lag: the group's lag,
// over the partitions it committed offsets for. topics is the original's:
// the topics' names; topic_lags is the lag by topic.
type lagJSON struct {
	GroupID        string         `json:"group_id" orig:"groupId"`
	TotalLag       int64          `json:"total_lag" orig:"totalLag"`
	PartitionCount int            `json:"partition_count" orig:"partitionCount"`
	Topics         []string       `json:"topics"`
	TopicLags      []topicLagJSON `json:"topic_lags" orig:"topicLags"`
}

// movedJSON is one partition whose committed offset a reset or seek
// moved. old_offset is -1 when the group had committed none; oldOffset,
// the original's (unsigned there), is 0 then. timestamp_found (reset by
// time and seek) is the timestamp of the record at the new offset, -1 when
// no record is that recent.
type movedJSON struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition" orig:"partitionId"`
	OldOffset      int64  `json:"old_offset"`
	OrigOldOffset  int64  `json:"oldOffset"`
	NewOffset      int64  `json:"new_offset" orig:"newOffset"`
	TimestampFound *int64 `json:"timestamp_found,omitempty" orig:"timestampFound"`
}

// resetJSON answers POST .../reset and .../seek: ours (group_id,
// partitions) and the original's (success, partitionsReset for a reset or
// partitionsUpdated for a seek, details), each partition in both lists.
type resetJSON struct {
	Success           bool        `json:"success"`
	GroupID           string      `json:"group_id" orig:"groupId"`
	PartitionsReset   *int        `json:"partitions_reset,omitempty" orig:"partitionsReset"`
	PartitionsUpdated *int        `json:"partitions_updated,omitempty" orig:"partitionsUpdated"`
	Partitions        []movedJSON `json:"partitions"`
	Details           []movedJSON `json:"details"`
}

func (v topicLagJSON) MarshalJSON() ([]byte, error) { return marshalWithOriginal(v) }
func (v lagJSON) MarshalJSON() ([]byte, error)      { return marshalWithOriginal(v) }
func (v movedJSON) MarshalJSON() ([]byte, error)    { return marshalWithOriginal(v) }
func (v resetJSON) MarshalJSON() ([]byte, error)    { return marshalWithOriginal(v) }

// describeGroup is a group's committed offsets and lag; a group with live
// members but no offsets yet has none. 404 for a group nobody knows.
func (s *server) describeGroup(ctx context.Context, id string) (broker.GroupLag, error) {
	gl, err := s.b.DescribeGroupLag(ctx, id)
	if errors.Is(err, broker.ErrUnknownGroup) {
		if _, ok := s.liveGroup(ctx, id); ok {
			return broker.GroupLag{Group: id}, nil
		}
	}
	if err != nil {
		return broker.GroupLag{}, groupErr(id, err)
	}
	return gl, nil
}

func (s *server) groupLag(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Group(r.PathValue("id")))); err != nil {
		return err
	}
	gl, err := s.describeGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gl = s.describable(r.Context(), gl)
	out := lagJSON{GroupID: gl.Group, TotalLag: gl.TotalLag, PartitionCount: len(gl.Partitions),
		Topics: topicsOf(gl), TopicLags: []topicLagJSON{}}
	for _, name := range out.Topics {
		t := topicLagJSON{Topic: name}
		for _, o := range toGroupOffsets(gl) {
			if o.Topic == name {
				t.TotalLag += o.Lag
				t.Partitions = append(t.Partitions, o)
			}
		}
		out.TopicLags = append(out.TopicLags, t)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Reset strategies.
const (
	resetEarliest  = "earliest"
	resetLatest    = "latest"
	resetSpecific  = "specific"
	resetTimestamp = "timestamp"
)

// resetRequest is POST /api/v1/consumer-groups/{id}/reset (and, with
// strategy timestamp, .../seek). No topic: every topic the group has
// committed offsets for; no partition: every partition of the topic.
type resetRequest struct {
	Strategy  *string `json:"strategy"`
	Topic     *string `json:"topic"`
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
	Timestamp *int64  `json:"timestamp"`
}

func (s *server) resetGroup(w http.ResponseWriter, r *http.Request) error {
	var req resetRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Strategy == nil {
		return badRequest("strategy is required: earliest, latest, specific or timestamp")
	}
	strategy := strings.ToLower(*req.Strategy)
	switch strategy {
	case resetEarliest, resetLatest, resetSpecific, resetTimestamp:
	default:
		return badRequest("strategy %q is not one of earliest, latest, specific, timestamp", *req.Strategy)
	}
	switch {
	case strategy == resetSpecific && req.Offset == nil:
		return badRequest("offset is required with strategy specific")
	case strategy != resetSpecific && req.Offset != nil:
		return badRequest("offset is only for strategy specific")
	case strategy == resetTimestamp && req.Timestamp == nil:
		return badRequest("timestamp (ms since the epoch) is required with strategy timestamp")
	case strategy != resetTimestamp && req.Timestamp != nil:
		return badRequest("timestamp is only for strategy timestamp")
	}
	return s.moveOffsets(w, r, strategy, false, req)
}

func (s *server) seekGroup(w http.ResponseWriter, r *http.Request) error {
	var req resetRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Strategy != nil || req.Offset != nil:
		return badRequest("seek takes topic, partition and timestamp; use reset for a strategy or an offset")
	case req.Topic == nil:
		return badRequest("topic is required")
	case req.Timestamp == nil:
		return badRequest("timestamp (ms since the epoch) is required")
	}
	return s.moveOffsets(w, r, resetTimestamp, true, req)
}

// moveOffsets commits the offsets strategy picks for the partitions req
// names, and answers each partition's old and new offset.
func (s *server) moveOffsets(w http.ResponseWriter, r *http.Request, strategy string, seek bool, req resetRequest) error {
	ctx, id := r.Context(), r.PathValue("id")
	switch {
	case req.Topic != nil && *req.Topic == "":
		return badRequest("topic is empty")
	case req.Partition != nil && req.Topic == nil:
		return badRequest("partition needs a topic")
	case req.Partition != nil && *req.Partition < 0:
		return badRequest("partition %d is negative", *req.Partition)
	case req.Offset != nil && *req.Offset < 0:
		return badRequest("offset %d is negative", *req.Offset)
	case req.Timestamp != nil && *req.Timestamp < 0:
		return badRequest("timestamp %d is negative; give ms since the epoch", *req.Timestamp)
	}
	// Kafka's OffsetCommit: READ on the group, and on each topic moved
	// (the named one before anything is looked up).
	need := []authz.Perm{authz.Need(acl.OpRead, acl.Group(id))}
	if req.Topic != nil {
		need = append(need, authz.Need(acl.OpRead, acl.Topic(*req.Topic)))
	}
	if err := s.authorize(r, need...); err != nil {
		return err
	}
	gl, err := s.b.DescribeGroupLag(ctx, id)
	switch {
	case errors.Is(err, broker.ErrUnknownGroup) && req.Topic != nil:
		// Never committed: the named topic's partitions have no old
		// offsets, and the commit creates the group, as Kafka's does.
		gl, err = broker.GroupLag{Group: id}, nil
	case err != nil:
		gl, err = s.describeGroup(ctx, id) // live members without offsets yet, else 404
	}
	if err != nil {
		return err
	}
	if m, ok := s.liveGroup(ctx, id); ok && len(m.Members) > 0 {
		return groupNotEmpty(id, len(m.Members))
	}

	type tp struct {
		topic     string
		partition int32
	}
	old := make(map[tp]int64, len(gl.Partitions))
	for _, p := range gl.Partitions {
		old[tp{p.Topic, p.Partition}] = p.Committed
	}
	var targets []tp
	switch {
	case req.Topic == nil:
		need = need[:0]
		for _, t := range topicsOf(gl) {
			// The caller named no topic: a refusal must not name one
			// it may not see.
			need = append(need, authz.NeedUnnamed(acl.OpRead, acl.Topic(t)))
		}
		if err := s.authorize(r, need...); err != nil {
			return err
		}
		for _, p := range gl.Partitions {
			targets = append(targets, tp{p.Topic, p.Partition})
		}
	case req.Partition == nil:
		t, err := s.b.Topic(ctx, *req.Topic)
		if errors.Is(err, broker.ErrUnknownTopic) {
			return notFound("topic %q does not exist", *req.Topic)
		}
		if err != nil {
			return err
		}
		for p := range t.Partitions {
			targets = append(targets, tp{t.Name, p})
		}
	default:
		targets = []tp{{*req.Topic, *req.Partition}}
	}

	out := resetJSON{Success: true, GroupID: id, Partitions: make([]movedJSON, 0, len(targets))}
	commits := make([]broker.OffsetCommit, 0, len(targets))
	for _, t := range targets {
		next, found, err := s.resetOffset(ctx, strategy, t.topic, t.partition, req)
		gone := errors.Is(err, broker.ErrUnknownTopic) || errors.Is(err, broker.ErrUnknownPartition)
		switch {
		case gone && req.Topic == nil:
			continue // a topic deleted since the group committed to it
		case errors.Is(err, broker.ErrUnknownTopic):
			return notFound("topic %q does not exist", t.topic)
		}
		if err != nil {
			return err
		}
		m := movedJSON{Topic: t.topic, Partition: t.partition, OldOffset: -1, NewOffset: next}
		if prev, ok := old[t]; ok {
			m.OldOffset, m.OrigOldOffset = prev, prev
		}
		if strategy == resetTimestamp {
			m.TimestampFound = &found
		}
		out.Partitions = append(out.Partitions, m)
		commits = append(commits, broker.OffsetCommit{Topic: t.topic, Partition: t.partition, Offset: next, LeaderEpoch: -1})
	}
	if len(commits) == 0 {
		return badRequest("consumer group %q has no committed offsets of existing topics; name a topic", id)
	}
	if err := s.adminCommit(ctx, id, commits); err != nil {
		if errors.Is(err, broker.ErrGroupNotEmpty) {
			return groupNotEmpty(id, 0)
		}
		return err
	}
	out.Details = out.Partitions
	if n := len(out.Partitions); seek {
		out.PartitionsUpdated = &n
	} else {
		out.PartitionsReset = &n
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// resetOffset is the offset strategy picks in one partition, within the
// partition's log start offset and high watermark, and for strategy
// timestamp the timestamp of the record found (-1: none that recent).
func (s *server) resetOffset(ctx context.Context, strategy, topic string, partition int32, req resetRequest) (next, found int64, err error) {
	logStart, hw, err := s.b.Offsets(ctx, topic, partition)
	if err != nil {
		return 0, 0, err
	}
	found = -1
	next = hw
	switch strategy {
	case resetEarliest:
		next = logStart
	case resetSpecific:
		next = *req.Offset
	case resetTimestamp:
		// ListOffsets' rule: the first offset at or after the time; none
		// that recent, the high watermark.
		off, ts, ok, err := s.b.OffsetForTime(ctx, topic, partition, *req.Timestamp)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			next, found = off, ts
		}
	}
	return min(max(next, logStart), hw), found, nil
}

// adminCommit commits through the group's coordinator when there is one
// (a server with a Kafka listener), else straight to the store.
func (s *server) adminCommit(ctx context.Context, group string, commits []broker.OffsetCommit) error {
	if admin, ok := s.members.(broker.GroupOffsetAdmin); ok {
		return admin.AdminCommitOffsets(ctx, group, commits)
	}
	return s.b.CommitOffsets(ctx, group, commits)
}

func groupNotEmpty(group string, members int) error {
	msg := sprintf("consumer group %q has active members; stop them before moving its offsets", group)
	if members > 0 {
		msg = sprintf("consumer group %q has %d active members; stop them before moving its offsets", group, members)
	}
	return &apiError{status: http.StatusConflict, code: codeGroupNotEmpty, msg: msg}
}
