package compat

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// confluentSummary is what python/txn.py prints.
type confluentSummary struct {
	Transactions []struct {
		N        int  `json:"n"`
		Abort    bool `json:"abort"`
		Produced []struct {
			Partition   int32  `json:"partition"`
			InputOffset int64  `json:"input_offset"`
			Key         string `json:"key"`
			Value       string `json:"value"`
		} `json:"produced"`
		Offsets        map[string]int64 `json:"offsets"`
		CommittedAfter map[string]int64 `json:"committed_after"`
	} `json:"transactions"`
	ZombieCommit *struct {
		OK    bool          `json:"ok"`
		Error *confluentErr `json:"error"`
	} `json:"zombie_commit"`
	SecondCommitted bool `json:"second_committed"`
	StaleOffsets    *struct {
		OK    bool          `json:"ok"`
		Error *confluentErr `json:"error"`
	} `json:"stale_offsets"`
	CommittedAfterStale   map[string]int64 `json:"committed_after_stale"`
	CommittedAfterCurrent map[string]int64 `json:"committed_after_current"`
	Errors                []string         `json:"errors"`
	Fatal                 *confluentErr    `json:"fatal"`
}

// confluentErr is a confluent_kafka.KafkaError.
type confluentErr struct {
	Code  int    `json:"code"`
	Name  string `json:"name"`
	Str   string `json:"str"`
	Fatal bool   `json:"fatal"`
}

// confluentPython is a Python 3 that can import confluent_kafka: Debian's
// python3-confluent-kafka installs it for /usr/bin/python3, which may not
// be the first python3 on PATH.
func confluentPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import confluent_kafka").Run() == nil {
			return py
		}
	}
	t.Fatal("no python3 with confluent_kafka: run scripts/install-test-tools.sh")
	return ""
}

// runConfluent runs python/txn.py with args and decodes its summary; with
// librdkafka's debug log (eos, protocol, broker) in the failure output.
func runConfluent(t *testing.T, py string, args ...string) *confluentSummary {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("python", "txn.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{script}, append(args, "--debug")...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, runErr := cmd.Output()
	var sum confluentSummary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Errorf("txn.py %s: summary: %v (run: %v)\n%s", args[0], err, runErr, out)
	} else if sum.Fatal != nil {
		t.Errorf("txn.py %s failed: %+v\nclient errors: %q", args[0], *sum.Fatal, sum.Errors)
	}
	if runErr != nil {
		t.Errorf("txn.py %s: %v", args[0], runErr)
	}
	if t.Failed() {
		t.Fatalf("librdkafka debug log (last %d lines):\n%s", debugTail, tail(stderr.String(), debugTail))
	}
	return &sum
}

