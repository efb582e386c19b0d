package compat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// kafkajsSummary is what kafkajs/compat.js prints.
type kafkajsSummary struct {
	Steps map[string]struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	} `json:"steps"`
	Sent     []kafkajsRecord `json:"sent"`
	Received []kafkajsRecord `json:"received"`
	// Settled is each consumer's assignment once the group had read
	// everything, before they left.
	Settled map[string]struct {
		MemberID   string  `json:"memberId"`
		Partitions []int32 `json:"partitions"`
	} `json:"settled"`
	Watchdog string `json:"watchdog"`
	Fatal    string `json:"fatal"`
}

// kafkajsRecord has keys, values and header values in base64; nil is
// null.
type kafkajsRecord struct {
	Consumer  int          `json:"consumer"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
	Timestamp string       `json:"timestamp"` // milliseconds, as KafkaJS gives it
}

func (r kafkajsRecord) content() string {
	hs, _ := json.Marshal(r.Headers)
	return fmt.Sprintf("key %s value %s headers %s timestamp %s", pstr(r.Key), pstr(r.Value), hs, r.Timestamp)
}

// TestKafkaJS runs kafkajs/compat.js (admin, producers with acks -1 and 1
// and gzip, an idempotent producer, and a consumer group of three) against
// each backend and checks its summary.
func TestKafkaJS(t *testing.T) {
	t.Parallel()
	node := needTool(t, "node")
	script, err := filepath.Abs(filepath.Join("kafkajs", "compat.js"))
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
			const prefix = "kafkajs"
			out, runErr := runErr(150*time.Second, "", node, script, s.KafkaAddr, prefix)
			var sum kafkajsSummary
			if err := json.Unmarshal(out, &sum); err != nil {
				t.Fatalf("compat.js summary: %v (run: %v)\n%s", err, runErr, out)
			}
			if runErr != nil {
				t.Errorf("compat.js: %v", runErr)
			}
			if sum.Watchdog != "" || sum.Fatal != "" {
				t.Errorf("compat.js did not finish: %s%s", sum.Watchdog, sum.Fatal)
			}
			checkKafkaJS(t, prefix, &sum)
		})
	}
}

func checkKafkaJS(t *testing.T, prefix string, sum *kafkajsSummary) {
	t.Helper()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range sum.Steps {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		if st := sum.Steps[n]; !st.OK {
			msg, _, _ := strings.Cut(st.Error, "\n    at ")
			t.Errorf("KafkaJS %s failed: %s", n, msg)
		}
	}
	// result decodes a step's result into a new value of want's type and
	// compares the two.
	result := func(step string, want any) {
		t.Helper()
		st, ok := sum.Steps[step]
		if !ok {
			t.Errorf("KafkaJS %s: step did not run", step)
			return
		}
		if !st.OK {
			return
		}
		out := reflect.New(reflect.TypeOf(want))
		if err := json.Unmarshal(st.Result, out.Interface()); err != nil {
			t.Errorf("KafkaJS %s: result %s: %v", step, st.Result, err)
			return
		}
		got := out.Elem().Interface()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("KafkaJS %s: %+v, want %+v", step, got, want)
		}
	}
	records, timestamps := prefix+"-records", prefix+"-timestamps"

	result("admin.createTopics", true)
	result("admin.createTopics.again", false) // false: it already exists
	result("admin.listTopics", []string{records, timestamps})

	type partitionMD struct {
		PartitionID int32 `json:"partitionId"`
		Leader      int32 `json:"leader"`
		ErrorCode   int16 `json:"errorCode"`
	}
	var md []struct {
		Name       string        `json:"name"`
		Partitions []partitionMD `json:"partitions"`
	}
	if st := sum.Steps["admin.fetchTopicMetadata"]; st.OK {
		if err := json.Unmarshal(st.Result, &md); err != nil || len(md) != 1 || md[0].Name != records || len(md[0].Partitions) != groupPartitions {
			t.Errorf("KafkaJS fetchTopicMetadata: %s, want %s with %d partitions", st.Result, records, groupPartitions)
		} else {
			for i, p := range md[0].Partitions {
				if p.PartitionID != int32(i) || p.ErrorCode != 0 || p.Leader != md[0].Partitions[0].Leader || p.Leader < 0 {
					t.Errorf("KafkaJS fetchTopicMetadata partition %d: %+v", i, p)
				}
			}
		}
	}
	type config struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	result("admin.describeConfigs", []config{{"retention.ms", "86400000"}})

	type topicOffset struct {
		Partition int32  `json:"partition"`
		Offset    string `json:"offset"`
		High      string `json:"high"`
		Low       string `json:"low"`
	}
	result("admin.fetchTopicOffsets", []topicOffset{{0, "5", "5", "0"}})
	// The first record at or after t0+2.5 s is the one at t0+3 s.
	result("admin.fetchTopicOffsetsByTimestamp", []topicOffset{{Partition: 0, Offset: "3"}})
	// Past the newest record: the end of the log.
	result("admin.fetchTopicOffsetsByTimestamp.future", []topicOffset{{Partition: 0, Offset: "5"}})
	result("admin.fetchTopicOffsets.afterIdempotent", []topicOffset{{0, "8", "8", "0"}})

	type recordMetadata struct {
		TopicName  string `json:"topicName"`
		Partition  int32  `json:"partition"`
		ErrorCode  int16  `json:"errorCode"`
		BaseOffset string `json:"baseOffset"`
	}
	for i, send := range []string{"acks-all", "acks-1", "gzip"} {
		var want []recordMetadata
		for p := range int32(groupPartitions) {
			want = append(want, recordMetadata{records, p, 0, fmt.Sprint(5 * i)})
		}
		var got []recordMetadata
		if st := sum.Steps["producer.send."+send]; st.OK {
			_ = json.Unmarshal(st.Result, &got)
			slices.SortFunc(got, func(a, b recordMetadata) int { return int(a.Partition - b.Partition) })
			if !reflect.DeepEqual(got, want) {
				t.Errorf("KafkaJS send %s: %+v, want %+v", send, got, want)
			}
		}
	}

	// Records: sent in partition order, so the n-th sent to a partition is
	// at offset n there. Redelivery after a rebalance is allowed, but each
	// delivery must be byte-equal to what was sent.
	want := map[int32][]kafkajsRecord{}
	for _, r := range sum.Sent {
		want[r.Partition] = append(want[r.Partition], r)
	}
	got := map[[2]int64]bool{}
	for _, r := range sum.Received {
		ws := want[r.Partition]
		if r.Offset < 0 || r.Offset >= int64(len(ws)) {
			t.Errorf("KafkaJS consumer %d read %d/%d, beyond what was sent", r.Consumer, r.Partition, r.Offset)
			continue
		}
		if w := ws[r.Offset]; r.content() != w.content() {
			t.Errorf("KafkaJS consumer %d read %d/%d:\n  %s\nwant\n  %s", r.Consumer, r.Partition, r.Offset, r.content(), w.content())
		}
		got[[2]int64{int64(r.Partition), r.Offset}] = true
	}
	if len(sum.Sent) != 3*5*groupPartitions {
		t.Errorf("KafkaJS sent %d records, want %d", len(sum.Sent), 3*5*groupPartitions)
	}
	if len(got) != len(sum.Sent) {
		t.Errorf("KafkaJS group read %d distinct records of %d sent", len(got), len(sum.Sent))
	}

	// The last assignment of each consumer: three members, each partition
	// owned once.
	var owned []int32
	members := map[string]bool{}
	for c, a := range sum.Settled {
		owned = append(owned, a.Partitions...)
		members[a.MemberID] = true
		// Kafka builds member IDs as client ID + "-" + UUID; tools show them.
		if !strings.HasPrefix(a.MemberID, "streamhouse-compat-kafkajs-") {
			t.Errorf("KafkaJS consumer %s: member ID %q, want the client ID %q as its prefix", c, a.MemberID, "streamhouse-compat-kafkajs-")
		}
	}
	slices.Sort(owned)
	if len(sum.Settled) != 3 || len(members) != 3 || !slices.Equal(owned, []int32{0, 1, 2, 3, 4, 5}) {
		t.Errorf("KafkaJS group assignments %+v, want 3 distinct members owning partitions 0..5 once", sum.Settled)
	}
	type group struct {
		GroupID  string `json:"groupId"`
		State    string `json:"state"`
		Protocol string `json:"protocol"`
		Members  int    `json:"members"`
	}
	result("admin.describeGroups", []group{{prefix + "-group", "Stable", "RoundRobinAssigner", 3}})
	type committed struct {
		Partition int32  `json:"partition"`
		Offset    string `json:"offset"`
	}
	var wantCommitted []committed
	for p := range int32(groupPartitions) {
		wantCommitted = append(wantCommitted, committed{p, "15"})
	}
	var gotCommitted []committed
	if st := sum.Steps["admin.fetchOffsets"]; st.OK {
		_ = json.Unmarshal(st.Result, &gotCommitted)
		slices.SortFunc(gotCommitted, func(a, b committed) int { return int(a.Partition - b.Partition) })
		if !reflect.DeepEqual(gotCommitted, wantCommitted) {
			t.Errorf("KafkaJS fetchOffsets after the group left: %+v, want %+v", gotCommitted, wantCommitted)
		}
	}
}
