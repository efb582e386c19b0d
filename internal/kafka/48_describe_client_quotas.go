package kafka

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/quota"
)

// DescribeClientQuotas, key 48.
//
// Versions 0-1 (KIP-546); v1 is flexible. Filters match as Kafka's do
// (quota.Manager.Describe): per entity type, EXACT (0) a name, DEFAULT (1)
// the default entity, SPECIFIED (2) any entity of the type; strict keeps
// only entities with exactly the filtered types; no components and not
// strict lists every entity. A malformed filter is INVALID_REQUEST, an
// entity type other than user, client-id and ip UNSUPPORTED_VERSION, with
// the reason in ErrorMessage. Quotas are read from the metadata store, so
// a change made through any agent shows at once.

const describeClientQuotasKey = 48

func init() { register(describeClientQuotasKey, 0, 1, handleDescribeClientQuotas) }

func handleDescribeClientQuotas(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !c.allowed(ctx, acl.OpDescribeConfigs, acl.Cluster()) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, clusterDeniedMsg(acl.OpDescribeConfigs)
		return resp, nil
	}
	comps := make([]quota.FilterComponent, len(req.Components))
	for i, rc := range req.Components {
		comps[i] = quota.FilterComponent{EntityType: rc.EntityType, Match: quota.MatchType(rc.MatchType), Name: rc.Match}
	}
	qs, err := c.s.quotas.Describe(ctx, comps, req.Strict)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = c.s.quotaError(err)
		return resp, nil
	}
	for _, q := range qs {
		re := kmsg.NewDescribeClientQuotasResponseEntry()
		if q.Entity.HasUser {
			re.Entity = append(re.Entity, describedEntity(quota.EntityUser, q.Entity.User))
		}
		if q.Entity.HasClientID {
			re.Entity = append(re.Entity, describedEntity(quota.EntityClientID, q.Entity.ClientID))
		}
		for k, v := range q.Values {
			rv := kmsg.NewDescribeClientQuotasResponseEntryValue()
			rv.Key, rv.Value = k, v
			re.Values = append(re.Values, rv)
		}
		sort.Slice(re.Values, func(i, j int) bool { return re.Values[i].Key < re.Values[j].Key })
		resp.Entries = append(resp.Entries, re)
	}
	return resp, nil
}

// describedEntity is an entity component of a DescribeClientQuotas
// answer: a null name for the default entity.
func describedEntity(typ, name string) kmsg.DescribeClientQuotasResponseEntryEntity {
	e := kmsg.NewDescribeClientQuotasResponseEntryEntity()
	e.Type = typ
	if name != "" {
		e.Name = &name
	}
	return e
}

// quotaError is the Kafka code and message of a quota.Manager error.
func (s *Server) quotaError(err error) (int16, *string) {
	msg := err.Error()
	switch {
	case errors.Is(err, quota.ErrInvalidRequest):
		return kerr.InvalidRequest.Code, &msg
	case errors.Is(err, quota.ErrUnsupported):
		return kerr.UnsupportedVersion.Code, &msg
	}
	code := errorCode(err)
	if code == kerr.UnknownServerError.Code {
		s.log.Warn("kafka client quotas failed", "err", err)
	}
	return code, &msg
}
