package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// Shared by the transaction APIs (22, 24-28, 61, 65, 66). The coordinator
// is internal/txn; it runs the transactional IDs whose coordinator slot
// (the same slots as consumer groups) this agent leads, and answers with
// kerr errors for protocol outcomes, errors wrapping
// broker.ErrNotCoordinator when the ID's slot is not led here, and errors
// wrapping metadata.ErrUnavailable when the store cannot be reached.

// maxTransactionalIDLen bounds a transactional ID (Kafka has no bound; the
// metadata store keeps it, and a consumer group ID is bounded the same).
const maxTransactionalIDLen = 255

// errNoTxnCoordinator is the answer of a server built without one.
var errNoTxnCoordinator = fmt.Errorf("no transaction coordinator: %w", kerr.CoordinatorNotAvailable)

// coordinator returns the transaction coordinator, or an error when the
// server has none.
func (s *Server) coordinator() (*txn.Coordinator, error) {
	if s.txn == nil {
		return nil, errNoTxnCoordinator
	}
	return s.txn, nil
}

// checkTransactionalID is INVALID_REQUEST for an empty or oversized ID.
func checkTransactionalID(id string) int16 {
	if id == "" || len(id) > maxTransactionalIDLen {
		return kerr.InvalidRequest.Code
	}
	return 0
}

// txnCode maps a coordinator error to the Kafka code of a transaction API
// of the given version; fencedSince is the first version of the API that
// knows PRODUCER_FENCED (KIP-588): older versions get
// INVALID_PRODUCER_EPOCH, as Kafka answers them.
func (s *Server) txnCode(err error, version, fencedSince int16, what string) int16 {
	if err == nil {
		return 0
	}
	code := errorCode(err)
	switch {
	case errors.Is(err, broker.ErrNotCoordinator):
		code = kerr.NotCoordinator.Code
	case errors.Is(err, metadata.ErrTxnFenced):
		code = kerr.ProducerFenced.Code
	case errors.Is(err, metadata.ErrTxnState):
		code = kerr.InvalidTxnState.Code
	case errors.Is(err, metadata.ErrTxnNotFound):
		code = kerr.InvalidProducerIDMapping.Code
	case code == kerr.RequestTimedOut.Code || broker.IsUnavailable(err):
		// A store too slow or down: clients' transaction handlers retry
		// COORDINATOR_NOT_AVAILABLE, and the Java client treats
		// REQUEST_TIMED_OUT there as fatal.
		code = kerr.CoordinatorNotAvailable.Code
	}
	if code == kerr.ProducerFenced.Code && version < fencedSince {
		code = kerr.InvalidProducerEpoch.Code
	}
	switch {
	case code == kerr.UnknownServerError.Code && !errors.Is(err, context.Canceled):
		s.log.Warn("kafka "+what+" failed", "err", err)
	case code == kerr.CoordinatorNotAvailable.Code:
		s.log.Debug("kafka "+what+": coordinator not available", "err", err)
	}
	return code
}

// implicitAddCode maps an error of a transactions V2 implicit add
// (txn.Coordinator.AddImplicitly) to the Kafka code of the request that
// caused it, which is not a transaction coordinator API: a coordinator
// that is busy (CONCURRENT_TRANSACTIONS while the last transaction's
// markers are written), moving or unreachable becomes retry, the
// request's own retriable code (NOT_ENOUGH_REPLICAS for Produce, as Kafka
// answers it, COORDINATOR_LOAD_IN_PROGRESS for TxnOffsetCommit); a fenced
// producer is INVALID_PRODUCER_EPOCH where the API predates
// PRODUCER_FENCED (version < fencedSince); other refusals pass unchanged.
func (s *Server) implicitAddCode(err error, retry, version, fencedSince int16, what string) int16 {
	code := s.txnCode(err, version, fencedSince, what)
	switch code {
	case kerr.ConcurrentTransactions.Code, kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code:
		return retry
	}
	return code
}
