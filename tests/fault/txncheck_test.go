package fault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The transactional promises, checked on what the producers were told
// (history.txns), what read_committed readers got during the run
// (history.rcReads) and at the end (final.txnLog, final.eosLog):
//
//   - nothing committed is lost: a transaction whose commit was
//     acknowledged is wholly visible to read_committed;
//   - no aborted record is visible to read_committed, at the end or during
//     the run (a transaction whose commit was never asked can only abort);
//   - all or nothing: a transaction read_committed shows is complete,
//     whatever its producer was told (an unknown outcome included);
//   - no hanging transaction: once the producers stopped, every
//     partition's last stable offset reaches its high watermark;
//   - the pipeline copied every committed input record exactly once.

// txnChecks evaluates the transactional promises.
func txnChecks(h *history, f final) []check {
	return []check{
		checkTxnCommitted(h, f),
		checkTxnAborted(h, f),
		checkTxnAtomic(h, f),
		{"txn-no-hanging-transaction", f.hanging},
		checkTxnDuringRun(h, f),
		checkEOS(f),
	}
}

// txnRecords groups the final read_committed read by transaction:
// transaction -> record index -> positions.
func txnRecords(log map[position]string) (map[txnKey]map[int][]position, []string) {
	out := map[txnKey]map[int][]position{}
	var bad []string
	for _, pos := range sortedPositions(log) {
		k, idx, _, ok := parseTxnValue(log[pos])
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: %q is no transactional record of this test", pos, log[pos]))
			continue
		}
		if out[k] == nil {
			out[k] = map[int][]position{}
		}
		out[k][idx] = append(out[k][idx], pos)
	}
	return out, bad
}

