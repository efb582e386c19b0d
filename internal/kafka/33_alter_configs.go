package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// AlterConfigs, key 33.
//
// Versions 0-2. v1 only moved the throttle; v2 is flexible. AlterConfigs
// replaces a topic's whole config with the one given: a config left out
// returns to its default; a null value is INVALID_CONFIG, as in Kafka.
// Prefer IncrementalAlterConfigs (key 44). ValidateOnly checks without
// storing.
//
// Only TOPIC resources can be altered. BROKER resources naming this agent
// are POLICY_VIOLATION: broker configs are set by environment variables at
// start. Other brokers' IDs, BROKER_LOGGER and other resource types are
// INVALID_REQUEST. A resource named twice in one request, or a config named
// twice in one resource, is INVALID_REQUEST.

func init() { register(33, 0, 2, handleAlterConfigs) }

func handleAlterConfigs(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.AlterConfigsRequest)
	resp := r.ResponseKind().(*kmsg.AlterConfigsResponse)
	seen := make(map[configResourceKey]int, len(r.Resources))
	for _, res := range r.Resources {
		seen[configResourceKey{res.ResourceType, res.ResourceName}]++
	}
	for _, res := range r.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		names := make([]string, len(res.Configs))
		for i, kv := range res.Configs {
			names[i] = kv.Name
		}
		_, code, msg := c.configsDenied(ctx, res.ResourceType, res.ResourceName, acl.OpAlterConfigs)
		if code == 0 {
			code, msg = c.s.checkAlterResource(res.ResourceType, res.ResourceName, seen, names)
		}
		if code == 0 {
			code, msg = c.s.alterTopicConfig(ctx, res.ResourceName, r.ValidateOnly, func(cfg map[string]string) error {
				clear(cfg)
				for _, kv := range res.Configs {
					if kv.Value == nil {
						return fmt.Errorf("%w: topic config %s has a null value", broker.ErrInvalidConfig, kv.Name)
					}
					cfg[kv.Name] = *kv.Value
				}
				return nil
			})
		}
		if code != 0 {
			rr.ErrorCode, rr.ErrorMessage = code, &msg
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

type configResourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

// checkAlterResource refuses what AlterConfigs and IncrementalAlterConfigs
// cannot alter, returning 0 for a topic that may be altered.
func (s *Server) checkAlterResource(typ kmsg.ConfigResourceType, name string, seen map[configResourceKey]int, configNames []string) (int16, string) {
	if seen[configResourceKey{typ, name}] > 1 {
		return kerr.InvalidRequest.Code, fmt.Sprintf("resource %s is named more than once in the request", name)
	}
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker:
		if msg := s.brokerResource(name); msg != "" {
			return kerr.InvalidRequest.Code, msg
		}
		return kerr.PolicyViolation.Code, "StreamHouse broker configs are read-only: they are set by environment variables at start"
	default:
		return kerr.InvalidRequest.Code, fmt.Sprintf("StreamHouse alters TOPIC (2) configs only, not resource type %d", typ)
	}
	if err := broker.ValidateTopicName(name); err != nil {
		return kerr.InvalidTopicException.Code, err.Error()
	}
	names := make(map[string]bool, len(configNames))
	for _, n := range configNames {
		if names[n] {
			return kerr.InvalidRequest.Code, fmt.Sprintf("config %s is named more than once for topic %s", n, name)
		}
		names[n] = true
	}
	return 0, ""
}

// alterTopicConfig applies edit to the topic's config (or only validates)
// and returns the answer's error code and message.
func (s *Server) alterTopicConfig(ctx context.Context, topic string, validateOnly bool, edit func(map[string]string) error) (int16, string) {
	_, err := s.broker.EditTopicConfig(ctx, topic, edit, validateOnly)
	if err == nil {
		return 0, ""
	}
	code := errorCode(err)
	if code == kerr.UnknownServerError.Code {
		s.log.Warn("alter topic config", "topic", topic, "err", err)
	}
	return code, err.Error()
}
