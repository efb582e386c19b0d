package grpcapi

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Transactions over gRPC, on the same coordinator as Kafka clients
// (internal/txn): InitProducer with a transactional_id gets the ID's
// producer (a new one at epoch 0, or the same one with its epoch bumped,
// which fences every older holder of the ID and aborts its open
// transaction); BeginTransaction opens a transaction and answers a
// transaction_id; ProduceBatch with that transaction_id adds the partition
// to the transaction and appends a transactional batch; CommitTransaction
// and AbortTransaction end it. Readers see its records once the commit
// markers are written, and never after an abort (read committed).
//
// A transaction_id is opaque to clients. It is the unpadded base64url
// encoding of: version byte 1, the producer ID (int64), the producer epoch
// (int16), the transaction's start (int64, milliseconds since the Unix
// epoch, as the coordinator stored it) and the transactional ID's bytes,
// integers big-endian. Every call that takes one checks that the
// transactional ID's stored transaction is still open, at that producer ID
// and epoch, and started at that time, so an ID from an ended transaction,
// or of a fenced producer, is refused (FailedPrecondition) instead of
// acting on whatever transaction is open now. Two transactions of one
// producer begun within the same millisecond are not told apart.
//
// The coordinator of a transactional ID is the agent leading its slot
// (the group coordinator slots). InitProducer, BeginTransaction,
// CommitTransaction, AbortTransaction and a transactional ProduceBatch
// reaching another agent meet Kafka's NOT_COORDINATOR there and are
// forwarded whole, once, to the coordinator's gRPC address (forward.go);
// when there is no live coordinator to forward to, or a forwarded call
// meets NOT_COORDINATOR again (the slot moved meanwhile), the answer is
// Unavailable and the client retries. Heartbeat reads the stored state
// and answers the same on every agent; the coordinator appends
// transactional batches itself or forwards them to the partition's leader
// like other produces. A CommitTransaction or AbortTransaction retried after
// its answer was lost succeeds while the same decision's markers are
// being written; once they are all written the retry is FailedPrecondition
// naming the final state (CompleteCommit or CompleteAbort).

// txnTokenVersion is the first byte of every transaction_id.
const txnTokenVersion = 1

// maxTransactionalIDLen is the Kafka front end's bound, so an ID used over
// gRPC is usable by Kafka clients too.
const maxTransactionalIDLen = 255

// defaultTxnTimeoutMs is transaction.timeout.ms when InitProducer has no
// timeout_ms: Kafka's producer default.
const defaultTxnTimeoutMs = 60_000

type txnToken struct {
	id         string
	producerID int64
	epoch      int16
	startMs    int64
}

const txnTokenHeader = 1 + 8 + 2 + 8

