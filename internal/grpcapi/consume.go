package grpcapi

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// StartOffsetHeader is the response header of Subscribe with the first
// offset it streams, sent as soon as that offset is fixed.
const StartOffsetHeader = "streamhouse-start-offset"

// subscribeWait is how long one long poll of Subscribe waits for data
// before it looks again (a client cancel ends the wait at once).
const subscribeWait = 10 * time.Second

// Consume reads up to max_records (0: 100; at most 10000) committed records
// of a partition from offset (read_committed: none of an aborted or open
// transaction), without waiting for new data; at most about 4 MiB
// of them (has_more is then true). consumer_group is accepted and ignored:
// offsets are stored by CommitOffset only. An offset outside the log is
// OutOfRange.
func (s *Server) Consume(ctx context.Context, req *pb.ConsumeRequest) (*pb.ConsumeResponse, error) {
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, err
	}
	p, err := partitionArg(req.GetPartition())
	if err != nil {
		return nil, err
	}
	off, err := int64Arg("offset", req.GetOffset())
	if err != nil {
		return nil, err
	}
	res, err := s.b.ConsumeBytes(ctx, req.GetTopic(), p, off, broker.ConsumeRecordsLimit(int64(req.GetMaxRecords())), maxResponseBytes, 0)
	if err != nil {
		return nil, s.toStatus("Consume", err)
	}
	recs, trimmed := recordsOut(res.Records)
	return &pb.ConsumeResponse{
		Records:       recs,
		HighWatermark: uint64(res.HighWatermark),
		HasMore:       trimmed || res.NextOffset < res.LastStableOffset,
	}, nil
}

// Subscribe streams a partition's records from offset (unset: the last
// stable offset now, the high watermark unless a transaction is open) as
// they are committed, each message holding up to
// max_records consecutive records, until the client cancels or an error
// (the topic deleted: NotFound; the offset outside the log: OutOfRange)
// ends it. The response headers (StartOffsetHeader) arrive once the start
// offset is fixed, so a client knows from then on nothing is missed.
//
// The subscription stays authorized (streams.go): once its caller may no
// longer READ the topic it ends with PermissionDenied, once its user is
// deleted or its login's AUTH_SESSION_LIFETIME_MS passes with
// Unauthenticated, and nothing committed after that is sent.
func (s *Server) Subscribe(req *pb.SubscribeRequest, stream grpc.ServerStreamingServer[pb.SubscribeResponse]) error {
	if err := checkTopic(req.GetTopic()); err != nil {
		return err
	}
	ctx, guard := s.acl.Guard(stream.Context(), s.auth, authz.Need(acl.OpRead, acl.Topic(req.GetTopic())))
	defer guard.Stop()
	subscribeErr := func(ctx context.Context, err error) error {
		if gerr := guard.Err(); gerr != nil {
			return authStatus(gerr)
		}
		return s.subscribeErr(ctx, err)
	}
	p, err := partitionArg(req.GetPartition())
	if err != nil {
		return err
	}
	limit := broker.ConsumeRecordsLimit(int64(req.GetMaxRecords()))
	var next int64
	if req.Offset != nil {
		if next, err = int64Arg("offset", req.GetOffset()); err != nil {
			return err
		}
	} else if _, next, _, err = s.b.StableOffsets(ctx, req.GetTopic(), p); err != nil {
		return subscribeErr(ctx, err)
	}
	// The headers tell the client the subscription is in place (and where
	// it starts) before any record arrives.
	if err := stream.SendHeader(metadata.Pairs(StartOffsetHeader, strconv.FormatInt(next, 10))); err != nil {
		return err
	}
	for {
		res, err := s.b.ConsumeBytes(ctx, req.GetTopic(), p, next, limit, maxResponseBytes, subscribeWait)
		if err != nil {
			return subscribeErr(ctx, err)
		}
		next = res.NextOffset
		if len(res.Records) == 0 {
			continue
		}
		// Asked after the records were read: a revocation visible
		// before one of them was committed refuses it.
		if err := guard.Err(); err != nil {
			return authStatus(err)
		}
		recs, trimmed := recordsOut(res.Records)
		if trimmed {
			next = int64(recs[len(recs)-1].Offset) + 1
		}
		if err := sendOrEnd(ctx, stream, &pb.SubscribeResponse{Records: recs, HighWatermark: uint64(res.HighWatermark)}); err != nil {
			return subscribeErr(ctx, err)
		}
	}
}

