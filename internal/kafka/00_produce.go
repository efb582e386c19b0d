package kafka

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Produce, key 0.
//
// Versions 3-13. v3 is the first with RecordBatch v2 (the only format
// stored) and TransactionalID; v5 LogStartOffset; v8 per-partition
// ErrorMessage; v9 flexible; v10 CurrentLeader and broker endpoints on
// NOT_LEADER_OR_FOLLOWER (KIP-951); v12 nothing for non-transactional
// producers; v13 topics named by ID (KIP-516), UNKNOWN_TOPIC_ID when the ID
// is not known.
//
// Acks 0, 1 and -1 are the log's AckNone, AckBuffered and AckDurable; any
// other value is INVALID_REQUIRED_ACKS. With acks=0 no response is sent,
// and, as Kafka does, the connection is closed when a partition failed, so
// the client notices and refreshes its metadata. TimeoutMillis bounds the
// durable wait (REQUEST_TIMED_OUT; the data may still be committed, and an
// idempotent retry is then answered as a duplicate); when it is not
// positive, defaultProduceTimeout applies. A request's partitions are all
// appended (offsets assigned, data buffered) before any durable wait, so
// their waits overlap and usually share one object upload; pipelined
// requests of one connection append in arrival order (see orderSlot).
//
// Checks, as Kafka's broker makes them, each failing only its partition:
//   - exactly one RecordBatch v2 per partition: none, several, or another
//     magic is INVALID_RECORD (ProduceRequest.validateRecords); bytes that
//     do not frame as batches are CORRUPT_MESSAGE;
//   - control batches from clients are INVALID_RECORD;
//   - CRC, sizes (max.message.bytes: MESSAGE_TOO_LARGE), record framing
//     and idempotent sequences are checked by the log, nothing of a failed
//     batch is stored; a compressed batch is decompressed and each record
//     checked: data that does not decompress is CORRUPT_MESSAGE, records
//     that do not add up INVALID_RECORD, and records decompressing past 32
//     times max.message.bytes (at most 64 MiB) MESSAGE_TOO_LARGE;
//   - with message.timestamp.type=CreateTime, a record timestamp outside
//     [now - message.timestamp.before.max.ms, now +
//     message.timestamp.after.max.ms] is INVALID_TIMESTAMP (KIP-937);
//   - a topic-partition named twice in one request is INVALID_REQUEST for
//     every copy, since the order of the two appends would be arbitrary.
//
// Transactional batches (KIP-98) go to the log like any other; the log
// asks the transaction coordinator whether the producer's transaction is
// open and includes the partition before it stores the first batch of a
// transaction there (partlog.VerifyTxnFunc), so a batch the coordinator
// did not admit is INVALID_TXN_STATE, and one from an older epoch than the
// producer's INVALID_PRODUCER_EPOCH; nothing of either is stored. A
// request with transactional batches but no TransactionalID is answered
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition, as Kafka
// answers it.
//
// A resent batch of an idempotent producer (same producer, epoch and
// sequences as one of its last five) is answered with no error and the
// offsets of the original, as Kafka has done since 1.1
// (DUPLICATE_SEQUENCE_NUMBER is no longer sent).
//
// Authorization (with AUTH_ENABLED): WRITE on each topic, else
// TOPIC_AUTHORIZATION_FAILED for its partitions whether it exists or not;
// a transactional request also WRITE on its transactional id, else
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition. An idempotent
// producer needs nothing more (Kafka 3.0+).
//
// Unknown topics are UNKNOWN_TOPIC_OR_PARTITION, or created first when
// the principal may CREATE them (on the cluster or the topic) and
// cfg.AutoCreateTopics is on (Kafka creates them on the Metadata request a
// producer sends first; doing it here too serves clients that skip it).

const produceKey = 0

// defaultProduceTimeout bounds a durable produce whose request carries no
// usable timeout.
const defaultProduceTimeout = 30 * time.Second

func init() { register(produceKey, 3, 13, handleProduce) }

// produceJob is one partition's append.
type produceJob struct {
	out     *kmsg.ProduceResponseTopicPartition
	topic   string
	topicID metadata.TopicID
	records []byte
	pending *broker.Appending
	err     error
	res     broker.AppendResult
}

