package rest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
)

func TestConsumerGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("g", 2)
	for range 5 {
		e.produce(`{"topic":"g","partition":0,"value":"v"}`)
	}
	e.produce(`{"topic":"g","partition":1,"value":"v"}`)

	if r := e.must(e.get("/api/v1/consumer-groups"), http.StatusOK); string(r.body) != "[]\n" {
		t.Fatalf("empty list %q", r.body)
	}

	r := e.must(e.post("/api/v1/consumer-groups", `{"group_id":"billing"}`), http.StatusCreated)
	if loc := r.header.Get("Location"); loc != "/api/v1/consumer-groups/billing" {
		t.Fatalf("Location %q", loc)
	}
	m := object(t, r.body, "group_id", "groupId", "state", "members", "offsets", "total_lag", "totalLag")
	if m["group_id"] != "billing" || m["state"] != "Empty" || num(t, m, "total_lag") != 0 {
		t.Fatalf("created %v", m)
	}
	checkError(t, e.post("/api/v1/consumer-groups", `{"group_id":"billing"}`), http.StatusConflict, "conflict", "billing")

	// A created group is listed and described before any commit.
	list := array(t, e.must(e.get("/api/v1/consumer-groups"), http.StatusOK).body)
	if len(list) != 1 || list[0]["group_id"] != "billing" {
		t.Fatalf("list %v", list)
	}
	e.must(e.get("/api/v1/consumer-groups/billing"), http.StatusOK)

	r = e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"billing","topic":"g","partition":0,"offset":2,"metadata":"m"}`), http.StatusOK)
	if string(r.body) != "{\"success\":true}\n" {
		t.Fatalf("commit answer %s", r.body)
	}
	e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"billing","topic":"g","partition":1,"offset":1}`), http.StatusOK)
	// Committing for an unknown group creates it, as Kafka does.
	e.must(e.post("/api/v1/consumer-groups/commit", `{"group_id":"audit","topic":"g","partition":0,"offset":5}`), http.StatusOK)

	r = e.must(e.get("/api/v1/consumer-groups/billing"), http.StatusOK)
	m = object(t, r.body, "group_id", "groupId", "state", "members", "offsets", "total_lag", "totalLag")
	if members, ok := m["members"].([]any); !ok || len(members) != 0 {
		t.Fatalf("members %#v, want []", m["members"])
	}
	if num(t, m, "total_lag") != 3 {
		t.Fatalf("total_lag %v, want 3", m["total_lag"])
	}
	offs := m["offsets"].([]any)
	if len(offs) != 2 {
		t.Fatalf("offsets %v", offs)
	}
	o0 := offs[0].(map[string]any)
	checkKeys(t, o0, "topic", "partition", "partitionId", "committed_offset", "committedOffset", "high_watermark", "highWatermark", "lag")
	if o0["topic"] != "g" || num(t, o0, "partition") != 0 || num(t, o0, "committed_offset") != 2 ||
		num(t, o0, "high_watermark") != 5 || num(t, o0, "lag") != 3 {
		t.Fatalf("offsets[0] %v", o0)
	}
	if o1 := offs[1].(map[string]any); num(t, o1, "partition") != 1 || num(t, o1, "lag") != 0 {
		t.Fatalf("offsets[1] %v", o1)
	}

	list = array(t, e.must(e.get("/api/v1/consumer-groups"), http.StatusOK).body)
	if len(list) != 2 || list[0]["group_id"] != "audit" || list[1]["group_id"] != "billing" {
		t.Fatalf("list %v", list)
	}
	checkKeys(t, list[1], "group_id", "groupId", "total_lag", "totalLag", "topics", "partition_count", "partitionCount", "state", "partitions")
	if num(t, list[0], "total_lag") != 0 || num(t, list[1], "total_lag") != 3 {
		t.Fatalf("list lags %v", list)
	}
	// The original's fields: topics by name, partitionCount; and the state.
	if !reflect.DeepEqual(list[1]["topics"], []any{"g"}) || num(t, list[1], "partitionCount") != 2 ||
		list[1]["state"] != "Empty" || list[1]["members"] != nil || num(t, list[0], "partitionCount") != 1 {
		t.Fatalf("list in the original's fields %v", list)
	}

	committed := array(t, e.must(e.get("/api/v1/consumer-groups/billing/offsets"), http.StatusOK).body)
	if len(committed) != 2 {
		t.Fatalf("offsets %v", committed)
	}
	checkKeys(t, committed[0], "topic", "partition", "partitionId", "offset", "metadata")
	if committed[0]["topic"] != "g" || num(t, committed[0], "offset") != 2 || committed[0]["metadata"] != "m" ||
		num(t, committed[1], "partition") != 1 || committed[1]["metadata"] != "" {
		t.Fatalf("offsets %v", committed)
	}

	r = e.must(e.do(http.MethodDelete, "/api/v1/consumer-groups/billing", "", ""), http.StatusOK)
	m = object(t, r.body, "success", "group_id", "groupId", "partitions_deleted", "partitionsDeleted")
	if m["success"] != true || m["groupId"] != "billing" || num(t, m, "partitionsDeleted") != 2 || num(t, m, "partitions_deleted") != 2 {
		t.Fatalf("delete answer %s", r.body)
	}
	checkError(t, e.get("/api/v1/consumer-groups/billing"), http.StatusNotFound, "not_found", `consumer group "billing" does not exist`)
	checkError(t, e.get("/api/v1/consumer-groups/billing/offsets"), http.StatusNotFound, "not_found", "billing")
	checkError(t, e.do(http.MethodDelete, "/api/v1/consumer-groups/billing", "", ""), http.StatusNotFound, "not_found", "billing")
}

