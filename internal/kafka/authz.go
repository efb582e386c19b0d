package kafka

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
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
// res (always without an Authorizer, which only some tests lack). A false
// is counted as a denial (streamhouse_authorization_denials_total): the
// caller answers it with an *_AUTHORIZATION_FAILED code. A check whose
// false refuses nothing (a listing's filter, the first of two ways to be
// allowed) asks permits instead, as Kafka's authorizer is asked with
// logIfDenied false there.
func (c *conn) allowed(ctx context.Context, op acl.Operation, res acl.Resource) bool {
	if c.permits(ctx, op, res) {
		return true
	}
	c.denied(op, res.Type)
	return false
}

// permits is allowed without counting a false as a denial.
func (c *conn) permits(ctx context.Context, op acl.Operation, res acl.Resource) bool {
	if c.s.acl == nil {
		return true
	}
	return c.s.acl.Authorize(ctx, c.Principal().String(), c.host, op, res)
}

// denied counts a refusal of op on a resource of type typ that the
// handler decided with permits.
func (c *conn) denied(op acl.Operation, typ acl.ResourceType) {
	c.s.acl.Denied(auth.ListenerKafka, op, typ)
}

// allowedAny reports whether the connection's principal may perform op on
// some resource of type typ (Kafka's authorizeByResourceType). A false is
// not counted: the caller counts what it refuses.
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
// may perform on res, among all (the operations the listener reports for
// the resource type; all of them when ACLs are not enforced). As in
// Kafka, the cluster's operations are shown only to a principal that may
// DESCRIBE it (0 otherwise).
func (c *conn) authorizedOps(ctx context.Context, res acl.Resource, all int32) int32 {
	if c.s.acl == nil || !c.s.acl.Enforcing() {
		return all
	}
	if res.Type == acl.ResourceCluster && !c.permits(ctx, acl.OpDescribe, res) {
		return 0
	}
	return c.s.acl.AuthorizedOperations(ctx, c.Principal().String(), c.host, res) & all
}

// mayCreateTopic reports whether the principal may create topic: CREATE on
// the cluster or on the topic, as Kafka's CreateTopics and auto-creation
// ask. A false is not counted (a produce's auto-creation refuses nothing:
// the topic stays unknown); a handler that answers it with
// TOPIC_AUTHORIZATION_FAILED counts it with createDenied.
func (c *conn) mayCreateTopic(ctx context.Context, topic string) bool {
	return c.permits(ctx, acl.OpCreate, acl.Cluster()) || c.permits(ctx, acl.OpCreate, acl.Topic(topic))
}

// createDenied counts the refusal of a topic's creation.
func (c *conn) createDenied() { c.denied(acl.OpCreate, acl.ResourceTopic) }

// topicDenied is the message of a TOPIC_AUTHORIZATION_FAILED.
func topicDenied(op acl.Operation, topic string) string {
	return "not authorized to " + op.String() + " topic " + topic
}

// configsDenied checks op (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config
// resource: on the topic for a TOPIC (TOPIC_AUTHORIZATION_FAILED), on the
// cluster for a BROKER (CLUSTER_AUTHORIZATION_FAILED). It returns 0 when
// allowed, and for other resource types, which the handlers refuse.
func (c *conn) configsDenied(ctx context.Context, typ kmsg.ConfigResourceType, name string, op acl.Operation) ([]configEntry, int16, string) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !c.allowedTopic(ctx, op, name) {
			return nil, kerr.TopicAuthorizationFailed.Code, topicDenied(op, name)
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		if !c.allowed(ctx, op, acl.Cluster()) {
			return nil, kerr.ClusterAuthorizationFailed.Code, "not authorized to " + op.String() + " the cluster"
		}
	}
	return nil, 0, ""
}

// clusterDeniedMsg is the message of a CLUSTER_AUTHORIZATION_FAILED.
func clusterDeniedMsg(op acl.Operation) *string {
	return kmsg.StringPtr("not authorized to " + op.String() + " the cluster")
}
