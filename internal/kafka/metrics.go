package kafka

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the Kafka listener's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	conns    prometheus.Gauge
	// connsRejected counts connections closed at accept, by reason
	// (max_connections, max_connections_per_ip); requestsRejected the
	// connections closed for a request, by reason (too_large, malformed,
	// idle, slow: a frame that did not arrive in time; tls_handshake).
	connsRejected    *prometheus.CounterVec
	requestsRejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_kafka_requests_total", Help: "Kafka requests handled, by API and outcome (ok, error: the connection was closed).",
		}, []string{"api", "outcome"}),
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
			Name: "streamhouse_kafka_connections_dropped_total", Help: "Kafka connections closed by the server, by reason: too_large (a frame over its cap), malformed (a request that does not decode), idle, slow (a frame not complete in time), tls_handshake (a TLS handshake that failed: plaintext or no valid client certificate).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.conns, m.connsRejected, m.requestsRejected)
	}
	return m
}

func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" {
		return n
	}
	return strconv.Itoa(int(key))
}

func (m *metrics) observe(key int16, start time.Time, err error) {
	name := apiName(key)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.requests.WithLabelValues(name, outcome).Inc()
	m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
}
