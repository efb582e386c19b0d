package acl

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// denials counts the operations refused for the ACLs, by listener,
// resource type and operation: labels of bounded cardinality (never a
// resource name or a principal). Each front end names its listener with
// PrepareDenials, which makes its series exist at zero, and counts with
// Denied when its answer refuses an operation; a listing that leaves out
// what the caller may not see refuses nothing and counts nothing.
type denials struct {
	vec *prometheus.CounterVec
	// prepared holds the listeners whose series exist (PrepareDenials is
	// called once per front end, but tests build many).
	mu       sync.Mutex
	prepared map[string]bool
}

func newDenials(reg prometheus.Registerer) *denials {
	d := &denials{
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_authorization_denials_total",
			Help: "Operations refused for the ACLs, by listener (kafka, http: REST, schema registry and SQL; grpc), resource type (TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID) and operation (Kafka's names). Filtered listings are not counted.",
		}, []string{"listener", "resource_type", "operation"}),
		prepared: make(map[string]bool),
	}
	if reg != nil {
		reg.MustRegister(d.vec)
	}
	return d
}

// prepare makes listener's series exist, at zero: every operation that
// applies to each resource type (supportedOperations).
func (d *denials) prepare(listener string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.prepared[listener] {
		return
	}
	d.prepared[listener] = true
	for typ, ops := range supportedOperations {
		for _, op := range ops {
			d.vec.WithLabelValues(listener, typ.String(), op.String())
		}
	}
}

func (d *denials) count(listener string, op Operation, typ ResourceType) {
	// Only the enums' names, so a label never carries anything a client
	// chose.
	d.vec.WithLabelValues(listener, enumName(resourceNames, int8(typ)), enumName(operationNames, int8(op))).Inc()
}

// PrepareDenials makes the denial series of listener exist at zero, so a
// dashboard sees them before the first refusal. Front ends call it when
// they are built.
func (a *Authorizer) PrepareDenials(listener string) {
	if a != nil {
		a.denials.prepare(listener)
	}
}

// Denied counts one operation refused on listener for the ACLs
// (streamhouse_authorization_denials_total). A front end calls it where
// its answer refuses: an error code, a 403, PermissionDenied.
func (a *Authorizer) Denied(listener string, op Operation, typ ResourceType) {
	if a != nil {
		a.denials.count(listener, op, typ)
	}
}
