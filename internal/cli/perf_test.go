package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// perfTargets are the Kafka servers the perf tests run against: the real
// server and franz-go's kfake (any Kafka-compatible server); start returns
// the bootstrap address.
var perfTargets = []struct {
	name  string
	start func(t *testing.T) string
}{
	{"streamhouse", func(t *testing.T) string { return startServer(t).proc.KafkaAddr }},
	{"kfake", func(t *testing.T) string {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c.ListenAddrs()[0]
	}},
}

// TestPerf runs perf produce, then perf consume, against the real server's
// Kafka port and against franz-go's kfake (any Kafka-compatible server).
func TestPerf(t *testing.T) {
	t.Parallel()
	for _, target := range perfTargets {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			brokers := target.start(t)
			const n, size = 3000, 512
			topic := uniq("perf")

			var prod perfSummary
			perfJSON(t, &prod, "perf", "produce", "--brokers", brokers, "--topic", topic, "--partitions", "3",
				"--num-records", fmt.Sprint(n), "--record-size", fmt.Sprint(size), "--compression", "lz4", "--linger", "1ms")
			if prod.Mode != "produce" || prod.Records != n || prod.Bytes != n*size || prod.Errors != 0 || prod.MBSec <= 0 || prod.RecordsSec <= 0 {
				t.Fatalf("produce summary: %+v", prod)
			}
			if l := prod.Latency; l == nil || l.Count != n || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max || len(l.CDF) != len(cdfPercentiles) {
				t.Fatalf("produce latency: %+v", prod.Latency)
			}

			// A fixed rate, with acks=1, for a duration.
			var paced perfSummary
			perfJSON(t, &paced, "perf", "produce", "--brokers", brokers, "--topic", topic, "--duration", "1s",
				"--throughput", "500", "--acks", "1", "--record-size", "100", "--max-inflight", "5")
			if paced.Records < 350 || paced.Records > 600 || paced.Errors != 0 {
				t.Fatalf("500 records/s for 1 s: %+v", paced)
			}

			// Direct, then in a group, with end-to-end latency.
			total := int64(n) + paced.Records
			for _, extra := range [][]string{nil, {"--group", uniq("perf-group"), "--latency"}} {
				var cons perfSummary
				perfJSON(t, &cons, append([]string{"perf", "consume", "--brokers", brokers, "--topic", topic,
					"--num-records", fmt.Sprint(total), "--timeout", "20s"}, extra...)...)
				if cons.Mode != "consume" || cons.Records != total || cons.Bytes != prod.Bytes+paced.Bytes || cons.MBSec <= 0 {
					t.Fatalf("consume %q: %+v, want %d records", extra, cons, total)
				}
				if (cons.Latency != nil) != (extra != nil) {
					t.Fatalf("consume %q: latency %+v", extra, cons.Latency)
				}
			}

			// Table output and the progress line.
			r := runCLI(t, "", "", "perf", "produce", "--brokers", brokers, "--topic", topic, "--duration", "1200ms", "--throughput", "200", "--progress")
			if r.code != 0 || !strings.Contains(r.stdout, "Records/s:") || !strings.Contains(r.stdout, "p99.9") ||
				!strings.Contains(r.stderr, "records sent") {
				t.Fatalf("table output: %v", r)
			}
		})
	}
}

// TestPerfTransactions runs perf produce in transactions and reads the
// result back read_committed, on the real server and on kfake.
func TestPerfTransactions(t *testing.T) {
	t.Parallel()
	for _, target := range perfTargets {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			brokers := target.start(t)
			const n = 600
			topic := uniq("perf-txn")
			var prod perfSummary
			perfJSON(t, &prod, "perf", "produce", "--brokers", brokers, "--topic", topic, "--partitions", "2",
				"--num-records", fmt.Sprint(n), "--record-size", "64", "--throughput", "3000", "--transaction-duration", "20ms")
			if prod.Records != n || prod.Errors != 0 || prod.Transactions < 2 {
				t.Fatalf("transactional produce: %+v", prod)
			}
			if l := prod.CommitLatency; l == nil || l.Count != prod.Transactions || l.P50 <= 0 {
				t.Fatalf("commit latency: %+v", prod.CommitLatency)
			}
			var cons perfSummary
			perfJSON(t, &cons, "perf", "consume", "--brokers", brokers, "--topic", topic, "--isolation", "read_committed",
				"--num-records", fmt.Sprint(n), "--timeout", "20s")
			if cons.Records != n {
				t.Fatalf("read_committed consume: %+v, want %d records", cons, n)
			}
		})
	}
}

func TestPerfUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"perf", "produce", "--num-records", "1"}, "missing --topic"},
		{[]string{"perf", "produce", "--topic", "t"}, "give --num-records or --duration"},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--acks", "2"}, `--acks "2"`},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--compression", "brotli"}, "--compression"},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--throughput", "0"}, "--throughput 0"},
		{[]string{"perf", "consume", "--topic", "t", "--num-records", "1", "--timeout", "0s"}, "--timeout"},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--transaction-duration", "5ms", "--acks", "1"}, "needs --acks all"},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--transaction-duration", "-1s"}, "--transaction-duration"},
		{[]string{"perf", "consume", "--topic", "t", "--num-records", "1", "--isolation", "serializable"}, "--isolation"},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--max-inflight", "0", "--acks", "1"}, "--max-inflight 0"},
		{[]string{"perf", "produce", "--topic", "t", "--num-records", "1", "--max-inflight", "5"}, "needs --acks 1 or 0"},
		{[]string{"perf", "nope"}, `unknown command "nope"`},
	} {
		r := runCLI(t, "", "", tc.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: want exit 2 and %q, got %v", tc.args, tc.want, r)
		}
	}
}

// perfJSON runs a perf command with -o json and decodes its summary.
func perfJSON(t *testing.T, v *perfSummary, args ...string) {
	t.Helper()
	r := runCLI(t, "", "", append([]string{"-o", "json"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("streamctl %q: %v", args, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("streamctl %q: decode %q: %v", args, r.stdout, err)
	}
}
