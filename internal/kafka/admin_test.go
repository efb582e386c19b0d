package kafka

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// The admin APIs through kadm, as applications call them. Every refused
// request is checked to have changed nothing.

func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// topicState is what a refused request must leave alone.
type topicState struct {
	partitions int32
	config     map[string]string
}

func (s *testServer) topicState(t *testing.T, name string) (topicState, bool) {
	t.Helper()
	tp, err := s.broker.LookupTopic(context.Background(), name)
	if errors.Is(err, broker.ErrUnknownTopic) {
		return topicState{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return topicState{tp.Partitions, tp.Config}, true
}

func (s *testServer) topicNames(t *testing.T) []string {
	t.Helper()
	ts, err := s.broker.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range ts {
		names = append(names, tp.Name)
	}
	return names
}

func (s *testServer) mustCreate(t *testing.T, name string, partitions int32, cfg map[string]string) {
	t.Helper()
	if _, err := s.broker.CreateTopic(context.Background(), broker.TopicSpec{Name: name, Partitions: partitions, Config: cfg}, false); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: error %v, want %v", what, got, want)
	}
}

func TestCreateTopics(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, ctx := s.admin(), adminCtx(t)

	// Clients commonly ask for replication factor 3: accepted, reported 1.
	resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"retention.ms": kadm.StringPtr("60000"), "cleanup.policy": kadm.StringPtr("compact")}, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if resp.NumPartitions != 3 || resp.ReplicationFactor != 1 || resp.ID == (kadm.TopicID{}) {
		t.Fatalf("created %+v", resp)
	}
	if c := resp.Configs["retention.ms"]; c.Value == nil || *c.Value != "60000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms: %+v", c)
	}
	if c := resp.Configs["segment.bytes"]; c.Value == nil || *c.Value != "1073741824" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("segment.bytes: %+v", c)
	}
	orders, ok := s.topicState(t, "orders")
	if !ok || orders.partitions != 3 || !maps.Equal(orders.config, map[string]string{"retention.ms": "60000", "cleanup.policy": "compact"}) {
		t.Fatalf("stored %+v", orders)
	}

	// -1 and -1: the server's defaults.
	resp, err = adm.CreateTopic(ctx, -1, -1, nil, "defaults")
	if err != nil || resp.NumPartitions != 1 || resp.ReplicationFactor != 1 {
		t.Fatalf("defaults: %+v, %v", resp, err)
	}

	// Validate only: answered as if created, nothing created.
	vresp, err := adm.ValidateCreateTopics(ctx, 4, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("2000000")}, "dry")
	if err != nil {
		t.Fatal(err)
	}
	if r := vresp["dry"]; r.Err != nil || r.NumPartitions != 4 || *r.Configs["max.message.bytes"].Value != "2000000" {
		t.Fatalf("validate only: %+v", r)
	}
	if _, ok := s.topicState(t, "dry"); ok {
		t.Fatal("validate only created the topic")
	}
	vresp, err = adm.ValidateCreateTopics(ctx, 1, 1, nil, "orders")
	if err != nil || !errors.Is(vresp["orders"].Err, kerr.TopicAlreadyExists) {
		t.Fatalf("validate only of an existing topic: %+v, %v", vresp, err)
	}

	before := s.topicNames(t)
	for _, tc := range []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		cfg        map[string]*string
		want       error
	}{
		{"bad name", "no spaces please", 1, 1, nil, kerr.InvalidTopicException},
		{"dot", ".", 1, 1, nil, kerr.InvalidTopicException},
		{"bad value", "t1", 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, kerr.InvalidConfig},
		{"unknown config", "t1", 1, 1, map[string]*string{"retention.hours": kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"null value", "t1", 1, 1, map[string]*string{"retention.ms": nil}, kerr.InvalidConfig},
		{"zero partitions", "t1", 0, 1, nil, kerr.InvalidPartitions},
		{"zero replicas", "t1", 1, 0, nil, kerr.InvalidReplicationFactor},
		{"exists", "orders", 6, 1, map[string]*string{"retention.ms": kadm.StringPtr("1")}, kerr.TopicAlreadyExists},
	} {
		resp, err := adm.CreateTopic(ctx, tc.partitions, tc.rf, tc.cfg, tc.topic)
		wantErr(t, tc.name, err, tc.want)
		if resp.ErrMessage == "" {
			t.Errorf("%s: no error message", tc.name)
		}
	}
	if after := s.topicNames(t); !slices.Equal(before, after) {
		t.Fatalf("refused creates changed the topics: %v, then %v", before, after)
	}
	if got, _ := s.topicState(t, "orders"); got.partitions != 3 || !maps.Equal(got.config, orders.config) {
		t.Fatalf("orders changed to %+v", got)
	}
}

