package metadatatest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

var userTests = []suiteTest{
	{"ScramCredentialPutGetDelete", testScramCredentialPutGetDelete},
	{"ScramCredentialList", testScramCredentialList},
	{"ScramUserCreateOnce", testScramUserCreateOnce},
	{"ScramUserConcurrentCreate", testScramUserConcurrentCreate},
	{"ScramCredentialInvalid", testScramCredentialInvalid},
}

// credential is a credential with distinct, recognisable bytes.
func credential(user, mechanism string, tag byte) metadata.ScramCredential {
	return metadata.ScramCredential{
		User: user, Mechanism: mechanism, Iterations: 4096 + int32(tag),
		Salt:      bytes.Repeat([]byte{tag, 0x00}, 12),
		StoredKey: bytes.Repeat([]byte{tag, 0x01}, 16),
		ServerKey: bytes.Repeat([]byte{tag, 0xff}, 16),
	}
}

func sameCredential(a, b metadata.ScramCredential) bool {
	return a.User == b.User && a.Mechanism == b.Mechanism && a.Iterations == b.Iterations &&
		bytes.Equal(a.Salt, b.Salt) && bytes.Equal(a.StoredKey, b.StoredKey) && bytes.Equal(a.ServerKey, b.ServerKey)
}

func testScramCredentialPutGetDelete(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	if _, err := s.GetScramCredential(ctx, "alice", "SCRAM-SHA-256"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("Get before Put: %v, want ErrCredentialNotFound", err)
	}
	c1 := credential("alice", "SCRAM-SHA-256", 1)
	if err := s.PutScramCredential(ctx, c1); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetScramCredential(ctx, "alice", "SCRAM-SHA-256")
	if err != nil || !sameCredential(got, c1) || got.UpdatedAt.IsZero() {
		t.Fatalf("Get: %+v, %v; want %+v with UpdatedAt", got, err, c1)
	}
	// Another mechanism is another row; the first stays.
	if _, err := s.GetScramCredential(ctx, "alice", "SCRAM-SHA-512"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("Get other mechanism: %v", err)
	}
	// Put again replaces (a password change).
	c2 := credential("alice", "SCRAM-SHA-256", 2)
	if err := s.PutScramCredential(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetScramCredential(ctx, "alice", "SCRAM-SHA-256"); err != nil || !sameCredential(got, c2) {
		t.Fatalf("Get after replace: %+v, %v", got, err)
	}
	if err := s.DeleteScramCredential(ctx, "alice", "SCRAM-SHA-512"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("Delete absent: %v", err)
	}
	if err := s.DeleteScramCredential(ctx, "alice", "SCRAM-SHA-256"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetScramCredential(ctx, "alice", "SCRAM-SHA-256"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.DeleteScramCredential(ctx, "alice", "SCRAM-SHA-256"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
}

func testScramCredentialList(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	if cs, err := s.ListScramCredentials(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("List empty store: %v, %v", cs, err)
	}
	// Inserted out of order; byte order whatever the collation ("B" <
	// "a" < "b").
	for i, c := range []metadata.ScramCredential{
		credential("b", "SCRAM-SHA-512", 1), credential("a", "SCRAM-SHA-512", 2),
		credential("B", "SCRAM-SHA-256", 3), credential("a", "SCRAM-SHA-256", 4),
	} {
		if err := s.PutScramCredential(ctx, c); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	cs, err := s.ListScramCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.User+"/"+c.Mechanism)
	}
	if want := "[B/SCRAM-SHA-256 a/SCRAM-SHA-256 a/SCRAM-SHA-512 b/SCRAM-SHA-512]"; fmt.Sprint(got) != want {
		t.Fatalf("List: %v, want %s", got, want)
	}
	if !sameCredential(cs[1], credential("a", "SCRAM-SHA-256", 4)) {
		t.Fatalf("listed credential: %+v", cs[1])
	}
}

func testScramUserCreateOnce(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	first := []metadata.ScramCredential{credential("bob", "SCRAM-SHA-256", 1), credential("bob", "SCRAM-SHA-512", 1)}
	created, err := s.CreateScramUser(ctx, first)
	if err != nil || !created {
		t.Fatalf("first create: %v, %v", created, err)
	}
	// The user exists: nothing changes, even for a mechanism it lacks.
	if err := s.DeleteScramCredential(ctx, "bob", "SCRAM-SHA-512"); err != nil {
		t.Fatal(err)
	}
	again := []metadata.ScramCredential{credential("bob", "SCRAM-SHA-256", 2), credential("bob", "SCRAM-SHA-512", 2)}
	created, err = s.CreateScramUser(ctx, again)
	if err != nil || created {
		t.Fatalf("create of an existing user: %v, %v; want false", created, err)
	}
	if got, err := s.GetScramCredential(ctx, "bob", "SCRAM-SHA-256"); err != nil || !sameCredential(got, first[0]) {
		t.Fatalf("credential replaced by a second create: %+v, %v", got, err)
	}
	if _, err := s.GetScramCredential(ctx, "bob", "SCRAM-SHA-512"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("a second create added a mechanism: %v", err)
	}
}

func testScramUserConcurrentCreate(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.CreateScramUser(ctx, []metadata.ScramCredential{
				credential("carol", "SCRAM-SHA-256", byte(i)), credential("carol", "SCRAM-SHA-512", byte(i)),
			})
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			if ok {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if created < 1 {
		t.Fatalf("no concurrent create succeeded")
	}
	cs, err := s.ListScramCredentials(ctx)
	if err != nil || len(cs) != 2 {
		t.Fatalf("after concurrent creates: %v, %v; want two credentials", cs, err)
	}
}

func testScramCredentialInvalid(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	good := credential("dave", "SCRAM-SHA-256", 1)
	bad := []func(*metadata.ScramCredential){
		func(c *metadata.ScramCredential) { c.User = "" },
		func(c *metadata.ScramCredential) { c.Mechanism = "" },
		func(c *metadata.ScramCredential) { c.Salt = nil },
		func(c *metadata.ScramCredential) { c.StoredKey = nil },
		func(c *metadata.ScramCredential) { c.ServerKey = nil },
		func(c *metadata.ScramCredential) { c.Iterations = 0 },
	}
	for i, mutate := range bad {
		c := good
		mutate(&c)
		if err := s.PutScramCredential(ctx, c); err == nil {
			t.Errorf("bad credential %d stored", i)
		}
		if _, err := s.CreateScramUser(ctx, []metadata.ScramCredential{c}); err == nil {
			t.Errorf("bad credential %d created", i)
		}
	}
	other := credential("erin", "SCRAM-SHA-512", 1)
	if _, err := s.CreateScramUser(ctx, []metadata.ScramCredential{good, other}); err == nil {
		t.Error("a creation mixing two users succeeded")
	}
	if _, err := s.CreateScramUser(ctx, nil); err == nil {
		t.Error("an empty creation succeeded")
	}
	if cs, err := s.ListScramCredentials(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("refused credentials left rows: %v, %v", cs, err)
	}
}
