package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// The transaction APIs on the wire: bad input and protocol errors, each
// changing nothing.

// txnWire is a raw connection with helpers for the transaction APIs.
type txnWire struct {
	*dpWire
	t *testing.T
}

func (s *testServer) txnDial(t *testing.T) txnWire { return txnWire{s.dpDial(t), t} }

func (w txnWire) initProducer(id string) (int64, int16) {
	w.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version, req.TransactionalID, req.TransactionTimeoutMillis = 4, kmsg.StringPtr(id), 60000
	resp := w.do(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		w.t.Fatalf("init producer id %s: %v", id, kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// addPartitions returns the error code of each "topic/partition".
func (w txnWire) addPartitions(version int16, id string, pid int64, epoch int16, topics map[string][]int32) map[string]int16 {
	w.t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = version, id, pid, epoch
	for topic, parts := range topics {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, parts
		req.Topics = append(req.Topics, rt)
	}
	out := make(map[string]int16)
	for _, rt := range w.do(req).(*kmsg.AddPartitionsToTxnResponse).Topics {
		for _, p := range rt.Partitions {
			out[rt.Topic+"/"+string(rune('0'+p.Partition))] = p.ErrorCode
		}
	}
	return out
}

func (w txnWire) endTxn(version int16, id string, pid int64, epoch int16, commit bool) int16 {
	w.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = version, id, pid, epoch, commit
	return w.do(req).(*kmsg.EndTxnResponse).ErrorCode
}

func (w txnWire) txnProduce(id, topic string, partition int32, pid int64, epoch int16, seq int32) kmsg.ProduceResponseTopicPartition {
	w.t.Helper()
	b := dpBatch(w.t, batch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: true})
	req := dpProduceReq(9, topic, partition, -1, b)
	req.TransactionID = kmsg.StringPtr(id)
	return w.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

func (w txnWire) writeMarker(topic string, partition int32, pid int64, epoch int16, commit bool, coordinatorEpoch ...int32) int16 {
	w.t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	if len(coordinatorEpoch) > 0 {
		m.CoordinatorEpoch = coordinatorEpoch[0]
	}
	m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: topic, Partitions: []int32{partition}}}
	req.Markers = append(req.Markers, m)
	return w.do(req).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
}

func (s *testServer) stable(t *testing.T, topic string, partition int32) (lso, hw int64) {
	t.Helper()
	_, lso, hw, err := s.broker.StableOffsets(context.Background(), topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	return lso, hw
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
	}
}

func TestTxnWireBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "known", 1, nil)
	w := s.txnDial(t)
	pid, epoch := w.initProducer("h")

	// All or none: an unknown topic or partition fails its partition and
	// leaves the others not attempted; nothing is added.
	codes := w.addPartitions(3, "h", pid, epoch, map[string][]int32{"known": {0, 7}, "missing": {0}})
	wantCode(t, "known/0", codes["known/0"], kerr.OperationNotAttempted.Code)
	wantCode(t, "known/7", codes["known/7"], kerr.UnknownTopicOrPartition.Code)
	wantCode(t, "missing/0", codes["missing/0"], kerr.UnknownTopicOrPartition.Code)
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{"h", "never"}
	dresp := w.do(dreq).(*kmsg.DescribeTransactionsResponse)
	if st := dresp.TransactionStates[0]; st.ErrorCode != 0 || st.State != "Empty" || len(st.Topics) != 0 || st.ProducerID != pid {
		t.Errorf("after a failed add: %+v, want Empty with no partitions", st)
	}
	wantCode(t, "describe an unknown id", dresp.TransactionStates[1].ErrorCode, kerr.TransactionalIDNotFound.Code)

	// A transactional batch for a partition never added changes nothing.
	p := w.txnProduce("h", "known", 0, pid, epoch, 0)
	wantCode(t, "produce outside the transaction", p.ErrorCode, kerr.InvalidTxnState.Code)
	if _, hw := s.stable(t, "known", 0); hw != 0 {
		t.Errorf("high watermark %d after a refused produce", hw)
	}
	// Transactional records without a transactional id.
	req := dpProduceReq(9, "known", 0, -1, dpBatch(t, batch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0, Transactional: true}))
	wantCode(t, "no transactional id", w.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode, kerr.TransactionalIDAuthorizationFailed.Code)

	// EndTxn with no transaction open.
	wantCode(t, "end with no transaction", w.endTxn(3, "h", pid, epoch, true), kerr.InvalidTxnState.Code)

	// The old epoch after a bump: PRODUCER_FENCED from the version that
	// knows it, INVALID_PRODUCER_EPOCH before.
	pid2, epoch2 := w.initProducer("h")
	if pid2 != pid || epoch2 != epoch+1 {
		t.Fatalf("second init: producer %d epoch %d, want %d epoch %d", pid2, epoch2, pid, epoch+1)
	}
	wantCode(t, "old epoch v3", w.addPartitions(3, "h", pid, epoch, map[string][]int32{"known": {0}})["known/0"], kerr.ProducerFenced.Code)
	wantCode(t, "old epoch v1", w.addPartitions(1, "h", pid, epoch, map[string][]int32{"known": {0}})["known/0"], kerr.InvalidProducerEpoch.Code)
	wantCode(t, "end with old epoch v1", w.endTxn(1, "h", pid, epoch, true), kerr.InvalidProducerEpoch.Code)
	wantCode(t, "empty id", w.addPartitions(3, "", pid, epoch2, map[string][]int32{"known": {0}})["known/0"], kerr.InvalidRequest.Code)

	// FindCoordinator key type 1: this agent, the only one.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorType, fc.CoordinatorKeys = 4, 1, []string{"h", ""}
	fr := w.do(fc).(*kmsg.FindCoordinatorResponse)
	if c := fr.Coordinators[0]; c.ErrorCode != 0 || c.NodeID != s.srv.nodeID {
		t.Errorf("find transaction coordinator: %+v", c)
	}
	wantCode(t, "find coordinator of an empty id", fr.Coordinators[1].ErrorCode, kerr.InvalidRequest.Code)
}

