package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/testutil"
)

// TestCommands runs every command against one real server, each group of
// commands in its own parallel subtest.
func TestCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, tc := range []struct {
		name string
		f    func(*testing.T, *server)
	}{
		{"topic", testTopic},
		{"topic-errors", testTopicErrors},
		{"produce-consume", testProduceConsume},
		{"produce-stdin", testProduceStdin},
		{"consume-errors", testConsumeErrors},
		{"follow", testFollow},
		{"follow-json-limit", testFollowJSONLimit},
		{"follow-interrupt", testFollowInterrupt},
		{"groups-offsets", testGroupsOffsets},
		{"groups-reset", testGroupsReset},
		{"sql", testSQL},
		{"schema", testSchema},
		{"repl-piped", testREPLPiped},
		{"repl-piped-interrupt", testREPLPipedInterrupt},
		{"repl-completion", testREPLCompletion},
		{"repl-sql-mode", testREPLSQLMode},
		{"repl-sql-completion", testREPLSQLCompletion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, s)
		})
	}
}

func testTopic(t *testing.T, s *server) {
	name := uniq("orders")
	out := s.ok(t, "topic", "create", name, "--partitions", "3", "--config", "retention.ms=60000", "--config", "cleanup.policy=delete")
	if want := fmt.Sprintf("Created topic %q with 3 partitions.\n", name); out != want {
		t.Fatalf("create: %q, want %q", out, want)
	}

	// list: a table with a header, and the server's JSON.
	out = s.ok(t, "topic", "list")
	rs := rows(out)
	if !slices.Equal(rs[0], []string{"NAME", "PARTITIONS", "CREATED", "CONFIG"}) {
		t.Fatalf("list header: %q", out)
	}
	i := slices.IndexFunc(rs, func(r []string) bool { return r[0] == name })
	if i < 0 || rs[i][1] != "3" || rs[i][3] != "cleanup.policy=delete,retention.ms=60000" {
		t.Fatalf("list: no row for %s with 3 partitions and its config:\n%s", name, out)
	}
	var list []topicInfo
	s.jsonOut(t, &list, "topic", "list")
	j := slices.IndexFunc(list, func(ti topicInfo) bool { return ti.Name == name })
	if j < 0 || list[j].Partitions != 3 || list[j].Config["retention.ms"] != "60000" || list[j].ID == "" {
		t.Fatalf("list -o json: %+v", list)
	}

	// get: fields; describe: fields, partitions and config tables.
	out = s.ok(t, "topic", "get", name)
	for _, want := range []string{"Name:        " + name, "Partitions:  3", "Messages:    0", "Config:      cleanup.policy=delete,retention.ms=60000"} {
		if !strings.Contains(out, want) {
			t.Fatalf("get: no %q in\n%s", want, out)
		}
	}
	s.ok(t, "produce", name, "--partition", "2", "--value", "x")
	out = s.ok(t, "topic", "describe", name)
	for _, want := range []string{"Messages:    1", "PARTITION  LEADER  EPOCH  LOW  HIGH  MESSAGES", "retention.ms    60000"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe: no %q in\n%s", want, out)
		}
	}
	rs = rows(out)
	k := slices.IndexFunc(rs, func(r []string) bool { return len(r) == 6 && r[0] == "2" })
	if k < 0 || rs[k][4] != "1" || rs[k][5] != "1" {
		t.Fatalf("describe: partition 2 row wants high watermark 1:\n%s", out)
	}
	for _, cmd := range []string{"get", "describe"} {
		var ti topicInfo
		s.jsonOut(t, &ti, "topic", cmd, name)
		if ti.Name != name || len(ti.PartitionStates) != 3 || ti.PartitionStates[2].HighWatermark != 1 {
			t.Fatalf("%s -o json: %+v", cmd, ti)
		}
	}

	// delete, in both formats.
	if out := s.ok(t, "topic", "delete", name); out != fmt.Sprintf("Deleted topic %q.\n", name) {
		t.Fatalf("delete: %q", out)
	}
	s.fails(t, 1, fmt.Sprintf("topic %q does not exist (HTTP 404, not_found)", name), "topic", "get", name)
	other := s.createTopic(t, "gone", 1)
	var del map[string]any
	s.jsonOut(t, &del, "topic", "delete", other)
	if del["name"] != other || del["deleted"] != true {
		t.Fatalf("delete -o json: %v", del)
	}

	var created topicInfo
	s.jsonOut(t, &created, "topic", "create", uniq("j"))
	if created.Partitions != 1 || created.ID == "" {
		t.Fatalf("create -o json (1 partition by default): %+v", created)
	}
}

