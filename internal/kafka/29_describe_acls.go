package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// DescribeAcls, key 29.
//
// Versions 0-3. v1 added the resource pattern type (v0 filters and answers
// are LITERAL); v2 is flexible; v3 allowed the USER resource type.
//
// Lists the stored bindings the filter selects (acl.Filter: Kafka's
// AclBindingFilter, ANY and MATCH included), read from the metadata store,
// grouped by resource pattern in the store's order. ACLs are stored and
// listed whether AUTH_ENABLED is on or not, so they can be prepared before
// authentication is switched on. A filter with an UNKNOWN or unknown value
// is INVALID_REQUEST; USER and DELEGATION_TOKEN filters are valid and
// select nothing (no such binding can be created). With AUTH_ENABLED the
// caller needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).

const describeACLsKey = 29

func init() { register(describeACLsKey, 0, 3, handleDescribeACLs) }

func handleDescribeACLs(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if c.s.acl == nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(noAuthorizer)
		return resp, nil
	}
	if !c.allowed(ctx, acl.OpDescribe, acl.Cluster()) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, clusterDenied(acl.OpDescribe)
		return resp, nil
	}
	f := aclFilter(req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	bs, err := c.s.acl.DescribeACLs(ctx, f)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = c.s.aclErr(ctx, err, "describe ACLs")
		return resp, nil
	}
	for _, b := range bs {
		n := len(resp.Resources)
		if n == 0 || resp.Resources[n-1].ResourceType != kmsg.ACLResourceType(b.ResourceType) ||
			resp.Resources[n-1].ResourceName != b.ResourceName || resp.Resources[n-1].ResourcePatternType != kmsg.ACLResourcePatternType(b.PatternType) {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
			resp.Resources = append(resp.Resources, r)
			n++
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = b.Principal, b.Host, kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		resp.Resources[n-1].ACLs = append(resp.Resources[n-1].ACLs, a)
	}
	return resp, nil
}
