package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// DeleteAcls, key 31.
//
// Versions 0-3. v1 added the resource pattern type (v0 filters are
// LITERAL); v2 is flexible; v3 allowed the USER resource type.
//
// Deletes every stored binding a valid filter selects, all filters in one
// metadata transaction, and answers per filter the bindings it selected (a
// binding two filters select is listed under both, as KRaft does). This
// agent stops enforcing them when the answer goes out; the others within
// acl.DefaultRefreshInterval (at once where the store announces changes).
// A filter with an UNKNOWN or unknown value is INVALID_REQUEST and deletes
// nothing; the valid ones still apply. A request holds at most
// maxDeleteACLFilters filters (the answer lists every match of every
// filter, so their number bounds its size); past it, the rest are
// INVALID_REQUEST. The bindings selected, counted once per filter, are at
// most acl.MaxDeleteMatches (past it every filter is INVALID_REQUEST and
// nothing is deleted); each binding is deleted once. The answer goes out
// once this agent no longer enforces what was deleted. With AUTH_ENABLED
// the caller needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED for
// every filter).

const (
	deleteACLsKey       = 31
	maxDeleteACLFilters = 1000
)

func init() { register(deleteACLsKey, 0, 3, handleDeleteACLs) }

func handleDeleteACLs(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	n := min(len(req.Filters), maxDeleteACLFilters)
	fs := make([]acl.Filter, n)
	for i, f := range req.Filters[:n] {
		fs[i] = aclFilter(f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType)
	}
	var results []acl.DeleteResult
	denied := !c.allowed(ctx, acl.OpAlter, acl.Cluster())
	if c.s.acl != nil && !denied {
		results = c.s.acl.DeleteACLs(ctx, fs)
	}
	for i := range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		switch {
		case i >= n:
			r.ErrorCode = kerr.InvalidRequest.Code
			r.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("at most %d filters per DeleteAcls request", maxDeleteACLFilters))
		case c.s.acl == nil:
			r.ErrorCode, r.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(noAuthorizer)
		case denied:
			r.ErrorCode, r.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, clusterDenied(acl.OpAlter)
		case results[i].Err != nil:
			r.ErrorCode, r.ErrorMessage = c.s.aclErr(ctx, results[i].Err, "delete ACLs")
		default:
			for _, b := range results[i].Deleted {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
				m.Principal, m.Host = b.Principal, b.Host
				m.Operation, m.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
				r.MatchingACLs = append(r.MatchingACLs, m)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
