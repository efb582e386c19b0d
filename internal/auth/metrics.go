package auth

import "github.com/prometheus/client_golang/prometheus"

// metrics are the authentication series. Every listener and mechanism
// pair a client can meet starts at zero, so a dashboard sees the series
// before the first failure.
type metrics struct {
	failures  *prometheus.CounterVec
	successes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_auth_failures_total",
			Help: "Failed logins by listener (kafka, http, grpc) and mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, basic, agent (agent tokens of forwarded gRPC calls); none: a request with no credentials).",
		}, []string{"listener", "mechanism"}),
		successes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_auth_successes_total",
			Help: "Successful logins by listener and mechanism: Kafka SASL exchanges (re-authentications included) and client certificates per connection; HTTP and gRPC requests.",
		}, []string{"listener", "mechanism"}),
	}
	pairs := map[string][]string{
		ListenerKafka: {MechanismPlain, MechanismScramSHA256, MechanismScramSHA512, MechanismNone},
		ListenerHTTP:  {MechanismBasic, MechanismNone},
		ListenerGRPC:  {MechanismBasic, MechanismAgent, MechanismNone},
	}
	for listener, mechs := range pairs {
		for _, mech := range mechs {
			m.failures.WithLabelValues(listener, mech)
			if mech != MechanismNone {
				m.successes.WithLabelValues(listener, mech)
			}
		}
		m.successes.WithLabelValues(listener, MechanismMTLS)
	}
	if reg != nil {
		reg.MustRegister(m.failures, m.successes)
	}
	return m
}