func testTopicErrors(t *testing.T, s *server) {
	name := s.createTopic(t, "dup", 1)
	s.fails(t, 1, fmt.Sprintf("topic %q already exists (HTTP 409, conflict)", name), "topic", "create", name)
	s.fails(t, 1, "HTTP 400, bad_request", "topic", "create", "bad name!")
	s.fails(t, 1, "HTTP 400", "topic", "create", uniq("cfg"), "--config", "no.such.config=1")
	s.fails(t, 1, `topic "missing-topic" does not exist`, "topic", "describe", "missing-topic")
	s.fails(t, 1, `does not exist`, "topic", "delete", "missing-topic")
	s.fails(t, 2, "--partitions must be at least 1", "topic", "create", uniq("zero"), "--partitions", "0")
	s.fails(t, 2, `--config "retention": expected key=value`, "topic", "create", uniq("c"), "--config", "retention")
	s.fails(t, 2, "topic create: missing NAME", "topic", "create")
	s.fails(t, 2, `unexpected argument "b"`, "topic", "get", "a", "b")
	s.fails(t, 2, `unknown command "frob" for "streamctl topic"`, "topic", "frob")
	s.fails(t, 2, `invalid argument "x" for "-p, --partitions"`, "topic", "create", "y", "--partitions", "x")
	// A bare group prints its help.
	if out := s.ok(t, "topic"); !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "describe") {
		t.Fatalf("topic alone: %q", out)
	}
}

func testProduceConsume(t *testing.T, s *server) {
	name := s.createTopic(t, "pc", 2)
	value := `{"event": "signup", "user": "alice"}`
	out := s.ok(t, "produce", name, "--partition", "0", "--value", value)
	if want := fmt.Sprintf("Produced to %q partition 0 at offset 0.\n", name); out != want {
		t.Fatalf("produce: %q, want %q", out, want)
	}
	var ans produceAnswer
	s.jsonOut(t, &ans, "produce", name, "--partition", "0", "--key", "user-1", "--header", "source=cli", "--header", "n=1", "--ack", "buffered", "--value", "v2")
	if ans.Partition != 0 || ans.Offset != 1 || ans.Timestamp == 0 {
		t.Fatalf("produce -o json: %+v", ans)
	}
	s.ok(t, "produce", name, "--partition", "0", "--ack", "none", "--value", "v3")
	// A key without --partition goes to the key's partition.
	var keyed produceAnswer
	s.jsonOut(t, &keyed, "produce", name, "--key", "user-1", "--value", "k")
	var again produceAnswer
	s.jsonOut(t, &again, "produce", name, "--key", "user-1", "--value", "k2")
	if keyed.Partition != again.Partition {
		t.Fatalf("one key, two partitions: %d, %d", keyed.Partition, again.Partition)
	}

	// ack none answers before the record is stored: wait for it.
	testutil.WaitFor(t, "three records in partition 0", func() bool {
		var a consumeAnswer
		s.jsonOut(t, &a, "consume", name, "--partition", "0")
		return len(a.Records) >= 3
	})
	out = s.ok(t, "consume", name, "--partition", "0", "--offset", "0", "--limit", "3")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "PARTITION  OFFSET  TIMESTAMP") {
		t.Fatalf("consume: want a header and 3 rows:\n%s", out)
	}
	if !strings.HasSuffix(lines[1], value) || !strings.Contains(lines[2], "user-1") ||
		!strings.Contains(lines[2], "n=1,source=cli") || !strings.HasSuffix(lines[2], "v2") || !strings.HasSuffix(lines[3], "v3") {
		t.Fatalf("consume rows:\n%s", out)
	}

	var a consumeAnswer
	s.jsonOut(t, &a, "consume", name, "--partition", "0", "--offset", "1", "--limit", "1")
	if len(a.Records) != 1 || a.NextOffset != 2 || a.HighWatermark < 3 {
		t.Fatalf("consume -o json: %+v", a)
	}
	var rec consumedRecord
	if err := json.Unmarshal(a.Records[0], &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Offset != 1 || *rec.Key != "user-1" || *rec.Value != "v2" || rec.Headers["source"] != "cli" {
		t.Fatalf("record: %+v", rec)
	}

	out = s.ok(t, "consume", name, "--partition", "1", "--offset", "latest")
	if !strings.HasPrefix(out, "No records in partition 1") {
		t.Fatalf("consume at latest: %q", out)
	}
	var empty consumeAnswer
	s.jsonOut(t, &empty, "consume", name, "--partition", "1", "--offset", "latest")
	if empty.Records == nil || len(empty.Records) != 0 {
		t.Fatalf("consume -o json at latest: want an empty records array: %+v", empty)
	}
}

