package kafka

import (
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// Shared by the group coordinator's API files (08-16, 42, 47). The
// coordinator itself is internal/group; offsets live in the metadata store
// and are reached through the broker.

// GroupMembers reports the live membership of the groups this server
// coordinates, for front ends that show members (REST).
func (s *Server) GroupMembers() broker.GroupMembers { return s.groups }

// allGroupOps is the authorized operations bitfield (KIP-430) of a group
// with no authorizer: everything a group supports.
const allGroupOps = 1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDescribe | 1<<kmsg.ACLOperationDelete

// clientIDKey carries the request header's client ID in a handler's ctx.
// Handlers must not read conn.clientID: the read loop writes it for the
// next request while handlers run.
type clientIDKey struct{}

// requestClientID is the client ID of the request being handled, "" when
// the connection does not provide it.
func requestClientID(ctx context.Context) string {
	id, _ := ctx.Value(clientIDKey{}).(string)
	return id
}

// clientHost is the client's address as Kafka reports it in
// DescribeGroups ("/" and the IP).
func clientHost(c *conn) string {
	addr := c.nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return "/" + addr
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// storedGroups is the set of groups the metadata store knows (registered
// or with committed offsets).
func (s *Server) storedGroups(ctx context.Context) (map[string]bool, error) {
	names, err := s.broker.Store().ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}
