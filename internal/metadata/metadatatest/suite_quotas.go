package metadatatest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

var quotaTests = []suiteTest{
	{"ClientQuotasRoundTrip", testClientQuotasRoundTrip},
	{"ClientQuotasAlterRemove", testClientQuotasAlterRemove},
	{"ClientQuotasAllOrNothing", testClientQuotasAllOrNothing},
	{"ClientQuotasChangeNotice", testClientQuotasChangeNotice},
}

// quotaEntities are one entity of every shape, in the order ClientQuotas
// lists them ("Zoë" before "alice": names compare byte-wise).
var quotaEntities = []metadata.QuotaEntity{
	{HasClientID: true},                  // client-id=<default>
	{HasClientID: true, ClientID: "app"}, // client-id=app
	{HasUser: true},                      // user=<default>
	{HasUser: true, HasClientID: true},   // user=<default>,client-id=<default>
	{HasUser: true, HasClientID: true, ClientID: "app"},
	{HasUser: true, User: "Zoë"}, // byte-wise: after "alice"
	{HasUser: true, User: "alice"},
	{HasUser: true, User: "alice", HasClientID: true},
	{HasUser: true, User: "alice", HasClientID: true, ClientID: "<default>"}, // a name, not the default
}

func checkClientQuotas(t *testing.T, s metadata.Store, want []metadata.ClientQuota) {
	t.Helper()
	got, err := s.ClientQuotas(t.Context())
	if err != nil {
		t.Fatalf("ClientQuotas: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ClientQuotas = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Entity != want[i].Entity || !maps.Equal(got[i].Values, want[i].Values) {
			t.Fatalf("ClientQuotas[%d] = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
}

// Every entity shape is kept apart from the others, with its values, and
// listed in the documented order.
func testClientQuotasRoundTrip(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	checkClientQuotas(t, s, nil)
	var (
		alts []metadata.QuotaAlteration
		want []metadata.ClientQuota
	)
	for i, e := range quotaEntities {
		vals := map[string]float64{"producer_byte_rate": float64(1000 * (i + 1))}
		if i%2 == 0 {
			vals["consumer_byte_rate"] = 0.5 + float64(i)
		}
		// Stored in the reverse of the listing order.
		alts = append([]metadata.QuotaAlteration{{Entity: e, Set: vals}}, alts...)
		want = append(want, metadata.ClientQuota{Entity: e, Values: vals})
	}
	if err := s.AlterClientQuotas(ctx, alts); err != nil {
		t.Fatalf("AlterClientQuotas: %v", err)
	}
	checkClientQuotas(t, s, want)
}

func testClientQuotasAlterRemove(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	alice := metadata.QuotaEntity{HasUser: true, User: "alice"}
	app := metadata.QuotaEntity{HasClientID: true, ClientID: "app"}
	if err := s.AlterClientQuotas(ctx, []metadata.QuotaAlteration{
		{Entity: alice, Set: map[string]float64{"producer_byte_rate": 100, "consumer_byte_rate": 200}},
		{Entity: app, Set: map[string]float64{"producer_byte_rate": 300}},
	}); err != nil {
		t.Fatal(err)
	}
	// Update one value, remove another and a key never set (ignored).
	if err := s.AlterClientQuotas(ctx, []metadata.QuotaAlteration{
		{Entity: alice, Set: map[string]float64{"producer_byte_rate": 150}, Remove: []string{"consumer_byte_rate", "request_percentage"}},
	}); err != nil {
		t.Fatal(err)
	}
	checkClientQuotas(t, s, []metadata.ClientQuota{
		{Entity: app, Values: map[string]float64{"producer_byte_rate": 300}},
		{Entity: alice, Values: map[string]float64{"producer_byte_rate": 150}},
	})
	// An entity whose last key goes is gone; removing from an entity that
	// has nothing is no error.
	if err := s.AlterClientQuotas(ctx, []metadata.QuotaAlteration{
		{Entity: app, Remove: []string{"producer_byte_rate"}},
		{Entity: metadata.QuotaEntity{HasUser: true, User: "nobody"}, Remove: []string{"producer_byte_rate"}},
	}); err != nil {
		t.Fatal(err)
	}
	checkClientQuotas(t, s, []metadata.ClientQuota{
		{Entity: alice, Values: map[string]float64{"producer_byte_rate": 150}},
	})
	if err := s.AlterClientQuotas(ctx, nil); err != nil {
		t.Errorf("AlterClientQuotas of nothing: %v", err)
	}
}

// A malformed alteration anywhere in the list stores nothing of the list.
func testClientQuotasAllOrNothing(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	good := metadata.QuotaAlteration{Entity: metadata.QuotaEntity{HasUser: true, User: "alice"}, Set: map[string]float64{"producer_byte_rate": 1}}
	nan, inf := math.NaN(), math.Inf(1)
	bad := map[string]metadata.QuotaAlteration{
		"empty entity": {Set: map[string]float64{"producer_byte_rate": 1}},
		"empty key":    {Entity: good.Entity, Set: map[string]float64{"": 1}},
		"NaN":          {Entity: good.Entity, Set: map[string]float64{"producer_byte_rate": nan}},
		"infinite":     {Entity: good.Entity, Set: map[string]float64{"producer_byte_rate": inf}},
		"set and remove": {Entity: good.Entity, Set: map[string]float64{"producer_byte_rate": 1},
			Remove: []string{"producer_byte_rate"}},
		"empty removed key": {Entity: good.Entity, Remove: []string{""}},
	}
	for name, b := range bad {
		err := s.AlterClientQuotas(ctx, []metadata.QuotaAlteration{good, b})
		if !errors.Is(err, metadata.ErrInvalidQuota) {
			t.Errorf("%s: AlterClientQuotas = %v, want ErrInvalidQuota", name, err)
		}
	}
	checkClientQuotas(t, s, nil)
}

// A store that announces changes tells its own watchers of a quota change
// once it is committed.
func testClientQuotasChangeNotice(t *testing.T, s metadata.Store) {
	n, ok := s.(metadata.ChangeNotifier)
	if !ok {
		return // optional: such stores are only reloaded periodically
	}
	w := WatchChanges(t, n)
	if err := s.AlterClientQuotas(t.Context(), []metadata.QuotaAlteration{
		{Entity: metadata.QuotaEntity{HasClientID: true}, Set: map[string]float64{"consumer_byte_rate": 1}},
	}); err != nil {
		t.Fatal(err)
	}
	w.WaitFor(t, metadata.ChangeQuotas, 1)
}

// ChangeLog records what a ChangeWatch receives.
type ChangeLog struct {
	mu        sync.Mutex
	seen      map[metadata.Change]int
	listening bool
	downs     int
}

// WatchChanges runs n.WatchChanges until t ends, checking that it then
// stops only because it was cancelled, and waits until it listens.
func WatchChanges(t *testing.T, n metadata.ChangeNotifier) *ChangeLog {
	t.Helper()
	l := &ChangeLog{seen: make(map[metadata.Change]int)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- n.WatchChanges(ctx, metadata.ChangeWatch{
			Changed: func(c metadata.Change) {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.seen[c]++
			},
			Listening: func(ok bool) {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.listening = ok
				if !ok {
					l.downs++
				}
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchChanges returned %v", err)
		}
	})
	testutil.WaitFor(t, "the change watch to listen", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.listening
	})
	return l
}

// Count returns how many notices of c arrived.
func (l *ChangeLog) Count(c metadata.Change) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[c]
}

// State returns whether the watch listens now and how often it reported
// that notices may have been lost.
func (l *ChangeLog) State() (listening bool, downs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listening, l.downs
}

// WaitFor waits until at least n notices of c arrived.
func (l *ChangeLog) WaitFor(t *testing.T, c metadata.Change, n int) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%d %s change notices", n, c), func() bool { return l.Count(c) >= n })
}