func testProduceStdin(t *testing.T, s *server) {
	name := s.createTopic(t, "stdin", 2)
	r := runCLI(t, s.url, "first\nsecond\n\nthird with spaces\r\n", "produce", name, "--partition", "1", "--key", "k")
	if r.code != 0 || r.stderr != "" {
		t.Fatal(r)
	}
	want := fmt.Sprintf("Produced 3 records to %q.\nPARTITION  RECORDS  FIRST OFFSET  LAST OFFSET\n1          3        0             2\n", name)
	if r.stdout != want {
		t.Fatalf("produce from stdin:\n%s\nwant:\n%s", r.stdout, want)
	}
	var a consumeAnswer
	s.jsonOut(t, &a, "consume", name, "--partition", "1")
	var got []string
	for _, raw := range a.Records {
		var rec consumedRecord
		json.Unmarshal(raw, &rec)
		if *rec.Key != "k" {
			t.Fatalf("record without the key: %s", raw)
		}
		got = append(got, *rec.Value)
	}
	if !slices.Equal(got, []string{"first", "second", "third with spaces"}) {
		t.Fatalf("consumed %q", got)
	}

	// Many lines go in several batches, in order.
	var in strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&in, "line-%d\n", i)
	}
	r = runCLI(t, s.url, in.String(), "-o", "json", "produce", name, "--partition", "0")
	var b batchAnswer
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &b) != nil || b.Count != 2500 || len(b.Offsets) != 2500 || b.Offsets[2499].Offset != 2499 {
		t.Fatalf("produce 2500 lines -o json: %v", r)
	}
	var all consumeAnswer
	s.jsonOut(t, &all, "consume", name, "--partition", "0", "--limit", "5000")
	if len(all.Records) != 2500 || all.NextOffset != 2500 {
		t.Fatalf("consumed %d records, next offset %d", len(all.Records), all.NextOffset)
	}

	r = runCLI(t, s.url, "", "produce", name)
	if r.code != 0 || !strings.Contains(r.stdout, "No records produced") {
		t.Fatalf("produce from empty stdin: %v", r)
	}
	r = runCLI(t, s.url, "a\n", "produce", "no-such-topic")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "no-such-topic" does not exist (HTTP 404, not_found)`) {
		t.Fatalf("produce stdin to a missing topic: %v", r)
	}
}

func testConsumeErrors(t *testing.T, s *server) {
	name := s.createTopic(t, "cerr", 2)
	s.fails(t, 1, fmt.Sprintf("partition 5 does not exist: topic %q has partitions 0..1", name), "consume", name, "--partition", "5")
	s.fails(t, 1, "HTTP 400, bad_request", "consume", name, "--partition", "5", "--offset", "0")
	s.fails(t, 1, "out of range", "consume", name, "--offset", "7")
	s.fails(t, 1, `topic "no-such-topic" does not exist (HTTP 404, not_found)`, "consume", "no-such-topic")
	s.fails(t, 1, `topic "no-such-topic" does not exist (HTTP 404, not_found)`, "produce", "no-such-topic", "--value", "x")
	s.fails(t, 1, "HTTP 400", "produce", name, "--partition", "9", "--value", "x")
	s.fails(t, 2, `--offset "abc"`, "consume", name, "--offset", "abc")
	s.fails(t, 2, "--partition -1 is negative", "consume", name, "--partition", "-1")
	s.fails(t, 2, "--limit must be positive", "consume", name, "--limit", "0")
	s.fails(t, 2, `--ack "bogus": use none, buffered or durable`, "produce", name, "--ack", "bogus", "--value", "x")
	s.fails(t, 2, `--header "novalue": expected key=value`, "produce", name, "--header", "novalue", "--value", "x")
	s.fails(t, 2, "produce: missing TOPIC", "produce")
}

// follow starts consume --follow in the background; stop it with cancel.
func follow(t *testing.T, s *server, ctx context.Context, args ...string) (out, errOut *testutil.SyncBuffer, done <-chan int) {
	out, errOut = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	ch := make(chan int, 1)
	go func() {
		ch <- Run(ctx, append([]string{"consume", "--follow"}, args...), strings.NewReader(""), out, errOut,
			envOf(map[string]string{"STREAMHOUSE_API_URL": s.url}))
	}()
	return out, errOut, ch
}

func testFollow(t *testing.T, s *server) {
	name := s.createTopic(t, "follow", 1)
	s.ok(t, "produce", name, "--value", "before")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errOut, done := follow(t, s, ctx, name)
	testutil.WaitFor(t, "the first record", func() bool { return strings.Contains(out.String(), "before") })
	s.ok(t, "produce", name, "--value", `{"later": "record"}`)
	testutil.WaitFor(t, "a record produced while following", func() bool { return strings.Contains(out.String(), `{"later": "record"}`) })
	cancel()
	select {
	case code := <-done:
		if code != 0 || errOut.String() != "" {
			t.Fatalf("follow stopped by cancel: exit %d, stderr %q", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume --follow did not stop when cancelled")
	}
	if n := strings.Count(out.String(), "PARTITION"); n != 1 {
		t.Fatalf("want the header once, got %d times:\n%s", n, out.String())
	}
}

func testFollowJSONLimit(t *testing.T, s *server) {
	name := s.createTopic(t, "followj", 1)
	// An explicit offset: with "latest" the follower could resolve the
	// offset after the first produce and never see it.
	out, _, done := follow(t, s, t.Context(), "-o", "json", "--offset", "0", "--limit", "2", name)
	s.ok(t, "produce", name, "--value", "one")
	s.ok(t, "produce", name, "--value", "two")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consume --follow --limit 2 did not stop after 2 records")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON line per record:\n%s", out.String())
	}
	for i, want := range []string{"one", "two"} {
		var rec consumedRecord
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil || *rec.Value != want || rec.Offset != int64(i) {
			t.Fatalf("line %d: %q (%v)", i, lines[i], err)
		}
	}
}

// testFollowInterrupt stops consume --follow with Ctrl+C as main delivers
// it: exit status 0.
func testFollowInterrupt(t *testing.T, s *server) {
	name := s.createTopic(t, "followi", 1)
	s.ok(t, "produce", name, "--value", "v")
	sigs := make(chan os.Signal, 1)
	out, errOut, done := follow(t, s, WithInterrupts(t.Context(), sigs), name)
	testutil.WaitFor(t, "the record", func() bool { return strings.Contains(out.String(), "v") })
	sigs <- os.Interrupt
	select {
	case code := <-done:
		if code != 0 || errOut.String() != "" {
			t.Fatalf("follow stopped by Ctrl+C: exit %d, stderr %q", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume --follow did not stop on interrupt")
	}
}

func testGroupsOffsets(t *testing.T, s *server) {
	name := s.createTopic(t, "grp", 2)
	for i := range 3 {
		s.ok(t, "produce", name, "--partition", "0", "--value", fmt.Sprint(i))
	}
	group := uniq("billing")
	s.fails(t, 1, fmt.Sprintf("consumer group %q does not exist (HTTP 404, not_found)", group), "consumer", "get", group)
	s.fails(t, 1, "does not exist", "consumer", "lag", group)

	out := s.ok(t, "offset", "commit", "--group", group, "--topic", name, "--partition", "0", "--offset", "1")
	if want := fmt.Sprintf("Committed offset 1 for group %q on %q partition 0.\n", group, name); out != want {
		t.Fatalf("commit: %q", out)
	}
	var committed map[string]bool
	s.jsonOut(t, &committed, "offset", "commit", "-g", group, "-t", name, "-p", "1", "--offset", "0", "--metadata", "m")
	if !committed["success"] {
		t.Fatalf("commit -o json: %v", committed)
	}
	rs := rows(s.ok(t, "offset", "get", "--group", group, "--topic", name, "--partition", "0"))
	if len(rs) != 2 || !slices.Equal(rs[1], []string{group, name, "0", "1"}) {
		t.Fatalf("offset get: %q", rs)
	}
	var co committedOffset
	s.jsonOut(t, &co, "offset", "get", "--group", group, "--topic", name, "--partition", "1")
	if co != (committedOffset{Topic: name, Partition: 1, Offset: 0, Metadata: "m"}) {
		t.Fatalf("offset get -o json: %+v", co)
	}
	s.fails(t, 1, fmt.Sprintf("consumer group %q has no committed offset for %q partition 0", group, "other"),
		"offset", "get", "--group", group, "--topic", "other", "--partition", "0")
	s.fails(t, 2, "offset commit: missing --topic, --partition, --offset", "offset", "commit", "--group", group)
	s.fails(t, 2, "offset get: missing --partition", "offset", "get", "--group", group, "--topic", name)
	s.fails(t, 1, `topic "no-such-topic" does not exist`, "offset", "commit", "--group", group, "--topic", "no-such-topic", "--partition", "0", "--offset", "0")

	out = s.ok(t, "consumer", "list")
	rs = rows(out)
	if !slices.Equal(rs[0], []string{"GROUP", "TOPICS", "PARTITIONS", "TOTAL", "LAG"}) {
		t.Fatalf("consumer list header: %q", out)
	}
	if i := slices.IndexFunc(rs, func(r []string) bool { return r[0] == group }); i < 0 || !slices.Equal(rs[i], []string{group, name, "2", "2"}) {
		t.Fatalf("consumer list: no row for %s with 2 partitions and lag 2:\n%s", group, out)
	}
	var groups []groupSummary
	s.jsonOut(t, &groups, "consumer", "list")
	if i := slices.IndexFunc(groups, func(g groupSummary) bool { return g.GroupID == group }); i < 0 || groups[i].TotalLag != 2 {
		t.Fatalf("consumer list -o json: %+v", groups)
	}

	out = s.ok(t, "consumer", "get", group)
	for _, want := range []string{"Group:      " + group, "State:      Empty", "Members:    0", "Total lag:  2", "TOPIC"} {
		if !strings.Contains(out, want) {
			t.Fatalf("consumer get: no %q in\n%s", want, out)
		}
	}
	var gi groupInfo
	s.jsonOut(t, &gi, "consumer", "get", group)
	if gi.GroupID != group || len(gi.Offsets) != 2 || gi.TotalLag != 2 {
		t.Fatalf("consumer get -o json: %+v", gi)
	}

	out = s.ok(t, "consumer", "lag", group)
	if !strings.Contains(out, fmt.Sprintf("%s  0          1          3               2", name)) || !strings.HasSuffix(out, "Total lag: 2\n") {
		t.Fatalf("consumer lag:\n%s", out)
	}
	var lag groupLagAnswer
	s.jsonOut(t, &lag, "consumer", "lag", group)
	if lag.GroupID != group || lag.TotalLag != 2 || lag.PartitionCount != 2 || len(lag.TopicLags) != 1 ||
		lag.TopicLags[0].TotalLag != 2 || len(lag.TopicLags[0].Partitions) != 2 || lag.TopicLags[0].Partitions[0].Lag != 2 {
		t.Fatalf("consumer lag -o json: %+v", lag)
	}

	// A group created over REST, with nothing committed.
	empty := uniq("empty")
	if code := s.proc.Call(http.MethodPost, "/api/v1/consumer-groups", map[string]string{"group_id": empty}, nil); code != http.StatusCreated {
		t.Fatalf("create group: %d", code)
	}
	if out := s.ok(t, "consumer", "get", empty); !strings.Contains(out, "No committed offsets.") {
		t.Fatalf("consumer get of an empty group:\n%s", out)
	}
	if out := s.ok(t, "consumer", "lag", empty); !strings.Contains(out, "has no committed offsets") {
		t.Fatalf("consumer lag of an empty group:\n%s", out)
	}
}

func testGroupsReset(t *testing.T, s *server) {
	name := s.createTopic(t, "reset", 2)
	for i := range 4 {
		s.ok(t, "produce", name, "--partition", "0", "--value", fmt.Sprint(i))
	}
	group := uniq("resetg")
	s.ok(t, "offset", "commit", "--group", group, "--topic", name, "--partition", "0", "--offset", "3")

	rs := rows(s.ok(t, "consumer", "reset", group, "--strategy", "earliest"))
	if len(rs) != 3 || !slices.Equal(rs[0], []string{"TOPIC", "PARTITION", "OLD", "OFFSET", "NEW", "OFFSET"}) ||
		!slices.Equal(rs[1], []string{name, "0", "3", "0"}) || !slices.Equal(rs[2], []string{"Moved", "the", "offsets", "of", "consumer", "group", `"` + group + `"`, "on", "1", "partition."}) {
		t.Fatalf("consumer reset: %q", rs)
	}
	var a resetAnswer
	s.jsonOut(t, &a, "consumer", "reset", group, "--strategy", "specific", "--topic", name, "--offset", "2")
	if a.GroupID != group || !slices.Equal(a.Partitions, []movedOffset{{name, 0, 0, 2}, {name, 1, -1, 0}}) {
		t.Fatalf("consumer reset -o json: %+v", a)
	}
	rs = rows(s.ok(t, "consumer", "reset", group, "--strategy", "latest", "--topic", name, "--partition", "1"))
	if !slices.Equal(rs[1], []string{name, "1", "0", "0"}) {
		t.Fatalf("consumer reset latest: %q", rs)
	}
	// Every record is older than a day from now: seek lands on the high
	// watermark; at 0, on the first record.
	s.jsonOut(t, &a, "consumer", "seek", group, "--topic", name, "--partition", "0", "--timestamp", fmt.Sprint(time.Now().Add(24*time.Hour).UnixMilli()))
	if !slices.Equal(a.Partitions, []movedOffset{{name, 0, 2, 4}}) {
		t.Fatalf("consumer seek -o json: %+v", a)
	}
	s.jsonOut(t, &a, "consumer", "reset", group, "--strategy", "timestamp", "--topic", name, "--partition", "0", "--timestamp", "0")
	if !slices.Equal(a.Partitions, []movedOffset{{name, 0, 4, 0}}) {
		t.Fatalf("consumer reset timestamp -o json: %+v", a)
	}
	// The lag follows.
	var lag groupLagAnswer
	s.jsonOut(t, &lag, "consumer", "lag", group)
	if lag.TotalLag != 4 {
		t.Fatalf("lag after the resets: %+v", lag)
	}

	// The original streamctl's flags: after "consumer reset", -s is
	// --strategy and -o --offset; the strategy defaults to earliest; seek
	// takes an ISO 8601 time.
	for _, c := range []struct {
		args []string
		want movedOffset
	}{
		{[]string{"consumer", "reset", group, "-s", "specific", "-t", name, "-p", "0", "-o", "3"}, movedOffset{name, 0, 0, 3}},
		{[]string{"consumer", "reset", group, "-t", name, "-p", "0"}, movedOffset{name, 0, 3, 0}},
		{[]string{"consumer", "reset", group, "-slatest", "--topic", name, "-p", "0"}, movedOffset{name, 0, 0, 4}},
		{[]string{"consumer", "reset", group, "-s=specific", "-t", name, "-p", "0", "-o=1"}, movedOffset{name, 0, 4, 1}},
		{[]string{"consumer", "reset", group, "--strategy", "specific", "-t", name, "-p", "0", "--offset", "2"}, movedOffset{name, 0, 1, 2}},
		{[]string{"consumer", "seek", group, "-t", name, "-p", "0", "--timestamp", "2000-01-15T10:00:00Z"}, movedOffset{name, 0, 2, 0}},
		{[]string{"consumer", "seek", group, "-t", name, "-p", "0", "--timestamp", time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05")}, movedOffset{name, 0, 0, 4}},
	} {
		s.jsonOut(t, &a, c.args...)
		if !slices.Equal(a.Partitions, []movedOffset{c.want}) {
			t.Fatalf("streamctl -o json %q: %+v, want %+v", c.args, a.Partitions, c.want)
		}
	}
	// The same in the REPL.
	if r := runCLI(t, s.url, fmt.Sprintf("consumer reset %s -s specific -t %s -p 0 -o 1\n", group, name)); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("%s  0          4           1", name)) {
		t.Fatalf("consumer reset -s -o in the REPL: %v", r)
	}
	s.ok(t, "consumer", "reset", group, "-s", "latest", "-t", name, "-p", "0")
	// Global flags before the command keep their meaning.
	if r := s.run(t, "--output", "json", "-s", "http://ignored:50051", "--api-url", s.url, "consumer", "reset", group, "-s", "earliest", "-t", name, "-p", "0"); r.code != 0 || !strings.Contains(r.stdout, `"new_offset": 0`) {
		t.Fatalf("global flags before consumer reset: %v", r)
	}
	s.fails(t, 2, `--timestamp "yesterday" is neither`, "consumer", "seek", group, "-t", name, "--timestamp", "yesterday")
	s.fails(t, 2, `invalid argument "json" for "--offset"`, "consumer", "reset", group, "-s", "specific", "-o", "json")

	// delete: --force (-f) required, as the original asked without it.
	s.fails(t, 2, "add --force", "consumer", "delete", group)
	if out := s.ok(t, "consumer", "delete", group, "-f"); out != fmt.Sprintf("Deleted consumer group %q (committed offsets of 2 partitions).\n", group) {
		t.Fatalf("consumer delete: %q", out)
	}
	s.fails(t, 1, "does not exist", "consumer", "delete", group, "--force")
	var del groupDeleted
	gone := uniq("gone")
	s.ok(t, "offset", "commit", "--group", gone, "--topic", name, "--partition", "1", "--offset", "0")
	s.jsonOut(t, &del, "consumer", "delete", gone, "--force")
	if del.GroupID != gone || del.PartitionsDeleted != 1 {
		t.Fatalf("consumer delete -o json: %+v", del)
	}

	s.fails(t, 2, "consumer reset: missing --offset", "consumer", "reset", group, "--strategy", "specific")
	s.fails(t, 2, "consumer reset: missing --timestamp", "consumer", "reset", group, "--strategy", "timestamp")
	s.fails(t, 2, "consumer seek: missing --topic, --timestamp", "consumer", "seek", group)
	s.fails(t, 1, `"newest" is not one of`, "consumer", "reset", group, "--strategy", "newest")
	s.fails(t, 1, "does not exist (HTTP 404, not_found)", "consumer", "reset", uniq("nope"), "--strategy", "earliest")
	s.fails(t, 1, "does not exist", "consumer", "lag", uniq("nope"))
}

func testSQL(t *testing.T, s *server) {
	name := s.createTopic(t, "sql", 2)
	s.ok(t, "produce", name, "--partition", "1", "--key", "k1", "--value", `{"n": 1}`)
	s.ok(t, "produce", name, "--partition", "1", "--key", "k2", "--value", `{"n": 2}`)
	q := `SELECT key, json_extract(value, '$.n') AS n FROM "` + name + `" ORDER BY n`
	out := s.ok(t, "sql", "query", q)
	if !strings.Contains(out, "k1") || !strings.Contains(out, "k2") || !strings.Contains(out, "(2 rows)") || strings.Index(out, "k1") > strings.Index(out, "k2") {
		t.Fatalf("sql query table:\n%s", out)
	}
	if out := s.ok(t, "sql", "query", "--max-rows", "1", q); !strings.Contains(out, "(1 row; truncated") {
		t.Fatalf("sql query --max-rows 1:\n%s", out)
	}
	var ans struct {
		Rows      [][]any `json:"rows"`
		RowCount  int     `json:"rowCount"`
		Truncated bool    `json:"truncated"`
	}
	if err := json.Unmarshal([]byte(s.ok(t, "-o", "json", "sql", "query", q)), &ans); err != nil || ans.RowCount != 2 || ans.Truncated {
		t.Fatalf("sql query -o json: %+v, %v", ans, err)
	}
	r := s.fails(t, 1, "topic_not_found", "sql", "query", "SELECT * FROM no_such_topic")
	if !strings.Contains(r.stderr, "(HTTP 404, topic_not_found)") {
		t.Fatalf("want the server's code: %v", r)
	}
	// Words after query are the query, even ones that look like flags.
	s.fails(t, 1, "parse_error", "sql", "query", "SELECT", "a", "-1", "FROM", "FROM")
	s.fails(t, 2, "sql query: missing SQL", "sql", "query")
	// The limits are checked here, then by the server.
	s.fails(t, 2, "--max-rows must be positive", "sql", "query", "--max-rows", "0", "SELECT 1")
	s.fails(t, 2, "--timeout must be at least 1ms", "sql", "query", "--timeout", "0s", "SELECT 1")
	s.fails(t, 2, "--max-rows does not apply to --follow", "sql", "query", "--follow", "--max-rows", "3", "SELECT 1")
	s.fails(t, 1, "max_rows must be in 1..10000", "sql", "query", "--max-rows", "10001", "SELECT 1")
}
