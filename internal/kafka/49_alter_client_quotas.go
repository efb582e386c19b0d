package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/quota"
)

// AlterClientQuotas, key 49.
//
// Versions 0-1 (KIP-546); v1 is flexible. Each entry sets or removes keys
// of one entity (user, client-id or both; a null name is the default
// entity), with Kafka's checks (quota.Manager.Alter): INVALID_REQUEST for
// an empty or repeated entity type, an empty name, an unknown key, a
// repeated key, a value that is not a whole number, and, because
// StreamHouse enforces only producer_byte_rate and consumer_byte_rate,
// for request_percentage, controller_mutation_rate and ip entities too
// (never stored and ignored), and for a rate below 1. An entity named by
// two entries is refused in both. The valid entries are stored in one
// metadata transaction, in effect on this agent before the answer and on
// the others as soon as the change notice reaches them (at most the
// quota reload interval later). ValidateOnly checks and stores nothing.

const alterClientQuotasKey = 49

func init() { register(alterClientQuotasKey, 0, 1, handleAlterClientQuotas) }

func handleAlterClientQuotas(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	entries := make([]quota.AlterEntry, len(req.Entries))
	for i, re := range req.Entries {
		e := &entries[i]
		for _, ec := range re.Entity {
			e.Entity = append(e.Entity, quota.EntityComponent{Type: ec.Type, Name: ec.Name})
		}
		for _, op := range re.Ops {
			e.Ops = append(e.Ops, quota.Op{Key: op.Key, Value: op.Value, Remove: op.Remove})
		}
	}
	denied := !c.allowed(ctx, acl.OpAlterConfigs, acl.Cluster())
	var errs []error
	if !denied {
		errs = c.s.quotas.Alter(ctx, entries, req.ValidateOnly)
	}
	for i, re := range req.Entries {
		out := kmsg.NewAlterClientQuotasResponseEntry()
		for _, ec := range re.Entity {
			oe := kmsg.NewAlterClientQuotasResponseEntryEntity()
			oe.Type, oe.Name = ec.Type, ec.Name
			out.Entity = append(out.Entity, oe)
		}
		if denied {
			out.ErrorCode, out.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, clusterDeniedMsg(acl.OpAlterConfigs)
		} else if errs[i] != nil {
			out.ErrorCode, out.ErrorMessage = c.s.quotaError(errs[i])
		}
		resp.Entries = append(resp.Entries, out)
	}
	return resp, nil
}