func TestCreateTopicsAssignmentsAndDuplicates(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	cl, ctx := s.client(), adminCtx(t)

	topic := func(name string, assign ...[]int32) kmsg.CreateTopicsRequestTopic {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, -1, -1
		for i, rs := range assign {
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: int32(i), Replicas: rs})
		}
		return rt
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	gap := topic("gap", []int32{1}, []int32{2})
	gap.ReplicaAssignment[1].Partition = 2
	both := topic("both", []int32{1})
	both.NumPartitions = 1
	req.Topics = []kmsg.CreateTopicsRequestTopic{
		topic("assigned", []int32{1, 2, 3}, []int32{2, 3, 1}),
		gap,
		topic("twice", []int32{1, 1}),
		topic("empty", []int32{}),
		both,
		topic("dup", []int32{1}),
		topic("dup", []int32{1}, []int32{2}),
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{0, kerr.InvalidReplicaAssignment.Code, kerr.InvalidReplicaAssignment.Code, kerr.InvalidReplicaAssignment.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code}
	for i, rt := range resp.Topics {
		if rt.ErrorCode != want[i] {
			t.Errorf("%s: error %d, want %d (%v)", rt.Topic, rt.ErrorCode, want[i], rt.ErrorMessage)
		}
	}
	if got := s.topicNames(t); !slices.Equal(got, []string{"assigned"}) {
		t.Fatalf("topics %v", got)
	}
	if st, _ := s.topicState(t, "assigned"); st.partitions != 2 {
		t.Fatalf("assigned has %d partitions", st.partitions)
	}
}

