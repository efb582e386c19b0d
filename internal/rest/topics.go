package rest

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// topicJSON is a topic as the REST API shows it. Config holds only what was
// set at creation (Kafka's defaults apply to the rest); always an object.
type topicJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Partitions int32             `json:"partitions"`
	Config     map[string]string `json:"config"`
	CreatedAt  string            `json:"created_at"` // RFC 3339, UTC, milliseconds
}

// partitionJSON is one partition's state. Leader is the leading agent's ID,
// null when no agent holds a live lease. low_watermark is the log start
// offset; high_watermark the offset the next record gets.
type partitionJSON struct {
	Partition     int32   `json:"partition"`
	Leader        *string `json:"leader"`
	LeaderEpoch   int32   `json:"leader_epoch"`
	LowWatermark  int64   `json:"low_watermark"`
	HighWatermark int64   `json:"high_watermark"`
}

// topicDetailJSON is GET /api/v1/topics/{name}.
type topicDetailJSON struct {
	topicJSON
	PartitionStates []partitionJSON `json:"partition_states"`
}

const createdAtLayout = "2006-01-02T15:04:05.000Z07:00"

func toTopicJSON(t metadata.Topic) topicJSON {
	cfg := t.Config
	if cfg == nil {
		cfg = map[string]string{}
	}
	return topicJSON{
		ID:         t.ID.String(),
		Name:       t.Name,
		Partitions: t.Partitions,
		Config:     cfg,
		CreatedAt:  t.CreatedAt.UTC().Format(createdAtLayout),
	}
}

func toPartitionsJSON(ps []broker.PartitionInfo) []partitionJSON {
	out := make([]partitionJSON, 0, len(ps))
	for _, p := range ps {
		pj := partitionJSON{Partition: p.Partition, LeaderEpoch: p.LeaderEpoch,
			LowWatermark: p.LogStartOffset, HighWatermark: p.HighWatermark}
		if p.Leader != "" {
			leader := p.Leader
			pj.Leader = &leader
		}
		out = append(out, pj)
	}
	return out
}

func (s *server) listTopics(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r); err != nil { // a login; the list is filtered
		return err
	}
	ts, err := s.b.ListTopics(r.Context())
	if err != nil {
		return err
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	visible := make(map[string]bool, len(ts))
	for _, n := range s.acl.Allowed(r.Context(), acl.OpDescribe, acl.ResourceTopic, names) {
		visible[n] = true
	}
	out := make([]topicJSON, 0, len(ts))
	for _, t := range ts {
		if visible[t.Name] {
			out = append(out, toTopicJSON(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createTopicRequest is POST /api/v1/topics. partition_count is the
// original's gRPC name, accepted as an alias.
type createTopicRequest struct {
	Name           *string           `json:"name"`
	Partitions     *int32            `json:"partitions"`
	PartitionCount *int32            `json:"partition_count"`
	Config         map[string]string `json:"config"`
}

func (s *server) createTopic(w http.ResponseWriter, r *http.Request) error {
	var req createTopicRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return badRequest("name is required")
	}
	if err := s.authorizeAny(r, authz.Need(acl.OpCreate, acl.Cluster()), authz.Need(acl.OpCreate, acl.Topic(*req.Name))); err != nil {
		return err
	}
	parts := req.Partitions
	switch {
	case parts == nil && req.PartitionCount == nil:
		return badRequest("partitions is required")
	case parts == nil:
		parts = req.PartitionCount
	case req.PartitionCount != nil && *req.PartitionCount != *parts:
		return badRequest("partitions (%d) and partition_count (%d) disagree; send one of them", *parts, *req.PartitionCount)
	}
	t, err := s.b.CreateTopic(r.Context(), broker.TopicSpec{Name: *req.Name, Partitions: *parts, Config: req.Config}, false)
	if errors.Is(err, broker.ErrTopicExists) {
		return &apiError{status: http.StatusConflict, code: codeConflict, msg: sprintf("topic %q already exists", *req.Name)}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/topics/"+url.PathEscape(t.Name))
	writeJSON(w, http.StatusCreated, toTopicJSON(t))
	return nil
}

// describe returns a topic with its partitions, or a 404 naming it (a
// 403 when the caller may not DESCRIBE it, whether it exists or not).
func (s *server) describe(r *http.Request, name string) (broker.TopicInfo, error) {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Topic(name))); err != nil {
		return broker.TopicInfo{}, err
	}
	info, err := s.b.DescribeTopic(r.Context(), name)
	if errors.Is(err, broker.ErrUnknownTopic) {
		return info, notFound("topic %q does not exist", name)
	}
	return info, err
}

func (s *server) getTopic(w http.ResponseWriter, r *http.Request) error {
	info, err := s.describe(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, topicDetailJSON{topicJSON: toTopicJSON(info.Topic), PartitionStates: toPartitionsJSON(info.PartitionStates)})
	return nil
}

func (s *server) topicPartitions(w http.ResponseWriter, r *http.Request) error {
	info, err := s.describe(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPartitionsJSON(info.PartitionStates))
	return nil
}

// deleteTopic answers 204 No Content.
func (s *server) deleteTopic(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.authorize(r, authz.Need(acl.OpDelete, acl.Topic(name))); err != nil {
		return err
	}
	err := s.b.DeleteTopic(r.Context(), name)
	if errors.Is(err, broker.ErrUnknownTopic) {
		return notFound("topic %q does not exist", name)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
