package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// DeleteTopics, key 20.
//
// Versions 0-6. v1 added the throttle; v4 is flexible; v5 added per-topic
// ErrorMessage; v6 names topics by name or by topic ID (KIP-516), and the
// answer carries both.
//
// An unknown name is UNKNOWN_TOPIC_OR_PARTITION, an unknown ID
// UNKNOWN_TOPIC_ID. A v6 entry with both a name and an ID, or with
// neither, is INVALID_REQUEST, as is a topic named twice in one request
// (every occurrence). Deletion is done when the answer is sent; the
// topic's objects are collected later. The request timeout is not used.

func init() { register(20, 0, 6, handleDeleteTopics) }

func handleDeleteTopics(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DeleteTopicsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	topics := r.Topics
	if r.Version < 6 {
		topics = make([]kmsg.DeleteTopicsRequestTopic, len(r.TopicNames))
		for i := range r.TopicNames {
			topics[i].Topic = &r.TopicNames[i]
		}
	}
	names := make(map[string]int, len(topics))
	ids := make(map[[16]byte]int, len(topics))
	for _, t := range topics {
		if t.Topic != nil {
			names[*t.Topic]++
		}
		if t.TopicID != ([16]byte{}) {
			ids[t.TopicID]++
		}
	}
	for _, t := range topics {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		code, msg := c.adminDeleteTopic(ctx, t, &rt, names, ids)
		if code != 0 {
			rt.ErrorCode, rt.ErrorMessage = code, &msg
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// adminDeleteTopic deletes one topic, filling in the name or ID the request did
// not give, and returns the answer's error code and message.
//
// DELETE on the topic is needed: TOPIC_AUTHORIZATION_FAILED, for a topic
// named whether it exists or not. A topic asked for by ID that the
// principal may not even DESCRIBE is TOPIC_AUTHORIZATION_FAILED too, with
// the name left out of the answer, as in Kafka (which does not hold a
// topic ID secret); an unknown ID is UNKNOWN_TOPIC_ID.
func (c *conn) adminDeleteTopic(ctx context.Context, t kmsg.DeleteTopicsRequestTopic, rt *kmsg.DeleteTopicsResponseTopic, names map[string]int, ids map[[16]byte]int) (int16, string) {
	s := c.s
	byID := t.TopicID != ([16]byte{})
	switch {
	case byID && t.Topic != nil && *t.Topic != "":
		return kerr.InvalidRequest.Code, "give a topic name or a topic ID, not both"
	case !byID && (t.Topic == nil || *t.Topic == ""):
		return kerr.InvalidRequest.Code, "a topic name or a topic ID is needed"
	case byID && ids[t.TopicID] > 1:
		return kerr.InvalidRequest.Code, fmt.Sprintf("topic ID %s is named more than once in the request", metadata.TopicID(t.TopicID))
	case !byID && names[*t.Topic] > 1:
		return kerr.InvalidRequest.Code, fmt.Sprintf("topic %s is named more than once in the request", *t.Topic)
	}
	var (
		topic metadata.Topic
		err   error
	)
	if byID {
		topic, err = s.broker.TopicByID(ctx, metadata.TopicID(t.TopicID))
		switch {
		case err == nil && !c.allowedTopic(ctx, acl.OpDescribe, topic.Name):
			rt.Topic = nil // the name stays out of the answer
			return kerr.TopicAuthorizationFailed.Code, "not authorized to DESCRIBE the topic of ID " + metadata.TopicID(t.TopicID).String()
		case err == nil && !c.allowedTopic(ctx, acl.OpDelete, topic.Name):
			rt.Topic = &topic.Name
			return kerr.TopicAuthorizationFailed.Code, topicDenied(acl.OpDelete, topic.Name)
		case err == nil:
			rt.Topic = &topic.Name
		}
	} else if !c.allowedTopic(ctx, acl.OpDelete, *t.Topic) {
		return kerr.TopicAuthorizationFailed.Code, topicDenied(acl.OpDelete, *t.Topic)
	} else {
		topic, err = s.broker.LookupTopic(ctx, *t.Topic)
		if err == nil {
			rt.TopicID = topic.ID
		}
	}
	if err == nil {
		err = s.broker.DeleteTopic(ctx, topic.Name)
	}
	if err == nil {
		return 0, ""
	}
	code := errorCode(err)
	switch {
	case byID && code == kerr.UnknownTopicOrPartition.Code:
		code = kerr.UnknownTopicID.Code
	case code == kerr.UnknownServerError.Code:
		s.log.Warn("delete topic", "topic", topic.Name, "topic_id", metadata.TopicID(rt.TopicID), "err", err)
	}
	return code, err.Error()
}
