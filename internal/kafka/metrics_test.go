package kafka

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A response's outcome is its first error code by name, and every error
// code it carries (partition, topic or top level) is counted.
func TestMetricsOutcomeCarriesErrorCode(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)

	resp := kmsg.NewPtrProduceResponse()
	topic := kmsg.NewProduceResponseTopic()
	for _, code := range []int16{0, kerr.NotLeaderForPartition.Code, kerr.MessageTooLarge.Code, kerr.NotLeaderForPartition.Code} {
		p := kmsg.NewProduceResponseTopicPartition()
		p.ErrorCode = code
		topic.Partitions = append(topic.Partitions, p)
	}
	resp.Topics = append(resp.Topics, topic)
	m.observe(0, time.Now(), resp, nil)

	ok := kmsg.NewPtrProduceResponse()
	okTopic := kmsg.NewProduceResponseTopic()
	okTopic.Partitions = append(okTopic.Partitions, kmsg.NewProduceResponseTopicPartition())
	ok.Topics = append(ok.Topics, okTopic)
	m.observe(0, time.Now(), ok, nil)

	join := kmsg.NewPtrJoinGroupResponse()
	join.ErrorCode = kerr.MemberIDRequired.Code
	m.observe(11, time.Now(), join, nil)
	m.observe(3, time.Now(), nil, errTest)

	for _, c := range []struct {
		api, outcome string
		want         float64
	}{
		{"Produce", "NOT_LEADER_FOR_PARTITION", 1},
		{"Produce", "ok", 1},
		{"JoinGroup", "MEMBER_ID_REQUIRED", 1},
		{"Metadata", "closed", 1},
		{"Fetch", "ok", 0}, // created at zero
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.api, c.outcome)); got != c.want {
			t.Errorf("requests{%s,%s} = %v, want %v", c.api, c.outcome, got, c.want)
		}
	}
	for _, c := range []struct {
		api, code string
		want      float64
	}{
		{"Produce", "NOT_LEADER_FOR_PARTITION", 2},
		{"Produce", "MESSAGE_TOO_LARGE", 1},
		{"JoinGroup", "MEMBER_ID_REQUIRED", 1},
	} {
		if got := testutil.ToFloat64(m.errors.WithLabelValues(c.api, c.code)); got != c.want {
			t.Errorf("response_errors{%s,%s} = %v, want %v", c.api, c.code, got, c.want)
		}
	}
}

// A Fetch answer reaches observe wrapped for splicing (01_fetch.go); the
// error codes of the response it holds are counted all the same.
func TestMetricsSplicedFetchCounted(t *testing.T) {
	t.Parallel()
	m := newMetrics(prometheus.NewRegistry())

	resp := kmsg.NewPtrFetchResponse()
	topic := kmsg.NewFetchResponseTopic()
	p := kmsg.NewFetchResponseTopicPartition()
	p.ErrorCode = kerr.OffsetOutOfRange.Code
	topic.Partitions = append(topic.Partitions, p, kmsg.NewFetchResponseTopicPartition())
	resp.Topics = append(resp.Topics, topic)
	m.observe(1, time.Now(), &splicedResponse{Response: resp}, nil)

	if got := testutil.ToFloat64(m.requests.WithLabelValues("Fetch", "OFFSET_OUT_OF_RANGE")); got != 1 {
		t.Errorf("requests{Fetch,OFFSET_OUT_OF_RANGE} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("Fetch", "ok")); got != 0 {
		t.Errorf("requests{Fetch,ok} = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("Fetch", "OFFSET_OUT_OF_RANGE")); got != 1 {
		t.Errorf("response_errors{Fetch,OFFSET_OUT_OF_RANGE} = %v, want 1", got)
	}
}

type testErr struct{}

func (testErr) Error() string { return "test" }

var errTest error = testErr{}
