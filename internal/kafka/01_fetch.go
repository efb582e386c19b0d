package kafka

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Fetch, key 1.
//
// Versions 4-18. v4 IsolationLevel, LastStableOffset, AbortedTransactions;
// v5 LogStartOffset; v7 fetch sessions (KIP-227, fetch_sessions.go); v9
// CurrentLeaderEpoch (KIP-320): older than the lease epoch is
// FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH; v11 Rack and
// PreferredReadReplica (always -1: the leader serves); v12 flexible,
// CurrentLeader on NOT_LEADER_OR_FOLLOWER (KIP-951); v13 topics named by ID
// (UNKNOWN_TOPIC_ID when unknown); v15 ReplicaState, v17
// ReplicaDirectoryID and v18 HighWatermark concern follower brokers, which
// StreamHouse does not have, and are ignored; v16 broker endpoints for the
// leaders named in CurrentLeader.
//
// Records are the stored batch bytes, never decoded; the first batch may
// start before the fetch offset and clients skip those records. Limits, as
// Kafka applies them (KIP-74): PartitionMaxBytes per partition and MaxBytes
// over the response, except that the first batch of the first partition
// with data is returned whatever its size, so a consumer always makes
// progress. A batch that would break a limit anywhere else is left for a
// later fetch, never cut.
//
// Long poll: the fetch answers at once when it has MinBytes, when a
// partition has an error (not leader, offset out of range, unknown topic,
// fenced epoch), or when MaxWaitMillis is not positive; otherwise it waits
// on every requested partition's high watermark and answers as soon as the
// partitions together hold MinBytes or MaxWaitMillis, counted from the
// request's arrival, has passed.
//
// Only the agent leading a partition serves it: any other answers
// NOT_LEADER_OR_FOLLOWER, with the leader it knows in CurrentLeader. Errors
// carry -1 as high watermark, last stable offset and log start offset, as
// Kafka's do. OFFSET_OUT_OF_RANGE is a fetch offset below the log start
// offset or above the high watermark.
//
// Authorization (with AUTH_ENABLED): READ on each topic, else
// TOPIC_AUTHORIZATION_FAILED (see resolveFetch). Fetches from followers
// (ReplicaID ≥ 0) do not exist here.
//
// Isolation (KIP-98): IsolationLevel 1 (read_committed) reads up to the
// partition's last stable offset (the first offset of the oldest
// transaction still open), long-polling there as at the high watermark,
// and the answer lists in AbortedTransactions the aborted transactions
// overlapping the returned batches (producer ID, first offset), from which
// the client drops their records; control batches are returned like any
// batch and clients skip them. IsolationLevel 0 reads up to the high
// watermark. Both report the last stable offset. Any other level is
// INVALID_REQUEST for every partition.

const fetchKey = 1

func init() { register(fetchKey, 4, 18, handleFetch) }

// fetchPart is one partition of a fetch and the outcome of its last read.
type fetchPart struct {
	w           fetchWant
	name        string
	tp          metadata.TopicPartition
	resolveCode int16

	code              int16
	hw, lso, logStart int64
	aborted           []metadata.AbortedTxn // read_committed: aborted transactions of the records
	records           [][]byte              // the partition's record batches, in pieces
	size              int                   // their total length
	watch             <-chan struct{}
}

func handleFetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	start := time.Now()
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	byID := req.Version >= 13

	var wants []fetchWant
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			w := fetchWant{
				topic:        rt.Topic,
				partition:    rp.Partition,
				offset:       rp.FetchOffset,
				maxBytes:     rp.PartitionMaxBytes,
				currentEpoch: rp.CurrentLeaderEpoch,
			}
			if byID {
				w.topic, w.topicID = "", rt.TopicID
			}
			w.key = sessionKey{id: w.topicID, topic: w.topic, partition: rp.Partition}
			wants = append(wants, w)
		}
	}
	var forgotten []sessionKey
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			k := sessionKey{topic: ft.Topic, partition: p}
			if byID {
				k = sessionKey{id: ft.TopicID, partition: p}
			}
			forgotten = append(forgotten, k)
		}
	}
	var isolation broker.Isolation
	switch req.IsolationLevel {
	case 0:
		isolation = broker.ReadUncommitted
	case 1:
		isolation = broker.ReadCommitted
	default:
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	st, all, code := s.sessions.begin(c, req, wants, forgotten)
	if code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	parts := c.resolveFetch(ctx, all)
	// A consumer with a quota gets at most one bucket of it (quotas.go).
	client := c.quotaClient(ctx)
	maxBytes := s.quotas.FetchMaxBytes(client, req.MaxBytes)
	minBytes := min(req.MinBytes, maxBytes)

	deadline := start.Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	var timer *time.Timer
	for {
		total, stop := s.fetchPass(ctx, parts, int(maxBytes), isolation)
		if stop || total >= int(minBytes) || len(parts) == 0 {
			break
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		woke, err := waitAny(ctx, parts, timer.C)
		if err != nil {
			return nil, err
		}
		if !woke {
			break
		}
	}

	c.throttleFetch(client, resp, parts)
	results := make([]fetchResult, len(parts))
	for i, p := range parts {
		results[i] = fetchResult{errCode: p.code, hw: p.hw, lso: p.lso, logStart: p.logStart, hasRecords: p.size > 0}
	}
	sid, include := s.sessions.finish(st, all, results)
	resp.SessionID = sid
	sr := &splicedResponse{Response: resp}

	type topicKey struct {
		id   metadata.TopicID
		name string
	}
	topicIdx := make(map[topicKey]int)
	// The records of each response partition, parallel to resp.Topics: the
	// markers are placed once the response has its final order (a topic's
	// partitions may be scattered through parts, and kmsg encodes them
	// grouped by topic).
	var records [][]*fetchPart
	var hints *leaderHints
	var given []leaderHint
	for i := range parts {
		if !include[i] {
			continue
		}
		p := &parts[i]
		tk := topicKey{id: p.w.topicID, name: p.w.topic}
		ti, ok := topicIdx[tk]
		if !ok {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = p.w.topic, p.w.topicID
			ti = len(resp.Topics)
			topicIdx[tk] = ti
			resp.Topics = append(resp.Topics, rt)
			records = append(records, nil)
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = p.w.partition
		rp.ErrorCode = p.code
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = p.hw, p.lso, p.logStart
		if isolation == broker.ReadCommitted && p.code == 0 {
			rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(p.aborted))
			for _, a := range p.aborted {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
		}
		if p.code == kerr.NotLeaderForPartition.Code && req.Version >= 12 && p.name != "" {
			if hints == nil {
				hints = s.newLeaderHints()
			}
			h := hints.get(ctx, p.name, p.w.partition)
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = h.node, h.epoch
			given = append(given, h)
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, rp)
		records[ti] = append(records[ti], p)
	}
	// In encoding order. An empty record set is sent as empty, not null:
	// some clients (librdkafka) read a null one as a bad size. Records are
	// written from the log's memory as they are (splice.go).
	for ti := range resp.Topics {
		for pi := range resp.Topics[ti].Partitions {
			p := records[ti][pi]
			resp.Topics[ti].Partitions[pi].RecordBatches = sr.splice(p.records, p.size)
		}
	}
	if req.Version >= 16 {
		for _, b := range endpoints(given) {
			rb := kmsg.NewFetchResponseBroker()
			rb.NodeID, rb.Host, rb.Port, rb.Rack = b.node, b.host, b.port, b.rack
			resp.Brokers = append(resp.Brokers, rb)
		}
	}
	return sr, nil
}

// resolveFetch names each partition's topic, once per topic, and checks
// the principal may READ it: TOPIC_AUTHORIZATION_FAILED otherwise, for a
// topic named whether it exists or not, for one asked by ID once the ID is
// known (IDs are not secret, as in Kafka).
func (c *conn) resolveFetch(ctx context.Context, wants []fetchWant) []fetchPart {
	s := c.s
	type resolved struct {
		t    metadata.Topic
		code int16
	}
	topics := make(map[sessionKey]resolved)
	parts := make([]fetchPart, len(wants))
	for i, w := range wants {
		tk := sessionKey{id: w.key.id, topic: w.key.topic}
		r, ok := topics[tk]
		if !ok {
			var err error
			if w.key.id != (metadata.TopicID{}) {
				r.t, err = s.broker.CachedTopicByID(ctx, w.key.id)
				if errors.Is(err, broker.ErrUnknownTopic) {
					r.code = kerr.UnknownTopicID.Code
				}
			} else if !c.allowedTopic(ctx, acl.OpRead, w.key.topic) {
				r.code = kerr.TopicAuthorizationFailed.Code
			} else {
				r.t, err = s.broker.Topic(ctx, w.key.topic)
			}
			if err != nil && r.code == 0 {
				r.code = s.codeFor(err, "fetch")
			}
			if r.code == 0 && w.key.id != (metadata.TopicID{}) && !c.allowedTopic(ctx, acl.OpRead, r.t.Name) {
				r.code = kerr.TopicAuthorizationFailed.Code
			}
			topics[tk] = r
		}
		p := fetchPart{w: w, name: r.t.Name, tp: metadata.TopicPartition{TopicID: r.t.ID, Partition: w.partition}, resolveCode: r.code}
		if r.code == 0 && (w.partition < 0 || w.partition >= r.t.Partitions) {
			p.resolveCode = kerr.UnknownTopicOrPartition.Code
		}
		parts[i] = p
	}
	return parts
}

// fetchPass reads every partition once, without waiting, within the
// request's limits. It returns the bytes read and whether the fetch must
// answer now because a partition has an error.
func (s *Server) fetchPass(ctx context.Context, parts []fetchPart, maxBytes int, isolation broker.Isolation) (total int, stop bool) {
	// Partitions are read fetchReadWindow at a time, concurrently, so that
	// reads which miss the hot tail (object store or disk) overlap; the
	// response budget is then applied in request order, as before. At most
	// one window of reads can be wasted past the budget.
	type pending struct {
		limit int
		res   broker.ReadResult
		err   error
	}
	pend := make([]pending, len(parts))
	for lo := 0; lo < len(parts); lo += fetchReadWindow {
		hi := min(lo+fetchReadWindow, len(parts))
		budget := maxBytes - total
		var wg sync.WaitGroup
		for i := lo; i < hi; i++ {
			p, pd := &parts[i], &pend[i]
			p.code, p.records, p.size, p.watch, p.aborted = 0, nil, 0, nil, nil
			p.hw, p.lso, p.logStart = -1, -1, -1
			if p.resolveCode != 0 {
				p.code, stop = p.resolveCode, true
				continue
			}
			epoch, leads := s.broker.LeaderEpoch(p.tp)
			switch ce := p.w.currentEpoch; {
			case !leads:
				p.code = kerr.NotLeaderForPartition.Code
			case ce >= 0 && ce < epoch:
				p.code = kerr.FencedLeaderEpoch.Code
			case ce > epoch:
				p.code = kerr.UnknownLeaderEpoch.Code
			}
			if p.code != 0 {
				stop = true
				continue
			}
			// Watch before reading, so a commit after the read is not missed.
			p.watch = s.broker.Watch(p.tp)
			pd.limit = min(int(p.w.maxBytes), budget)
			if pd.limit <= 0 && total > 0 {
				// No room left: report where the partition stands.
				pd.res.LogStartOffset, pd.res.LastStableOffset, pd.res.HighWatermark, pd.err = s.broker.StableOffsets(ctx, p.name, p.w.partition)
				if pd.err == nil && (p.w.offset < pd.res.LogStartOffset || p.w.offset > pd.res.HighWatermark) {
					pd.err = broker.ErrOffsetOutOfRange
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				pd.res, pd.err = s.broker.FetchWith(ctx, p.name, p.w.partition, p.w.offset, broker.ReadOptions{MaxBytes: max(pd.limit, 1), Isolation: isolation})
			}()
		}
		wg.Wait()
		for i := lo; i < hi; i++ {
			p, pd := &parts[i], &pend[i]
			if p.code != 0 {
				continue
			}
			if pd.err != nil {
				p.code, stop = s.codeFor(pd.err, "fetch"), true
				continue
			}
			res := pd.res
			// Only the first data of the response may break the limits.
			if limit := min(int(p.w.maxBytes), maxBytes-total); res.Size > limit && total > 0 {
				res.Pieces, res.Size, res.Aborted = nil, 0, nil
			}
			p.records, p.size, p.aborted = res.Pieces, res.Size, res.Aborted
			p.hw, p.lso, p.logStart = res.HighWatermark, res.LastStableOffset, res.LogStartOffset
			total += res.Size
		}
	}
	return total, stop
}

// fetchReadWindow is how many partitions of one fetch are read at once.
const fetchReadWindow = 4

// waitAny waits until one partition's high watermark changes (true), the
// timeout fires (false) or ctx ends (its error).
func waitAny(ctx context.Context, parts []fetchPart, timeout <-chan time.Time) (bool, error) {
	var chans []<-chan struct{}
	for i := range parts {
		if parts[i].watch != nil {
			chans = append(chans, parts[i].watch)
		}
	}
	switch len(chans) {
	case 0:
		select {
		case <-timeout:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	case 1:
		select {
		case <-chans[0]:
			return true, nil
		case <-timeout:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timeout)})
	for _, ch := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	switch i, _, _ := reflect.Select(cases); i {
	case 0:
		return false, ctx.Err()
	case 1:
		return false, nil
	}
	return true, nil
}
