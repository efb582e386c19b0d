package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactionListDescribe opens a transaction with franz-go and shows it
// with transaction list and describe, in both output formats, against the
// real server's Kafka port and against franz-go's kfake.
func TestTransactionListDescribe(t *testing.T) {
	t.Parallel()
	for _, target := range []struct {
		name  string
		start func(t *testing.T) string // the bootstrap address
		// committed is the state listed after the commit: kfake does not
		// keep Complete* states (it lists Empty).
		committed string
	}{
		{"streamhouse", func(t *testing.T) string { return startServer(t).proc.KafkaAddr }, "CompleteCommit"},
		{"kfake", func(t *testing.T) string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "seeded"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return c.ListenAddrs()[0]
		}, "Empty"},
	} {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			brokers := target.start(t)
			topic := uniq("txn")
			txnID := uniq("cli-tx")
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(45*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := ensureTopic(ctx, cl, topic, 2); err != nil {
				t.Fatal(err)
			}
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for p := int32(0); p < 2; p++ {
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
					t.Fatalf("produce to %d: %v", p, err)
				}
			}

			run := func(args ...string) string {
				t.Helper()
				r := runCLI(t, "", "", args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("streamctl %q: %v", args, r)
				}
				return r.stdout
			}
			// list: the open transaction, in a table and as JSON; a state
			// filter that excludes it.
			out := run("transaction", "list", "--brokers", brokers)
			if !strings.Contains(out, "TRANSACTIONAL ID") || !rowWith(out, txnID, "Ongoing") {
				t.Fatalf("transaction list:\n%s", out)
			}
			var listed []listedTxn
			if err := json.Unmarshal([]byte(run("-o", "json", "transaction", "list", "--brokers", brokers, "--state", "Ongoing")), &listed); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, l := range listed {
				if l.TransactionalID == txnID {
					found = l.State == "Ongoing" && l.ProducerID >= 0
				}
			}
			if !found {
				t.Fatalf("list --state Ongoing -o json: %+v", listed)
			}
			if strings.Contains(run("transaction", "list", "--brokers", brokers, "--state", "CompleteAbort"), txnID) {
				t.Fatal("list --state CompleteAbort shows the ongoing transaction")
			}

			// describe: state, timeout and both partitions.
			var described []describedTxn
			if err := json.Unmarshal([]byte(run("-o", "json", "transaction", "describe", txnID, "--brokers", brokers)), &described); err != nil {
				t.Fatal(err)
			}
			if len(described) != 1 {
				t.Fatalf("describe: %+v", described)
			}
			d := described[0]
			want := []txnPartition{{topic, 0}, {topic, 1}}
			if d.TransactionalID != txnID || d.State != "Ongoing" || d.TimeoutMs != 45000 || d.StartTimestamp <= 0 ||
				len(d.Partitions) != 2 || d.Partitions[0] != want[0] || d.Partitions[1] != want[1] {
				t.Fatalf("describe: %+v", d)
			}
			table := run("transaction", "describe", txnID, "--brokers", brokers)
			for _, s := range []string{"Transactional ID:", txnID, "Ongoing", "45s", "TOPIC", topic} {
				if !strings.Contains(table, s) {
					t.Fatalf("describe table lacks %q:\n%s", s, table)
				}
			}

			// After the commit the transaction is complete.
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for !rowWith(run("transaction", "list", "--brokers", brokers), txnID, target.committed) {
				if time.Now().After(deadline) {
					t.Fatalf("the committed transaction never showed %s", target.committed)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// An unknown transactional ID is an error (exit 1) naming it.
			r := runCLI(t, "", "", "transaction", "describe", "no-such-txn", "--brokers", brokers)
			if r.code != ExitError || !strings.Contains(r.stderr, "no-such-txn") {
				t.Fatalf("describe of an unknown id: %v", r)
			}
		})
	}
}

// rowWith reports whether a table row holds every one of cells.
func rowWith(out string, cells ...string) bool {
	for _, r := range rows(out) {
		n := 0
		for _, c := range cells {
			for _, f := range r {
				if f == c {
					n++
					break
				}
			}
		}
		if n == len(cells) {
			return true
		}
	}
	return false
}

// Bad command lines are usage errors (exit 2) that touch no server.
func TestTransactionUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"transaction", "describe"},
		{"transaction", "list", "extra"},
		{"transaction", "list", "--brokers", " "},
		{"transaction", "list", "--timeout", "0s"},
		{"transaction", "list", "--producer-id", "x"},
	} {
		r := runCLI(t, "", "", args...)
		if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "streamctl: ") {
			t.Errorf("streamctl %q: want a usage error, got %v", args, r)
		}
	}
}
