package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// CreatePartitions, key 37.
//
// Versions 0-3. v1 only moved the throttle; v2 is flexible; v3 is v2 again
// (it marks brokers that return THROTTLING_QUOTA_EXCEEDED, which
// StreamHouse never does). Count is the new total and must be above the
// current count: partitions are never removed (INVALID_PARTITIONS
// otherwise). ValidateOnly checks without creating.
//
// A manual Assignment is accepted when it has one entry per new partition,
// each with at least one distinct replica; the broker IDs are ignored
// (placement decides which agent leads each partition), as for
// CreateTopics. Anything else is INVALID_REPLICA_ASSIGNMENT. A topic named
// twice in one request is INVALID_REQUEST for every occurrence. The new
// partitions are placed on agents when the answer is sent.

func init() { register(37, 0, 3, handleCreatePartitions) }

func handleCreatePartitions(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.CreatePartitionsRequest)
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := make(map[string]int, len(r.Topics))
	for _, t := range r.Topics {
		seen[t.Topic]++
	}
	for _, t := range r.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		code, msg := int16(0), ""
		switch {
		case seen[t.Topic] > 1:
			code, msg = kerr.InvalidRequest.Code, fmt.Sprintf("topic %s is named more than once in the request", t.Topic)
		case !c.allowedTopic(ctx, acl.OpAlter, t.Topic):
			code, msg = kerr.TopicAuthorizationFailed.Code, topicDenied(acl.OpAlter, t.Topic)
		default:
			code, msg = c.s.adminCreatePartitions(ctx, t, r.ValidateOnly)
		}
		if code != 0 {
			rt.ErrorCode, rt.ErrorMessage = code, &msg
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (s *Server) adminCreatePartitions(ctx context.Context, t kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	if t.Assignment != nil {
		cur, err := s.broker.LookupTopic(ctx, t.Topic)
		if err != nil {
			return errorCode(err), err.Error()
		}
		if add := int(t.Count) - int(cur.Partitions); add > 0 && len(t.Assignment) != add {
			return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("the assignment has %d entries for %d new partitions", len(t.Assignment), add)
		}
		for i, a := range t.Assignment {
			if msg := checkAssignedReplicas(a.Replicas); msg != "" {
				return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("new partition %d: %s", int(cur.Partitions)+i, msg)
			}
		}
	}
	err := s.broker.GrowTopic(ctx, t.Topic, t.Count, validateOnly)
	if err == nil {
		return 0, ""
	}
	code := errorCode(err)
	if code == kerr.UnknownServerError.Code {
		s.log.Warn("create partitions", "topic", t.Topic, "err", err)
	}
	return code, err.Error()
}
