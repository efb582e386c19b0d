package kafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// wireClient speaks the protocol at exactly the version a test sets on each
// request, with no client library choosing versions or routing, so every
// version of every admin API can be checked field by field.
type wireClient struct {
	t    *testing.T
	nc   net.Conn
	corr int32
}

func (s *testServer) wire() *wireClient {
	s.t.Helper()
	nc, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = nc.Close() })
	return &wireClient{t: s.t, nc: nc}
}

// do sends req at req's version and decodes the answer.
func (c *wireClient) do(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	c.corr++
	buf := make([]byte, 4, 512)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(c.corr))
	buf = binary.BigEndian.AppendUint16(buf, 4)
	buf = append(buf, "wire"...)
	if req.IsFlexible() {
		buf = append(buf, 0) // no header tags
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(buf); err != nil {
		c.t.Fatalf("write %s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		c.t.Fatalf("read %s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.nc, body); err != nil {
		c.t.Fatalf("read %s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != c.corr {
		c.t.Fatalf("correlation ID %d, want %d", got, c.corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	r := kbin.Reader{Src: body[4:]}
	if resp.IsFlexible() {
		skipTags(&r)
	}
	if err := resp.ReadFrom(r.Src); err != nil {
		c.t.Fatalf("decode %s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

// latest sends req at the highest version kmsg knows.
func (c *wireClient) latest(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	req.SetVersion(req.MaxVersion())
	return c.do(req)
}

// produceN appends n records to a partition through the broker API.
func produceN(t *testing.T, s *testServer, topic string, partition int32, n int) {
	t.Helper()
	recs := make([]broker.Record, n)
	for i := range recs {
		recs[i].Key = []byte(strconv.Itoa(i)) // the topics may be compacted
		recs[i].Value = []byte(strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.broker.ProduceRecords(ctx, topic, partition, recs, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
		t.Fatal(err)
	}
}

func strp(s string) *string { return &s }

// TestAdminAPIVersions issues every version of every admin API this package
// serves and checks the fields each version carries.
func TestAdminAPIVersions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	w := s.wire()
	ctx := context.Background()
	lookup := func(name string) (cfg map[string]string, partitions int32, id [16]byte) {
		t.Helper()
		tp, err := s.broker.LookupTopic(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return tp.Config, tp.Partitions, tp.ID
	}

	for v := int16(0); v <= 7; v++ {
		name := fmt.Sprintf("v%d", v)
		req := kmsg.NewPtrCreateTopicsRequest()
		req.SetVersion(v)
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 2, 3
		rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms", Value: strp("1000")}}
		req.Topics = append(req.Topics, rt)
		resp := w.do(req).(*kmsg.CreateTopicsResponse)
		got := resp.Topics[0]
		if got.Topic != name || got.ErrorCode != 0 {
			t.Fatalf("CreateTopics v%d: %+v", v, got)
		}
		cfg, parts, id := lookup(name)
		if parts != 2 || cfg["retention.ms"] != "1000" {
			t.Fatalf("CreateTopics v%d stored %d partitions, config %v", v, parts, cfg)
		}
		if v >= 5 {
			if got.NumPartitions != 2 || got.ReplicationFactor != 1 {
				t.Fatalf("CreateTopics v%d: partitions %d, replication %d", v, got.NumPartitions, got.ReplicationFactor)
			}
			sources := map[string]int8{}
			for _, c := range got.Configs {
				sources[c.Name] = c.Source
			}
			if len(got.Configs) != len(broker.TopicConfigNames()) || sources["retention.ms"] != 1 || sources["cleanup.policy"] != 5 {
				t.Fatalf("CreateTopics v%d configs: %+v", v, got.Configs)
			}
		}
		if v >= 7 && got.TopicID != id {
			t.Fatalf("CreateTopics v7: topic ID %x, stored %x", got.TopicID, id)
		}
	}

	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.SetVersion(v)
		req.IncludeSynonyms, req.IncludeDocumentation = true, true
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "v0"
		rr.ConfigNames = []string{"retention.ms", "cleanup.policy"}
		req.Resources = append(req.Resources, rr)
		resp := w.do(req).(*kmsg.DescribeConfigsResponse)
		res := resp.Resources[0]
		if res.ErrorCode != 0 || len(res.Configs) != 2 {
			t.Fatalf("DescribeConfigs v%d: %+v", v, res)
		}
		cp, rm := res.Configs[0], res.Configs[1]
		if rm.Name != "retention.ms" || *rm.Value != "1000" || cp.Name != "cleanup.policy" || *cp.Value != "delete" {
			t.Fatalf("DescribeConfigs v%d: %+v", v, res.Configs)
		}
		switch {
		case v == 0:
			if rm.IsDefault || !cp.IsDefault || rm.ConfigSynonyms != nil {
				t.Fatalf("DescribeConfigs v0: %+v", res.Configs)
			}
		default:
			if rm.Source != kmsg.ConfigSourceDynamicTopicConfig || cp.Source != kmsg.ConfigSourceDefaultConfig {
				t.Fatalf("DescribeConfigs v%d sources: %+v", v, res.Configs)
			}
			if len(rm.ConfigSynonyms) != 2 || rm.ConfigSynonyms[1].Name != "log.retention.ms" {
				t.Fatalf("DescribeConfigs v%d synonyms: %+v", v, rm.ConfigSynonyms)
			}
		}
		if v >= 3 && (rm.ConfigType != kmsg.ConfigTypeLong || cp.ConfigType != kmsg.ConfigTypeList || rm.Documentation == nil) {
			t.Fatalf("DescribeConfigs v%d types and docs: %+v", v, res.Configs)
		}
		if v < 3 && rm.Documentation != nil {
			t.Fatalf("DescribeConfigs v%d has documentation", v)
		}
	}

	for v := int16(0); v <= 2; v++ {
		name := fmt.Sprintf("v%d", v)
		req := kmsg.NewPtrAlterConfigsRequest()
		req.SetVersion(v)
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
		rr.Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "segment.ms", Value: strp("5000")}}
		req.Resources = append(req.Resources, rr)
		resp := w.do(req).(*kmsg.AlterConfigsResponse)
		if r := resp.Resources[0]; r.ErrorCode != 0 || r.ResourceName != name {
			t.Fatalf("AlterConfigs v%d: %+v", v, r)
		}
		if cfg, _, _ := lookup(name); len(cfg) != 1 || cfg["segment.ms"] != "5000" {
			t.Fatalf("AlterConfigs v%d left %v", v, cfg)
		}
	}

	for v := int16(0); v <= 1; v++ {
		name := fmt.Sprintf("v%d", v)
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.SetVersion(v)
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
		rr.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			{Name: "retention.bytes", Op: kmsg.IncrementalAlterConfigOpSet, Value: strp("4096")},
			{Name: "cleanup.policy", Op: kmsg.IncrementalAlterConfigOpAppend, Value: strp("compact")},
		}
		req.Resources = append(req.Resources, rr)
		resp := w.do(req).(*kmsg.IncrementalAlterConfigsResponse)
		if r := resp.Resources[0]; r.ErrorCode != 0 || r.ResourceName != name {
			t.Fatalf("IncrementalAlterConfigs v%d: %+v", v, r)
		}
		if cfg, _, _ := lookup(name); cfg["segment.ms"] != "5000" || cfg["retention.bytes"] != "4096" || cfg["cleanup.policy"] != "delete,compact" {
			t.Fatalf("IncrementalAlterConfigs v%d left %v", v, cfg)
		}
	}

	for v := int16(0); v <= 3; v++ {
		name := fmt.Sprintf("v%d", v)
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.SetVersion(v)
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = name, 3
		req.Topics = append(req.Topics, rt)
		resp := w.do(req).(*kmsg.CreatePartitionsResponse)
		if r := resp.Topics[0]; r.ErrorCode != 0 || r.Topic != name {
			t.Fatalf("CreatePartitions v%d: %+v", v, r)
		}
		if _, parts, _ := lookup(name); parts != 3 {
			t.Fatalf("CreatePartitions v%d: %d partitions", v, parts)
		}
	}

	for v := int16(0); v <= 2; v++ {
		name := fmt.Sprintf("v%d", v)
		produceN(t, s, name, 1, 5)
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.SetVersion(v)
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = name
		rt.Partitions = []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 1, Offset: 3}}
		req.Topics = append(req.Topics, rt)
		resp := w.do(req).(*kmsg.DeleteRecordsResponse)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.LowWatermark != 3 {
			t.Fatalf("DeleteRecords v%d: %+v", v, p)
		}
		if ls, hw, err := s.broker.Offsets(ctx, name, 1); err != nil || ls != 3 || hw != 5 {
			t.Fatalf("DeleteRecords v%d: offsets %d..%d, %v", v, ls, hw, err)
		}
	}

	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.SetVersion(v)
		resp := w.do(req).(*kmsg.DescribeClusterResponse)
		host, port, _ := net.SplitHostPort(s.addr)
		if resp.ErrorCode != 0 || resp.ClusterID != "streamhouse" || resp.ControllerID != NodeID("agent-1") || len(resp.Brokers) != 1 {
			t.Fatalf("DescribeCluster v%d: %+v", v, resp)
		}
		if b := resp.Brokers[0]; b.NodeID != NodeID("agent-1") || b.Host != host || strconv.Itoa(int(b.Port)) != port || b.Rack != nil {
			t.Fatalf("DescribeCluster v%d broker: %+v", v, b)
		}
		if v >= 1 && resp.EndpointType != 1 {
			t.Fatalf("DescribeCluster v%d endpoint type %d", v, resp.EndpointType)
		}
	}

	for v := int16(0); v <= 6; v++ {
		name := fmt.Sprintf("v%d", v)
		_, _, id := lookup(name)
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.SetVersion(v)
		if v >= 6 {
			req.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: id}}
		} else {
			req.TopicNames = []string{name}
		}
		resp := w.do(req).(*kmsg.DeleteTopicsResponse)
		got := resp.Topics[0]
		if got.ErrorCode != 0 || got.Topic == nil || *got.Topic != name {
			t.Fatalf("DeleteTopics v%d: %+v", v, got)
		}
		if v >= 6 && got.TopicID != id {
			t.Fatalf("DeleteTopics v6: topic ID %x, want %x", got.TopicID, id)
		}
		if _, err := s.broker.LookupTopic(ctx, name); errorCode(err) != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("DeleteTopics v%d: topic still there (%v)", v, err)
		}
	}
	if _, parts, _ := lookup("v7"); parts != 2 {
		t.Fatalf("v7 has %d partitions", parts)
	}
}

// TestAdminVersionsAdvertised checks ApiVersions lists the admin APIs at
// the versions current clients use.
func TestAdminVersionsAdvertised(t *testing.T) {
	t.Parallel()
	want := map[int16][2]int16{19: {0, 7}, 20: {0, 6}, 21: {0, 2}, 32: {0, 4}, 33: {0, 2}, 37: {0, 3}, 44: {0, 1}, 48: {0, 1}, 49: {0, 1}, 60: {0, 2}}
	for key, vs := range want {
		h, ok := handlers[key]
		if !ok || h.minVersion != vs[0] || h.maxVersion != vs[1] {
			t.Errorf("api key %d: registered %+v, want versions %d-%d", key, h, vs[0], vs[1])
		}
	}
}