func TestDescribeConfigs(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, ctx := s.admin(), adminCtx(t)
	s.mustCreate(t, "events", 2, map[string]string{"retention.ms": "1000"})

	rcs, err := adm.DescribeTopicConfigs(ctx, "events", "missing", "bad name")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("events", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("events: %+v, %v", rc, err)
	}
	byName := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		byName[c.Key] = c
	}
	if got := slices.Sorted(maps.Keys(byName)); !slices.Equal(got, broker.TopicConfigNames()) {
		t.Fatalf("configs %v", got)
	}
	rm := byName["retention.ms"]
	if *rm.Value != "1000" || rm.Source != kmsg.ConfigSourceDynamicTopicConfig || len(rm.Synonyms) != 2 ||
		rm.Synonyms[0].Key != "retention.ms" || rm.Synonyms[0].Source != kmsg.ConfigSourceDynamicTopicConfig ||
		rm.Synonyms[1].Key != "log.retention.ms" || *rm.Synonyms[1].Value != "604800000" || rm.Synonyms[1].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms: %+v", rm)
	}
	if mb := byName["max.message.bytes"]; *mb.Value != "1048588" || mb.Source != kmsg.ConfigSourceDefaultConfig || len(mb.Synonyms) != 1 || mb.Synonyms[0].Key != "message.max.bytes" {
		t.Fatalf("max.message.bytes: %+v", mb)
	}
	if rc, _ := rcs.On("missing", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("missing: %+v", rc)
	}
	if rc, _ := rcs.On("bad name", nil); !errors.Is(rc.Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %+v", rc)
	}

	node := NodeID("agent-1")
	for _, ids := range [][]int32{nil, {node}} {
		rcs, err := adm.DescribeBrokerConfigs(ctx, ids...)
		if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
			t.Fatalf("broker %v: %+v, %v", ids, rcs, err)
		}
		got := map[string]string{}
		for _, c := range rcs[0].Configs {
			got[c.Key] = *c.Value
		}
		for k, v := range map[string]string{
			"broker.id": strconv.Itoa(int(node)), "num.partitions": "1", "auto.create.topics.enable": "false",
			"default.replication.factor": "1", "min.insync.replicas": "1", "message.max.bytes": "1048588",
			"log.retention.ms": "604800000", "advertised.listeners": "PLAINTEXT://" + s.addr,
		} {
			if got[k] != v {
				t.Errorf("broker %v: %s = %q, want %q", ids, k, got[k], v)
			}
		}
	}

	// Filters, read-only flags and refusals, on the wire.
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := func(typ kmsg.ConfigResourceType, name string, names ...string) kmsg.DescribeConfigsRequestResource {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName, r.ConfigNames = typ, name, names
		return r
	}
	req.Resources = []kmsg.DescribeConfigsRequestResource{
		res(kmsg.ConfigResourceTypeTopic, "events", "retention.ms", "no.such.config", "cleanup.policy"),
		res(kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(node)), "broker.id", "num.partitions"),
		res(kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(node)+1)),
		res(kmsg.ConfigResourceTypeBroker, "me"),
		res(kmsg.ConfigResourceTypeBrokerLogger, strconv.Itoa(int(node))),
	}
	resp := s.wire().latest(req).(*kmsg.DescribeConfigsResponse)
	var names []string
	for _, c := range resp.Resources[0].Configs {
		names = append(names, c.Name)
		if c.ReadOnly || c.IsSensitive {
			t.Errorf("topic config %s is read-only or sensitive", c.Name)
		}
	}
	if !slices.Equal(names, []string{"cleanup.policy", "retention.ms"}) {
		t.Fatalf("filtered topic configs %v", names)
	}
	names = nil
	for _, c := range resp.Resources[1].Configs {
		names = append(names, c.Name)
		if !c.ReadOnly || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
			t.Errorf("broker config %s: read-only %v, source %d", c.Name, c.ReadOnly, c.Source)
		}
	}
	if !slices.Equal(names, []string{"broker.id", "num.partitions"}) {
		t.Fatalf("filtered broker configs %v", names)
	}
	for _, r := range resp.Resources[2:] {
		if r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || r.Configs != nil {
			t.Errorf("%d %q: %+v", r.ResourceType, r.ResourceName, r)
		}
	}
}

// Every accepted topic config needs a type, a broker synonym and a doc line.
func TestTopicConfigInfoComplete(t *testing.T) {
	t.Parallel()
	for _, name := range broker.TopicConfigNames() {
		if info, ok := topicConfigInfo[name]; !ok || info.typ == kmsg.ConfigTypeUnknown || info.brokerName == "" || info.doc == "" {
			t.Errorf("topic config %s: %+v", name, info)
		}
	}
	if len(topicConfigInfo) != len(broker.TopicConfigNames()) {
		t.Errorf("topicConfigInfo has %d entries for %d configs", len(topicConfigInfo), len(broker.TopicConfigNames()))
	}
}

