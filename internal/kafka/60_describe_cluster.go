package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// DescribeCluster, key 60.
//
// Versions 0-2; all flexible. v1 added EndpointType (1 brokers, 2
// controllers); v2 IncludeFencedBrokers and per-broker IsFenced.
//
// The brokers, cluster ID and authorized operations are exactly Metadata's
// (liveBrokers, clusterID, allClusterOps in 03_metadata.go): the live
// agents, always including this one at its advertised address. StreamHouse has no separate
// controller: any agent serves the admin APIs, so ControllerID is the
// agent answering, and asking for controller endpoints (EndpointType 2) is
// UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker answers. No agent is ever
// fenced. Without ACLs every cluster operation is authorized.

func init() { register(60, 0, 2, handleDescribeCluster) }

func handleDescribeCluster(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DescribeClusterRequest)
	resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = r.EndpointType
	resp.ClusterID = clusterID
	resp.ControllerID = c.s.nodeID
	if r.Version >= 1 && r.EndpointType != 1 {
		msg := fmt.Sprintf("StreamHouse describes broker endpoints (1), not endpoint type %d", r.EndpointType)
		resp.ErrorCode, resp.ErrorMessage = kerr.UnsupportedEndpointType.Code, &msg
		return resp, nil
	}
	if r.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = c.authorizedOps(ctx, acl.Cluster(), allClusterOps)
	}
	for _, b := range c.s.liveBrokers(ctx).sorted() {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = b.node, b.host, b.port, b.rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp, nil
}
