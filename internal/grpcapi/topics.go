package grpcapi

import (
	"context"
	"maps"
	"math"
	"strconv"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

const retentionMs = "retention.ms"

// CreateTopic creates a topic. retention_ms is the topic config
// retention.ms; giving both with different values is InvalidArgument.
func (s *Server) CreateTopic(ctx context.Context, req *pb.CreateTopicRequest) (*pb.CreateTopicResponse, error) {
	if err := checkTopic(req.GetName()); err != nil {
		return nil, err
	}
	if req.GetPartitionCount() > math.MaxInt32 {
		return nil, invalid("partition_count %d is out of range", req.GetPartitionCount())
	}
	cfg := maps.Clone(req.GetConfig())
	if req.RetentionMs != nil {
		ms, err := int64Arg("retention_ms", req.GetRetentionMs())
		if err != nil {
			return nil, err
		}
		v := strconv.FormatInt(ms, 10)
		if old, ok := cfg[retentionMs]; ok && old != v {
			return nil, invalid("retention_ms %s and config retention.ms %q disagree", v, old)
		}
		if cfg == nil {
			cfg = make(map[string]string)
		}
		cfg[retentionMs] = v
	}
	t, err := s.b.CreateTopic(ctx, broker.TopicSpec{Name: req.GetName(), Partitions: int32(req.GetPartitionCount()), Config: cfg}, false)
	if err != nil {
		return nil, s.toStatus("CreateTopic", err)
	}
	return &pb.CreateTopicResponse{TopicId: t.ID.String(), PartitionCount: uint32(t.Partitions)}, nil
}

// GetTopic describes one topic.
func (s *Server) GetTopic(ctx context.Context, req *pb.GetTopicRequest) (*pb.GetTopicResponse, error) {
	if err := checkTopic(req.GetName()); err != nil {
		return nil, err
	}
	t, err := s.b.Topic(ctx, req.GetName())
	if err != nil {
		return nil, s.toStatus("GetTopic", err)
	}
	return &pb.GetTopicResponse{Topic: topicPB(t)}, nil
}

// ListTopics lists the topics the caller may DESCRIBE, by name.
func (s *Server) ListTopics(ctx context.Context, _ *pb.ListTopicsRequest) (*pb.ListTopicsResponse, error) {
	ts, err := s.b.ListTopics(ctx)
	if err != nil {
		return nil, s.toStatus("ListTopics", err)
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	visible := make(map[string]bool, len(ts))
	for _, n := range s.acl.Allowed(ctx, acl.OpDescribe, acl.ResourceTopic, names) {
		visible[n] = true
	}
	out := &pb.ListTopicsResponse{Topics: make([]*pb.Topic, 0, len(ts))}
	for _, t := range ts {
		if visible[t.Name] {
			out.Topics = append(out.Topics, topicPB(t))
		}
	}
	return out, nil
}

// DeleteTopic deletes a topic; an unknown one is NotFound.
func (s *Server) DeleteTopic(ctx context.Context, req *pb.DeleteTopicRequest) (*pb.DeleteTopicResponse, error) {
	if err := checkTopic(req.GetName()); err != nil {
		return nil, err
	}
	if err := s.b.DeleteTopic(ctx, req.GetName()); err != nil {
		return nil, s.toStatus("DeleteTopic", err)
	}
	return &pb.DeleteTopicResponse{Success: true}, nil
}

// topicPB describes a topic. retention_ms is the retention in force (the
// topic's retention.ms or Kafka's default), unset when it is -1 (forever).
func topicPB(t metadata.Topic) *pb.Topic {
	out := &pb.Topic{Name: t.Name, PartitionCount: uint32(t.Partitions), Config: maps.Clone(t.Config)}
	if !t.CreatedAt.IsZero() && t.CreatedAt.UnixMilli() > 0 {
		out.CreatedAt = uint64(t.CreatedAt.UnixMilli())
	}
	v, ok := t.Config[retentionMs]
	if !ok {
		v, _ = broker.TopicConfigDefault(retentionMs)
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
		u := uint64(ms)
		out.RetentionMs = &u
	}
	return out
}