// checkTxnCommitted: every transaction whose commit was acknowledged is
// wholly in the final read_committed read.
func checkTxnCommitted(h *history, f final) check {
	c := check{name: "txn-committed-not-lost", violations: append([]string(nil), f.txnIncomplete...)}
	got, _ := txnRecords(f.txnLog)
	for _, k := range sortedTxnKeys(h.txns) {
		t := h.txns[k]
		if t.Outcome != txnCommitted {
			continue
		}
		var missing []int
		for i := range t.Count {
			if len(got[k][i]) == 0 {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			c.violations = append(c.violations, fmt.Sprintf("%s: commit acknowledged at %s, but records %v of its %d are not visible to read_committed (visible: %s)",
				k, t.End.UTC().Format("15:04:05.000"), missing, t.Count, formatTxnPositions(got[k])))
		}
	}
	return c
}

// checkTxnAborted: no record of a transaction whose commit was never asked
// is in the final read_committed read.
func checkTxnAborted(h *history, f final) check {
	c := check{name: "txn-aborted-invisible"}
	got, bad := txnRecords(f.txnLog)
	c.violations = append(c.violations, bad...)
	for _, k := range slices.SortedFunc(maps.Keys(got), cmpTxnKey) {
		t, ok := h.txns[k]
		switch {
		case !ok:
			c.violations = append(c.violations, fmt.Sprintf("%s was never begun, yet read_committed shows it at %s", k, formatTxnPositions(got[k])))
		case t.Outcome == txnAborted:
			c.violations = append(c.violations, fmt.Sprintf("%s was aborted (abort confirmed: %v; %s), yet read_committed shows records of it at %s",
				k, t.AbortConfirm, orNone(t.Err), formatTxnPositions(got[k])))
		}
	}
	return c
}

// checkTxnAtomic: every transaction in the final read_committed read is
// there wholly, each record once, whatever its producer was told.
func checkTxnAtomic(h *history, f final) check {
	c := check{name: "txn-all-or-nothing"}
	got, _ := txnRecords(f.txnLog)
	for _, k := range slices.SortedFunc(maps.Keys(got), cmpTxnKey) {
		t, ok := h.txns[k]
		if !ok {
			continue // checkTxnAborted reports it
		}
		var missing []int
		for i := range t.Count {
			if len(got[k][i]) == 0 {
				missing = append(missing, i)
			}
		}
		for i, ps := range got[k] {
			if len(ps) > 1 {
				c.violations = append(c.violations, fmt.Sprintf("%s (%s): record %d is visible %d times: %v", k, t.Outcome, i, len(ps), ps))
			}
		}
		if len(missing) > 0 {
			c.violations = append(c.violations, fmt.Sprintf("%s (%s%s) is partly visible to read_committed: records %v of its %d missing (visible: %s)",
				k, t.Outcome, errSuffix(t.Err), missing, t.Count, formatTxnPositions(got[k])))
		}
	}
	return c
}

// checkTxnDuringRun: the read_committed reader never got a record of an
// aborted transaction during the run, and what it got is in the final read
// at the same offset (a record read_committed showed once was committed,
// so its transaction is wholly there at the end: checkTxnAtomic).
func checkTxnDuringRun(h *history, f final) check {
	c := check{name: "txn-read-committed-during-run"}
	for _, r := range h.rcReads {
		k, _, _, ok := parseTxnValue(r.Value)
		if !ok {
			c.violations = append(c.violations, fmt.Sprintf("%s at %s: %q is no transactional record of this test", r.Pos, r.At.UTC().Format("15:04:05.000"), r.Value))
			continue
		}
		t, known := h.txns[k]
		if known && t.Outcome == txnAborted {
			c.violations = append(c.violations, fmt.Sprintf("%s at %s: read_committed got %q of aborted %s (abort confirmed: %v; %s)",
				r.Pos, r.At.UTC().Format("15:04:05.000"), r.Value, k, t.AbortConfirm, orNone(t.Err)))
			continue
		}
		if v, ok := f.txnLog[r.Pos]; !ok || v != r.Value {
			now := "nothing"
			if ok {
				now = fmt.Sprintf("%q", v)
			}
			c.violations = append(c.violations, fmt.Sprintf("%s: read_committed got %q there at %s, the final read_committed read %s", r.Pos, r.Value, r.At.UTC().Format("15:04:05.000"), now))
		}
	}
	return c
}

// checkEOS: the pipeline's output holds every input record exactly once,
// and nothing else.
func checkEOS(f final) check {
	c := check{name: "eos-pipeline-exactly-once", violations: append(append([]string(nil), f.eosBehind...), f.eosIncomplete...)}
	if f.eosLog == nil {
		return c // the run had no pipeline to check
	}
	out := map[string][]position{}
	for pos, v := range f.eosLog {
		out[v] = append(out[v], pos)
	}
	in := map[string]bool{}
	for _, pos := range sortedPositions(f.txnLog) {
		v := f.txnLog[pos]
		in[eosValue(v)] = true
		switch ps := out[eosValue(v)]; len(ps) {
		case 1:
		case 0:
			c.violations = append(c.violations, fmt.Sprintf("input %q at %s is not in the output", v, pos))
		default:
			slices.SortFunc(ps, cmpPos)
			c.violations = append(c.violations, fmt.Sprintf("input %q at %s is in the output %d times: %v", v, pos, len(ps), ps))
		}
	}
	for _, v := range slices.Sorted(maps.Keys(out)) {
		if !in[v] {
			c.violations = append(c.violations, fmt.Sprintf("output %q at %v copies no record read_committed shows in the input", v, out[v]))
		}
	}
	return c
}

// longestTxnStall is the longest time one transactional producer went
// between the ends of two consecutive transactions (or from the start of
// its first), as a leaderGap whose Partition is the producer.
func longestTxnStall(txns map[txnKey]*txnObs) leaderGap {
	var best leaderGap
	last := map[int]time.Time{}
	for _, k := range sortedTxnKeys(txns) {
		t := txns[k]
		if t.Outcome == txnOpen {
			continue
		}
		from, ok := last[k.Producer]
		if !ok {
			from = t.Start
		}
		if d := t.End.Sub(from); d > best.Length {
			best = leaderGap{Partition: int32(k.Producer), Length: d, Start: from}
		}
		last[k.Producer] = t.End
	}
	return best
}

// txnVisible reports whether any record of k is in log.
func txnVisible(log map[position]string, k txnKey) bool {
	for _, v := range log {
		if got, _, _, ok := parseTxnValue(v); ok && got == k {
			return true
		}
	}
	return false
}

func sortedTxnKeys(m map[txnKey]*txnObs) []txnKey {
	return slices.SortedFunc(maps.Keys(m), cmpTxnKey)
}

func cmpTxnKey(a, b txnKey) int {
	if a.Producer != b.Producer {
		return a.Producer - b.Producer
	}
	return a.N - b.N
}

func formatTxnPositions(m map[int][]position) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for _, i := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("#%d at %v", i, m[i]))
	}
	return strings.Join(out, ", ")
}

