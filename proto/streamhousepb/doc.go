// Package streamhousepb is the Go code generated from proto/streamhouse.proto:
// the messages and the client and server of the streamhouse.StreamHouse gRPC
// service. Only doc.go is written by hand; regenerate the rest with
// scripts/gen-proto.sh.
package streamhousepb