func handleProduce(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	resp.ThrottleMillis = produceThrottle(ctx) // client quotas (quotas.go)

	// The response mirrors the request's topics and partitions.
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	type tpKey struct {
		topic string
		id    [16]byte
		part  int32
	}
	count := make(map[tpKey]int)
	for i, rt := range req.Topics {
		out := &resp.Topics[i]
		*out = kmsg.NewProduceResponseTopic()
		out.Topic, out.TopicID = rt.Topic, rt.TopicID
		out.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			out.Partitions[j] = kmsg.NewProduceResponseTopicPartition()
			out.Partitions[j].Partition = rp.Partition
			out.Partitions[j].BaseOffset = -1
			count[tpKey{rt.Topic, rt.TopicID, rp.Partition}]++
		}
	}
	failed := false
	fail := func(p *kmsg.ProduceResponseTopicPartition, code int16, msg string) {
		failed = true
		p.ErrorCode = code
		if req.Version >= 8 && msg != "" {
			p.ErrorMessage = &msg
		}
	}
	failAll := func(code int16, msg string) (kmsg.Response, error) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				fail(&resp.Topics[i].Partitions[j], code, msg)
			}
		}
		return produceAnswer(req, resp, true)
	}

	var mode broker.AckMode
	switch req.Acks {
	case 0:
		mode = broker.AckNone
	case 1:
		mode = broker.AckBuffered
	case -1:
		mode = broker.AckDurable
	default:
		return failAll(kerr.InvalidRequiredAcks.Code, "acks must be -1, 0 or 1")
	}
	if req.TransactionID != nil && *req.TransactionID != "" && !c.allowed(ctx, acl.OpWrite, acl.TransactionalID(*req.TransactionID)) {
		return failAll(kerr.TransactionalIDAuthorizationFailed.Code, "not authorized to WRITE transactional id "+*req.TransactionID)
	}
	if req.TransactionID == nil || *req.TransactionID == "" {
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				if h, err := batch.ParseHeader(rp.Records); err == nil && h.IsTransactional() {
					return failAll(kerr.TransactionalIDAuthorizationFailed.Code, "transactional records without a transactional id")
				}
			}
		}
	}

	var jobs []*produceJob
	for i, rt := range req.Topics {
		out := &resp.Topics[i]
		t, code, msg := c.produceTopic(ctx, req.Version, rt)
		for j, rp := range rt.Partitions {
			p := &out.Partitions[j]
			switch {
			case code != 0:
				fail(p, code, msg)
			case count[tpKey{rt.Topic, rt.TopicID, rp.Partition}] > 1:
				fail(p, kerr.InvalidRequest.Code, "partition named more than once in the request")
			case rp.Partition < 0 || rp.Partition >= t.Partitions:
				fail(p, kerr.UnknownTopicOrPartition.Code, "no such partition")
			default:
				if code, msg := checkProduceRecords(rp.Records); code != 0 {
					fail(p, code, msg)
					continue
				}
				jobs = append(jobs, &produceJob{out: p, topic: t.Name, topicID: t.ID, records: rp.Records})
			}
		}
	}

	actx := ctx
	// acks=all waits for the commit, acks=1 (with the WAL on) for its
	// fsync and for WAL space: both within the request's timeout.
	if mode == broker.AckDurable || mode == broker.AckBuffered {
		timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
		if timeout <= 0 {
			timeout = defaultProduceTimeout
		}
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if req.Version >= 12 && req.TransactionID != nil && *req.TransactionID != "" {
		jobs = s.addToTxn(actx, req.Version, *req.TransactionID, jobs, fail)
	}
	// Offsets are assigned in the connection's arrival order; the waits
	// for durability then overlap, with each other and with the next
	// requests' appends.
	slot := orderSlotFrom(ctx)
	if err := slot.wait(actx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the connection is closing
		}
		for _, j := range jobs {
			j.err = err // timed out behind the previous request
		}
	} else {
		for _, j := range jobs {
			j.pending, j.err = s.broker.ProduceAsync(actx, j.topic, j.out.Partition, j.records, mode)
		}
	}
	slot.release()
	for _, j := range jobs {
		if j.err == nil {
			j.res, j.err = j.pending.Wait(actx)
		}
	}

	var hints *leaderHints
	var given []leaderHint
	for _, j := range jobs {
		p := j.out
		if j.err != nil {
			code := s.codeFor(j.err, "produce")
			fail(p, code, j.err.Error())
			if code == kerr.NotLeaderForPartition.Code && req.Version >= 10 {
				if hints == nil {
					hints = s.newLeaderHints()
				}
				h := hints.get(ctx, j.topic, p.Partition)
				p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = h.node, h.epoch
				given = append(given, h)
			}
			continue
		}
		p.BaseOffset = j.res.BaseOffset
		p.LogAppendTime = j.res.LogAppendTime
		p.LogStartOffset = j.res.LogStartOffset
	}
	for _, b := range endpoints(given) {
		rb := kmsg.NewProduceResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = b.node, b.host, b.port, b.rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	return produceAnswer(req, resp, failed)
}

