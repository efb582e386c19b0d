package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// IncrementalAlterConfigs, key 44.
//
// Versions 0-1; v1 is flexible. Each config names an operation: SET (0) a
// value, DELETE (1) back to the default, APPEND (2) and SUBTRACT (3) a
// value to or from a list config (cleanup.policy is the only one; the
// others refuse them with INVALID_REQUEST, as Kafka does). APPEND of a
// value already present and SUBTRACT of one absent change nothing; a list
// left empty by SUBTRACT is INVALID_CONFIG (StreamHouse has no "neither
// delete nor compact" policy). SET without a value, an
// unknown operation, and a config named twice are INVALID_REQUEST; the
// result is validated as a whole (INVALID_CONFIG). ValidateOnly checks
// without storing.
//
// Resources are checked as for AlterConfigs (33_alter_configs.go): BROKER
// resources are POLICY_VIOLATION, since broker configs are set by
// environment variables at start.

func init() { register(44, 0, 1, handleIncrementalAlterConfigs) }

func handleIncrementalAlterConfigs(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.IncrementalAlterConfigsRequest)
	resp := r.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	seen := make(map[configResourceKey]int, len(r.Resources))
	for _, res := range r.Resources {
		seen[configResourceKey{res.ResourceType, res.ResourceName}]++
	}
	for _, res := range r.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
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
				for _, kv := range res.Configs {
					if err := applyIncremental(cfg, kv); err != nil {
						return err
					}
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

// listTopicConfigs are the topic configs whose value is a comma-separated list.
var listTopicConfigs = map[string]bool{"cleanup.policy": true}

// applyIncremental applies one operation to cfg.
func applyIncremental(cfg map[string]string, kv kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	switch kv.Op {
	case kmsg.IncrementalAlterConfigOpSet:
		if kv.Value == nil {
			return fmt.Errorf("%w: SET of config %s needs a value", broker.ErrInvalidRequest, kv.Name)
		}
		cfg[kv.Name] = *kv.Value
		return nil
	case kmsg.IncrementalAlterConfigOpDelete:
		delete(cfg, kv.Name)
		return nil
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
	default:
		return fmt.Errorf("%w: unknown operation %d on config %s", broker.ErrInvalidRequest, kv.Op, kv.Name)
	}
	if !listTopicConfigs[kv.Name] {
		return fmt.Errorf("%w: %s is not a list config; APPEND and SUBTRACT apply to list configs only", broker.ErrInvalidRequest, kv.Name)
	}
	if kv.Value == nil {
		return fmt.Errorf("%w: %s of config %s needs a value", broker.ErrInvalidRequest, kv.Op, kv.Name)
	}
	cur, ok := cfg[kv.Name]
	if !ok {
		cur, _ = broker.TopicConfigDefault(kv.Name)
	}
	list := splitConfigList(cur)
	for _, v := range splitConfigList(*kv.Value) {
		i := slices.Index(list, v)
		switch {
		case kv.Op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
			list = append(list, v)
		case kv.Op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
			list = slices.Delete(list, i, i+1)
		}
	}
	if len(list) == 0 {
		return fmt.Errorf("%w: SUBTRACT would leave %s empty", broker.ErrInvalidConfig, kv.Name)
	}
	cfg[kv.Name] = strings.Join(list, ",")
	return nil
}

// splitConfigList splits a list config value, dropping blanks.
func splitConfigList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
