package dropin

// Consumer groups as the original StreamHouse's users drive them: its
// camelCase request names, its lag, reset and seek endpoints, answers
// read in either spelling, and streamctl consumer lag|reset|seek, against
// the real binary.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/cli"
	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// call does one JSON request and returns the status and the raw answer.
func call(t *testing.T, p *e2e.Proc, method, path string, body any) (int, []byte) {
	t.Helper()
	var raw json.RawMessage
	code := p.Call(method, path, body, &raw)
	return code, raw
}

// mustCall is call that must answer want.
func mustCall(t *testing.T, p *e2e.Proc, want int, method, path string, body any) []byte {
	t.Helper()
	code, raw := call(t, p, method, path, body)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, raw)
	}
	return raw
}

func decode[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// A group's details as a client of the original reads them, and as a
// client of ours does.
type (
	camelOffset struct {
		Topic           string `json:"topic"`
		PartitionID     int32  `json:"partitionId"`
		CommittedOffset int64  `json:"committedOffset"`
		HighWatermark   int64  `json:"highWatermark"`
		Lag             int64  `json:"lag"`
	}
	camelGroup struct {
		GroupID  string        `json:"groupId"`
		State    string        `json:"state"`
		TotalLag int64         `json:"totalLag"`
		Offsets  []camelOffset `json:"offsets"`
		Members  []struct {
			MemberID string `json:"memberId"`
			ClientID string `json:"clientId"`
		} `json:"members"`
	}
	snakeOffset struct {
		Topic           string `json:"topic"`
		Partition       int32  `json:"partition"`
		CommittedOffset int64  `json:"committed_offset"`
		HighWatermark   int64  `json:"high_watermark"`
		Lag             int64  `json:"lag"`
	}
	snakeGroup struct {
		GroupID  string        `json:"group_id"`
		State    string        `json:"state"`
		TotalLag int64         `json:"total_lag"`
		Offsets  []snakeOffset `json:"offsets"`
		Members  []struct {
			MemberID string `json:"member_id"`
			ClientID string `json:"client_id"`
		} `json:"members"`
	}
)

// The lag answer in both spellings.
type (
	camelLag struct {
		GroupID        string   `json:"groupId"`
		TotalLag       int64    `json:"totalLag"`
		PartitionCount int      `json:"partitionCount"`
		Topics         []string `json:"topics"`
		TopicLags      []struct {
			Topic      string `json:"topic"`
			TotalLag   int64  `json:"totalLag"`
			Partitions []struct {
				PartitionID     int32 `json:"partitionId"`
				CommittedOffset int64 `json:"committedOffset"`
				HighWatermark   int64 `json:"highWatermark"`
				Lag             int64 `json:"lag"`
			} `json:"partitions"`
		} `json:"topicLags"`
	}
	snakeLag struct {
		GroupID        string   `json:"group_id"`
		TotalLag       int64    `json:"total_lag"`
		PartitionCount int      `json:"partition_count"`
		Topics         []string `json:"topics"`
		TopicLags      []struct {
			Topic      string `json:"topic"`
			TotalLag   int64  `json:"total_lag"`
			Partitions []struct {
				Partition       int32 `json:"partition"`
				CommittedOffset int64 `json:"committed_offset"`
				HighWatermark   int64 `json:"high_watermark"`
				Lag             int64 `json:"lag"`
			} `json:"partitions"`
		} `json:"topic_lags"`
	}
)

// The original's answer models (crates/streamhouse-api/src/models.rs),
// field for field with its JSON types: usize and u32/u64 as unsigned
// Go integers, so a negative number fails to decode. originalShape checks
// that an answer has every one of their fields with that type.
type (
	origGroupInfo struct { // GET /api/v1/consumer-groups, one group
		GroupID        string   `json:"groupId"`
		Topics         []string `json:"topics"`
		TotalLag       int64    `json:"totalLag"`
		PartitionCount uint     `json:"partitionCount"`
	}
	origOffsetInfo struct {
		Topic           string `json:"topic"`
		PartitionID     uint32 `json:"partitionId"`
		CommittedOffset uint64 `json:"committedOffset"`
		HighWatermark   uint64 `json:"highWatermark"`
		Lag             int64  `json:"lag"`
	}
	origGroupDetail struct { // GET /api/v1/consumer-groups/{id}
		GroupID string           `json:"groupId"`
		Offsets []origOffsetInfo `json:"offsets"`
	}
	origGroupLag struct { // GET .../{id}/lag
		GroupID        string   `json:"groupId"`
		TotalLag       int64    `json:"totalLag"`
		PartitionCount uint     `json:"partitionCount"`
		Topics         []string `json:"topics"`
	}
	origResetDetail struct {
		Topic     string `json:"topic"`
		Partition uint32 `json:"partition"`
		OldOffset uint64 `json:"oldOffset"`
		NewOffset uint64 `json:"newOffset"`
	}
	origResetResponse struct { // POST .../{id}/reset
		Success         bool              `json:"success"`
		PartitionsReset uint              `json:"partitionsReset"`
		Details         []origResetDetail `json:"details"`
	}
	origSeekDetail struct {
		Topic          string `json:"topic"`
		Partition      uint32 `json:"partition"`
		OldOffset      uint64 `json:"oldOffset"`
		NewOffset      uint64 `json:"newOffset"`
		TimestampFound int64  `json:"timestampFound"`
	}
	origSeekResponse struct { // POST .../{id}/seek
		Success           bool             `json:"success"`
		PartitionsUpdated uint             `json:"partitionsUpdated"`
		Details           []origSeekDetail `json:"details"`
	}
	origDeleteResponse struct { // DELETE /api/v1/consumer-groups/{id}
		Success           bool   `json:"success"`
		GroupID           string `json:"groupId"`
		PartitionsDeleted uint   `json:"partitionsDeleted"`
	}
	origCommitResponse struct { // POST /api/v1/consumer-groups/commit
		Success bool `json:"success"`
	}
)

// original decodes raw as the original's client does into T, after
// checking that raw has every field of T with T's JSON type.
func original[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if err := originalShape(reflect.TypeFor[T](), generic, "answer"); err != nil {
		t.Fatalf("not the original's %v: %v\n%s", reflect.TypeFor[T](), err, raw)
	}
	return decode[T](t, raw)
}

// originalShape checks v (decoded into any) against the Go type typ: every
// json-tagged field present, and each value of the JSON kind typ's kind
// is encoded as.
func originalShape(typ reflect.Type, v any, at string) error {
	switch typ.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fv, ok := m[name]
			if !ok {
				return fmt.Errorf("%s: no field %q", at, name)
			}
			if err := originalShape(f.Type, fv, at+"."+name); err != nil {
				return err
			}
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		for i, e := range a {
			if err := originalShape(typ.Elem(), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %T, want a string", at, v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want a boolean", at, v)
		}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		n, ok := v.(float64)
		unsigned := typ.Kind() >= reflect.Uint && typ.Kind() <= reflect.Uint64
		if !ok || n != float64(int64(n)) || unsigned && n < 0 {
			return fmt.Errorf("%s: %v, want a %v", at, v, typ)
		}
	default:
		return fmt.Errorf("%s: no check for %v", at, typ)
	}
	return nil
}

