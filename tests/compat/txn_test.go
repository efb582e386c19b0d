package compat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The transaction tests check what other clients' transactions leave in
// the log with franz-go, an independent reader: readers stop at a
// non-transactional sentinel record written to each partition once the
// client under test is done, so "exactly these records" is exact without
// waiting for nothing to arrive.
const sentinel = "sentinel"

// kv is one record's partition, key and value.
type kv struct {
	Partition int32
	Key       string
	Value     string
}

func (r kv) String() string { return fmt.Sprintf("%d/%s=%s", r.Partition, r.Key, r.Value) }

// franzClient is a franz-go client closed at the end of the test.
func franzClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequestRetries(50), kgo.RetryTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// txnInput writes the input of a consume-transform-produce test to every
// partition of topic with franz-go's transactional producer: a committed
// transaction of 3 records per partition, an aborted one of 2 that
// read_committed consumers must skip, and a committed one of 3. It returns
// the committed records, partition by partition in offset order.
func txnInput(t *testing.T, addr, topic string, partitions int32) []kv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := franzClient(t, addr, kgo.TransactionalID(topic+"-writer"), kgo.TransactionTimeout(30*time.Second))
	var committed []kv
	n := 0
	for _, txn := range []struct {
		records int
		commit  bool
	}{{3, true}, {2, false}, {3, true}} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for p := range partitions {
			for range txn.records {
				r := kv{p, fmt.Sprintf("k%d", n), fmt.Sprintf("in-%d", n)}
				if !txn.commit {
					r.Value = fmt.Sprintf("aborted-input-%d", n)
				}
				n++
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(r.Key), Value: []byte(r.Value)})
				if txn.commit {
					committed = append(committed, r)
				}
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("input transaction: %v", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(txn.commit)); err != nil {
			t.Fatalf("input transaction end (commit %v): %v", txn.commit, err)
		}
	}
	sortKV(committed)
	return committed
}

// sortKV orders records by partition, keeping each partition's order.
func sortKV(rs []kv) {
	slices.SortStableFunc(rs, func(a, b kv) int { return int(a.Partition - b.Partition) })
}

// writeSentinels appends a non-transactional sentinel record to every
// partition of topic.
func writeSentinels(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := franzClient(t, addr)
	var recs []*kgo.Record
	for p := range partitions {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(sentinel), Value: []byte(sentinel)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("sentinels: %v", err)
	}
}

// readToSentinels reads every partition of topic from the start with the
// given isolation level, up to each partition's sentinel, and returns the
// records before them, partition by partition in offset order. It fails
// if a partition has a record after its sentinel or the records are not
// in offset order.
func readToSentinels(t *testing.T, addr, topic string, partitions int32, iso kgo.IsolationLevel) []kv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	offs := map[int32]kgo.Offset{}
	for p := range partitions {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl := franzClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200*time.Millisecond))
	got := map[int32][]kv{}
	last := map[int32]int64{}
	seen := map[int32]bool{}
	for len(seen) < int(partitions) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: sentinels of %d of %d partitions within 60 s; read %v", topic, len(seen), partitions, got)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("read %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if seen[r.Partition] {
				t.Errorf("%s/%d: record %q at %d after the sentinel", topic, r.Partition, r.Value, r.Offset)
			}
			if o, ok := last[r.Partition]; ok && r.Offset <= o {
				t.Errorf("%s/%d: offset %d after %d", topic, r.Partition, r.Offset, o)
			}
			last[r.Partition] = r.Offset
			if string(r.Key) == sentinel {
				seen[r.Partition] = true
				return
			}
			got[r.Partition] = append(got[r.Partition], kv{r.Partition, string(r.Key), string(r.Value)})
		})
	}
	var all []kv
	for p := range partitions {
		all = append(all, got[p]...)
	}
	return all
}

// transformed is what a consume-transform-produce run over input must
// output, exactly: one "out:" record per committed input record, on its
// partition under its key.
func transformed(input []kv) []kv {
	want := make([]kv, 0, len(input))
	for _, r := range input {
		want = append(want, kv{r.Partition, r.Key, "out:" + r.Value})
	}
	return want
}

// diffKV fails the test unless got equals want.
func diffKV(t *testing.T, what string, got, want []kv) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// groupOffsets is what group has committed on topic's partitions (-1:
// nothing), through franz-go's OffsetFetch.
func groupOffsets(t *testing.T, addr, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	got, err := groupOffsetsErr(addr, group, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// groupOffsetsErr is groupOffsets for goroutines other than the test's.
func groupOffsetsErr(addr, group, topic string, partitions int32) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(50), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("OffsetFetch %s: %w", group, err)
	}
	got := map[int32]int64{}
	for p := range partitions {
		got[p] = -1
		if o, ok := resp.Lookup(topic, p); ok {
			if o.Err != nil {
				return nil, fmt.Errorf("OffsetFetch %s %s/%d: %w", group, topic, p, o.Err)
			}
			got[p] = o.At
		}
	}
	return got, nil
}

// mapString shows a partition → offset map in partition order.
func mapString(m map[int32]int64) string {
	var parts []string
	for _, p := range slices.Sorted(func(yield func(int32) bool) {
		for p := range m {
			if !yield(p) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%d:%d", p, m[p]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
