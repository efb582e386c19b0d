package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// CreateAcls, key 30.
//
// Versions 0-3. v1 added the resource pattern type (v0 creates LITERAL
// bindings); v2 is flexible; v3 allowed the USER resource type.
//
// Every valid creation is stored, in one metadata transaction, and
// enforced on this agent when the answer goes out, on the others within
// acl.DefaultRefreshInterval (at once where the store announces changes);
// creating a stored binding again succeeds and changes nothing. A creation
// Kafka refuses (an ANY, MATCH or UNKNOWN value, an empty name, a CLUSTER
// resource not named kafka-cluster, a principal without a type) is
// INVALID_REQUEST, as are those StreamHouse has no use for (USER and
// DELEGATION_TOKEN resources, token and two-phase-commit operations) and
// a host that is neither * nor an IP address; the others are stored. A
// request creates at most acl.MaxCreatePerRequest bindings (past it every
// creation is INVALID_REQUEST), and the store holds at most
// acl.MaxBindings (past it the request's creations are POLICY_VIOLATION);
// either way nothing is stored. With AUTH_ENABLED the caller needs ALTER
// on the cluster (CLUSTER_AUTHORIZATION_FAILED for every creation).

const createACLsKey = 30

func init() { register(createACLsKey, 0, 3, handleCreateACLs) }

func handleCreateACLs(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	bs := make([]acl.Binding, len(req.Creations))
	for i, cr := range req.Creations {
		bs[i] = acl.Binding{
			ResourceType: acl.ResourceType(cr.ResourceType), ResourceName: cr.ResourceName, PatternType: acl.PatternType(cr.ResourcePatternType),
			Principal: cr.Principal, Host: cr.Host, Operation: acl.Operation(cr.Operation), Permission: acl.Permission(cr.PermissionType),
		}
	}
	var errs []error
	denied := !c.allowed(ctx, acl.OpAlter, acl.Cluster())
	if c.s.acl != nil && !denied {
		errs = c.s.acl.CreateACLs(ctx, bs)
	}
	for i := range bs {
		r := kmsg.NewCreateACLsResponseResult()
		switch {
		case c.s.acl == nil:
			r.ErrorCode, r.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(noAuthorizer)
		case denied:
			r.ErrorCode, r.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, clusterDenied(acl.OpAlter)
		default:
			r.ErrorCode, r.ErrorMessage = c.s.aclErr(ctx, errs[i], "create ACLs")
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