func TestTxnWireMarkersAndAdmin(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "wm", 2, nil)
	w := s.txnDial(t)
	pid, epoch := w.initProducer("w")
	if codes := w.addPartitions(3, "w", pid, epoch, map[string][]int32{"wm": {0}}); codes["wm/0"] != 0 {
		t.Fatalf("add partitions: %v", kerr.ErrorForCode(codes["wm/0"]))
	}
	if p := w.txnProduce("w", "wm", 0, pid, epoch, 0); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("transactional produce: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	wantCode(t, "produce to a partition not added", w.txnProduce("w", "wm", 1, pid, epoch, 0).ErrorCode, kerr.InvalidTxnState.Code)

	// Markers for an undecided transaction, or for no transaction, change
	// nothing.
	wantCode(t, "commit marker of an ongoing transaction", w.writeMarker("wm", 0, pid, epoch, true), kerr.InvalidTxnState.Code)
	wantCode(t, "abort marker of an ongoing transaction", w.writeMarker("wm", 0, pid, epoch, false), kerr.InvalidTxnState.Code)
	wantCode(t, "marker of another producer", w.writeMarker("wm", 0, pid+100, 0, true), kerr.InvalidTxnState.Code)
	wantCode(t, "marker for an unknown topic", w.writeMarker("nope", 0, pid, epoch, true), kerr.UnknownTopicOrPartition.Code)
	if lso, hw := s.stable(t, "wm", 0); lso != 0 || hw != 1 {
		t.Fatalf("after refused markers: lso %d hw %d, want 0 and 1", lso, hw)
	}

	// The admin APIs see the open transaction.
	dp := kmsg.NewPtrDescribeProducersRequest()
	dp.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "wm", Partitions: []int32{0, 1}}}
	dpr := w.do(dp).(*kmsg.DescribeProducersResponse).Topics[0].Partitions
	if len(dpr) != 2 || dpr[0].ErrorCode != 0 || len(dpr[0].ActiveProducers) != 1 {
		t.Fatalf("describe producers: %+v", dpr)
	}
	if ap := dpr[0].ActiveProducers[0]; ap.ProducerID != pid || ap.ProducerEpoch != int32(epoch) || ap.LastSequence != 0 || ap.CurrentTxnStartOffset != 0 {
		t.Errorf("active producer %+v, want producer %d epoch %d, last sequence 0, transaction from 0", ap, pid, epoch)
	}
	if len(dpr[1].ActiveProducers) != 0 {
		t.Errorf("partition 1 has producers %+v after a refused produce", dpr[1].ActiveProducers)
	}
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"w"}
	st := w.do(dt).(*kmsg.DescribeTransactionsResponse).TransactionStates[0]
	if st.ErrorCode != 0 || st.State != "Ongoing" || st.StartTimestamp <= 0 || st.TimeoutMillis != 60000 ||
		len(st.Topics) != 1 || st.Topics[0].Topic != "wm" || len(st.Topics[0].Partitions) != 1 {
		t.Errorf("describe transactions: %+v", st)
	}
	list := func(version int16, states []string, pattern *string) *kmsg.ListTransactionsResponse {
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version, req.StateFilters, req.TransactionalIDPattern = version, states, pattern
		return w.do(req).(*kmsg.ListTransactionsResponse)
	}
	if r := list(0, []string{"Ongoing"}, nil); r.ErrorCode != 0 || len(r.TransactionStates) != 1 || r.TransactionStates[0].TransactionalID != "w" {
		t.Errorf("list ongoing: %+v", r)
	}
	if r := list(0, []string{"CompleteCommit"}, nil); len(r.TransactionStates) != 0 {
		t.Errorf("list complete: %+v", r.TransactionStates)
	}
	if r := list(0, []string{"Bogus"}, nil); len(r.TransactionStates) != 0 || len(r.UnknownStateFilters) != 1 {
		t.Errorf("list an unknown state: %+v", r)
	}
	if r := list(2, nil, kmsg.StringPtr("w|x")); len(r.TransactionStates) != 1 {
		t.Errorf("list matching w|x: %+v", r)
	}
	if r := list(2, nil, kmsg.StringPtr("x.*")); len(r.TransactionStates) != 0 {
		t.Errorf("list matching x.*: %+v", r)
	}
	wantCode(t, "list with a bad pattern", list(2, nil, kmsg.StringPtr("(")).ErrorCode, kerr.InvalidRegularExpression.Code)

	// Commit: the coordinator writes the marker at offset 1; a repeated
	// marker for the decided transaction writes nothing more.
	wantCode(t, "end txn", w.endTxn(3, "w", pid, epoch, true), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor(t, ctx, "the commit marker", func() bool { lso, _ := s.stable(t, "wm", 0); return lso == 2 })
	fence, err := s.broker.TxnFence(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "repeated commit marker", w.writeMarker("wm", 0, pid, epoch, true, fence.Epoch), 0)
	wantCode(t, "marker from an older coordinator epoch", w.writeMarker("wm", 0, pid, epoch, true, fence.Epoch-1), kerr.TransactionCoordinatorFenced.Code)
	wantCode(t, "abort marker of a committed transaction", w.writeMarker("wm", 0, pid, epoch, false, fence.Epoch), kerr.InvalidTxnState.Code)
	if lso, hw := s.stable(t, "wm", 0); lso != 2 || hw != 2 {
		t.Fatalf("after the repeated marker: lso %d hw %d, want 2 and 2", lso, hw)
	}
}