func orNone(err string) string {
	if err == "" {
		return "no error"
	}
	return err
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return ": " + err
}

// waitStable waits until every partition of topics has its last stable
// offset (ListOffsets read_committed) at its high watermark (read
// uncommitted), and returns the high watermarks, with a violation for
// every partition still behind after d.
func waitStable(ctx context.Context, adm *kadm.Client, topics []string, d time.Duration) (map[string]map[int32]int64, []string) {
	deadline := time.Now().Add(d)
	for {
		hwm, behind, err := stableOnce(ctx, adm, topics)
		if err == nil && len(behind) == 0 {
			return hwm, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return hwm, []string{fmt.Sprintf("last stable offsets not readable %v after the producers stopped: %v", d, err)}
			}
			return hwm, behind
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func stableOnce(ctx context.Context, adm *kadm.Client, topics []string) (map[string]map[int32]int64, []string, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	end, err := adm.ListEndOffsets(lctx, topics...)
	if err == nil {
		err = end.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("high watermarks: %w", err)
	}
	lso, err := adm.ListCommittedOffsets(lctx, topics...)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("last stable offsets: %w", err)
	}
	hwm := map[string]map[int32]int64{}
	var behind []string
	for _, t := range topics {
		hwm[t] = map[int32]int64{}
		ps := end[t]
		for _, p := range slices.Sorted(maps.Keys(ps)) {
			hw := ps[p].Offset
			hwm[t][p] = hw
			s, ok := lso.Lookup(t, p)
			switch {
			case !ok:
				behind = append(behind, fmt.Sprintf("%s partition %d: no last stable offset listed (high watermark %d)", t, p, hw))
			case s.Offset != hw:
				behind = append(behind, fmt.Sprintf("%s partition %d: last stable offset %d, high watermark %d", t, p, s.Offset, hw))
			}
		}
		if len(ps) == 0 {
			return nil, nil, fmt.Errorf("%s: no partitions listed", t)
		}
	}
	return hwm, behind, nil
}

// describeTxns is the coordinator's view of the test's transactional IDs,
// for a hanging-transaction report.
func describeTxns(ctx context.Context, adm *kadm.Client, ids []string) string {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ds, err := adm.DescribeTransactions(dctx, ids...)
	if err != nil && len(ds) == 0 {
		return "DescribeTransactions: " + err.Error()
	}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(ds)) {
		d := ds[id]
		if d.Err != nil {
			out = append(out, fmt.Sprintf("%s: %v", id, d.Err))
			continue
		}
		var parts []string
		d.Topics.Each(func(t string, p int32) { parts = append(parts, fmt.Sprintf("%s/%d", t, p)) })
		out = append(out, fmt.Sprintf("%s: %s producer %d epoch %d partitions %v", id, d.State, d.ProducerID, d.ProducerEpoch, parts))
	}
	return strings.Join(out, "; ")
}

