package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// Group administration through kadm, as tools call it: committed offsets
// that outlive the server, describe, list, delete, offset delete.

// grpStop shuts a test server down before its cleanup does, so another
// can be started on the same metadata.
func (s *testServer) grpStop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Close()
	_ = s.broker.Shutdown(ctx)
	_ = s.log.Close(ctx)
	if err := s.store.Close(); err != nil {
		t.Fatal(err)
	}
}

func grpWantErr(t *testing.T, what string, got error, want *kerr.Error) {
	t.Helper()
	if want == nil && got != nil || want != nil && !errors.Is(got, want) {
		t.Fatalf("%s: error %v, want %v", what, got, want)
	}
}

func TestGroupOffsetsSurviveRestart(t *testing.T) {
	t.Parallel()
	open := metadatatest.SQLiteOpener(t)
	s1 := startServer(t, testOptions{store: open()})
	s1.grpTopic(t, "t", 3)
	ctx := grpCtx(t)
	adm := s1.admin()
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "t", Partition: 1, At: 7, LeaderEpoch: 3, Metadata: "checkpoint"})
	offs.Add(kadm.Offset{Topic: "t", Partition: 2, At: 0, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(ctx, "restart", offs)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	s1.grpStop(t)

	s2 := startServer(t, testOptions{store: open()})
	fetched, err := s2.admin().FetchOffsets(ctx, "restart")
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch after restart: %v %v", err, fetched.Error())
	}
	for _, want := range []kadm.Offset{
		{Topic: "t", Partition: 0, At: 5, LeaderEpoch: -1},
		{Topic: "t", Partition: 1, At: 7, LeaderEpoch: 3, Metadata: "checkpoint"},
		{Topic: "t", Partition: 2, At: 0, LeaderEpoch: -1},
	} {
		got, ok := fetched.Lookup(want.Topic, want.Partition)
		if !ok || got.At != want.At || got.LeaderEpoch != want.LeaderEpoch || got.Metadata != want.Metadata {
			t.Fatalf("partition %d after restart: %+v (found %v), want %+v", want.Partition, got.Offset, ok, want)
		}
	}
	// A consumer group resumes where the offsets say.
	prod := s2.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 6 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 0, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl := s2.client(kgo.ConsumerGroup("restart"), kgo.ConsumeTopics("t"))
	for {
		fs := cl.PollRecords(ctx, 10)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if recs[0].Partition != 0 || recs[0].Offset != 5 {
			t.Fatalf("resumed at %d/%d, want 0/5", recs[0].Partition, recs[0].Offset)
		}
		break
	}
}

