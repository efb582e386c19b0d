package grpcapi

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Producer sessions, for Heartbeat.
//
// Producer IDs come from the metadata store and are unique across the
// cluster, and the idempotence checks that matter live with each partition
// (the log's producer state), so producing works on any agent. What the
// store does not keep is which producers are alive: there is no table for
// it. Heartbeat therefore answers from this agent's memory: a producer is
// valid when THIS agent issued its ID with InitProducer, the epoch is the
// one issued (always 0 until transactions bump epochs), and it has not been
// silent for longer than its timeout. Heartbeats and idempotent
// ProduceBatch calls keep it alive. A restarted agent, or another agent
// behind a load balancer, answers valid=false with a reason; a client then
// calls InitProducer again. Heartbeat never affects produce: a producer ID
// that Heartbeat calls invalid still produces, checked by sequence.
// Transactional producers (InitProducer with a transactional_id) are
// answered from the transaction coordinator's stored state instead
// (txns.go), the same on every agent.

const (
	// defaultProducerTimeout applies when InitProducer has no timeout_ms.
	defaultProducerTimeout = time.Minute
	// maxProducerTimeout caps timeout_ms (Kafka's
	// transaction.max.timeout.ms default).
	maxProducerTimeout = 15 * time.Minute
	// sweepEvery spaces the removal of expired sessions.
	sweepEvery = time.Minute
)

type producerSession struct {
	epoch   int16
	timeout time.Duration
	seen    time.Time
}

// producerSessions are the producers this agent issued.
type producerSessions struct {
	now func() time.Time

	mu        sync.Mutex
	sessions  map[int64]*producerSession
	lastSweep time.Time
}

func newProducerSessions(now func() time.Time) *producerSessions {
	return &producerSessions{now: now, sessions: make(map[int64]*producerSession), lastSweep: now()}
}

func (ps *producerSessions) add(id int64, epoch int16, timeout time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	if now.Sub(ps.lastSweep) >= sweepEvery {
		for id, sess := range ps.sessions {
			if now.Sub(sess.seen) > sess.timeout {
				delete(ps.sessions, id)
			}
		}
		ps.lastSweep = now
	}
	ps.sessions[id] = &producerSession{epoch: epoch, timeout: timeout, seen: now}
}

// check reports whether the producer is alive at epoch, and why not; a
// live one counts as seen now.
func (ps *producerSessions) check(id int64, epoch int16) (bool, string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	sess, ok := ps.sessions[id]
	now := ps.now()
	switch {
	case !ok:
		return false, fmt.Sprintf("producer %d is unknown to this agent: it was not issued here, or this agent restarted; call InitProducer", id)
	case now.Sub(sess.seen) > sess.timeout:
		delete(ps.sessions, id)
		return false, fmt.Sprintf("producer %d expired: silent for more than its timeout of %s; call InitProducer", id, sess.timeout)
	case sess.epoch != epoch:
		return false, fmt.Sprintf("producer %d has epoch %d, not %d", id, sess.epoch, epoch)
	}
	sess.seen = now
	return true, ""
}

// known reports whether this agent issued producer id (and has not yet
// swept it away).
func (ps *producerSessions) known(id int64) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, ok := ps.sessions[id]
	return ok
}

// touch keeps a live producer alive (a produce is as good as a heartbeat).
func (ps *producerSessions) touch(id int64, epoch int16) { ps.check(id, epoch) }

// InitProducer allocates a new producer ID with epoch 0 for idempotent
// ProduceBatch calls. timeout_ms (0: one minute, at most 15 minutes) is how
// long the producer may stay silent before Heartbeat calls it invalid;
// organization_id and metadata are accepted and not used (StreamHouse has
// no tenants). With a transactional_id it is the transaction
// coordinator's InitProducerId instead (txns.go), and timeout_ms is the
// transaction timeout (0: 60 s; above the server's maximum:
// InvalidArgument).
func (s *Server) InitProducer(ctx context.Context, req *pb.InitProducerRequest) (*pb.InitProducerResponse, error) {
	if req.GetTransactionalId() != "" {
		return forwardTxn(s, ctx, "InitProducer", req, s.initTxnProducer, pb.StreamHouseClient.InitProducer)
	}
	timeout := defaultProducerTimeout
	if req.GetTimeoutMs() > 0 {
		timeout = min(time.Duration(req.GetTimeoutMs())*time.Millisecond, maxProducerTimeout)
	}
	id, err := s.b.NextProducerID(ctx)
	if err != nil {
		return nil, s.toStatus("InitProducer", err)
	}
	s.producers.add(id, 0, timeout)
	return &pb.InitProducerResponse{ProducerId: strconv.FormatInt(id, 10), Epoch: 0}, nil
}

// Heartbeat reports whether the producer is alive: an idempotent producer
// when this agent knows it as alive (see above), a transactional one while
// it is not fenced and, with a transaction_id, while that transaction is
// open (txns.go). Bad input is InvalidArgument.
func (s *Server) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	id, err := producerIDArg(req.GetProducerId())
	if err != nil {
		return nil, err
	}
	epoch, err := epochArg(req.GetProducerEpoch())
	if err != nil {
		return nil, err
	}
	if req.GetTransactionId() == "" && s.producers.known(id) {
		valid, reason := s.producers.check(id, epoch)
		out := &pb.HeartbeatResponse{Valid: valid}
		if !valid {
			out.Error = &reason
		}
		return out, nil
	}
	if out, found, err := s.txnHeartbeat(ctx, id, epoch, req.GetTransactionId()); found || err != nil {
		return out, err
	}
	valid, reason := s.producers.check(id, epoch)
	out := &pb.HeartbeatResponse{Valid: valid}
	if !valid {
		out.Error = &reason
	}
	return out, nil
}