// readCommittedLog reads every partition of topic from offset 0 to end
// with read_committed Fetch requests at the partition's leader, dropping
// aborted records and control batches as Kafka clients do (franz-go's
// ProcessFetchPartition over the response's aborted transactions), and
// returns what it read and how many Fetch requests it took; a partition
// it could not finish within d is reported.
func readCommittedLog(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, end map[int32]int64, d time.Duration) (map[position]string, int, []string) {
	fetches := 0
	log := map[position]string{}
	var incomplete []string
	deadline := time.Now().Add(d)
	var at *leaderAt
	for _, p := range slices.Sorted(maps.Keys(end)) {
		next := int64(0)
		var lastErr error
		for next < end[p] && time.Now().Before(deadline) {
			if at == nil || at.partition != p {
				l, err := findLeader(ctx, adm, topic, p)
				if err != nil {
					lastErr = err
					time.Sleep(200 * time.Millisecond)
					continue
				}
				at = &l
			}
			fetches++
			recs, n, err := fetchCommitted(ctx, cl, *at, next)
			if err != nil {
				lastErr, at = err, nil // ask Metadata again
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for _, r := range recs {
				log[position{p, r.Offset}] = string(r.Value)
			}
			if n <= next {
				lastErr = fmt.Errorf("no progress at offset %d", next)
				time.Sleep(200 * time.Millisecond)
			}
			next = max(next, n)
		}
		if next < end[p] {
			incomplete = append(incomplete, fmt.Sprintf("%s partition %d: the final read_committed read got to offset %d of %d in %v; last error: %v", topic, p, next, end[p], d, lastErr))
		}
	}
	return log, fetches, incomplete
}

// leaderAt is where to fetch a partition from.
type leaderAt struct {
	topic     string
	topicID   [16]byte
	partition int32
	leader    int32
}

func findLeader(ctx context.Context, adm *kadm.Client, topic string, p int32) (leaderAt, error) {
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	md, err := adm.Metadata(mctx, topic)
	if err != nil {
		return leaderAt{}, fmt.Errorf("metadata: %w", err)
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return leaderAt{}, fmt.Errorf("metadata of %s: %v", topic, td.Err)
	}
	pd, ok := td.Partitions[p]
	if !ok || pd.Leader < 0 {
		return leaderAt{}, fmt.Errorf("no leader for partition %d", p)
	}
	return leaderAt{topic: topic, topicID: td.ID, partition: p, leader: pd.Leader}, nil
}

// fetchCommitted is one read_committed Fetch of a partition at offset, at
// the partition's leader: the records it returns and the next offset to
// ask for.
func fetchCommitted(ctx context.Context, cl *kgo.Client, at leaderAt, offset int64) ([]*kgo.Record, int64, error) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	topic, p := at.topic, at.partition
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 100
	req.MaxBytes = 4 << 20
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rt.TopicID = at.topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = p
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(fctx, cl.Broker(int(at.leader)))
	if err != nil {
		return nil, offset, fmt.Errorf("fetch: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, offset, fmt.Errorf("fetch: %w", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, offset, errors.New("fetch: the answer is not for the one partition asked")
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset: offset, IsolationLevel: kgo.ReadCommitted(), Topic: topic, Partition: p,
	}, &resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return nil, offset, fmt.Errorf("fetch partition %d at %d: %w", p, offset, fp.Err)
	}
	return fp.Records, next, nil
}

// eosCaughtUp waits until the pipeline's group has committed, on every
// partition of the input, past the last record read_committed shows there
// (a read_committed consumer's position after its last record), and
// returns what is still behind after d.
func eosCaughtUp(ctx context.Context, adm *kadm.Client, in map[position]string, d time.Duration) []string {
	last := map[int32]int64{}
	for pos := range in {
		last[pos.Partition] = max(last[pos.Partition], pos.Offset)
	}
	deadline := time.Now().Add(d)
	for {
		var behind []string
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := adm.FetchOffsets(fctx, eosGroup)
		cancel()
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			behind = append(behind, fmt.Sprintf("%s: committed offsets not readable: %v", eosGroup, err))
		} else {
			for _, p := range slices.Sorted(maps.Keys(last)) {
				o, ok := r.Lookup(txnTopic, p)
				if !ok || o.At <= last[p] {
					at := int64(-1)
					if ok {
						at = o.At
					}
					behind = append(behind, fmt.Sprintf("%s did not commit past the last committed input of %s partition %d (offset %d) within %v: at %d", eosGroup, txnTopic, p, last[p], d, at))
				}
			}
		}
		if len(behind) == 0 || time.Now().After(deadline) {
			return behind
		}
		time.Sleep(500 * time.Millisecond)
	}
}