func TestTxnWireOffsetCommit(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "src", 1, nil)
	w := s.txnDial(t)
	pid, epoch := w.initProducer("o")
	var member string
	var generation int32 = -1
	commit := func(version int16, id string, pid int64, epoch int16, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version, req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = version, id, "g", pid, epoch
		req.MemberID, req.Generation = member, generation
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "src"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return w.do(req).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	fetch := func(requireStable bool) (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.Group, req.RequireStable = 7, "g", requireStable
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "src", Partitions: []int32{0}}}
		p := w.do(req).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	addOffsets := func() {
		t.Helper()
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = 3, "o", pid, epoch, "g"
		wantCode(t, "add offsets", w.do(req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode, 0)
	}

	wantCode(t, "offsets before AddOffsetsToTxn", commit(3, "o", pid, epoch, 5), kerr.InvalidTxnState.Code)
	wantCode(t, "offsets of an unknown transactional id", commit(3, "nope", pid, epoch, 5), kerr.InvalidProducerIDMapping.Code)
	addOffsets()
	wantCode(t, "offsets with another epoch v3", commit(3, "o", pid, epoch+1, 5), kerr.ProducerFenced.Code)
	wantCode(t, "offsets with another epoch v2", commit(2, "o", pid, epoch+1, 5), kerr.InvalidProducerEpoch.Code)
	// KIP-447: a generation or member the group does not have (a zombie
	// consumer's) is refused and stores nothing.
	generation = 3
	wantCode(t, "offsets of a generation the group never had", commit(3, "o", pid, epoch, 5), kerr.IllegalGeneration.Code)
	member = "ghost"
	wantCode(t, "offsets of an unknown member", commit(3, "o", pid, epoch, 5), kerr.IllegalGeneration.Code)
	if off, code := fetch(true); code != 0 || off != -1 {
		t.Errorf("after refused commits: %d, %v; want -1 and nothing pending", off, kerr.ErrorForCode(code))
	}
	member, generation = "", -1
	wantCode(t, "offsets", commit(3, "o", pid, epoch, 5), 0)
	if off, code := fetch(true); code != kerr.UnstableOffsetCommit.Code || off != -1 {
		t.Errorf("require_stable fetch with pending offsets: %d, %v", off, kerr.ErrorForCode(code))
	}
	if off, code := fetch(false); code != 0 || off != -1 {
		t.Errorf("fetch with pending offsets: %d, %v; want -1 (none committed)", off, kerr.ErrorForCode(code))
	}
	wantCode(t, "commit", w.endTxn(3, "o", pid, epoch, true), 0)
	if off, code := fetch(true); code != 0 || off != 5 {
		t.Errorf("after the commit: %d, %v; want 5", off, kerr.ErrorForCode(code))
	}

	// An aborted transaction's offsets are dropped. The next transaction
	// may have to wait for the previous one's markers: retry
	// CONCURRENT_TRANSACTIONS.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor(t, ctx, "the next transaction to open", func() bool {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = 3, "o", pid, epoch, "g"
		code := w.do(req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode
		if code != 0 && code != kerr.ConcurrentTransactions.Code {
			t.Fatalf("add offsets: %v", kerr.ErrorForCode(code))
		}
		return code == 0
	})
	wantCode(t, "offsets", commit(3, "o", pid, epoch, 9), 0)
	wantCode(t, "abort", w.endTxn(3, "o", pid, epoch, false), 0)
	if off, code := fetch(true); code != 0 || off != 5 {
		t.Errorf("after the abort: %d, %v; want 5", off, kerr.ErrorForCode(code))
	}
}

