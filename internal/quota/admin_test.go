package quota

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

func name(s string) *string { return &s }

func user(n *string) EntityComponent   { return EntityComponent{Type: EntityUser, Name: n} }
func client(n *string) EntityComponent { return EntityComponent{Type: EntityClientID, Name: n} }

// Alter refuses what Kafka refuses (and what StreamHouse would have to
// ignore), per entry, and stores nothing of a refused entry.
func TestAlterValidation(t *testing.T) {
	t.Parallel()
	rate := func(v float64) []Op { return []Op{{Key: KeyProducerByteRate, Value: v}} }
	cases := []struct {
		name  string
		entry AlterEntry
		ok    bool
	}{
		{"user", AlterEntry{[]EntityComponent{user(name("alice"))}, rate(1024)}, true},
		{"default user and client", AlterEntry{[]EntityComponent{user(nil), client(nil)}, rate(1)}, true},
		{"consumer rate within 1e-6 of a whole number", AlterEntry{[]EntityComponent{client(name("c"))},
			[]Op{{Key: KeyConsumerByteRate, Value: 2048.0000001}}}, true},
		{"remove an unknown key", AlterEntry{[]EntityComponent{client(name("c"))}, []Op{{Key: "nope", Remove: true}}}, true},
		{"empty entity", AlterEntry{nil, rate(1)}, false},
		{"duplicate entity type", AlterEntry{[]EntityComponent{user(name("a")), user(name("b"))}, rate(1)}, false},
		{"unknown entity type", AlterEntry{[]EntityComponent{{Type: "group", Name: name("g")}}, rate(1)}, false},
		{"empty name", AlterEntry{[]EntityComponent{user(name(""))}, rate(1)}, false},
		{"longest name", AlterEntry{[]EntityComponent{client(name(strings.Repeat("c", MaxEntityName)))}, rate(1)}, true},
		{"name too long", AlterEntry{[]EntityComponent{client(name(strings.Repeat("c", MaxEntityName+1)))}, rate(1)}, false},
		{"user name too long", AlterEntry{[]EntityComponent{user(name(strings.Repeat("u", MaxEntityName+1)))}, rate(1)}, false},
		{"NUL in name", AlterEntry{[]EntityComponent{user(name("al\x00ice"))}, rate(1)}, false},
		{"invalid UTF-8 name", AlterEntry{[]EntityComponent{client(name("app\xff"))}, rate(1)}, false},
		{"ip", AlterEntry{[]EntityComponent{{Type: EntityIP, Name: name("10.0.0.1")}}, []Op{{Key: "connection_creation_rate", Value: 5}}}, false},
		{"ip with user", AlterEntry{[]EntityComponent{{Type: EntityIP}, user(nil)}, rate(1)}, false},
		{"unknown key", AlterEntry{[]EntityComponent{user(nil)}, []Op{{Key: "bytes_per_fortnight", Value: 1}}}, false},
		{"request_percentage (not enforced)", AlterEntry{[]EntityComponent{user(nil)}, []Op{{Key: "request_percentage", Value: 50}}}, false},
		{"controller_mutation_rate (not enforced)", AlterEntry{[]EntityComponent{user(nil)}, []Op{{Key: "controller_mutation_rate", Value: 5}}}, false},
		{"fraction", AlterEntry{[]EntityComponent{user(nil)}, rate(1.5)}, false},
		{"zero", AlterEntry{[]EntityComponent{user(nil)}, rate(0)}, false},
		{"negative", AlterEntry{[]EntityComponent{user(nil)}, rate(-100)}, false},
		{"duplicate key", AlterEntry{[]EntityComponent{user(nil)}, []Op{{Key: KeyProducerByteRate, Value: 1}, {Key: KeyProducerByteRate, Remove: true}}}, false},
		{"one bad op of two", AlterEntry{[]EntityComponent{user(name("bob"))}, []Op{{Key: KeyProducerByteRate, Value: 10}, {Key: "request_percentage", Value: 10}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := newTestManager(t, Config{})
			for _, validateOnly := range []bool{true, false} {
				errs := m.Alter(t.Context(), []AlterEntry{tc.entry}, validateOnly)
				if tc.ok != (errs[0] == nil) {
					t.Fatalf("validateOnly=%v: %v, want ok=%v", validateOnly, errs[0], tc.ok)
				}
				if !tc.ok && !errors.Is(errs[0], ErrInvalidRequest) {
					t.Fatalf("error %v does not wrap ErrInvalidRequest", errs[0])
				}
				qs, err := m.cfg.Store.ClientQuotas(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				stored := len(qs) > 0
				wantStored := tc.ok && !validateOnly && len(tc.entry.Ops) > 0 && !tc.entry.Ops[0].Remove
				if stored != wantStored {
					t.Fatalf("validateOnly=%v: stored %v, want stored=%v", validateOnly, qs, wantStored)
				}
			}
		})
	}
}

// An entity named twice is refused both times; the other entries of the
// request are applied together; a store failure fails every valid entry
// and changes nothing in effect.
func TestAlterRequest(t *testing.T) {
	t.Parallel()
	store := faulty.New(metadatatest.OpenSQLite(t))
	m, _ := newTestManager(t, Config{Store: store})
	alice := []EntityComponent{user(name("alice"))}
	entries := []AlterEntry{
		{alice, []Op{{Key: KeyProducerByteRate, Value: 100}}},
		{[]EntityComponent{client(name("app"))}, []Op{{Key: KeyConsumerByteRate, Value: 200}}},
		{[]EntityComponent{user(nil)}, []Op{{Key: "request_percentage", Value: 1}}},
		{alice, []Op{{Key: KeyConsumerByteRate, Value: 300}}},
	}
	errs := m.Alter(t.Context(), entries, false)
	for i, wantOK := range []bool{false, true, false, false} {
		if (errs[i] == nil) != wantOK {
			t.Errorf("entry %d: %v, want ok=%v", i, errs[i], wantOK)
		}
	}
	qs, err := store.ClientQuotas(t.Context())
	if err != nil || len(qs) != 1 || qs[0].Entity != (metadata.QuotaEntity{HasClientID: true, ClientID: "app"}) {
		t.Fatalf("stored %v, %v; want only client-id=app", qs, err)
	}
	// In effect at once on this agent.
	if v, level := m.Limit(Fetch, Client{User: AnonymousUser, ClientID: "app"}); v != 200 || level != 7 {
		t.Fatalf("limit after Alter: %v at level %d", v, level)
	}

	store.Inject(faulty.Fault{Op: faulty.OpAlterQuotas, Times: 1})
	errs = m.Alter(t.Context(), []AlterEntry{
		{[]EntityComponent{client(name("app"))}, []Op{{Key: KeyConsumerByteRate, Remove: true}}},
		{[]EntityComponent{client(name(""))}, nil},
	}, false)
	if !errors.Is(errs[0], faulty.ErrInjected) || !errors.Is(errs[1], ErrInvalidRequest) {
		t.Fatalf("with a failing store: %v", errs)
	}
	if v, _ := m.Limit(Fetch, Client{User: AnonymousUser, ClientID: "app"}); v != 200 {
		t.Fatalf("limit %v after a failed Alter", v)
	}
}

// Removing the empty key is a no-op as in Kafka (the key is not set): it
// neither fails its entry nor, through the store's check of the whole
// transaction, the other entries of the request.
func TestAlterRemoveEmptyKey(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager(t, Config{})
	errs := m.Alter(t.Context(), []AlterEntry{
		{[]EntityComponent{user(name("alice"))}, []Op{{Key: "", Remove: true}}},
		{[]EntityComponent{user(name("bob"))}, []Op{{Key: KeyProducerByteRate, Value: 1000}}},
	}, false)
	for i, err := range errs {
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
	}
	qs, err := m.cfg.Store.ClientQuotas(t.Context())
	if err != nil || len(qs) != 1 || qs[0].Entity != (metadata.QuotaEntity{HasUser: true, User: "bob"}) || qs[0].Values[KeyProducerByteRate] != 1000 {
		t.Fatalf("stored %+v, %v; want bob's producer_byte_rate 1000", qs, err)
	}
}

// Describe filters as Kafka's ClientQuotasImage does.
func TestDescribe(t *testing.T) {
	t.Parallel()
	ents := map[string]metadata.QuotaEntity{
		"alice":            {HasUser: true, User: "alice"},
		"<default>":        {HasUser: true},
		"alice/app":        {HasUser: true, User: "alice", HasClientID: true, ClientID: "app"},
		"alice/<default>":  {HasUser: true, User: "alice", HasClientID: true},
		"<default>/app":    {HasUser: true, HasClientID: true, ClientID: "app"},
		"client app":       {HasClientID: true, ClientID: "app"},
		"client <default>": {HasClientID: true},
		"client other":     {HasClientID: true, ClientID: "other"},
	}
	var alts []metadata.QuotaAlteration
	for _, e := range ents {
		alts = append(alts, set(e, KeyProducerByteRate, 1))
	}
	m, _ := newTestManager(t, Config{}, alts...)
	exact := func(typ, n string) FilterComponent {
		return FilterComponent{EntityType: typ, Match: MatchExact, Name: name(n)}
	}
	def := func(typ string) FilterComponent { return FilterComponent{EntityType: typ, Match: MatchDefault} }
	anyOf := func(typ string) FilterComponent { return FilterComponent{EntityType: typ, Match: MatchSpecified} }
	cases := []struct {
		name   string
		comps  []FilterComponent
		strict bool
		want   []string
	}{
		{"all", nil, false, []string{"alice", "<default>", "alice/app", "alice/<default>", "<default>/app", "client app", "client <default>", "client other"}},
		{"strict nothing", nil, true, nil},
		{"user alice", []FilterComponent{exact(EntityUser, "alice")}, false, []string{"alice", "alice/app", "alice/<default>"}},
		{"user alice strict", []FilterComponent{exact(EntityUser, "alice")}, true, []string{"alice"}},
		{"default user", []FilterComponent{def(EntityUser)}, false, []string{"<default>", "<default>/app"}},
		{"any user strict", []FilterComponent{anyOf(EntityUser)}, true, []string{"alice", "<default>"}},
		{"any client", []FilterComponent{anyOf(EntityClientID)}, false, []string{"alice/app", "alice/<default>", "<default>/app", "client app", "client <default>", "client other"}},
		{"client app", []FilterComponent{exact(EntityClientID, "app")}, false, []string{"alice/app", "<default>/app", "client app"}},
		{"any user and client app", []FilterComponent{anyOf(EntityUser), exact(EntityClientID, "app")}, true, []string{"alice/app", "<default>/app"}},
		{"default client strict", []FilterComponent{def(EntityClientID)}, true, []string{"client <default>"}},
		{"user nobody", []FilterComponent{exact(EntityUser, "nobody")}, false, nil},
		{"ip", []FilterComponent{anyOf(EntityIP)}, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Describe(t.Context(), tc.comps, tc.strict)
			if err != nil {
				t.Fatal(err)
			}
			want := make(map[metadata.QuotaEntity]bool)
			for _, n := range tc.want {
				want[ents[n]] = true
			}
			gotSet := make(map[metadata.QuotaEntity]bool)
			for i, q := range got {
				gotSet[q.Entity] = true
				if i > 0 && metadata.CompareQuotaEntities(got[i-1].Entity, q.Entity) >= 0 {
					t.Errorf("not in order: %v", got)
				}
				if !maps.Equal(q.Values, map[string]float64{KeyProducerByteRate: 1}) {
					t.Errorf("values %v", q.Values)
				}
			}
			if !maps.Equal(gotSet, want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name  string
		comps []FilterComponent
		kind  error
	}{
		{"empty type", []FilterComponent{{Match: MatchSpecified}}, ErrInvalidRequest},
		{"type twice", []FilterComponent{anyOf(EntityUser), def(EntityUser)}, ErrInvalidRequest},
		{"unknown type", []FilterComponent{anyOf("group")}, ErrUnsupported},
		{"exact without name", []FilterComponent{{EntityType: EntityUser, Match: MatchExact}}, ErrInvalidRequest},
		{"default with name", []FilterComponent{{EntityType: EntityUser, Match: MatchDefault, Name: name("a")}}, ErrInvalidRequest},
		{"any with name", []FilterComponent{{EntityType: EntityUser, Match: MatchSpecified, Name: name("a")}}, ErrInvalidRequest},
		{"unknown match", []FilterComponent{{EntityType: EntityUser, Match: 7}}, ErrInvalidRequest},
		{"ip with user", []FilterComponent{anyOf(EntityIP), anyOf(EntityUser)}, ErrInvalidRequest},
	}
	for _, tc := range bad {
		if _, err := m.Describe(t.Context(), tc.comps, false); !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
	}
}
