package kafka

import (
	"context"
	"net"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// Authorization of Kafka requests: each handler asks Config.ACL, for the
// connection's principal (auth.go) and client address, the operation
// Kafka's authorizer table names for its API, and answers Kafka's
// *_AUTHORIZATION_FAILED codes when denied. The Authorizer allows
// everything when AUTH_ENABLED is off, and always for SUPER_USERS and the
// agents' own users (what another agent forwards was authorized at the
// agent that took it from its client).

// remoteHost is a connection's client IP address, as ACL hosts name it.
func remoteHost(nc net.Conn) string {
	if nc == nil || nc.RemoteAddr() == nil {
		return ""
	}
	addr := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// allowed reports whether the connection's principal may perform op on
// res (always without an Authorizer, which only some tests lack).
func (c *conn) allowed(ctx context.Context, op acl.Operation, res acl.Resource) bool {
	if c.s.acl == nil {
		return true
	}
	return c.s.acl.Authorize(ctx, c.Principal().String(), c.host, op, res)
}

// allowedAny reports whether the connection's principal may perform op on
// some resource of type typ (Kafka's authorizeByResourceType).
func (c *conn) allowedAny(ctx context.Context, op acl.Operation, typ acl.ResourceType) bool {
	if c.s.acl == nil {
		return true
	}
	return c.s.acl.AuthorizeAny(ctx, c.Principal().String(), c.host, op, typ)
}

// allowedTopic is allowed on a topic.
func (c *conn) allowedTopic(ctx context.Context, op acl.Operation, topic string) bool {
	return c.allowed(ctx, op, acl.Topic(topic))
}

// authorizedOps is the KIP-430 bit field of the operations the principal
// may perform on res; all is the answer without an Authorizer.
func (c *conn) authorizedOps(ctx context.Context, res acl.Resource, all int32) int32 {
	if c.s.acl == nil {
		return all
	}
	return c.s.acl.AuthorizedOperations(ctx, c.Principal().String(), c.host, res)
}
