package kafka

import (
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the Kafka listener's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	// errors counts the error codes responses carry, one per code
	// field that is not NONE (a partition, a topic, a group or the
	// whole response), by API and Kafka error name.
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	conns    prometheus.Gauge
	// connsRejected counts connections closed at accept, by reason
	// (max_connections, max_connections_per_ip); requestsRejected the
	// connections closed for a request, by reason (too_large, malformed,
	// idle, slow: a frame that did not arrive in time; throttled: a
	// request on a connection muted for long by a quota; tls_handshake).
	connsRejected    *prometheus.CounterVec
	requestsRejected *prometheus.CounterVec
}

// Outcome label values of streamhouse_kafka_requests_total besides the
// Kafka error names (franz-go kerr's, such as NOT_LEADER_FOR_PARTITION, its
// name of code 6, which Kafka now calls NOT_LEADER_OR_FOLLOWER).
const (
	outcomeOK = "ok"
	// outcomeClosed: the handler failed and the connection was closed
	// without an answer.
	outcomeClosed = "closed"
)

// alertedErrors are the error names whose series exist from the start for
// the APIs in alertedAPIs (at zero), so that a rate over them is 0, not
// absent, before the first error: the alerts and dashboards of
// deploy/prometheus use them.
var (
	alertedAPIs   = []int16{0, 1} // Produce, Fetch
	alertedErrors = []string{
		outcomeClosed,
		kerr.NotLeaderForPartition.Message, kerr.RequestTimedOut.Message, kerr.UnknownServerError.Message,
		kerr.KafkaStorageError.Message, kerr.CorruptMessage.Message, kerr.MessageTooLarge.Message,
		kerr.InvalidRecord.Message, kerr.OutOfOrderSequenceNumber.Message, kerr.InvalidProducerEpoch.Message,
		kerr.UnknownTopicOrPartition.Message, kerr.OffsetOutOfRange.Message,
	}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_kafka_requests_total", Help: "Kafka requests handled, by API and outcome: ok, the first Kafka error code the response carries (its franz-go name, such as NOT_LEADER_FOR_PARTITION for code 6, Kafka's NOT_LEADER_OR_FOLLOWER), or closed (no answer: the connection was closed).",
		}, []string{"api", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_kafka_response_errors_total", Help: "Error codes carried by Kafka responses (one per partition, topic, group or response that has one), by API and Kafka error name.",
		}, []string{"api", "error"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streamhouse_kafka_request_duration_seconds", Help: "Time to handle a Kafka request (long polls included), by API.",
			Buckets: []float64{.00025, .0005, .001, .0015, .002, .003, .004, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"api"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_kafka_connections", Help: "Open Kafka client connections.",
		}),
		connsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_kafka_connections_rejected_total", Help: "Kafka connections closed as soon as accepted, by the limit they broke.",
		}, []string{"reason"}),
		requestsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_kafka_connections_dropped_total", Help: "Kafka connections closed by the server, by reason: too_large (a frame over its cap), malformed (a request that does not decode), idle, slow (a frame not complete in time), throttled (a request sent on a connection muted by a client quota for over 30s more), tls_handshake (a TLS handshake that failed: plaintext or no valid client certificate).",
		}, []string{"reason"}),
	}
	for _, key := range alertedAPIs {
		name := apiName(key)
		m.requests.WithLabelValues(name, outcomeOK)
		m.duration.WithLabelValues(name)
		for _, e := range alertedErrors {
			m.requests.WithLabelValues(name, e)
			if e != outcomeClosed {
				m.errors.WithLabelValues(name, e)
			}
		}
	}
	for _, r := range []string{"max_connections", "max_connections_per_ip"} {
		m.connsRejected.WithLabelValues(r)
	}
	for _, r := range []string{"too_large", "malformed", "idle", "slow", "throttled"} {
		m.requestsRejected.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.errors, m.duration, m.conns, m.connsRejected, m.requestsRejected)
	}
	return m
}

func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" {
		return n
	}
	return strconv.Itoa(int(key))
}

// observe counts one handled request: its outcome is closed when the
// handler failed (err), else the first error code in resp, else ok.
func (m *metrics) observe(key int16, start time.Time, resp kmsg.Response, err error) {
	name := apiName(key)
	outcome := outcomeOK
	switch {
	case err != nil:
		outcome = outcomeClosed
	case resp != nil:
		first := int16(0)
		forEachErrorCode(resp, func(code int16) {
			if first == 0 {
				first = code
			}
			m.errors.WithLabelValues(name, errorName(code)).Inc()
		})
		if first != 0 {
			outcome = errorName(first)
		}
	}
	m.requests.WithLabelValues(name, outcome).Inc()
	m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
}

// errorName is the Kafka name of an error code; a code kerr does not know
// is its number, so the label's values stay bounded by the int16 range and
// in practice by the codes the handlers use.
func errorName(code int16) string {
	if err := kerr.ErrorForCode(code); err != nil {
		if ke, ok := err.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return strconv.Itoa(int(code))
}

// errorPlan says where a response type keeps its error codes: the index
// of its own ErrorCode field (-1 if none) and the fields (structs, slices
// or arrays of structs, pointers to structs) that lead to more.
type errorPlan struct {
	code   int
	nested []int
}

var errorPlans sync.Map // reflect.Type -> *errorPlan (nil plan: no codes below)

// forEachErrorCode calls fn with every non-zero int16 field named
// ErrorCode in resp, depth first. Byte slices (records) are not walked;
// the walk of a type is planned once.
func forEachErrorCode(resp kmsg.Response, fn func(int16)) {
	// A spliced Fetch answer wraps the response in an interface field,
	// which the plans do not follow: walk the response it holds.
	if sr, ok := resp.(*splicedResponse); ok {
		if sr == nil {
			return
		}
		resp = sr.Response
	}
	v := reflect.ValueOf(resp)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	walkErrorCodes(v, fn)
}

func walkErrorCodes(v reflect.Value, fn func(int16)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkErrorCodes(v.Elem(), fn)
		}
	case reflect.Slice, reflect.Array:
		if planFor(v.Type().Elem()) == nil {
			return
		}
		for i := range v.Len() {
			walkErrorCodes(v.Index(i), fn)
		}
	case reflect.Struct:
		p := planFor(v.Type())
		if p == nil {
			return
		}
		if p.code >= 0 {
			if c := int16(v.Field(p.code).Int()); c != 0 {
				fn(c)
			}
		}
		for _, i := range p.nested {
			walkErrorCodes(v.Field(i), fn)
		}
	}
}

// planFor returns the plan of t (a struct, or a pointer, slice or array
// leading to structs), nil when nothing of type t can hold an error code.
func planFor(t reflect.Type) *errorPlan {
	if p, ok := errorPlans.Load(t); ok {
		return p.(*errorPlan)
	}
	p := buildPlan(t, map[reflect.Type]bool{})
	errorPlans.Store(t, p)
	return p
}

func buildPlan(t reflect.Type, seen map[reflect.Type]bool) *errorPlan {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	defer delete(seen, t)
	p := &errorPlan{code: -1}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
			p.code = i
			continue
		}
		if buildPlan(f.Type, seen) != nil {
			p.nested = append(p.nested, i)
		}
	}
	if p.code < 0 && len(p.nested) == 0 {
		return nil
	}
	return p
}