func TestAlterConfigs(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, ctx := s.admin(), adminCtx(t)
	s.mustCreate(t, "logs", 1, map[string]string{"retention.ms": "1000"})
	describe := func() map[string]kadm.Config {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "logs")
		if err != nil || rcs[0].Err != nil {
			t.Fatalf("describe: %+v, %v", rcs, err)
		}
		out := map[string]kadm.Config{}
		for _, c := range rcs[0].Configs {
			out[c.Key] = c
		}
		return out
	}
	alter := func(ops ...kadm.AlterConfig) error {
		t.Helper()
		resps, err := adm.AlterTopicConfigs(ctx, ops, "logs")
		if err != nil {
			t.Fatal(err)
		}
		return resps[0].Err
	}
	expect := func(want map[string]string) {
		t.Helper()
		if st, _ := s.topicState(t, "logs"); !maps.Equal(st.config, want) {
			t.Fatalf("config %v, want %v", st.config, want)
		}
		got := describe()
		for k, c := range got {
			v, explicit := want[k]
			if !explicit {
				v, _ = broker.TopicConfigDefault(k)
			}
			if *c.Value != v || (c.Source == kmsg.ConfigSourceDynamicTopicConfig) != explicit {
				t.Fatalf("described %s = %s (source %d), want %s (explicit %v)", k, *c.Value, c.Source, v, explicit)
			}
		}
	}

	set := func(k, v string) kadm.AlterConfig { return kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v} }
	if err := alter(set("retention.bytes", "1048576"), kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}); err != nil {
		t.Fatal(err)
	}
	expect(map[string]string{"retention.ms": "1000", "retention.bytes": "1048576", "cleanup.policy": "delete,compact"})
	if err := alter(kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")}, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.ms"}); err != nil {
		t.Fatal(err)
	}
	current := map[string]string{"retention.bytes": "1048576", "cleanup.policy": "compact"}
	expect(current)

	for _, tc := range []struct {
		name string
		ops  []kadm.AlterConfig
		want error
	}{
		{"subtract to empty", []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, kerr.InvalidConfig},
		{"append to a non-list", []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "retention.ms", Value: kadm.StringPtr("5")}}, kerr.InvalidRequest},
		{"bad value", []kadm.AlterConfig{set("retention.ms", "1000"), set("message.timestamp.type", "Sometime")}, kerr.InvalidConfig},
		{"unknown name", []kadm.AlterConfig{set("retention.hours", "1")}, kerr.InvalidConfig},
		{"set without value", []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms"}}, kerr.InvalidRequest},
		{"named twice", []kadm.AlterConfig{set("retention.ms", "1"), set("retention.ms", "2")}, kerr.InvalidRequest},
	} {
		wantErr(t, tc.name, alter(tc.ops...), tc.want)
		expect(current)
	}

	resps, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "5")}, "logs")
	if err != nil || resps[0].Err != nil {
		t.Fatalf("validate only: %+v, %v", resps, err)
	}
	expect(current)

	// AlterConfigs replaces the whole config.
	resps, err = adm.ValidateAlterTopicConfigsState(ctx, []kadm.AlterConfig{set("segment.ms", "60000")}, "logs")
	if err != nil || resps[0].Err != nil {
		t.Fatalf("validate only state: %+v, %v", resps, err)
	}
	expect(current)
	for _, bad := range []kadm.AlterConfig{set("cleanup.policy", "strange"), {Name: "segment.ms"}} {
		resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("retention.ms", "5"), bad}, "logs")
		if err != nil || !errors.Is(resps[0].Err, kerr.InvalidConfig) {
			t.Fatalf("bad state %+v: %+v, %v", bad, resps, err)
		}
		expect(current)
	}
	resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("segment.ms", "60000")}, "logs")
	if err != nil || resps[0].Err != nil {
		t.Fatalf("state: %+v, %v", resps, err)
	}
	current = map[string]string{"segment.ms": "60000"}
	expect(current)

	// Unknown topics and broker resources.
	for _, state := range []bool{false, true} {
		var resps kadm.AlterConfigsResponses
		if state {
			resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("retention.ms", "1")}, "missing")
		} else {
			resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "1")}, "missing")
		}
		if err != nil || !errors.Is(resps[0].Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("missing topic (state %v): %+v, %v", state, resps, err)
		}
		for _, ids := range [][]int32{nil, {NodeID("agent-1")}} {
			if state {
				resps, err = adm.AlterBrokerConfigsState(ctx, []kadm.AlterConfig{set("num.partitions", "3")}, ids...)
			} else {
				resps, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("num.partitions", "3")}, ids...)
			}
			if err != nil || !errors.Is(resps[0].Err, kerr.PolicyViolation) || resps[0].ErrMessage == "" {
				t.Fatalf("broker %v (state %v): %+v, %v", ids, state, resps, err)
			}
		}
	}
	if _, ok := s.topicState(t, "missing"); ok {
		t.Fatal("altering a missing topic created it")
	}
	expect(current)

	// What kadm cannot send, on the wire.
	node := strconv.Itoa(int(NodeID("agent-1")))
	res := func(typ kmsg.ConfigResourceType, name string, op kmsg.IncrementalAlterConfigOp) kmsg.IncrementalAlterConfigsRequestResource {
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = typ, name
		r.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: op, Value: kmsg.StringPtr("1")}}
		return r
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{
		res(kmsg.ConfigResourceTypeTopic, "logs", 9),
		res(kmsg.ConfigResourceTypeBroker, node+"1", 0),
		res(kmsg.ConfigResourceTypeBrokerLogger, node, 0),
		res(kmsg.ConfigResourceTypeTopic, "twice", 0),
		res(kmsg.ConfigResourceTypeTopic, "twice", 0),
		res(kmsg.ConfigResourceTypeTopic, "bad name", 0),
	}
	resp := s.wire().latest(req).(*kmsg.IncrementalAlterConfigsResponse)
	want := []int16{kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidTopicException.Code}
	for i, r := range resp.Resources {
		if r.ErrorCode != want[i] || r.ErrorMessage == nil {
			t.Errorf("resource %d %q: error %d, want %d (%v)", r.ResourceType, r.ResourceName, r.ErrorCode, want[i], r.ErrorMessage)
		}
	}
	expect(current)
}