// moved is one partition of a reset or seek answer: [topic, partition,
// old, new] as read under one spelling.
type moved struct {
	Topic     string
	Partition int32
	Old, New  int64
}

// reset posts a reset or seek and returns its partitions, checking that
// both spellings of the answer say the same.
func reset(t *testing.T, p *e2e.Proc, path string, body any) []moved {
	t.Helper()
	raw := mustCall(t, p, http.StatusOK, http.MethodPost, path, body)
	// The original's answer: its details are our partitions, oldOffset 0
	// where we say -1 (none committed).
	var orig []moved
	if strings.HasSuffix(path, "/seek") {
		a := original[origSeekResponse](t, raw)
		for _, d := range a.Details {
			orig = append(orig, moved{d.Topic, int32(d.Partition), int64(d.OldOffset), int64(d.NewOffset)})
		}
		if !a.Success || int(a.PartitionsUpdated) != len(a.Details) {
			t.Fatalf("the original's seek answer %s", raw)
		}
	} else {
		a := original[origResetResponse](t, raw)
		for _, d := range a.Details {
			orig = append(orig, moved{d.Topic, int32(d.Partition), int64(d.OldOffset), int64(d.NewOffset)})
		}
		if !a.Success || int(a.PartitionsReset) != len(a.Details) {
			t.Fatalf("the original's reset answer %s", raw)
		}
	}
	camel := decode[struct {
		GroupID    string `json:"groupId"`
		Partitions []struct {
			Topic       string `json:"topic"`
			PartitionID int32  `json:"partitionId"`
			Old         int64  `json:"oldOffset"`
			New         int64  `json:"newOffset"`
		} `json:"partitions"`
	}](t, raw)
	snake := decode[struct {
		GroupID    string `json:"group_id"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Old       int64  `json:"old_offset"`
			New       int64  `json:"new_offset"`
		} `json:"partitions"`
	}](t, raw)
	var a, b []moved
	for _, m := range camel.Partitions {
		a = append(a, moved{m.Topic, m.PartitionID, m.Old, m.New})
	}
	for _, m := range snake.Partitions {
		b = append(b, moved{m.Topic, m.Partition, m.Old, m.New})
	}
	none := make([]moved, len(b)) // ours with the original's 0 for none
	for i, m := range b {
		none[i] = moved{m.Topic, m.Partition, max(m.Old, 0), m.New}
	}
	if camel.GroupID == "" || camel.GroupID != snake.GroupID || !reflect.DeepEqual(a, none) || !reflect.DeepEqual(orig, none) {
		t.Fatalf("the spellings disagree in %s", raw)
	}
	return b
}

// produce writes n records to a partition over Kafka, the i-th (from 0)
// timestamped at base + i s.
func produce(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partition int32, n int, base time.Time) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func TestConsumerGroupsAsTheOriginal(t *testing.T) {
	t.Parallel()
	for _, b := range e2e.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := e2e.Start(t, dir, b.Env(t, dir))
			defer p.Stop(syscall.SIGTERM)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			testOriginalGroups(ctx, t, p)
		})
	}
}

func testOriginalGroups(ctx context.Context, t *testing.T, p *e2e.Proc) {
	mustCall(t, p, http.StatusCreated, http.MethodPost, "/api/v1/topics", map[string]any{"name": "orders", "partitions": 2})
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Partition 0: 10 records at 1000 s, 1001 s, ... after the epoch;
	// partition 1: 4.
	base := time.UnixMilli(1_000_000)
	produce(ctx, t, cl, "orders", 0, 10, base)
	produce(ctx, t, cl, "orders", 1, 4, base)

	// The original's commit, camelCase, creates the group.
	if c := original[origCommitResponse](t, mustCall(t, p, http.StatusOK, http.MethodPost, "/api/v1/consumer-groups/commit",
		map[string]any{"groupId": "dash", "topic": "orders", "partition": 0, "offset": 3})); !c.Success {
		t.Fatal("commit: no success")
	}
	mustCall(t, p, http.StatusOK, http.MethodPost, "/api/v1/consumer-groups/commit", map[string]any{"groupId": "dash", "topic": "orders", "partition": 1, "offset": 1})
	if code, raw := call(t, p, http.MethodPost, "/api/v1/consumer-groups/commit", map[string]any{"groupId": "a", "group_id": "b", "topic": "orders", "partition": 0, "offset": 0}); code != http.StatusBadRequest || !strings.Contains(string(raw), "disagree") {
		t.Fatalf("differing spellings: %d %s", code, raw)
	}
	// The original's create.
	mustCall(t, p, http.StatusCreated, http.MethodPost, "/api/v1/consumer-groups", map[string]any{"groupId": "made"})

	raw := mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups/dash", nil)
	cg, sg := decode[camelGroup](t, raw), decode[snakeGroup](t, raw)
	wantCamel := []camelOffset{{"orders", 0, 3, 10, 7}, {"orders", 1, 1, 4, 3}}
	wantSnake := []snakeOffset{{"orders", 0, 3, 10, 7}, {"orders", 1, 1, 4, 3}}
	if cg.GroupID != "dash" || cg.TotalLag != 10 || !reflect.DeepEqual(cg.Offsets, wantCamel) {
		t.Fatalf("camelCase reading %+v of %s", cg, raw)
	}
	if sg.GroupID != "dash" || sg.TotalLag != 10 || !reflect.DeepEqual(sg.Offsets, wantSnake) {
		t.Fatalf("snake_case reading %+v of %s", sg, raw)
	}
	if og := original[origGroupDetail](t, raw); og.GroupID != "dash" || !reflect.DeepEqual(og.Offsets, []origOffsetInfo{{"orders", 0, 3, 10, 7}, {"orders", 1, 1, 4, 3}}) {
		t.Fatalf("the original's reading %+v of %s", og, raw)
	}
	list := mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups", nil)
	if gs := decode[[]camelGroup](t, list); len(gs) != 2 || gs[0].GroupID != "dash" || gs[1].GroupID != "made" || gs[0].TotalLag != 10 {
		t.Fatalf("list in camelCase: %s", list)
	}
	if gs := original[[]origGroupInfo](t, list); !reflect.DeepEqual(gs, []origGroupInfo{{"dash", []string{"orders"}, 10, 2}, {"made", []string{}, 0, 0}}) {
		t.Fatalf("list as the original's %+v: %s", gs, list)
	}

	// Lag: 10 produced, 3 committed on partition 0; 4 and 1 on 1.
	raw = mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups/dash/lag", nil)
	if ol := original[origGroupLag](t, raw); !reflect.DeepEqual(ol, origGroupLag{"dash", 10, 2, []string{"orders"}}) {
		t.Fatalf("lag as the original's %+v of %s", ol, raw)
	}
	cl1, sl := decode[camelLag](t, raw), decode[snakeLag](t, raw)
	if cl1.GroupID != "dash" || cl1.TotalLag != 10 || cl1.PartitionCount != 2 || len(cl1.TopicLags) != 1 || cl1.TopicLags[0].TotalLag != 10 ||
		len(cl1.TopicLags[0].Partitions) != 2 || cl1.TopicLags[0].Partitions[0].Lag != 7 || cl1.TopicLags[0].Partitions[0].CommittedOffset != 3 ||
		cl1.TopicLags[0].Partitions[0].HighWatermark != 10 || cl1.TopicLags[0].Partitions[1].PartitionID != 1 || cl1.TopicLags[0].Partitions[1].Lag != 3 {
		t.Fatalf("lag in camelCase %+v of %s", cl1, raw)
	}
	if sl.GroupID != "dash" || sl.TotalLag != 10 || sl.PartitionCount != 2 || !reflect.DeepEqual(sl.Topics, []string{"orders"}) || len(sl.TopicLags) != 1 || sl.TopicLags[0].TotalLag != 10 ||
		sl.TopicLags[0].Partitions[1].Partition != 1 || sl.TopicLags[0].Partitions[1].CommittedOffset != 1 || sl.TopicLags[0].Partitions[1].HighWatermark != 4 {
		t.Fatalf("lag in snake_case %+v of %s", sl, raw)
	}
	if code, _ := call(t, p, http.MethodGet, "/api/v1/consumer-groups/nope/lag", nil); code != http.StatusNotFound {
		t.Fatalf("lag of an unknown group: %d", code)
	}

	// Reset and seek, each from where the step before left the group.
	const rpath, spath = "/api/v1/consumer-groups/dash/reset", "/api/v1/consumer-groups/dash/seek"
	ms := func(s int64) int64 { return base.Add(time.Duration(s) * time.Millisecond).UnixMilli() }
	for _, s := range []struct {
		name string
		path string
		body map[string]any
		want []moved
	}{
		{"earliest", rpath, map[string]any{"strategy": "earliest"}, []moved{{"orders", 0, 3, 0}, {"orders", 1, 1, 0}}},
		{"latest", rpath, map[string]any{"strategy": "latest", "topic": "orders", "partition": 1}, []moved{{"orders", 1, 0, 4}}},
		{"specific", rpath, map[string]any{"strategy": "specific", "topic": "orders", "partition": 0, "offset": 6}, []moved{{"orders", 0, 0, 6}}},
		{"specific past the end", rpath, map[string]any{"strategy": "specific", "topic": "orders", "offset": 50}, []moved{{"orders", 0, 6, 10}, {"orders", 1, 4, 4}}},
		{"timestamp", rpath, map[string]any{"strategy": "timestamp", "topic": "orders", "partition": 0, "timestamp": ms(2500)}, []moved{{"orders", 0, 10, 3}}},
		{"timestamp past the end", rpath, map[string]any{"strategy": "timestamp", "topic": "orders", "timestamp": ms(60_000)}, []moved{{"orders", 0, 3, 10}, {"orders", 1, 4, 4}}},
		{"seek", spath, map[string]any{"topic": "orders", "timestamp": ms(1000)}, []moved{{"orders", 0, 10, 1}, {"orders", 1, 4, 1}}},
		{"seek one partition", spath, map[string]any{"topic": "orders", "partition": 0, "timestamp": ms(0)}, []moved{{"orders", 0, 1, 0}}},
	} {
		if got := reset(t, p, s.path, s.body); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: %+v, want %+v", s.name, got, s.want)
		}
	}
	if g := decode[camelGroup](t, mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups/dash", nil)); g.TotalLag != 13 {
		t.Fatalf("lag after the resets %d, want 13", g.TotalLag)
	}
	// seek's timestampFound: the time of the record the offset points at.
	raw = mustCall(t, p, http.StatusOK, http.MethodPost, spath, map[string]any{"topic": "orders", "partition": 0, "timestamp": ms(2500)})
	if d := original[origSeekResponse](t, raw).Details; len(d) != 1 || d[0].NewOffset != 3 || d[0].TimestampFound != ms(3000) {
		t.Fatalf("seek details %s", raw)
	}

	// A group that never committed, a topic named: the original committed
	// for every partition of it (or the one named); oldOffset 0, ours -1.
	for _, c := range []struct {
		path string
		body map[string]any
		want []moved
	}{
		{"/api/v1/consumer-groups/newcomer/seek", map[string]any{"topic": "orders", "timestamp": ms(1000)}, []moved{{"orders", 0, -1, 1}, {"orders", 1, -1, 1}}},
		{"/api/v1/consumer-groups/newcomer2/reset", map[string]any{"strategy": "latest", "topic": "orders", "partition": 1}, []moved{{"orders", 1, -1, 4}}},
	} {
		if got := reset(t, p, c.path, c.body); !reflect.DeepEqual(got, c.want) {
			t.Fatalf("%s of a new group: %+v, want %+v", c.path, got, c.want)
		}
	}
	if g := original[origGroupDetail](t, mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups/newcomer", nil)); len(g.Offsets) != 2 || g.Offsets[1].CommittedOffset != 1 {
		t.Fatalf("the new group's offsets %+v", g)
	}

	// DELETE answers the original's 200 and body.
	raw = mustCall(t, p, http.StatusOK, http.MethodDelete, "/api/v1/consumer-groups/newcomer", nil)
	if d := original[origDeleteResponse](t, raw); !reflect.DeepEqual(d, origDeleteResponse{true, "newcomer", 2}) {
		t.Fatalf("delete %+v: %s", d, raw)
	}
	if code, _ := call(t, p, http.MethodDelete, "/api/v1/consumer-groups/newcomer", nil); code != http.StatusNotFound {
		t.Fatalf("delete again: %d", code)
	}

	testRefusedWhileLive(ctx, t, p)
	testStreamctl(ctx, t, p)
}

// While a real Kafka consumer is a member of the group, reset and seek
// are refused with 409 and move nothing; once it left, they work.
func testRefusedWhileLive(ctx context.Context, t *testing.T, p *e2e.Proc) {
	mustCall(t, p, http.StatusOK, http.MethodPost, "/api/v1/consumer-groups/commit", map[string]any{"groupId": "live", "topic": "orders", "partition": 0, "offset": 5})
	consumer, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("orders"),
		kgo.DisableAutoCommit(), kgo.ClientID("dropin-consumer"))
	if err != nil {
		t.Fatal(err)
	}
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pollCtx.Err() == nil {
			consumer.PollFetches(pollCtx)
		}
	}()
	members := func() int {
		_, raw := call(t, p, http.MethodGet, "/api/v1/consumer-groups/live", nil)
		return len(decode[camelGroup](t, raw).Members)
	}
	testutil.WaitFor(t, "the consumer to join group live", func() bool { return members() == 1 })
	g := decode[camelGroup](t, mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups/live", nil))
	if g.Members[0].ClientID != "dropin-consumer" || g.Members[0].MemberID == "" {
		t.Fatalf("member in camelCase: %+v", g.Members)
	}
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/consumer-groups/live/reset", map[string]any{"strategy": "earliest"}},
		{"/api/v1/consumer-groups/live/seek", map[string]any{"topic": "orders", "timestamp": 0}},
	} {
		code, raw := call(t, p, http.MethodPost, c.path, c.body)
		e := decode[struct{ Error, Message string }](t, raw)
		if code != http.StatusConflict || e.Error != "group_not_empty" || !strings.Contains(e.Message, "1 active members") {
			t.Fatalf("%s with a live member: %d %s", c.path, code, raw)
		}
	}
	if g := decode[snakeGroup](t, mustCall(t, p, http.StatusOK, http.MethodGet, "/api/v1/consumer-groups/live", nil)); len(g.Offsets) != 1 || g.Offsets[0].CommittedOffset != 5 {
		t.Fatalf("a refused reset moved the offsets: %+v", g.Offsets)
	}
	stopPolling()
	<-polled
	consumer.Close() // leaves the group
	testutil.WaitFor(t, "the consumer to leave group live", func() bool { return members() == 0 })
	if got := reset(t, p, "/api/v1/consumer-groups/live/reset", map[string]any{"strategy": "earliest"}); !reflect.DeepEqual(got, []moved{{"orders", 0, 5, 0}}) {
		t.Fatalf("reset of the emptied group: %+v", got)
	}
}

// streamctl consumer lag, reset and seek against the server.
func testStreamctl(ctx context.Context, t *testing.T, p *e2e.Proc) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(ctx, args, strings.NewReader(""), &out, &errb, func(k string) string {
			if k == "STREAMHOUSE_API_URL" {
				return p.URL
			}
			return ""
		})
		return code, out.String(), errb.String()
	}
	mustCall(t, p, http.StatusOK, http.MethodPost, "/api/v1/consumer-groups/commit", map[string]any{"groupId": "cli", "topic": "orders", "partition": 0, "offset": 4})

	code, out, errs := run("consumer", "lag", "cli")
	if code != 0 || !strings.Contains(out, "orders  0          4          10              6") || !strings.HasSuffix(out, "Total lag: 6\n") {
		t.Fatalf("consumer lag: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("-o", "json", "consumer", "lag", "cli")
	if l := decode[camelLag](t, []byte(out)); code != 0 || l.TotalLag != 6 || l.PartitionCount != 1 {
		t.Fatalf("consumer lag -o json: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("consumer", "reset", "cli", "--strategy", "specific", "--topic", "orders", "--partition", "0", "--offset", "8")
	if code != 0 || !strings.Contains(out, "orders  0          4           8") || !strings.Contains(out, `Moved the offsets of consumer group "cli" on 1 partition.`) {
		t.Fatalf("consumer reset: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("-o", "json", "consumer", "reset", "cli", "--strategy", "latest", "--topic", "orders")
	if a := decode[snakeReset](t, []byte(out)); code != 0 || !reflect.DeepEqual(a.moved(), []moved{{"orders", 0, 8, 10}, {"orders", 1, -1, 4}}) {
		t.Fatalf("consumer reset -o json: %d\n%s%s", code, out, errs)
	}
	ts := time.UnixMilli(1_000_000).Add(7 * time.Second).UnixMilli()
	code, out, errs = run("-o", "json", "consumer", "seek", "cli", "--topic", "orders", "--partition", "0", "--timestamp", fmt.Sprint(ts))
	if a := decode[snakeReset](t, []byte(out)); code != 0 || !reflect.DeepEqual(a.moved(), []moved{{"orders", 0, 10, 7}}) {
		t.Fatalf("consumer seek -o json: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("-o", "json", "consumer", "reset", "cli", "--strategy", "timestamp", "--timestamp", "0")
	if a := decode[snakeReset](t, []byte(out)); code != 0 || !reflect.DeepEqual(a.moved(), []moved{{"orders", 0, 7, 0}, {"orders", 1, 4, 0}}) {
		t.Fatalf("consumer reset timestamp -o json: %d\n%s%s", code, out, errs)
	}
	if code, out, errs = run("consumer", "seek", "cli", "--topic", "orders"); code != 2 || !strings.Contains(errs, "missing --timestamp") {
		t.Fatalf("consumer seek without --timestamp: %d\n%s%s", code, out, errs)
	}

	// The original streamctl's command lines.
	code, out, errs = run("-o", "json", "consumer", "reset", "cli", "-s", "specific", "-t", "orders", "-p", "0", "-o", "5")
	if a := decode[snakeReset](t, []byte(out)); code != 0 || !reflect.DeepEqual(a.moved(), []moved{{"orders", 0, 0, 5}}) {
		t.Fatalf("consumer reset -s specific -o 5: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("--output", "json", "consumer", "reset", "cli", "-t", "orders", "-p", "0") // earliest by default
	if a := decode[snakeReset](t, []byte(out)); code != 0 || !reflect.DeepEqual(a.moved(), []moved{{"orders", 0, 5, 0}}) {
		t.Fatalf("consumer reset without a strategy: %d\n%s%s", code, out, errs)
	}
	iso := time.UnixMilli(1_000_000).Add(7 * time.Second).UTC().Format(time.RFC3339)
	code, out, errs = run("-o", "json", "consumer", "seek", "cli", "-t", "orders", "-p", "0", "--timestamp", iso)
	if a := decode[snakeReset](t, []byte(out)); code != 0 || !reflect.DeepEqual(a.moved(), []moved{{"orders", 0, 0, 7}}) {
		t.Fatalf("consumer seek --timestamp %s: %d\n%s%s", iso, code, out, errs)
	}
	if code, out, errs = run("consumer", "delete", "cli"); code != 2 || !strings.Contains(errs, "--force") {
		t.Fatalf("consumer delete without --force: %d\n%s%s", code, out, errs)
	}
	if code, out, errs = run("consumer", "delete", "cli", "--force"); code != 0 || !strings.Contains(out, `Deleted consumer group "cli" (committed offsets of 2 partitions).`) {
		t.Fatalf("consumer delete --force: %d\n%s%s", code, out, errs)
	}
}

type snakeReset struct {
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Old       int64  `json:"old_offset"`
		New       int64  `json:"new_offset"`
	} `json:"partitions"`
}

func (a snakeReset) moved() []moved {
	var out []moved
	for _, m := range a.Partitions {
		out = append(out, moved{m.Topic, m.Partition, m.Old, m.New})
	}
	return out
}
