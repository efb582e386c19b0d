package quota

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the quota series: the throttle given to requests over their
// quota, by listener and kind.
type metrics struct {
	throttle *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		throttle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamhouse_quota_throttle_time_seconds",
			Help:    "Throttle time given to requests over their client quota (throttle_time_ms; the connection is muted as long), by listener and quota (produce, fetch). Requests within quota are not observed.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"listener", "quota"}),
	}
	// Every series exists from the start, at zero.
	for k := range numKinds {
		m.throttle.WithLabelValues(ListenerKafka, k.String())
	}
	if reg != nil {
		reg.MustRegister(m.throttle)
	}
	return m
}

func (m *metrics) observe(listener string, k Kind, d time.Duration) {
	if d <= 0 {
		return
	}
	if listener == "" {
		listener = ListenerKafka
	}
	m.throttle.WithLabelValues(listener, k.String()).Observe(d.Seconds())
}