// addToTxn is the implicit add of transactions V2 (Produce v12 and later,
// KIP-890 part 2): the client sends no AddPartitionsToTxn, so the
// partitions of jobs led here whose producer has no transaction open at
// the batch's epoch are added to the producer's transaction (opening it)
// at its coordinator, in one call per producer, before anything is
// appended; the log then verifies the transaction as for every
// transactional batch. The jobs of partitions that could not be added fail
// (a busy, moving or unreachable coordinator with the retriable
// NOT_ENOUGH_REPLICAS, as Kafka answers it; a fenced producer with
// INVALID_PRODUCER_EPOCH) and are left out of the jobs returned. A
// partition stays in the transaction even if its append then fails, as in
// Kafka: the transaction's end writes a marker there, which is a no-op
// where nothing was written.
func (s *Server) addToTxn(ctx context.Context, version int16, id string, jobs []*produceJob, fail func(*kmsg.ProduceResponseTopicPartition, int16, string)) []*produceJob {
	type producer struct {
		id    int64
		epoch int16
	}
	var need map[producer][]*produceJob
	for _, j := range jobs {
		h, err := batch.ParseHeader(j.records)
		if err != nil || !h.IsTransactional() || h.ProducerID < 0 {
			continue
		}
		tp := metadata.TopicPartition{TopicID: j.topicID, Partition: j.out.Partition}
		if !s.broker.Leads(tp) || s.broker.TxnOpen(j.topicID, j.out.Partition, h.ProducerID, h.ProducerEpoch) {
			continue // appended as usual: NOT_LEADER_OR_FOLLOWER, or joins the open transaction
		}
		if need == nil {
			need = make(map[producer][]*produceJob)
		}
		k := producer{h.ProducerID, h.ProducerEpoch}
		need[k] = append(need[k], j)
	}
	if need == nil {
		return jobs
	}
	co, coErr := s.coordinator()
	failed := make(map[*produceJob]bool)
	for k, js := range need {
		parts := make([]metadata.TxnPartition, len(js))
		for i, j := range js {
			parts[i] = metadata.TxnPartition{TopicID: j.topicID, Topic: j.topic, Partition: j.out.Partition}
		}
		err := coErr
		if err == nil {
			err = co.AddImplicitly(ctx, id, k.id, k.epoch, parts, "")
		}
		if err == nil {
			continue
		}
		// Produce has no PRODUCER_FENCED: INVALID_PRODUCER_EPOCH.
		code := s.implicitAddCode(err, kerr.NotEnoughReplicas.Code, version, math.MaxInt16, "produce: add partitions to the transaction")
		for _, j := range js {
			fail(j.out, code, err.Error())
			failed[j] = true
		}
	}
	if len(failed) == 0 {
		return jobs
	}
	kept := make([]*produceJob, 0, len(jobs)-len(failed))
	for _, j := range jobs {
		if !failed[j] {
			kept = append(kept, j)
		}
	}
	return kept
}

// Arrival order. A producer pipelines requests on one connection (kgo, the
// Java client and librdkafka up to 5) and relies on them being appended in
// the order sent: an idempotent producer's sequence numbers must arrive in
// order, and a plain producer's records would otherwise be reordered. Kafka
// serves one request of a connection at a time. Here the connection hands
// each produce request an orderSlot chained to the previous one: the
// handler assigns offsets (quick: validation and buffering) only after the
// previous produce request of the connection has, then releases its slot
// and waits for durability, so the durable waits of pipelined requests
// overlap. The connection releases a slot whose handler did not (an early
// error), so the chain never stalls.

