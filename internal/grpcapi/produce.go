package grpcapi

import (
	"context"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Produce appends one record to the given partition and answers once it is
// durable (the request has no ack mode; durable is the safe reading).
func (s *Server) Produce(ctx context.Context, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, err
	}
	p, err := partitionArg(req.GetPartition())
	if err != nil {
		return nil, err
	}
	rec := recordIn(req.GetKey(), req.GetValue(), req.GetHeaders(), 0)
	offs, err := s.b.ProduceRecords(ctx, req.GetTopic(), p, []broker.Record{rec}, broker.AckDurable, batch.DefaultBuildOptions())
	if err != nil {
		return nil, s.toStatus("Produce", err)
	}
	return &pb.ProduceResponse{Offset: uint64(offs[0].Offset), Timestamp: uint64(max(offs[0].Timestamp, 0))}, nil
}

// ProduceBatch appends records to the given partition as one record batch,
// idempotent when the producer fields are given, transactional with a
// transaction_id (txns.go).
func (s *Server) ProduceBatch(ctx context.Context, req *pb.ProduceBatchRequest) (*pb.ProduceBatchResponse, error) {
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, err
	}
	p, err := partitionArg(req.GetPartition())
	if err != nil {
		return nil, err
	}
	if len(req.GetRecords()) == 0 {
		return nil, invalid("records is empty")
	}
	if len(req.GetRecords()) > math.MaxInt32 {
		return nil, invalid("%d records is too many", len(req.GetRecords()))
	}
	recs := make([]broker.Record, len(req.GetRecords()))
	for i, r := range req.GetRecords() {
		ts, err := int64Arg("timestamp", r.GetTimestamp())
		if err != nil {
			return nil, invalid("record %d: %s", i, status.Convert(err).Message())
		}
		recs[i] = recordIn(r.GetKey(), r.GetValue(), r.GetHeaders(), ts)
	}
	if req.GetTransactionId() != "" {
		local := func(ctx context.Context, req *pb.ProduceBatchRequest) (*pb.ProduceBatchResponse, error) {
			return s.produceTxn(ctx, req, p, recs)
		}
		return forwardTxn(s, ctx, "ProduceBatch", req, local, pb.StreamHouseClient.ProduceBatch)
	}
	mode, err := ackModeArg(req.GetAckMode())
	if err != nil {
		return nil, err
	}
	opts, err := producerOpts(req)
	if err != nil {
		return nil, err
	}
	res, err := s.b.AppendRecords(ctx, req.GetTopic(), p, recs, mode, opts)
	if err != nil {
		return nil, s.toStatus("ProduceBatch", err)
	}
	if opts.ProducerID >= 0 {
		s.producers.touch(opts.ProducerID, opts.ProducerEpoch)
	}
	return &pb.ProduceBatchResponse{
		FirstOffset:        uint64(res.BaseOffset),
		LastOffset:         uint64(res.LastOffset),
		Count:              uint32(len(recs)),
		DuplicatesFiltered: res.Duplicate,
	}, nil
}

func ackModeArg(m pb.AckMode) (broker.AckMode, error) {
	switch m {
	case pb.AckMode_ACK_BUFFERED:
		return broker.AckBuffered, nil
	case pb.AckMode_ACK_DURABLE:
		return broker.AckDurable, nil
	case pb.AckMode_ACK_NONE:
		return broker.AckNone, nil
	}
	return 0, invalid("ack_mode %d is not an AckMode", int32(m))
}

// producerOpts are the batch's producer fields: none, or all three of
// producer_id, producer_epoch and base_sequence.
func producerOpts(req *pb.ProduceBatchRequest) (batch.BuildOptions, error) {
	opts := batch.DefaultBuildOptions()
	if req.ProducerId == nil {
		if req.ProducerEpoch != nil || req.BaseSequence != nil {
			return opts, invalid("producer_epoch and base_sequence need a producer_id")
		}
		return opts, nil
	}
	id, err := producerIDArg(req.GetProducerId())
	if err != nil {
		return opts, err
	}
	if req.ProducerEpoch == nil || req.BaseSequence == nil {
		return opts, invalid("an idempotent batch (producer_id set) needs producer_epoch and base_sequence")
	}
	epoch, err := epochArg(req.GetProducerEpoch())
	if err != nil {
		return opts, err
	}
	seq := req.GetBaseSequence()
	if seq < 0 || seq > math.MaxInt32 {
		return opts, invalid("base_sequence %d is out of range 0..%d", seq, math.MaxInt32)
	}
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = id, epoch, int32(seq)
	return opts, nil
}

// recordIn builds a broker record. gRPC cannot tell an empty bytes field
// from an absent one: an empty key is a null key (keyless, so partitioning
// and compaction treat it as such), an empty value an empty value (a gRPC
// client cannot write a tombstone by accident).
func recordIn(key, value []byte, headers map[string]string, ts int64) broker.Record {
	r := broker.Record{Timestamp: ts, Value: value}
	if len(key) > 0 {
		r.Key = key
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	if len(headers) > 0 {
		keys := make([]string, 0, len(headers))
		for k := range headers {
			keys = append(keys, k)
		}
		sort.Strings(keys) // a map has no order; make the stored one stable
		r.Headers = make([]batch.RecordHeader, len(keys))
		for i, k := range keys {
			r.Headers[i] = batch.RecordHeader{Key: k, Value: []byte(headers[k])}
		}
	}
	return r
}

// recordOut describes a stored record. Header keys and values are strings
// on the wire, which proto3 requires to be UTF-8: other bytes show as
// U+FFFD, and a repeated key shows its last value.
func recordOut(r broker.Record) *pb.ConsumedRecord {
	out := &pb.ConsumedRecord{
		Offset:    uint64(r.Offset),
		Timestamp: uint64(max(r.Timestamp, 0)),
		Key:       r.Key,
		Value:     r.Value,
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			out.Headers[validUTF8(h.Key)] = validUTF8(string(h.Value))
		}
	}
	return out
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