func (t txnToken) String() string {
	b := make([]byte, txnTokenHeader, txnTokenHeader+len(t.id))
	b[0] = txnTokenVersion
	binary.BigEndian.PutUint64(b[1:], uint64(t.producerID))
	binary.BigEndian.PutUint16(b[9:], uint16(t.epoch))
	binary.BigEndian.PutUint64(b[11:], uint64(t.startMs))
	b = append(b, t.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// txnTokenArg parses a transaction_id (InvalidArgument if it is not one
// BeginTransaction made).
func txnTokenArg(s string) (txnToken, error) {
	bad := func(why string) (txnToken, error) {
		return txnToken{}, invalid("transaction_id is not one BeginTransaction returned: %s", why)
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(txnTokenHeader+maxTransactionalIDLen) {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	switch {
	case err != nil:
		return bad("not base64url")
	case len(b) <= txnTokenHeader:
		return bad("too short")
	case b[0] != txnTokenVersion:
		return bad(fmt.Sprintf("version %d", b[0]))
	}
	t := txnToken{
		producerID: int64(binary.BigEndian.Uint64(b[1:])),
		epoch:      int16(binary.BigEndian.Uint16(b[9:])),
		startMs:    int64(binary.BigEndian.Uint64(b[11:])),
		id:         string(b[txnTokenHeader:]),
	}
	if t.producerID < 0 || t.epoch < 0 {
		return bad("negative producer id or epoch")
	}
	return t, nil
}

// matches checks that the request's producer is the transaction_id's.
func (t txnToken) matches(producerID int64, epoch int16) error {
	if producerID != t.producerID || epoch != t.epoch {
		return invalid("transaction_id belongs to producer %d epoch %d, not %d epoch %d", t.producerID, t.epoch, producerID, epoch)
	}
	return nil
}

// errNoCoordinator answers transactional calls on a server built without
// a transaction coordinator.
var errNoCoordinator = status.Error(codes.FailedPrecondition, "this server has no transaction coordinator")

// isOpen reports whether t has a transaction open (begun and not decided).
func isOpen(t metadata.Txn) bool {
	return t.State == metadata.TxnOngoing || (t.State == metadata.TxnEmpty && !t.StartedAt.IsZero())
}

// openTxn returns the transaction tok names if it is still the open one
// of its transactional ID, FailedPrecondition (fenced or over) otherwise.
func (s *Server) openTxn(ctx context.Context, method string, tok txnToken) (metadata.Txn, error) {
	t, err := s.txn.Describe(ctx, tok.id)
	if err != nil {
		return t, s.coordStatus(method, tok.id, err)
	}
	if reason := staleReason(t, tok); reason != "" {
		return t, status.Error(codes.FailedPrecondition, reason)
	}
	return t, nil
}

// staleReason says why tok does not name t's open transaction ("" if it
// does).
func staleReason(t metadata.Txn, tok txnToken) string {
	switch {
	case t.ProducerID != tok.producerID || t.ProducerEpoch != tok.epoch:
		return fmt.Sprintf("producer %d epoch %d is fenced: transactional id %q now has producer %d epoch %d; call InitProducer", tok.producerID, tok.epoch, tok.id, t.ProducerID, t.ProducerEpoch)
	case !isOpen(t) || t.StartedAt.UnixMilli() != tok.startMs:
		return fmt.Sprintf("the transaction is over (transactional id %q is %s, its transaction began at %d ms, this one at %d ms); call BeginTransaction", tok.id, t.State, t.StartedAt.UnixMilli(), tok.startMs)
	}
	return ""
}

// initTxnProducer is InitProducer with a transactional_id.
func (s *Server) initTxnProducer(ctx context.Context, req *pb.InitProducerRequest) (*pb.InitProducerResponse, error) {
	if s.txn == nil {
		return nil, errNoCoordinator
	}
	id := req.GetTransactionalId()
	if len(id) > maxTransactionalIDLen {
		return nil, invalid("transactional_id is %d bytes, more than %d", len(id), maxTransactionalIDLen)
	}
	timeoutMs := int32(defaultTxnTimeoutMs)
	if req.GetTimeoutMs() > 0 {
		if req.GetTimeoutMs() > math.MaxInt32 {
			return nil, invalid("timeout_ms %d is out of range", req.GetTimeoutMs())
		}
		timeoutMs = int32(req.GetTimeoutMs())
	}
	pid, epoch, err := s.txn.InitProducerID(ctx, id, timeoutMs, -1, -1)
	if err != nil {
		return nil, s.coordStatus("InitProducer", id, err)
	}
	return &pb.InitProducerResponse{ProducerId: strconv.FormatInt(pid, 10), Epoch: uint32(epoch)}, nil
}

// BeginTransaction opens a transaction of the transactional producer (from
// InitProducer with a transactional_id) and returns its transaction_id.
// The transaction timeout is InitProducer's timeout_ms: a timeout_ms here
// must be 0 or that value. FailedPrecondition when the producer is fenced
// or already has a transaction open; NotFound when no transactional ID
// has this producer.
func (s *Server) BeginTransaction(ctx context.Context, req *pb.BeginTransactionRequest) (*pb.BeginTransactionResponse, error) {
	return forwardTxn(s, ctx, "BeginTransaction", req, s.beginTxn, pb.StreamHouseClient.BeginTransaction)
}

func (s *Server) beginTxn(ctx context.Context, req *pb.BeginTransactionRequest) (*pb.BeginTransactionResponse, error) {
	pid, err := producerIDArg(req.GetProducerId())
	if err != nil {
		return nil, err
	}
	epoch, err := epochArg(req.GetProducerEpoch())
	if err != nil {
		return nil, err
	}
	if s.txn == nil {
		return nil, errNoCoordinator
	}
	cur, err := s.txnOfProducer(ctx, "BeginTransaction", pid)
	if err != nil {
		return nil, err
	}
	if req.GetTimeoutMs() != 0 && int64(req.GetTimeoutMs()) != int64(cur.TimeoutMs) {
		return nil, invalid("timeout_ms %d: the transaction timeout of transactional id %q is %d ms, set by InitProducer's timeout_ms", req.GetTimeoutMs(), cur.TransactionalID, cur.TimeoutMs)
	}
	if cur.ProducerEpoch != epoch {
		return nil, status.Errorf(codes.FailedPrecondition, "producer %d epoch %d is fenced: transactional id %q has epoch %d; call InitProducer", pid, epoch, cur.TransactionalID, cur.ProducerEpoch)
	}
	if isOpen(cur) {
		return nil, status.Errorf(codes.FailedPrecondition, "transactional id %q already has a transaction open (%s, begun at %d ms); commit or abort it first", cur.TransactionalID, cur.State, cur.StartedAt.UnixMilli())
	}
	t, err := s.txn.Begin(ctx, cur.TransactionalID, pid, epoch)
	if err != nil {
		return nil, s.coordStatus("BeginTransaction", cur.TransactionalID, err)
	}
	tok := txnToken{id: t.TransactionalID, producerID: t.ProducerID, epoch: t.ProducerEpoch, startMs: t.StartedAt.UnixMilli()}
	return &pb.BeginTransactionResponse{TransactionId: tok.String()}, nil
}

// txnOfProducer finds the transactional ID that producer pid belongs to
// (NotFound if none), from the store on any agent.
func (s *Server) txnOfProducer(ctx context.Context, method string, pid int64) (metadata.Txn, error) {
	t, found, err := s.b.TxnOfProducer(ctx, pid)
	if err != nil {
		return metadata.Txn{}, s.toStatus(method, err)
	}
	if !found {
		return metadata.Txn{}, status.Errorf(codes.NotFound, "producer %d has no transactional id: call InitProducer with a transactional_id", pid)
	}
	return t, nil
}

// endTxn checks a Commit/AbortTransaction request and ends the
// transaction.
func (s *Server) endTxn(ctx context.Context, method, producerID string, producerEpoch uint32, transactionID string, commit bool) error {
	pid, err := producerIDArg(producerID)
	if err != nil {
		return err
	}
	epoch, err := epochArg(producerEpoch)
	if err != nil {
		return err
	}
	tok, err := txnTokenArg(transactionID)
	if err != nil {
		return err
	}
	if err := tok.matches(pid, epoch); err != nil {
		return err
	}
	if s.txn == nil {
		return errNoCoordinator
	}
	if t, err := s.openTxn(ctx, method, tok); err != nil {
		// A retry of an end whose answer was lost: the same decision is
		// stored for this very transaction (its markers are being
		// written), so it succeeded.
		decided := metadata.TxnPrepareAbort
		if commit {
			decided = metadata.TxnPrepareCommit
		}
		if t.State == decided && t.ProducerID == pid && t.ProducerEpoch == epoch && t.StartedAt.UnixMilli() == tok.startMs {
			return nil
		}
		return err
	}
	if err := s.txn.EndTxnOf(ctx, tok.id, pid, epoch, time.UnixMilli(tok.startMs), commit); err != nil {
		return s.coordStatus(method, tok.id, err)
	}
	return nil
}

// CommitTransaction commits the transaction: it answers once the decision
// is stored (its records become visible as the markers are written, at
// once on each partition's leader). commit_timestamp is the server's time,
// in milliseconds since the Unix epoch, once the commit was stored.
func (s *Server) CommitTransaction(ctx context.Context, req *pb.CommitTransactionRequest) (*pb.CommitTransactionResponse, error) {
	return forwardTxn(s, ctx, "CommitTransaction", req, s.commitTxn, pb.StreamHouseClient.CommitTransaction)
}

func (s *Server) commitTxn(ctx context.Context, req *pb.CommitTransactionRequest) (*pb.CommitTransactionResponse, error) {
	if err := s.endTxn(ctx, "CommitTransaction", req.GetProducerId(), req.GetProducerEpoch(), req.GetTransactionId(), true); err != nil {
		return nil, err
	}
	return &pb.CommitTransactionResponse{Success: true, CommitTimestamp: uint64(max(s.now().UnixMilli(), 0))}, nil
}

// AbortTransaction aborts the transaction: no reader ever sees its
// records.
func (s *Server) AbortTransaction(ctx context.Context, req *pb.AbortTransactionRequest) (*pb.AbortTransactionResponse, error) {
	return forwardTxn(s, ctx, "AbortTransaction", req, s.abortTxn, pb.StreamHouseClient.AbortTransaction)
}

func (s *Server) abortTxn(ctx context.Context, req *pb.AbortTransactionRequest) (*pb.AbortTransactionResponse, error) {
	if err := s.endTxn(ctx, "AbortTransaction", req.GetProducerId(), req.GetProducerEpoch(), req.GetTransactionId(), false); err != nil {
		return nil, err
	}
	return &pb.AbortTransactionResponse{Success: true}, nil
}

// produceTxn is ProduceBatch with a transaction_id: the producer fields
// must be the transaction's producer (base_sequence as for an idempotent
// batch), the transaction still open; the partition is added to the
// transaction if it is not in it yet, then the batch is appended as a
// transactional batch at the partition's leader.
func (s *Server) produceTxn(ctx context.Context, req *pb.ProduceBatchRequest, partition int32, recs []broker.Record) (*pb.ProduceBatchResponse, error) {
	tok, err := txnTokenArg(req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	if req.ProducerId == nil {
		return nil, invalid("a transactional batch (transaction_id set) needs producer_id, producer_epoch and base_sequence")
	}
	opts, err := producerOpts(req)
	if err != nil {
		return nil, err
	}
	if err := tok.matches(opts.ProducerID, opts.ProducerEpoch); err != nil {
		return nil, err
	}
	mode, err := ackModeArg(req.GetAckMode())
	if err != nil {
		return nil, err
	}
	if s.txn == nil {
		return nil, errNoCoordinator
	}
	t, err := s.openTxn(ctx, "ProduceBatch", tok)
	if err != nil {
		return nil, err
	}
	tp, err := s.b.TxnPartitionOf(ctx, req.GetTopic(), partition)
	if err != nil {
		return nil, s.toStatus("ProduceBatch", err)
	}
	added := false
	for _, p := range t.Partitions {
		if p.TopicID == tp.TopicID && p.Partition == tp.Partition {
			added = true
			break
		}
	}
	if !added {
		if err := s.txn.AddPartitionsTo(ctx, tok.id, tok.producerID, tok.epoch, time.UnixMilli(tok.startMs), []metadata.TxnPartition{tp}); err != nil {
			return nil, s.coordStatus("ProduceBatch", tok.id, err)
		}
	}
	opts.Transactional = true
	res, err := s.b.AppendTxnRecords(ctx, tok.id, req.GetTopic(), partition, recs, mode, opts)
	if err != nil {
		return nil, s.toStatus("ProduceBatch", err)
	}
	return &pb.ProduceBatchResponse{
		FirstOffset:        uint64(res.BaseOffset),
		LastOffset:         uint64(res.LastOffset),
		Count:              uint32(len(recs)),
		DuplicatesFiltered: res.Duplicate,
	}, nil
}

// txnHeartbeat answers Heartbeat for a transactional producer: valid
// while its transactional ID still has it at this epoch (not fenced by a
// newer InitProducer or a timeout), and, with a transaction_id, while
// that transaction is open. It reads the coordinator's stored state, so
// every agent gives the same answer. found is false when pid is not a
// transactional producer.
func (s *Server) txnHeartbeat(ctx context.Context, pid int64, epoch int16, transactionID string) (resp *pb.HeartbeatResponse, found bool, err error) {
	if transactionID != "" {
		tok, err := txnTokenArg(transactionID)
		if err != nil {
			return nil, true, err
		}
		if err := tok.matches(pid, epoch); err != nil {
			return nil, true, err
		}
		t, found, err := s.b.StoredTxn(ctx, tok.id)
		if err != nil {
			return nil, true, s.toStatus("Heartbeat", err)
		}
		if !found {
			return invalidHeartbeat(fmt.Sprintf("transactional id %q is unknown", tok.id)), true, nil
		}
		if reason := staleReason(t, tok); reason != "" {
			return invalidHeartbeat(reason), true, nil
		}
		return &pb.HeartbeatResponse{Valid: true}, true, nil
	}
	t, found, err := s.b.TxnOfProducer(ctx, pid)
	if err != nil {
		return nil, true, s.toStatus("Heartbeat", err)
	}
	if !found {
		return nil, false, nil
	}
	if t.ProducerEpoch != epoch {
		return invalidHeartbeat(fmt.Sprintf("producer %d epoch %d is fenced: transactional id %q has epoch %d; call InitProducer", pid, epoch, t.TransactionalID, t.ProducerEpoch)), true, nil
	}
	return &pb.HeartbeatResponse{Valid: true}, true, nil
}

func invalidHeartbeat(reason string) *pb.HeartbeatResponse {
	return &pb.HeartbeatResponse{Valid: false, Error: &reason}
}
