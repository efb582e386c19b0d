package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// What the ACL APIs (29_describe_acls.go, 30_create_acls.go,
// 31_delete_acls.go) share. Config.ACL stores and enforces the bindings;
// kmsg's enums carry Kafka's codes, which are acl's values too.

// noAuthorizer is the answer of a listener built without Config.ACL (some
// tests): Kafka's SECURITY_DISABLED. A server always has an Authorizer,
// with AUTH_ENABLED or without.
const noAuthorizer = "no authorizer is configured on this listener"

// clusterDenied is the message of an ACL API refused for want of DESCRIBE
// (DescribeAcls) or ALTER (CreateAcls, DeleteAcls) on the cluster.
func clusterDenied(op acl.Operation) *string {
	return kmsg.StringPtr("not authorized to " + op.String() + " the cluster (needed to manage ACLs)")
}

// aclErr returns the Kafka code and message of an ACL call's error:
// INVALID_REQUEST for a binding or filter Kafka refuses (or a request past
// acl.MaxCreatePerRequest or acl.MaxDeleteMatches), POLICY_VIOLATION past
// acl.MaxBindings, KAFKA_STORAGE_ERROR
// (retriable) when the metadata store is unavailable, REQUEST_TIMED_OUT
// past the deadline, UNKNOWN_SERVER_ERROR (logged) otherwise.
func (s *Server) aclErr(ctx context.Context, err error, what string) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	var code int16
	switch {
	case errors.Is(err, acl.ErrInvalid):
		code = kerr.InvalidRequest.Code
	case errors.Is(err, acl.ErrLimit):
		code = kerr.PolicyViolation.Code
	case broker.IsUnavailable(err):
		code = kerr.KafkaStorageError.Code
	case errors.Is(err, context.DeadlineExceeded):
		code = kerr.RequestTimedOut.Code
	default:
		code = kerr.UnknownServerError.Code
		if ctx.Err() == nil {
			s.log.Warn("kafka "+what+" failed", "err", err)
		}
	}
	return code, kmsg.StringPtr(err.Error())
}

func aclFilter(rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType, principal, host *string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) acl.Filter {
	return acl.Filter{
		ResourceType: acl.ResourceType(rt), ResourceName: name, PatternType: acl.PatternType(pt),
		Principal: principal, Host: host, Operation: acl.Operation(op), Permission: acl.Permission(perm),
	}
}