func TestDeleteTopics(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, cl, ctx := s.admin(), s.client(), adminCtx(t)
	for _, name := range []string{"a", "b", "c"} {
		s.mustCreate(t, name, 1, nil)
	}

	resp, err := adm.DeleteTopic(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID == (kadm.TopicID{}) {
		t.Fatal("no topic ID in the answer")
	}
	if _, err := adm.DeleteTopic(ctx, "a"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("deleting again: %v", err)
	}

	b, err := s.broker.LookupTopic(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Topics = []kmsg.DeleteTopicsRequestTopic{
		{TopicID: b.ID},
		{TopicID: [16]byte{1, 2, 3}},
		{Topic: kmsg.StringPtr("c"), TopicID: [16]byte{4}},
		{},
	}
	dresp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{0, kerr.UnknownTopicID.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code}
	for i, rt := range dresp.Topics {
		if rt.ErrorCode != want[i] {
			t.Errorf("entry %d: error %d, want %d (%v)", i, rt.ErrorCode, want[i], rt.ErrorMessage)
		}
	}
	if got := dresp.Topics[0]; got.Topic == nil || *got.Topic != "b" || got.TopicID != b.ID {
		t.Fatalf("deleted by ID: %+v", got)
	}
	if got := s.topicNames(t); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("topics %v", got)
	}
}

func TestCreatePartitions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, ctx := s.admin(), adminCtx(t)
	s.mustCreate(t, "grow", 2, nil)
	partitions := func() int32 {
		t.Helper()
		st, _ := s.topicState(t, "grow")
		return st.partitions
	}

	resps, err := adm.UpdatePartitions(ctx, 4, "grow")
	if err != nil || resps["grow"].Err != nil || partitions() != 4 {
		t.Fatalf("grow to 4: %+v, %v, now %d", resps, err, partitions())
	}
	resps, err = adm.CreatePartitions(ctx, 2, "grow")
	if err != nil || resps["grow"].Err != nil || partitions() != 6 {
		t.Fatalf("add 2: %+v, %v, now %d", resps, err, partitions())
	}
	resps, err = adm.ValidateUpdatePartitions(ctx, 10, "grow")
	if err != nil || resps["grow"].Err != nil || partitions() != 6 {
		t.Fatalf("validate only: %+v, %v, now %d", resps, err, partitions())
	}
	for _, n := range []int{3, 6} {
		for _, validate := range []bool{false, true} {
			update := adm.UpdatePartitions
			if validate {
				update = adm.ValidateUpdatePartitions
			}
			resps, err = update(ctx, n, "grow")
			if err != nil || !errors.Is(resps["grow"].Err, kerr.InvalidPartitions) || resps["grow"].ErrMessage == "" || partitions() != 6 {
				t.Fatalf("to %d (validate %v): %+v, %v, now %d", n, validate, resps, err, partitions())
			}
		}
	}
	resps, err = adm.UpdatePartitions(ctx, 3, "missing")
	if err != nil || !errors.Is(resps["missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("missing: %+v, %v", resps, err)
	}

	// Manual assignments: one distinct-replica entry per new partition.
	req := kmsg.NewPtrCreatePartitionsRequest()
	topic := func(count int32, assign ...[]int32) kmsg.CreatePartitionsRequestTopic {
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "grow", count
		for _, rs := range assign {
			rt.Assignment = append(rt.Assignment, kmsg.CreatePartitionsRequestTopicAssignment{Replicas: rs})
		}
		return rt
	}
	for _, tc := range []struct {
		rt   kmsg.CreatePartitionsRequestTopic
		want int16
	}{
		{topic(8, []int32{1}), kerr.InvalidReplicaAssignment.Code},
		{topic(8, []int32{1}, []int32{2, 2}), kerr.InvalidReplicaAssignment.Code},
		{topic(8, []int32{1, 2, 3}, []int32{2}), 0},
	} {
		req.Topics = []kmsg.CreatePartitionsRequestTopic{tc.rt}
		resp, err := req.RequestWith(ctx, s.client())
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Topics[0].ErrorCode; got != tc.want {
			t.Fatalf("assignment %+v: error %d, want %d", tc.rt.Assignment, got, tc.want)
		}
	}
	if partitions() != 8 {
		t.Fatalf("%d partitions after the assignments", partitions())
	}
	req.Topics = []kmsg.CreatePartitionsRequestTopic{topic(9), topic(10)}
	resp, err := req.RequestWith(ctx, s.client())
	if err != nil || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code || resp.Topics[1].ErrorCode != kerr.InvalidRequest.Code || partitions() != 8 {
		t.Fatalf("topic twice: %+v, %v, now %d", resp, err, partitions())
	}
}

func TestDeleteRecords(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, ctx := s.admin(), adminCtx(t)
	s.mustCreate(t, "recs", 2, nil)
	produceN(t, s, "recs", 0, 10)
	produceN(t, s, "recs", 1, 4)

	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "recs", Partition: 0, At: 6})
	os.Add(kadm.Offset{Topic: "recs", Partition: 1, At: -1})
	resps, err := adm.DeleteRecords(ctx, os)
	if err != nil || resps.Error() != nil {
		t.Fatalf("%+v, %v", resps, err)
	}
	if r, _ := resps.Lookup("recs", 0); r.LowWatermark != 6 {
		t.Fatalf("partition 0: %+v", r)
	}
	if r, _ := resps.Lookup("recs", 1); r.LowWatermark != 4 {
		t.Fatalf("partition 1: %+v", r)
	}

	// Past the high watermark, and below the current start: nothing moves.
	os = nil
	os.Add(kadm.Offset{Topic: "recs", Partition: 0, At: 11})
	resps, err = adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.Lookup("recs", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("past the high watermark: %+v", r)
	}
	os = nil
	os.Add(kadm.Offset{Topic: "recs", Partition: 0, At: 2})
	resps, err = adm.DeleteRecords(ctx, os)
	if r, _ := resps.Lookup("recs", 0); err != nil || r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("below the start: %+v, %v", r, err)
	}

	for p, want := range map[int32][2]int64{0: {6, 10}, 1: {4, 4}} {
		if ls, hw, err := s.broker.Offsets(ctx, "recs", p); err != nil || ls != want[0] || hw != want[1] {
			t.Fatalf("partition %d: %d..%d, %v", p, ls, hw, err)
		}
	}
	if _, ok := handlers[2]; ok { // ListOffsets
		listed, err := adm.ListStartOffsets(ctx, "recs")
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range map[int32]int64{0: 6, 1: 4} {
			if o, _ := listed.Lookup("recs", p); o.Err != nil || o.Offset != want {
				t.Fatalf("listed start of partition %d: %+v", p, o)
			}
		}
	}

	// Unknown partitions and topics, on the wire (a client would not send
	// them anywhere).
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.Topics = []kmsg.DeleteRecordsRequestTopic{
		{Topic: "recs", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 2, Offset: 0}, {Partition: 0, Offset: -2}}},
		{Topic: "missing", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 0}}},
	}
	resp := s.wire().latest(req).(*kmsg.DeleteRecordsResponse)
	got := []int16{resp.Topics[0].Partitions[0].ErrorCode, resp.Topics[0].Partitions[1].ErrorCode, resp.Topics[1].Partitions[0].ErrorCode}
	if !slices.Equal(got, []int16{kerr.UnknownTopicOrPartition.Code, kerr.OffsetOutOfRange.Code, kerr.UnknownTopicOrPartition.Code}) {
		t.Fatalf("errors %v", got)
	}
	if ls, _, _ := s.broker.Offsets(ctx, "recs", 0); ls != 6 {
		t.Fatalf("partition 0 starts at %d", ls)
	}
}

