package quota

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Setting and describing quotas, with Kafka's AlterClientQuotas and
// DescribeClientQuotas semantics (KIP-546; Kafka's ClientQuotaControlManager
// and ClientQuotasImage).
//
// Entity types are "user", "client-id" and "ip"; a component's name is
// nil for the default entity and may not be empty. StreamHouse enforces
// producer_byte_rate and consumer_byte_rate, so only those are accepted:
// request_percentage and controller_mutation_rate (keys Kafka knows) are
// refused with INVALID_REQUEST rather than stored and ignored, as are ip
// entities (connection_creation_rate). Values must be whole numbers (the
// keys are Kafka LONGs) and positive (a rate of zero would stop a client
// for good). Removing a key that is not set (the empty key included) is no
// error and changes nothing.

// MaxEntityName is the longest entity name (user or client id) a quota
// can be set on, in bytes. Kafka has no such bound; user names are at
// most 256 bytes (auth.CheckUserName), and this leaves room for the
// longer principals of client certificates. Names must also be UTF-8
// without NUL bytes.
const MaxEntityName = 1024

// Entity types, as Kafka names them.
const (
	EntityUser     = "user"
	EntityClientID = "client-id"
	EntityIP       = "ip"
)

// EntityComponent is one component of an entity as a request names it;
// Name nil is the default entity.
type EntityComponent struct {
	Type string
	Name *string
}

// Op sets (or with Remove, removes) one quota key.
type Op struct {
	Key    string
	Value  float64
	Remove bool
}

// AlterEntry is one entity's changes in an AlterClientQuotas request.
type AlterEntry struct {
	Entity []EntityComponent
	Ops    []Op
}

// Alter validates entries and stores the valid ones, all in one
// transaction (none when validateOnly). It returns one error per entry:
// nil if the entry was (or, validating only, would be) applied, an error
// wrapping ErrInvalidRequest for a refused entry, or the store's error for
// the valid entries when the store failed. Duplicate entities are refused
// wherever they occur.
func (m *Manager) Alter(ctx context.Context, entries []AlterEntry, validateOnly bool) []error {
	errs := make([]error, len(entries))
	alts := make([]metadata.QuotaAlteration, len(entries))
	seen := make(map[metadata.QuotaEntity]int, len(entries))
	for i, e := range entries {
		alts[i], errs[i] = checkAlter(e)
		if errs[i] != nil {
			continue
		}
		if j, dup := seen[alts[i].Entity]; dup {
			msg := "the entity " + alts[i].Entity.String() + " appears more than once in the request"
			errs[i], errs[j] = invalid(msg), invalid(msg)
			continue
		}
		seen[alts[i].Entity] = i
	}
	var valid []metadata.QuotaAlteration
	var at []int
	for i := range entries {
		if errs[i] == nil {
			valid, at = append(valid, alts[i]), append(at, i)
		}
	}
	if validateOnly || len(valid) == 0 {
		return errs
	}
	if err := m.cfg.Store.AlterClientQuotas(ctx, valid); err != nil {
		err = fmt.Errorf("store client quotas: %w", err)
		for _, i := range at {
			errs[i] = err
		}
		return errs
	}
	// In effect here before the answer; other agents reload on the notice.
	if err := m.Reload(ctx); err != nil {
		m.log.Warn("reload client quotas after a change; the next reload applies it", "err", err)
	}
	return errs
}

// checkAlter validates one entry as Kafka does and returns it as an
// alteration.
func checkAlter(e AlterEntry) (metadata.QuotaAlteration, error) {
	alt := metadata.QuotaAlteration{Set: make(map[string]float64)}
	keys := make(map[string]bool, len(e.Ops))
	for _, op := range e.Ops {
		if keys[op.Key] {
			return alt, invalid("duplicate quota key " + op.Key + ": the entity's quotas are not changed")
		}
		keys[op.Key] = true
	}
	ent, err := parseEntity(e.Entity)
	if err != nil {
		return alt, err
	}
	alt.Entity = ent
	for _, op := range e.Ops {
		if op.Remove {
			// Removing a key that is not set is a no-op, as in Kafka
			// (ClientQuotaControlManager writes no record for it); the
			// empty key is never set, and the store refuses it.
			if op.Key != "" {
				alt.Remove = append(alt.Remove, op.Key)
			}
			continue
		}
		if err := checkValue(op.Key, op.Value); err != nil {
			return alt, err
		}
		alt.Set[op.Key] = op.Value
	}
	return alt, nil
}

