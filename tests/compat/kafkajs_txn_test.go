package compat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// kafkajsTxnSummary is what kafkajs/txn.js prints.
type kafkajsTxnSummary struct {
	Transactions []struct {
		Abort    bool `json:"abort"`
		Produced []struct {
			Partition int32  `json:"partition"`
			Key       string `json:"key"`
			Value     string `json:"value"`
		} `json:"produced"`
		Offsets        map[string]int64 `json:"offsets"`
		CommittedAfter map[string]int64 `json:"committedAfter"`
	} `json:"transactions"`
	ZombieCommit *struct {
		OK    bool `json:"ok"`
		Error *struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"zombieCommit"`
	SecondCommitted bool     `json:"secondCommitted"`
	Errors          []string `json:"errors"`
	Watchdog        string   `json:"watchdog"`
	Fatal           string   `json:"fatal"`
}

// TestKafkaJSTransactions runs kafkajs/txn.js: KafkaJS's transactional
// producer in a consume-transform-produce loop (transaction.send,
// sendOffsets, commit, one transaction aborted on purpose) with a
// read_committed KafkaJS consumer group, and zombie fencing.
func TestKafkaJSTransactions(t *testing.T) {
	t.Parallel()
	node := needTool(t, "node")
	script, err := filepath.Abs(filepath.Join("kafkajs", "txn.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("kafkajs", "node_modules", "kafkajs", "package.json")); err != nil {
		t.Fatalf("KafkaJS is not installed (%v): run scripts/install-test-tools.sh", err)
	}
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			addr := s.KafkaAddr
			const parts = 2
			in, out, group, fence := "kafkajs-in", "kafkajs-out", "kafkajs-eos", "kafkajs-fence"
			s.createTopic(in, parts)
			s.createTopic(out, parts)
			s.createTopic(fence, 1)
			input := txnInput(t, addr, in, parts)
			const abortAt = 3
			stdout, runErr := runErr(150*time.Second, "", node, script, addr, in, out, group,
				strconv.Itoa(len(input)), strconv.Itoa(abortAt), fence)
			var sum kafkajsTxnSummary
			if err := json.Unmarshal(stdout, &sum); err != nil {
				t.Fatalf("txn.js summary: %v (run: %v)\n%s", err, runErr, stdout)
			}
			if runErr != nil || sum.Watchdog != "" || sum.Fatal != "" {
				t.Fatalf("txn.js did not finish: %v %s %s\nerrors: %q", runErr, sum.Watchdog, sum.Fatal, sum.Errors)
			}

			writeSentinels(t, addr, out, parts)
			want := transformed(input)
			diffKV(t, "read_committed output", readToSentinels(t, addr, out, parts, kgo.ReadCommitted()), want)
			var all []kv
			aborted := 0
			last := map[string]int64{}
			for i, txn := range sum.Transactions {
				for _, r := range txn.Produced {
					all = append(all, kv{r.Partition, r.Key, r.Value})
				}
				if !txn.Abort {
					for p, o := range txn.Offsets {
						last[p] = o
					}
					continue
				}
				aborted++
				// Right after the abort the group has the previous
				// commits' offsets (-1: none), not the aborted one's.
				for p := range int32(parts) {
					k := strconv.Itoa(int(p))
					want, ok := last[k]
					if !ok {
						want = -1
					}
					if got, ok := txn.CommittedAfter[k]; !ok || got != want {
						t.Errorf("transaction %d (aborted, sent %v): partition %d committed %d right after, want %d",
							i, txn.Offsets, p, got, want)
					}
				}
			}
			if aborted != 1 {
				t.Errorf("%d transactions aborted, want 1", aborted)
			}
			sortKV(all)
			diffKV(t, "read_uncommitted output", readToSentinels(t, addr, out, parts, kgo.ReadUncommitted()), all)
			if got := groupOffsets(t, addr, group, in, parts); got[0] != 10 || got[1] != 10 {
				t.Errorf("group %s committed %s at the end, want 10 on both partitions (past offset 9, the last input record)", group, mapString(got))
			}

			zc := sum.ZombieCommit
			switch {
			case zc == nil:
				t.Error("zombie commit did not run")
			case zc.OK:
				t.Error("the fenced producer's commit succeeded")
			case zc.Error == nil || !slices.Contains([]string{"INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED"}, zc.Error.Type):
				t.Errorf("the fenced producer's commit failed with %+v, want INVALID_PRODUCER_EPOCH or PRODUCER_FENCED", zc.Error)
			default:
				t.Logf("the fenced producer's commit: %+v", *zc.Error)
			}
			if !sum.SecondCommitted {
				t.Error("the new producer did not commit")
			}
			writeSentinels(t, addr, fence, 1)
			diffKV(t, "fence read_committed", readToSentinels(t, addr, fence, 1, kgo.ReadCommitted()),
				[]kv{{0, "second", "second"}})
			diffKV(t, "fence read_uncommitted", readToSentinels(t, addr, fence, 1, kgo.ReadUncommitted()),
				[]kv{{0, "zombie", "zombie"}, {0, "second", "second"}})
			if t.Failed() {
				t.Logf("transactions: %+v\nclient errors: %q", sum.Transactions, sum.Errors)
			}
		})
	}
}