// The coordinator's and the store's outcomes map to the codes Kafka
// answers, by version where Kafka's answer changed.
func TestTxnErrorCodes(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	meta := fmt.Errorf("put txn: %w: connection refused", metadata.ErrUnavailable)
	for _, tc := range []struct {
		name string
		got  int16
		want *kerr.Error
	}{
		{"store down", s.txnCode(meta, 3, 2, "x"), kerr.CoordinatorNotAvailable},
		{"slot not led", s.txnCode(fmt.Errorf("txn: %w", broker.ErrNotCoordinator), 3, 2, "x"), kerr.NotCoordinator},
		{"fenced, new version", s.txnCode(fmt.Errorf("add: %w", metadata.ErrTxnFenced), 3, 3, "x"), kerr.ProducerFenced},
		{"fenced, old version", s.txnCode(fmt.Errorf("add: %w", metadata.ErrTxnFenced), 2, 3, "x"), kerr.InvalidProducerEpoch},
		{"coordinator's fenced, old version", s.txnCode(kerr.ProducerFenced, 1, 2, "x"), kerr.InvalidProducerEpoch},
		{"state", s.txnCode(fmt.Errorf("add: %w", metadata.ErrTxnState), 3, 3, "x"), kerr.InvalidTxnState},
		{"not found", s.txnCode(fmt.Errorf("add: %w", metadata.ErrTxnNotFound), 3, 3, "x"), kerr.InvalidProducerIDMapping},
		{"concurrent", s.txnCode(fmt.Errorf("end: %w", kerr.ConcurrentTransactions), 3, 2, "x"), kerr.ConcurrentTransactions},
		{"log: txn state", s.codeFor(fmt.Errorf("append: %w", broker.ErrInvalidTxnState), "produce"), kerr.InvalidTxnState},
		{"log: epoch", s.codeFor(fmt.Errorf("append: %w", broker.ErrInvalidProducerEpoch), "produce"), kerr.InvalidProducerEpoch},
		{"log: coordinator fenced", s.codeFor(fmt.Errorf("marker: %w", broker.ErrCoordinatorFenced), "write txn markers"), kerr.TransactionCoordinatorFenced},
		{"no coordinator", s.txnCode(errNoTxnCoordinator, 3, 2, "x"), kerr.CoordinatorNotAvailable},
		// Implicit adds (transactions V2) answer in the terms of the
		// request that caused them.
		{"implicit add: busy", s.implicitAddCode(fmt.Errorf("add: %w", kerr.ConcurrentTransactions), kerr.NotEnoughReplicas.Code, 12, math.MaxInt16, "x"), kerr.NotEnoughReplicas},
		{"implicit add: moved", s.implicitAddCode(fmt.Errorf("add: %w", broker.ErrNotCoordinator), kerr.CoordinatorLoadInProgress.Code, 5, 3, "x"), kerr.CoordinatorLoadInProgress},
		{"implicit add: store down", s.implicitAddCode(meta, kerr.NotEnoughReplicas.Code, 12, math.MaxInt16, "x"), kerr.NotEnoughReplicas},
		{"implicit add: fenced, produce", s.implicitAddCode(kerr.ProducerFenced, kerr.NotEnoughReplicas.Code, 12, math.MaxInt16, "x"), kerr.InvalidProducerEpoch},
		{"implicit add: fenced, offsets", s.implicitAddCode(kerr.ProducerFenced, kerr.CoordinatorLoadInProgress.Code, 5, 3, "x"), kerr.ProducerFenced},
		{"implicit add: state", s.implicitAddCode(kerr.InvalidTxnState, kerr.NotEnoughReplicas.Code, 12, math.MaxInt16, "x"), kerr.InvalidTxnState},
	} {
		if tc.got != tc.want.Code {
			t.Errorf("%s: %v, want %v", tc.name, kerr.ErrorForCode(tc.got), tc.want)
		}
	}
}