// Two agents over one metadata store: each leads part of the partitions,
// DescribeCluster lists both, and DeleteRecords sent to the agent that
// does not lead a partition is NOT_LEADER_FOR_PARTITION.
func TestAdminTwoAgents(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s1.mustCreate(t, "only-one", 1, nil) // led by agent-1, the only agent yet
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	ctx := adminCtx(t)

	for _, s := range []*testServer{s1, s2} {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.IncludeClusterAuthorizedOperations = true
		resp, err := req.RequestWith(ctx, s.client())
		if err != nil {
			t.Fatal(err)
		}
		ids := map[int32]string{}
		for _, b := range resp.Brokers {
			ids[b.NodeID] = b.Host + ":" + strconv.Itoa(int(b.Port))
		}
		if resp.ClusterID != "streamhouse" || resp.ControllerID != s.srv.nodeID || resp.ClusterAuthorizedOperations == int32(-2147483648) ||
			!maps.Equal(ids, map[int32]string{NodeID("agent-1"): s1.addr, NodeID("agent-2"): s2.addr}) {
			t.Fatalf("%s: %+v", s.addr, resp)
		}
		req.EndpointType = 2
		resp, err = req.RequestWith(ctx, s.client())
		if err != nil || resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
			t.Fatalf("controllers: %+v, %v", resp, err)
		}
	}

	produceN(t, s1, "only-one", 0, 3)
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "only-one", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 2}}}}
	resp := s2.wire().latest(req).(*kmsg.DeleteRecordsResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("sent to agent-2: %+v", p)
	}
	if ls, _, _ := s1.broker.Offsets(ctx, "only-one", 0); ls != 0 {
		t.Fatalf("log start moved to %d", ls)
	}
	resp = s1.wire().latest(req).(*kmsg.DeleteRecordsResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.LowWatermark != 2 {
		t.Fatalf("sent to agent-1: %+v", p)
	}
}