// parseEntity reads an entity's components.
func parseEntity(comps []EntityComponent) (metadata.QuotaEntity, error) {
	var e metadata.QuotaEntity
	if len(comps) == 0 {
		return e, invalid("invalid empty client quota entity")
	}
	seen := make(map[string]bool, len(comps))
	for _, c := range comps {
		if seen[c.Type] {
			return e, invalid("duplicate entity type " + c.Type + " in the client quota entity")
		}
		seen[c.Type] = true
		if c.Name != nil && *c.Name == "" {
			return e, invalid("empty " + c.Type + " name not supported (a null name is the default entity)")
		}
		if c.Name != nil {
			switch n := *c.Name; {
			case len(n) > MaxEntityName:
				return e, invalid(fmt.Sprintf("%s name of %d bytes is longer than %d bytes", c.Type, len(n), MaxEntityName))
			case !utf8.ValidString(n):
				return e, invalid(c.Type + " name is not valid UTF-8")
			case strings.IndexByte(n, 0) >= 0:
				return e, invalid(c.Type + " name contains a NUL byte")
			}
		}
		name := ""
		if c.Name != nil {
			name = *c.Name
		}
		switch c.Type {
		case EntityUser:
			e.HasUser, e.User = true, name
		case EntityClientID:
			e.HasClientID, e.ClientID = true, name
		case EntityIP:
		default:
			return e, invalid("unhandled client quota entity type: " + c.Type)
		}
	}
	if seen[EntityIP] {
		if e.Valid() {
			return e, invalid("an ip entity cannot be combined with user or client-id")
		}
		return e, invalid("ip quotas (connection_creation_rate) are not supported by StreamHouse")
	}
	return e, nil
}

// checkValue checks a key to set and its value.
func checkValue(key string, v float64) error {
	switch key {
	case KeyProducerByteRate, KeyConsumerByteRate:
	case "request_percentage", "controller_mutation_rate":
		return invalid("quota key " + key + " is not supported by StreamHouse (it enforces " +
			KeyProducerByteRate + " and " + KeyConsumerByteRate + ")")
	default:
		return invalid("invalid configuration key " + key)
	}
	// The byte rates are Kafka LONGs: a whole number within 1e-6.
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v-math.Round(v)) > 1e-6 || math.Abs(v) >= math.MaxInt64 {
		return invalid(fmt.Sprintf("configuration %s must be a Long value, not %v", key, v))
	}
	if v < 1 {
		return invalid(fmt.Sprintf("configuration %s must be at least 1 byte per second, not %v", key, v))
	}
	return nil
}

// MatchType is how a DescribeClientQuotas filter component matches.
type MatchType int8

const (
	MatchExact     MatchType = 0 // the named entity
	MatchDefault   MatchType = 1 // the default entity
	MatchSpecified MatchType = 2 // any entity of the type, the default included
)

// FilterComponent is one component of a DescribeClientQuotas filter.
type FilterComponent struct {
	EntityType string
	Match      MatchType
	Name       *string // for MatchExact
}

// Describe returns the stored quotas matching the filter, read from the
// store (so a change made through any agent shows at once), in
// metadata.CompareQuotaEntities order. A filter Kafka refuses is refused
// the same way: ErrInvalidRequest, or ErrUnsupported for an entity type it
// does not know. With strict, an entity matches only if it has exactly
// the filtered types; without, it may have others. No components match
// every entity, or none when strict.
func (m *Manager) Describe(ctx context.Context, comps []FilterComponent, strict bool) ([]metadata.ClientQuota, error) {
	type want struct {
		any  bool
		name *string
	}
	wants := make(map[string]want, len(comps))
	for _, c := range comps {
		if c.EntityType == "" {
			return nil, invalid("invalid empty entity type")
		}
		if _, dup := wants[c.EntityType]; dup {
			return nil, invalid("entity type " + c.EntityType + " cannot appear more than once in the filter")
		}
		switch c.EntityType {
		case EntityUser, EntityClientID, EntityIP:
		default:
			return nil, unsupported("unsupported entity type " + c.EntityType)
		}
		switch c.Match {
		case MatchExact:
			if c.Name == nil {
				return nil, invalid("match type EXACT (0) needs a name to match")
			}
			wants[c.EntityType] = want{name: c.Name}
		case MatchDefault, MatchSpecified:
			if c.Name != nil {
				return nil, invalid(fmt.Sprintf("match type %d takes no name", c.Match))
			}
			wants[c.EntityType] = want{any: c.Match == MatchSpecified}
		default:
			return nil, invalid(fmt.Sprintf("unknown match type %d", c.Match))
		}
	}
	_, ip := wants[EntityIP]
	_, user := wants[EntityUser]
	_, client := wants[EntityClientID]
	if ip && (user || client) {
		return nil, invalid("an ip filter component cannot be combined with user or client-id")
	}
	if strict && len(wants) == 0 {
		return nil, nil
	}
	qs, err := m.cfg.Store.ClientQuotas(ctx)
	if err != nil {
		return nil, fmt.Errorf("read client quotas: %w", err)
	}
	var out []metadata.ClientQuota
	for _, q := range qs {
		parts := map[string]*string{}
		if q.Entity.HasUser {
			parts[EntityUser] = nameOrNil(q.Entity.User)
		}
		if q.Entity.HasClientID {
			parts[EntityClientID] = nameOrNil(q.Entity.ClientID)
		}
		if strict && len(parts) != len(wants) {
			continue
		}
		ok := true
		for typ, w := range wants {
			name, has := parts[typ]
			switch {
			case !has:
				ok = false
			case w.any:
			case (w.name == nil) != (name == nil), w.name != nil && *w.name != *name:
				ok = false
			}
		}
		if ok {
			out = append(out, q)
		}
	}
	return out, nil
}

func nameOrNil(n string) *string {
	if n == "" {
		return nil
	}
	return &n
}
