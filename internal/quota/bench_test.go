package quota

import (
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// The cost a Produce pays for quotas: none set (the common case); a
// default client-id quota (one lookup) with a bucket to draw from; and
// every level set but only the last matching (eight lookups).
func BenchmarkRecordProduce(b *testing.B) {
	c := Client{Listener: ListenerKafka, User: AnonymousUser, ClientID: "bench"}
	b.Run("no-quotas", func(b *testing.B) {
		m := New(Config{})
		for b.Loop() {
			m.RecordProduce(c, 1024)
		}
	})
	b.Run("default-client-quota", func(b *testing.B) {
		m := New(Config{})
		l := &limits{}
		l.byKind[Produce] = map[metadata.QuotaEntity]float64{{HasClientID: true}: 1e12}
		l.levels[Produce] = 1 << 7
		m.limits.Store(l)
		for b.Loop() {
			m.RecordProduce(c, 1024)
		}
	})
	b.Run("all-levels", func(b *testing.B) {
		m := New(Config{})
		l := &limits{}
		l.byKind[Produce] = map[metadata.QuotaEntity]float64{{HasClientID: true}: 1e12}
		l.levels[Produce] = 0xff
		m.limits.Store(l)
		for b.Loop() {
			m.RecordProduce(c, 1024)
		}
	})
}