// debugTail is how much of librdkafka's debug log a failure shows.
const debugTail = 3000

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// TestConfluentTransactions drives librdkafka's transactional producer
// through confluent-kafka-python: a consume-transform-produce loop with
// send_offsets_to_transaction and a read_committed consumer group, one
// transaction aborted on purpose, and zombie fencing.
func TestConfluentTransactions(t *testing.T) {
	t.Parallel()
	py := confluentPython(t)
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			addr := s.KafkaAddr

			t.Run("consume-transform-produce", func(t *testing.T) {
				const parts = 2
				in, out, group := "confluent-in", "confluent-out", "confluent-eos"
				s.createTopic(in, parts)
				s.createTopic(out, parts)
				input := txnInput(t, addr, in, parts)
				const abortAt = 1
				sum := runConfluent(t, py, "eos", addr, in, out, group, "confluent-eos-txn",
					strconv.Itoa(len(input)), strconv.Itoa(abortAt))
				writeSentinels(t, addr, out, parts)

				// Exactly one output record per committed input record:
				// no aborted input (read_committed consumer), no output of
				// the aborted transaction, nothing twice.
				want := transformed(input)
				diffKV(t, "read_committed output", readToSentinels(t, addr, out, parts, kgo.ReadCommitted()), want)

				// read_uncommitted sees every transaction's records, the
				// aborted one's too, in the order they were written.
				var all []kv
				aborted := 0
				for _, txn := range sum.Transactions {
					if txn.Abort {
						aborted++
						if txn.N != abortAt || len(txn.Produced) == 0 {
							t.Errorf("aborted transaction %d produced %d records, want transaction %d with records", txn.N, len(txn.Produced), abortAt)
						}
					}
					for _, r := range txn.Produced {
						all = append(all, kv{r.Partition, r.Key, r.Value})
					}
				}
				if aborted != 1 {
					t.Fatalf("%d transactions aborted, want 1: %+v", aborted, sum.Transactions)
				}
				sortKV(all)
				diffKV(t, "read_uncommitted output", readToSentinels(t, addr, out, parts, kgo.ReadUncommitted()), all)

				// The group's offsets move exactly with the committed
				// transactions: right after each commit they are what it
				// sent, right after the abort still the previous commit's.
				last := map[string]int64{}
				for _, txn := range sum.Transactions {
					for p, o := range txn.CommittedAfter {
						want, ok := last[p]
						if !ok {
							want = -1001 // librdkafka's OFFSET_INVALID: nothing committed
						}
						if !txn.Abort {
							if sent, ok := txn.Offsets[p]; ok {
								want = sent
							}
						}
						if o != want {
							t.Errorf("transaction %d (abort %v): partition %s committed %d right after, want %d", txn.N, txn.Abort, p, o, want)
						}
					}
					if !txn.Abort {
						for p, o := range txn.Offsets {
							last[p] = o
						}
					}
				}
				// And at the end: past every input record (offset 9 is
				// the last one of each partition, 10 its commit marker).
				got := groupOffsets(t, addr, group, in, parts)
				for p := range int32(parts) {
					want, ok := last[strconv.Itoa(int(p))]
					if !ok || got[p] != want || want < 10 || want > 11 {
						t.Errorf("group %s partition %d: committed %d, last transaction sent %d (sent: %v), want 10 or 11", group, p, got[p], want, ok)
					}
				}
				t.Logf("%d transactions, group offsets at the end %s", len(sum.Transactions), mapString(got))
				if t.Failed() {
					t.Logf("transactions: %+v\nclient errors: %q\ncommitted: %s", sum.Transactions, sum.Errors, mapString(got))
				}
			})

			// KIP-447: TxnOffsetCommit carries the consumer's generation and
			// member ID; offsets from a member that missed a rebalance are
			// refused, so a zombie consumer cannot commit.
			t.Run("stale-member", func(t *testing.T) {
				topic, group := "confluent-stale", "confluent-stale-group"
				s.createTopic(topic, 2)
				sum := runConfluent(t, py, "stale-member", addr, topic, group, "confluent-stale-txn")
				so := sum.StaleOffsets
				switch {
				case so == nil:
					t.Error("stale offsets step did not run")
				case so.OK:
					t.Error("offsets sent with a member's metadata from an older generation were accepted")
				case so.Error == nil || so.Error.Name != "ILLEGAL_GENERATION":
					t.Errorf("stale offsets failed with %+v, want ILLEGAL_GENERATION", so.Error)
				default:
					t.Logf("stale offsets: %+v", *so.Error)
				}
				if got := sum.CommittedAfterStale["0"]; got != -1001 {
					t.Errorf("after the refused offsets the group has %d on partition 0, want nothing (-1001)", got)
				}
				if got := sum.CommittedAfterCurrent["0"]; got != 2 {
					t.Errorf("after the current member's transaction the group has %d on partition 0, want 2", got)
				}
			})

			t.Run("fencing", func(t *testing.T) {
				topic := "confluent-fence"
				s.createTopic(topic, 1)
				sum := runConfluent(t, py, "fence", addr, topic, "confluent-fence-txn")
				zc := sum.ZombieCommit
				switch {
				case zc == nil:
					t.Error("zombie commit did not run")
				case zc.OK:
					t.Error("the fenced producer's commit succeeded")
				case zc.Error == nil || !slices.Contains([]string{"_FENCED", "PRODUCER_FENCED"}, zc.Error.Name) || !zc.Error.Fatal:
					t.Errorf("the fenced producer's commit failed with %+v, want a fatal _FENCED or PRODUCER_FENCED", zc.Error)
				}
				if zc != nil && zc.Error != nil {
					t.Logf("the fenced producer's commit: %+v", *zc.Error)
				}
				if !sum.SecondCommitted {
					t.Error("the new producer did not commit")
				}
				writeSentinels(t, addr, topic, 1)
				diffKV(t, "read_committed", readToSentinels(t, addr, topic, 1, kgo.ReadCommitted()),
					[]kv{{0, "second", "second"}})
				diffKV(t, "read_uncommitted", readToSentinels(t, addr, topic, 1, kgo.ReadUncommitted()),
					[]kv{{0, "zombie", "zombie"}, {0, "second", "second"}})
				if t.Failed() {
					t.Logf("client errors: %q", sum.Errors)
				}
			})
		})
	}
}