// The original's request names (groupId) are accepted next to ours, and
// every group answer carries both spellings: a client decoding either
// gets the values.
func TestConsumerGroupsOriginalNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("orig", 2)
	for range 4 {
		e.produce(`{"topic":"orig","partition":1,"value":"v"}`)
	}
	e.must(e.post("/api/v1/consumer-groups/commit", `{"groupId":"camel","topic":"orig","partition":1,"offset":1}`), http.StatusOK)
	// Both spellings agreeing is fine; disagreeing changes nothing.
	e.must(e.post("/api/v1/consumer-groups/commit", `{"groupId":"camel","group_id":"camel","topic":"orig","partition":0,"offset":0}`), http.StatusOK)
	before := e.snapshot()
	checkError(t, e.post("/api/v1/consumer-groups/commit", `{"groupId":"a","group_id":"b","topic":"orig","partition":0,"offset":0}`),
		http.StatusBadRequest, "bad_request", "group_id (b) and groupId (a) disagree")
	checkError(t, e.post("/api/v1/consumer-groups", `{"groupId":"a","group_id":"b"}`), http.StatusBadRequest, "bad_request", "disagree")
	checkError(t, e.post("/api/v1/consumer-groups", `{"groupId":7}`), http.StatusBadRequest, "bad_request", "groupId must be a string")
	if after := e.snapshot(); after != before {
		t.Fatalf("a refused request changed the state:\n%s\n%s", before, after)
	}
	r := e.must(e.post("/api/v1/consumer-groups", `{"groupId":"created"}`), http.StatusCreated)
	if loc := r.header.Get("Location"); loc != "/api/v1/consumer-groups/created" {
		t.Fatalf("Location %q", loc)
	}

	type snakeOffset struct {
		Topic           string `json:"topic"`
		Partition       int32  `json:"partition"`
		CommittedOffset int64  `json:"committed_offset"`
		HighWatermark   int64  `json:"high_watermark"`
		Lag             int64  `json:"lag"`
	}
	type camelOffset struct {
		PartitionID     int32 `json:"partitionId"`
		CommittedOffset int64 `json:"committedOffset"`
		HighWatermark   int64 `json:"highWatermark"`
	}
	type snake struct {
		GroupID  string        `json:"group_id"`
		TotalLag int64         `json:"total_lag"`
		Offsets  []snakeOffset `json:"offsets"`
	}
	type camel struct {
		GroupID  string        `json:"groupId"`
		TotalLag int64         `json:"totalLag"`
		Offsets  []camelOffset `json:"offsets"`
	}
	body := e.must(e.get("/api/v1/consumer-groups/camel"), http.StatusOK).body
	s, c := decodeInto[snake](t, body), decodeInto[camel](t, body)
	if s.GroupID != "camel" || s.TotalLag != 3 || len(s.Offsets) != 2 || s.Offsets[1] != (snakeOffset{"orig", 1, 1, 4, 3}) {
		t.Fatalf("snake_case reading %+v of %s", s, body)
	}
	if c.GroupID != "camel" || c.TotalLag != 3 || len(c.Offsets) != 2 || c.Offsets[1] != (camelOffset{1, 1, 4}) {
		t.Fatalf("camelCase reading %+v of %s", c, body)
	}
}

func TestConsumerGroupLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("a", 2)
	e.createTopic("b", 1)
	for range 7 {
		e.produce(`{"topic":"a","partition":0,"value":"v"}`)
	}
	for range 3 {
		e.produce(`{"topic":"a","partition":1,"value":"v"}`)
		e.produce(`{"topic":"b","partition":0,"value":"v"}`)
	}
	for _, c := range []string{
		`{"groupId":"lag","topic":"a","partition":0,"offset":2}`,
		`{"groupId":"lag","topic":"a","partition":1,"offset":3}`,
		`{"groupId":"lag","topic":"b","partition":0,"offset":1}`,
	} {
		e.must(e.post("/api/v1/consumer-groups/commit", c), http.StatusOK)
	}
	body := e.must(e.get("/api/v1/consumer-groups/lag/lag"), http.StatusOK).body
	m := object(t, body, "group_id", "groupId", "total_lag", "totalLag", "partition_count", "partitionCount", "topics", "topic_lags", "topicLags")
	if m["groupId"] != "lag" || num(t, m, "totalLag") != 7 || num(t, m, "total_lag") != 7 || num(t, m, "partitionCount") != 3 {
		t.Fatalf("lag %s", body)
	}
	// The original's topics: the names.
	if !reflect.DeepEqual(m["topics"], []any{"a", "b"}) || !reflect.DeepEqual(m["topic_lags"], m["topicLags"]) {
		t.Fatalf("lag topics %s", body)
	}
	type part struct {
		Partition       int32 `json:"partition"`
		PartitionID     int32 `json:"partitionId"`
		CommittedOffset int64 `json:"committedOffset"`
		HighWatermark   int64 `json:"highWatermark"`
		Lag             int64 `json:"lag"`
	}
	type topic struct {
		Topic      string `json:"topic"`
		TotalLag   int64  `json:"totalLag"`
		Partitions []part `json:"partitions"`
	}
	got := decodeInto[struct {
		Topics []topic `json:"topicLags"`
	}](t, body).Topics
	want := []topic{
		{"a", 5, []part{{0, 0, 2, 7, 5}, {1, 1, 3, 3, 0}}},
		{"b", 2, []part{{0, 0, 1, 3, 2}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("topics %+v, want %+v", got, want)
	}
	// A created group without offsets has no lag; an unknown one is 404.
	e.must(e.post("/api/v1/consumer-groups", `{"group_id":"idle"}`), http.StatusCreated)
	if body := e.must(e.get("/api/v1/consumer-groups/idle/lag"), http.StatusOK).body; !strings.Contains(string(body), `"topics":[],`) || !strings.Contains(string(body), `"topic_lags":[]`) {
		t.Fatalf("idle lag %s", body)
	}
	checkError(t, e.get("/api/v1/consumer-groups/nope/lag"), http.StatusNotFound, "not_found", `consumer group "nope" does not exist`)
}

// moved is one partition of a reset or seek answer, read in our spelling
// and the original's.
type moved struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old_offset"`
	New       int64  `json:"new_offset"`
	OrigOld   int64  `json:"oldOffset"`
	OrigNew   int64  `json:"newOffset"`
}

// m is a moved partition; the original's oldOffset is 0 where ours is
// -1 (no committed offset).
func m(topic string, p int32, old, next int64) moved {
	return moved{topic, p, old, next, max(old, 0), next}
}