// orderSlot is one produce request's place in its connection's order.
type orderSlot struct {
	prev <-chan struct{} // closed when the previous request released; nil if none
	done chan struct{}
	once sync.Once
}

type orderSlotKey struct{}

// newOrderSlot follows the slot whose done channel is prev (nil: first).
func newOrderSlot(prev <-chan struct{}) *orderSlot {
	return &orderSlot{prev: prev, done: make(chan struct{})}
}

func withOrderSlot(ctx context.Context, s *orderSlot) context.Context {
	return context.WithValue(ctx, orderSlotKey{}, s)
}

// orderSlotFrom returns the request's slot, or nil when the caller keeps
// no order (then wait and release do nothing).
func orderSlotFrom(ctx context.Context) *orderSlot {
	s, _ := ctx.Value(orderSlotKey{}).(*orderSlot)
	return s
}

// wait waits until the previous request of the connection has appended.
func (s *orderSlot) wait(ctx context.Context) error {
	if s == nil || s.prev == nil {
		return nil
	}
	select {
	case <-s.prev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release lets the next request of the connection append. Idempotent.
func (s *orderSlot) release() {
	if s != nil {
		s.once.Do(func() { close(s.done) })
	}
}

// produceAnswer returns the response, or for acks=0 nothing (and an error
// closing the connection when a partition failed, as Kafka does).
func produceAnswer(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, failed bool) (kmsg.Response, error) {
	if req.Acks != 0 {
		return resp, nil
	}
	if failed {
		return nil, errors.New("acks=0 produce failed; closing the connection so the client refreshes its metadata")
	}
	return nil, nil
}

// produceTopic resolves a request topic the principal may WRITE, creating
// it when allowed (auto-creation needs CREATE on the cluster or the topic).
func (c *conn) produceTopic(ctx context.Context, version int16, rt kmsg.ProduceRequestTopic) (metadata.Topic, int16, string) {
	s := c.s
	if version >= 13 {
		t, err := s.broker.CachedTopicByID(ctx, rt.TopicID)
		if errors.Is(err, broker.ErrUnknownTopic) {
			return t, kerr.UnknownTopicID.Code, "unknown topic id"
		}
		if err != nil {
			return t, s.codeFor(err, "produce"), err.Error()
		}
		if !c.allowedTopic(ctx, acl.OpWrite, t.Name) {
			return t, kerr.TopicAuthorizationFailed.Code, topicDenied(acl.OpWrite, t.Name)
		}
		return t, 0, ""
	}
	if !c.allowedTopic(ctx, acl.OpWrite, rt.Topic) {
		return metadata.Topic{}, kerr.TopicAuthorizationFailed.Code, topicDenied(acl.OpWrite, rt.Topic)
	}
	if err := broker.ValidateTopicName(rt.Topic); err != nil {
		return metadata.Topic{}, kerr.InvalidTopicException.Code, err.Error()
	}
	t, err := s.broker.Topic(ctx, rt.Topic)
	if errors.Is(err, broker.ErrUnknownTopic) && s.cfg.AutoCreateTopics && c.mayCreateTopic(ctx, rt.Topic) {
		if err = s.autoCreate(ctx, rt.Topic); err == nil {
			t, err = s.broker.Topic(ctx, rt.Topic)
		}
	}
	if err != nil {
		return t, s.codeFor(err, "produce"), err.Error()
	}
	return t, 0, ""
}

// checkProduceRecords applies the rules Kafka checks before appending:
// exactly one v2 batch, not a control batch.
func checkProduceRecords(records []byte) (int16, string) {
	batches, err := batch.Split(records)
	if err != nil {
		return kerr.CorruptMessage.Code, err.Error()
	}
	if len(batches) != 1 {
		return kerr.InvalidRecord.Code, "a produce request must hold exactly one record batch per partition"
	}
	const magicOffset = 16
	if batches[0][magicOffset] != 2 {
		return kerr.InvalidRecord.Code, "only record batch v2 (magic 2) is accepted"
	}
	h, err := batch.ParseHeader(batches[0])
	if err != nil {
		return kerr.CorruptMessage.Code, err.Error()
	}
	if h.IsControl() {
		return kerr.InvalidRecord.Code, "clients may not write control batches"
	}
	return 0, ""
}
