package kafka

import (
	"net"
)

// Limits on what a client can make the listener hold, as Kafka applies
// them: a cap on each request frame, a shared budget of request bytes in
// flight, and bounds on connections overall and per client IP.
//
// Only Produce carries large frames (Config.MaxRequestBytes, Kafka's
// socket.request.max.bytes). Requests that list partitions or group
// members may reach largeRequestCap; every other request, smallRequestCap.
// A frame over its cap closes the connection, as Kafka does. The caps are
// checked on the size prefix and the API key, before the body is read or
// any memory is set aside for it.
//
// Before a frame's body is read, its size is taken from the shared budget
// (Config.MaxInflightRequestBytes); the connection waits until it fits, so
// request memory is backpressure, never an allocation beyond the budget.
// The bytes return to the budget when the request has been handled, except
// for Fetch, whose bytes return once it is decoded: a long poll holds no
// budget while it waits.

const (
	smallRequestCap = 1 << 20
	largeRequestCap = 8 << 20
)

// largeRequestKeys are the keys, other than Produce, whose requests list
// partitions or group members and so may exceed smallRequestCap.
var largeRequestKeys = map[int16]bool{
	fetchKey: true, listOffsetsKey: true, metadataKey: true, offsetCommitKey: true,
	offsetFetchKey: true, joinGroupKey: true, syncGroupKey: true, describeGroupsKey: true,
	21:                      true, // DeleteRecords
	offsetForLeaderEpochKey: true, offsetDeleteKey: true,
	addPartitionsToTxnKey: true, writeTxnMarkersKey: true, txnOffsetCommitKey: true, describeProducersKey: true,
}

// requestCap is the largest frame (without its size prefix) accepted for
// an API key.
func (s *Server) requestCap(key int16) int32 {
	switch {
	case key == produceKey:
		return s.cfg.MaxRequestBytes
	case largeRequestKeys[key]:
		return largeRequestCap
	}
	return smallRequestCap
}

// admitLocked says why a new connection from ip must be refused, or "".
// Called with s.mu.
func (s *Server) admitLocked(ip string) string {
	switch {
	case len(s.conns) >= s.cfg.MaxConnections:
		return "max_connections"
	case s.perIP[ip] >= s.cfg.MaxConnectionsPerIP:
		return "max_connections_per_ip"
	}
	return ""
}

// remoteIP is the IP address of a connection's peer, or its whole address
// when it has no host part.
func remoteIP(nc net.Conn) string {
	a := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}