// reset posts a reset or seek and returns its partitions, checking the
// original's fields: success, partitionsReset (reset) or
// partitionsUpdated (seek), and details, the same partitions.
func (e *env) reset(path, body string) []moved {
	e.t.Helper()
	r := e.must(e.post(path, body), http.StatusOK)
	a := decodeInto[struct {
		Success     bool    `json:"success"`
		GroupID     string  `json:"group_id"`
		OrigGroupID string  `json:"groupId"`
		Partitions  []moved `json:"partitions"`
		Details     []moved `json:"details"`
	}](e.t, r.body)
	if !a.Success || a.GroupID == "" || a.GroupID != a.OrigGroupID || !reflect.DeepEqual(a.Partitions, a.Details) {
		e.t.Fatalf("answer %s", r.body)
	}
	count, other := "partitionsReset", "partitionsUpdated"
	if strings.HasSuffix(path, "/seek") {
		count, other = other, count
	}
	raw := decodeInto[map[string]any](e.t, r.body)
	if n, ok := raw[count].(float64); !ok || int(n) != len(a.Partitions) || raw[other] != nil {
		e.t.Fatalf("answer without %s: %s", count, r.body)
	}
	return a.Partitions
}

func TestConsumerGroupReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.createTopic("r", 2)
	e.createTopic("other", 1)
	// Partition 0: offsets 0..9 at times 1000, 2000, ... 10000.
	recs := make([]broker.Record, 10)
	for i := range recs {
		recs[i] = broker.Record{Timestamp: int64(i+1) * 1000, Value: []byte("v")}
	}
	if _, err := e.b.ProduceRecords(ctx, "r", 0, recs, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		e.produce(`{"topic":"r","partition":1,"value":"v"}`)
	}
	e.must(e.post("/api/v1/consumer-groups/commit", `{"groupId":"g","topic":"r","partition":0,"offset":5}`), http.StatusOK)
	e.must(e.post("/api/v1/consumer-groups/commit", `{"groupId":"g","topic":"r","partition":1,"offset":1}`), http.StatusOK)
	// Log start 2 on partition 0.
	if _, err := e.b.DeleteRecords(ctx, "r", 0, 2); err != nil {
		t.Fatal(err)
	}
	const path = "/api/v1/consumer-groups/g/reset"

	steps := []struct {
		name, path, body string
		want             []moved
	}{
		{"earliest, every committed topic", path, `{"strategy":"earliest"}`, []moved{m("r", 0, 5, 2), m("r", 1, 1, 0)}},
		{"latest, one partition", path, `{"strategy":"latest","topic":"r","partition":1}`, []moved{m("r", 1, 0, 4)}},
		{"specific, clamped to the high watermark", path, `{"strategy":"specific","topic":"r","offset":99}`, []moved{m("r", 0, 2, 10), m("r", 1, 4, 4)}},
		{"specific, clamped to the log start", path, `{"strategy":"specific","topic":"r","partition":0,"offset":1}`, []moved{m("r", 0, 10, 2)}},
		{"specific", path, `{"strategy":"SPECIFIC","topic":"r","partition":0,"offset":7}`, []moved{m("r", 0, 2, 7)}},
		{"timestamp between records", path, `{"strategy":"timestamp","topic":"r","partition":0,"timestamp":4500}`, []moved{m("r", 0, 7, 4)}},
		{"timestamp past the end", path, `{"strategy":"timestamp","topic":"r","partition":0,"timestamp":99999}`, []moved{m("r", 0, 4, 10)}},
		{"timestamp before the log start", path, `{"strategy":"timestamp","topic":"r","partition":0,"timestamp":0}`, []moved{m("r", 0, 10, 2)}},
		{"seek", "/api/v1/consumer-groups/g/seek", `{"topic":"r","partition":0,"timestamp":6000}`, []moved{m("r", 0, 2, 5)}},
		{"seek every partition", "/api/v1/consumer-groups/g/seek", `{"topic":"r","timestamp":9000}`, []moved{m("r", 0, 5, 8), m("r", 1, 4, 0)}}, // partition 1's records are of now
		{"a topic the group never committed to", path, `{"strategy":"earliest","topic":"other"}`, []moved{m("other", 0, -1, 0)}},
		// A group that never committed, with a topic named: every
		// partition of it (or the one named), no old offsets.
		{"seek a new group", "/api/v1/consumer-groups/fresh/seek", `{"topic":"r","timestamp":9000}`, []moved{m("r", 0, -1, 8), m("r", 1, -1, 0)}},
		{"reset a new group", "/api/v1/consumer-groups/fresh2/reset", `{"strategy":"latest","topic":"r","partition":1}`, []moved{m("r", 1, -1, 4)}},
	}
	for _, s := range steps {
		if got := e.reset(s.path, s.body); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: %+v, want %+v", s.name, got, s.want)
		}
	}
	// The offsets are committed.
	// timestampFound: the time of the record at the new offset; -1 when
	// none is that recent. Not in a reset by another strategy.
	for ts, want := range map[int64]any{4500: 5000.0, 99999: -1.0} {
		body := e.must(e.post("/api/v1/consumer-groups/fresh3/seek", fmt.Sprintf(`{"topic":"r","partition":0,"timestamp":%d}`, ts)), http.StatusOK).body
		d := decodeInto[struct{ Details []map[string]any }](t, body).Details
		if len(d) != 1 || d[0]["timestampFound"] != want || d[0]["timestamp_found"] != want {
			t.Fatalf("seek to %d: %s, want timestampFound %v", ts, body, want)
		}
	}
	if body := e.must(e.post("/api/v1/consumer-groups/fresh3/reset", `{"strategy":"latest","topic":"r"}`), http.StatusOK).body; strings.Contains(string(body), "timestampFound") {
		t.Fatalf("reset to latest: %s", body)
	}
	for g, want := range map[string]int64{"fresh": 2, "fresh2": 1} {
		if offs, err := e.b.GroupOffsets(ctx, g); err != nil || int64(len(offs)) != want {
			t.Fatalf("group %s committed %v (%v), want %d partitions", g, offs, err, want)
		}
	}
	want := map[string]int64{"r/0": 8, "r/1": 0, "other/0": 0}
	offs, err := e.b.GroupOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, o := range offs {
		got[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("committed %v, want %v", got, want)
	}

	before := e.snapshot()
	for _, c := range []struct{ name, path, body, code, msg string }{
		{"no strategy", path, `{}`, "bad_request", "strategy is required"},
		{"unknown strategy", path, `{"strategy":"newest"}`, "bad_request", `"newest" is not one of`},
		{"specific without offset", path, `{"strategy":"specific","topic":"r"}`, "bad_request", "offset is required"},
		{"offset without specific", path, `{"strategy":"earliest","offset":3}`, "bad_request", "only for strategy specific"},
		{"timestamp without it", path, `{"strategy":"timestamp"}`, "bad_request", "timestamp (ms since the epoch) is required"},
		{"timestamp with latest", path, `{"strategy":"latest","timestamp":3}`, "bad_request", "only for strategy timestamp"},
		{"partition without topic", path, `{"strategy":"earliest","partition":0}`, "bad_request", "partition needs a topic"},
		{"negative partition", path, `{"strategy":"earliest","topic":"r","partition":-1}`, "bad_request", "negative"},
		{"negative offset", path, `{"strategy":"specific","topic":"r","offset":-1}`, "bad_request", "negative"},
		{"negative timestamp", path, `{"strategy":"timestamp","timestamp":-5}`, "bad_request", "negative"},
		{"unknown partition", path, `{"strategy":"earliest","topic":"r","partition":2}`, "bad_request", "not 2"},
		{"unknown topic", path, `{"strategy":"earliest","topic":"nope"}`, "not_found", `topic "nope" does not exist`},
		{"unknown group", "/api/v1/consumer-groups/nope/reset", `{"strategy":"earliest"}`, "not_found", `consumer group "nope" does not exist`},
		{"group without offsets", "/api/v1/consumer-groups/empty/reset", `{"strategy":"earliest"}`, "bad_request", "name a topic"},
		{"seek without topic", "/api/v1/consumer-groups/g/seek", `{"timestamp":1}`, "bad_request", "topic is required"},
		{"seek without timestamp", "/api/v1/consumer-groups/g/seek", `{"topic":"r"}`, "bad_request", "timestamp"},
		{"seek with a strategy", "/api/v1/consumer-groups/g/seek", `{"topic":"r","timestamp":1,"strategy":"latest"}`, "bad_request", "use reset"},
		{"seek unknown group, unknown topic", "/api/v1/consumer-groups/nope/seek", `{"topic":"nada","timestamp":1}`, "not_found", `topic "nada" does not exist`},
	} {
		if c.name == "group without offsets" {
			e.must(e.post("/api/v1/consumer-groups", `{"group_id":"empty"}`), http.StatusCreated)
			before = e.snapshot()
		}
		status := http.StatusBadRequest
		if c.code == "not_found" {
			status = http.StatusNotFound
		}
		t.Run(c.name, func(t *testing.T) { checkError(t, e.post(c.path, c.body), status, c.code, c.msg) })
		if after := e.snapshot(); after != before {
			t.Fatalf("%s changed the state:\n%s\n%s", c.name, before, after)
		}
	}
}

