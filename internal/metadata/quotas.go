package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Client quotas (Kafka's KIP-55 and KIP-546): byte rates and other limits
// set on a user, a client ID, or a user's client ID, each named or the
// default entity. The store keeps the values as Kafka does (a key and a
// float64 per entity) and knows nothing of what the keys mean:
// internal/quota validates the keys, picks the quota that applies to a
// client and enforces it.

// ErrInvalidQuota marks a QuotaAlteration the store cannot keep (an entity
// with no component, an empty key, a value that is not a finite number): a
// bug in the caller, which validates what clients send. Nothing was
// stored.
var ErrInvalidQuota = errors.New("invalid client quota")

// QuotaEntity is what a client quota applies to: a user, a client ID, or
// both (a user's client ID). Each component is either absent, named, or
// the default entity (Kafka's null name, "<default>" in kafka-configs.sh),
// which applies to every user or client ID that has no quota of its own.
// Kafka refuses empty names, so an empty name with the component present
// stands for the default entity. It is comparable and a map key.
type QuotaEntity struct {
	HasUser     bool
	User        string // "" with HasUser: the default user
	HasClientID bool
	ClientID    string // "" with HasClientID: the default client ID
}

// Valid reports whether the entity has a component.
func (e QuotaEntity) Valid() bool { return e.HasUser || e.HasClientID }

// String is the entity as kafka-configs.sh names it, e.g.
// "user=alice,client-id=<default>".
func (e QuotaEntity) String() string {
	name := func(n string) string {
		if n == "" {
			return "<default>"
		}
		return n
	}
	switch {
	case e.HasUser && e.HasClientID:
		return "user=" + name(e.User) + ",client-id=" + name(e.ClientID)
	case e.HasUser:
		return "user=" + name(e.User)
	case e.HasClientID:
		return "client-id=" + name(e.ClientID)
	}
	return "(empty entity)"
}

// CompareQuotaEntities orders entities as ClientQuotas lists them: by
// user (absent, then the default, then names byte-wise), then by client ID
// the same way.
func CompareQuotaEntities(a, b QuotaEntity) int {
	if c := compareQuotaPart(a.HasUser, a.User, b.HasUser, b.User); c != 0 {
		return c
	}
	return compareQuotaPart(a.HasClientID, a.ClientID, b.HasClientID, b.ClientID)
}

func compareQuotaPart(hasA bool, a string, hasB bool, b string) int {
	switch {
	case hasA != hasB:
		if hasA {
			return 1
		}
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ClientQuota is one entity's stored quotas, by key (e.g.
// "producer_byte_rate").
type ClientQuota struct {
	Entity QuotaEntity
	Values map[string]float64
}

// QuotaAlteration changes one entity's quotas: the keys of Set are set to
// their values, the keys of Remove deleted (a key not stored is ignored).
// A key must not be in both.
type QuotaAlteration struct {
	Entity QuotaEntity
	Set    map[string]float64
	Remove []string
}

// QuotaStore is the client quota part of Store.
type QuotaStore interface {
	// AlterClientQuotas applies every alteration in one transaction: all
	// or nothing. An entity left without keys is gone. A malformed
	// alteration fails with ErrInvalidQuota before the store is touched.
	// On success, watchers of ChangeQuotas are told (ChangeNotifier).
	AlterClientQuotas(ctx context.Context, alts []QuotaAlteration) error
	// ClientQuotas returns every entity that has a quota, with its values,
	// ordered by user (absent first, then the default, then by name) and
	// then by client ID in the same way.
	ClientQuotas(ctx context.Context) ([]ClientQuota, error)
}

// CheckQuotaAlterations returns an error wrapping ErrInvalidQuota for the
// first malformed alteration of alts, for stores to call first.
func CheckQuotaAlterations(alts []QuotaAlteration) error {
	for _, a := range alts {
		if !a.Entity.Valid() {
			return fmt.Errorf("%w: an entity needs a user or a client id", ErrInvalidQuota)
		}
		for k, v := range a.Set {
			if k == "" {
				return fmt.Errorf("%w: %s: empty key", ErrInvalidQuota, a.Entity)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: %s: %s = %v is not a finite number", ErrInvalidQuota, a.Entity, k, v)
			}
		}
		for _, k := range a.Remove {
			if k == "" {
				return fmt.Errorf("%w: %s: empty key", ErrInvalidQuota, a.Entity)
			}
			if _, both := a.Set[k]; both {
				return fmt.Errorf("%w: %s: %s is both set and removed", ErrInvalidQuota, a.Entity, k)
			}
		}
	}
	return nil
}