// Transactions V2 on the wire (KIP-890 part 2): Produce v12 adds its
// partition to the producer's transaction at the leader, TxnOffsetCommit
// v5 adds the group, EndTxn v5 answers the bumped epoch, and the ended
// transaction's epoch is fenced everywhere.
func TestTxnWireV2(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "v2", 2, nil)
	s.dpTopic(t, "v2src", 1, nil)
	w := s.txnDial(t)
	pid, epoch := w.initProducer("v2-tx")
	produce := func(version int16, partition int32, pid int64, epoch int16, seq int32) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		b := dpBatch(t, batch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: true})
		req := dpProduceReq(version, "v2", partition, -1, b)
		req.TransactionID = kmsg.StringPtr("v2-tx")
		return w.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	end := func(id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
		t.Helper()
		req := kmsg.NewPtrEndTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = 5, id, pid, epoch, commit
		return w.do(req).(*kmsg.EndTxnResponse)
	}
	offsets := func(pid int64, epoch int16, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version, req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = 5, "v2-tx", "v2g", pid, epoch
		req.Generation = -1
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "v2src", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}
		return w.do(req).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}

	// Produce v11 keeps the original protocol: no add, no write.
	wantCode(t, "v11 produce without AddPartitionsToTxn", produce(11, 0, pid, epoch, 0).ErrorCode, kerr.InvalidTxnState.Code)
	// v12 adds the partition itself, on both partitions.
	wantCode(t, "v12 produce p0", produce(12, 0, pid, epoch, 0).ErrorCode, 0)
	wantCode(t, "v12 produce p1", produce(12, 1, pid, epoch, 0).ErrorCode, 0)
	wantCode(t, "v12 produce p0 again", produce(12, 0, pid, epoch, 1).ErrorCode, 0)
	wantCode(t, "TxnOffsetCommit v5 without AddOffsetsToTxn", offsets(pid, epoch, 7), 0)
	if st, _, err := s.store.GetTxn(context.Background(), "v2-tx"); err != nil || st.State != metadata.TxnOngoing || len(st.Partitions) != 2 || len(st.Groups) != 1 {
		t.Fatalf("after implicit adds: %+v, %v", st, err)
	}
	resp := end("v2-tx", pid, epoch, true)
	if resp.ErrorCode != 0 || resp.ProducerID != pid || resp.ProducerEpoch != epoch+1 {
		t.Fatalf("EndTxn v5: %v, producer %d/%d; want %d/%d", kerr.ErrorForCode(resp.ErrorCode), resp.ProducerID, resp.ProducerEpoch, pid, epoch+1)
	}
	waitFor(t, t.Context(), "the commit markers", func() bool {
		lso0, hw0 := s.stable(t, "v2", 0)
		lso1, hw1 := s.stable(t, "v2", 1)
		return lso0 == 3 && hw0 == 3 && lso1 == 2 && hw1 == 2
	})
	// The ended transaction's epoch: a late write is fenced at the
	// partition (the marker carried the bumped epoch), and a late offset
	// commit at the coordinator.
	wantCode(t, "late write at the ended epoch", produce(12, 0, pid, epoch, 2).ErrorCode, kerr.InvalidProducerEpoch.Code)
	wantCode(t, "late offsets at the ended epoch", offsets(pid, epoch, 9), kerr.ProducerFenced.Code)
	// A lost answer's retry gets the same producer; an empty abort bumps.
	if r := end("v2-tx", pid, epoch, true); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
		t.Errorf("retried EndTxn v5: %v, epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
	}
	if r := end("v2-tx", pid, epoch+1, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+2 {
		t.Errorf("empty abort: %v, epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
	}
	if r := end("v2-tx", pid, epoch+2, true); r.ErrorCode != kerr.InvalidTxnState.Code || r.ProducerID != -1 {
		t.Errorf("empty commit: %v, producer %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID)
	}
	// A producer from a fenced epoch adding by producing: INVALID_PRODUCER_EPOCH
	// (Produce has no PRODUCER_FENCED), and nothing is stored.
	wantCode(t, "produce at a fenced epoch", produce(12, 1, pid, epoch+1, 0).ErrorCode, kerr.InvalidProducerEpoch.Code)
	if _, hw := s.stable(t, "v2", 1); hw != 2 {
		t.Errorf("partition 1 after the fenced write: HWM %d, want 2", hw)
	}
	// The committed offsets are the group's.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = 7, "v2g"
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "v2src", Partitions: []int32{0}}}
	if p := w.do(req).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 7 {
		t.Errorf("group offset after the V2 commit: %d, %v; want 7", p.Offset, kerr.ErrorForCode(p.ErrorCode))
	}
}