// fakeMembers is a coordinator with a fixed membership whose admin
// commits fail with err (nil: they pass to the broker).
type fakeMembers struct {
	members int
	err     error
	b       *broker.Broker
}

func (f *fakeMembers) GroupMembers(context.Context, string) (broker.GroupMembership, bool) {
	m := broker.GroupMembership{State: "Empty"}
	if f.members > 0 {
		m.State = "Stable"
	}
	for i := range f.members {
		m.Members = append(m.Members, broker.GroupMember{MemberID: fmt.Sprint("m", i), ClientID: "c"})
	}
	return m, true
}

func (f *fakeMembers) AdminCommitOffsets(ctx context.Context, group string, commits []broker.OffsetCommit) error {
	if f.err != nil {
		return f.err
	}
	return f.b.CommitOffsets(ctx, group, commits)
}

// While a group has live members its offsets are not moved: 409, as
// Kafka refuses an admin's OffsetCommit to a group with members, whether
// the members are seen first or the coordinator refuses the commit.
func TestConsumerGroupResetRefusedWithMembers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		f    fakeMembers
		msg  string
	}{
		{"members seen", fakeMembers{members: 2}, "has 2 active members"},
		{"coordinator refuses", fakeMembers{err: fmt.Errorf("group g: %w", broker.ErrGroupNotEmpty)}, "has active members"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := c.f
			e := newEnv(t, withMembers(&f))
			f.b = e.b
			e.createTopic("t", 1)
			e.produce(`{"topic":"t","partition":0,"value":"v"}`)
			e.must(e.post("/api/v1/consumer-groups/commit", `{"groupId":"g","topic":"t","partition":0,"offset":1}`), http.StatusOK)
			before := e.snapshot()
			checkError(t, e.post("/api/v1/consumer-groups/g/reset", `{"strategy":"earliest"}`), http.StatusConflict, "group_not_empty", c.msg)
			checkError(t, e.post("/api/v1/consumer-groups/g/seek", `{"topic":"t","timestamp":0}`), http.StatusConflict, "group_not_empty", c.msg)
			if after := e.snapshot(); after != before {
				t.Fatalf("a refused reset changed the state:\n%s\n%s", before, after)
			}
			if c.f.members > 0 {
				// The members show in both spellings.
				g := object(t, e.must(e.get("/api/v1/consumer-groups/g"), http.StatusOK).body,
					"group_id", "groupId", "state", "members", "offsets", "total_lag", "totalLag")
				m0 := g["members"].([]any)[0].(map[string]any)
				checkKeys(t, m0, "member_id", "memberId", "client_id", "clientId", "host", "assignment")
				if m0["memberId"] != "m0" || m0["member_id"] != "m0" || m0["clientId"] != "c" {
					t.Fatalf("member %v", m0)
				}
			}
		})
	}
	// With no members the commit goes through the admin path.
	f := &fakeMembers{}
	e := newEnv(t, withMembers(f))
	f.b = e.b
	e.createTopic("t", 1)
	e.must(e.post("/api/v1/consumer-groups/commit", `{"groupId":"g","topic":"t","partition":0,"offset":0}`), http.StatusOK)
	f.err = errors.New("admin path taken")
	checkError(t, e.post("/api/v1/consumer-groups/g/reset", `{"strategy":"latest"}`), http.StatusInternalServerError, "internal", "internal error")
}