func TestGroupAdminDescribeListDelete(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.grpTopic(t, "subscribed", 2)
	s.grpTopic(t, "other", 1)
	ctx := grpCtx(t)
	adm := s.admin()

	own := s.newOwnership("live")
	c := s.grpConsume(t, "c1", "live", "subscribed", own, nil, kgo.Balancers(kgo.RangeBalancer()), kgo.DisableAutoCommit())
	s.grpSettle(t, "live", 2, own, c)

	described, err := adm.DescribeGroups(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	d := described["live"]
	if d.Err != nil || d.State != "Stable" || d.Protocol != "range" || d.ProtocolType != "consumer" || len(d.Members) != 1 {
		t.Fatalf("describe: %+v", d)
	}
	m := d.Members[0]
	if m.ClientHost != "/127.0.0.1" || m.InstanceID != nil {
		t.Fatalf("member: %+v", m)
	}
	if meta, ok := m.Join.AsConsumer(); !ok || len(meta.Topics) != 1 || meta.Topics[0] != "subscribed" {
		t.Fatalf("member metadata: %+v", m.Join)
	}

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := listed["live"]; !ok || g.State != "Stable" || g.ProtocolType != "consumer" {
		t.Fatalf("list: %+v", listed)
	}
	if listed, err = adm.ListGroups(ctx, "Empty"); err != nil || len(listed) != 0 {
		t.Fatalf("list of empty groups: %v %v", listed, err)
	}
	if listed, err = adm.ListGroupsByType(ctx, []string{"consumer"}); err != nil || len(listed) != 0 {
		t.Fatalf("list of KIP-848 groups: %v %v", listed, err)
	}

	// Only members commit to a group with members.
	var simple kadm.Offsets
	simple.AddOffset("subscribed", 0, 1, -1)
	cresp, err := adm.CommitOffsets(ctx, "live", simple)
	if err != nil {
		t.Fatal(err)
	}
	grpWantErr(t, "simple commit to a live group", cresp.Error(), kerr.UnknownMemberID)
	var commitErr error
	c.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		"subscribed": {0: {Epoch: -1, Offset: 1}},
		"other":      {0: {Epoch: -1, Offset: 2}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if commitErr == nil {
					commitErr = kerr.ErrorForCode(p.ErrorCode)
				}
			}
		}
	})
	if commitErr != nil {
		t.Fatalf("member commit: %v", commitErr)
	}

	del, err := adm.DeleteOffsets(ctx, "live", kadm.TopicsSet{"subscribed": {0: {}}, "other": {0: {}}, "nope": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := del.Lookup("subscribed", 0)
	grpWantErr(t, "delete a subscribed topic's offset", e, kerr.GroupSubscribedToTopic)
	e, _ = del.Lookup("other", 0)
	grpWantErr(t, "delete another topic's offset", e, nil)
	e, _ = del.Lookup("nope", 0)
	grpWantErr(t, "delete an unknown topic's offset", e, kerr.UnknownTopicOrPartition)
	fetched, err := adm.FetchOffsets(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fetched.Lookup("other", 0); ok {
		t.Fatal("deleted offset still there")
	}
	if o, ok := fetched.Lookup("subscribed", 0); !ok || o.At != 1 {
		t.Fatalf("kept offset: %+v %v", o, ok)
	}

	dresp, err := adm.DeleteGroups(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	grpWantErr(t, "delete a group with members", dresp["live"].Err, kerr.NonEmptyGroup)

	// Once the member leaves, the group is Empty, known by its offsets.
	c.cl.Close()
	described, err = adm.DescribeGroups(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if d := described["live"]; d.Err != nil || d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("describe after leave: %+v", d)
	}
	// Without members, simple commits are accepted and any offset can
	// be deleted.
	var more kadm.Offsets
	more.AddOffset("subscribed", 1, 4, -1)
	if resp, err := adm.CommitOffsets(ctx, "live", more); err != nil || resp.Error() != nil {
		t.Fatalf("simple commit to an emptied group: %v %v", err, resp.Error())
	}
	del, err = adm.DeleteOffsets(ctx, "live", kadm.TopicsSet{"subscribed": {0: {}}})
	if err != nil || del.Error() != nil {
		t.Fatalf("delete offsets of an empty group: %v %v", err, del.Error())
	}
	dresp, err = adm.DeleteGroups(ctx, "live", "never-existed")
	if err != nil {
		t.Fatal(err)
	}
	grpWantErr(t, "delete an empty group", dresp["live"].Err, nil)
	grpWantErr(t, "delete an unknown group", dresp["never-existed"].Err, kerr.GroupIDNotFound)
	described, err = adm.DescribeGroups(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	grpWantErr(t, "describe a deleted group", described["live"].Err, kerr.GroupIDNotFound)
	if listed, err = adm.ListGroups(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("list after delete: %v %v", listed, err)
	}

	// A simple group (offsets only) is listed and described as Empty.
	if resp, err := adm.CommitOffsets(ctx, "simple", simple); err != nil || resp.Error() != nil {
		t.Fatalf("simple commit: %v %v", err, resp.Error())
	}
	listed, err = adm.ListGroups(ctx, "empty")
	if g, ok := listed["simple"]; err != nil || !ok || g.State != "Empty" || g.ProtocolType != "" {
		t.Fatalf("list: %+v %v", listed, err)
	}
	del, err = adm.DeleteOffsets(ctx, "never-existed", kadm.TopicsSet{"other": {0: {}}})
	grpWantErr(t, "delete offsets of an unknown group", err, kerr.GroupIDNotFound)
	_ = del
}