// sendOrEnd sends m, or returns ctx's error once ctx (the guard's) ends
// first: Send waits on the client's flow control, which a client that
// stopped reading never opens, and only the handler's return ends the
// stream (gRPC then cancels it, and the Send left waiting returns).
func sendOrEnd(ctx context.Context, stream grpc.ServerStreamingServer[pb.SubscribeResponse], m *pb.SubscribeResponse) error {
	sent := make(chan error, 1)
	go func() { sent <- stream.Send(m) }()
	select {
	case err := <-sent:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxResponseBytes bounds the records of one Consume answer or Subscribe
// message, so that clients with gRPC's default 4 MiB receive limit can
// read them. A single larger record is still sent alone. It is also the
// byte budget of the broker's decoding for one answer
// (broker.ConsumeBytes).
const maxResponseBytes = 4<<20 - 64<<10

// recordsOut converts records up to maxResponseBytes (at least one);
// trimmed says some were left for the next call.
func recordsOut(recs []broker.Record) (out []*pb.ConsumedRecord, trimmed bool) {
	out = make([]*pb.ConsumedRecord, 0, len(recs))
	size := 0
	for _, r := range recs {
		pr := recordOut(r)
		size += proto.Size(pr) + 6 // tag and length prefix
		if len(out) > 0 && size > maxResponseBytes {
			return out, true
		}
		out = append(out, pr)
	}
	return out, false
}

// subscribeErr prefers the stream's own end (the client's cancel) over the
// error it caused.
func (s *Server) subscribeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return s.toStatus("Subscribe", err)
}

// CommitOffset stores a group's offset for one partition.
func (s *Server) CommitOffset(ctx context.Context, req *pb.CommitOffsetRequest) (*pb.CommitOffsetResponse, error) {
	if err := checkGroup(req.GetConsumerGroup()); err != nil {
		return nil, err
	}
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, err
	}
	p, err := partitionArg(req.GetPartition())
	if err != nil {
		return nil, err
	}
	off, err := int64Arg("offset", req.GetOffset())
	if err != nil {
		return nil, err
	}
	err = s.b.CommitOffsets(ctx, req.GetConsumerGroup(), []broker.OffsetCommit{{
		Topic: req.GetTopic(), Partition: p, Offset: off, LeaderEpoch: -1, Metadata: req.GetMetadata(),
	}})
	if err != nil {
		return nil, s.toStatus("CommitOffset", err)
	}
	return &pb.CommitOffsetResponse{Success: true}, nil
}

// GetOffset returns a group's committed offset for one partition; NotFound
// when there is none.
func (s *Server) GetOffset(ctx context.Context, req *pb.GetOffsetRequest) (*pb.GetOffsetResponse, error) {
	if err := checkGroup(req.GetConsumerGroup()); err != nil {
		return nil, err
	}
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, err
	}
	p, err := partitionArg(req.GetPartition())
	if err != nil {
		return nil, err
	}
	offs, err := s.b.GroupOffsets(ctx, req.GetConsumerGroup())
	if err != nil {
		return nil, s.toStatus("GetOffset", err)
	}
	for _, o := range offs {
		if o.Topic == req.GetTopic() && o.Partition == p {
			out := &pb.GetOffsetResponse{Offset: uint64(max(o.Offset, 0))}
			if o.Metadata != "" {
				md := validUTF8(o.Metadata)
				out.Metadata = &md
			}
			return out, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "group %s has no committed offset for %s/%d", req.GetConsumerGroup(), req.GetTopic(), p)
}
