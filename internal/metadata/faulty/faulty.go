// Package faulty owns Store, a fault-injecting wrapper of a metadata.Store
// for failure tests: lease renewals that fail or hang, commits that are
// slow, or that land in the store yet report failure (a lost response).
// It mirrors objstore.Faulty, the object store's counterpart.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Op names a wrapped Store method.
type Op string

// The methods faults can target; every other method passes through.
const (
	OpAcquireLease  Op = "acquire_lease"
	OpRenewLeases   Op = "renew_leases"
	OpReleaseLease  Op = "release_lease"
	OpCommitObject  Op = "commit_object"
	OpReplaceIndex  Op = "replace_index"
	OpCommitted     Op = "committed_objects" // IsObjectCommitted and CommittedObjects
	OpPutTxn        Op = "put_txn"
	OpAddTxnOffsets Op = "add_txn_offsets"
	OpCreateACLs    Op = "create_acls"
	OpListACLs      Op = "list_acls"
	OpDeleteACLs    Op = "delete_acls"
	OpACLVersion    Op = "acl_version"
	// OpGetCredential is GetScramCredential (every login reads one);
	// OpPutCredential is PutScramCredential and CreateScramUser.
	OpGetCredential Op = "get_credential"
	OpPutCredential Op = "put_credential"
	// OpAlterQuotas is AlterClientQuotas; OpListQuotas is ClientQuotas.
	OpAlterQuotas Op = "alter_client_quotas"
	OpListQuotas  Op = "list_client_quotas"
	// OpListGroups is ListGroups.
	OpListGroups Op = "list_groups"
)

// ErrInjected is the error a Fault returns when it sets no Err of its own.
var ErrInjected = errors.New("injected metadata store fault")

// Fault is one rule: which calls it affects and what happens to them.
//
// Effects apply in this order: wait Delay, then hang if Hang, then either
// fail with Err, or (AfterWrite) run the call on the inner store and then
// fail with Err. A Fault with Delay or Hang but no Err lets the call proceed
// normally afterwards; a Fault with none of Err, Delay or Hang fails with
// ErrInjected.
type Fault struct {
	Op Op
	// Times is how many matching calls the fault affects before it
	// expires; 0 means every matching call until Clear.
	Times int
	Err   error
	// AfterWrite runs the call on the inner store before reporting Err: a
	// commit that lands yet reports failure.
	AfterWrite bool
	// Delay is added before the call (after it, with AfterWrite: the call
	// lands, then its answer is late); a cancelled ctx cuts it short.
	Delay time.Duration
	// Hang blocks the call until its ctx is done or until Release.
	Hang bool
}

// Store wraps a metadata.Store and applies the injected Faults. With no
// faults it is a transparent pass-through. Safe for concurrent use.
type Store struct {
	metadata.Store

	mu      sync.Mutex
	rules   []*rule
	calls   map[Op]int
	release chan struct{}
	hanging int
}

type rule struct {
	Fault
	left int
}

var _ metadata.Store = (*Store)(nil)

// New wraps inner with no faults injected.
func New(inner metadata.Store) *Store {
	return &Store{Store: inner, calls: make(map[Op]int), release: make(chan struct{})}
}

// Inject adds a rule after the existing ones; the first matching rule
// applies to a call.
func (s *Store) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{Fault: f, left: f.Times})
}

// Clear removes every rule. Calls already hanging stay hung until Release
// or their ctx ends.
func (s *Store) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// Release frees every call hanging now.
func (s *Store) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.release)
	s.release = make(chan struct{})
}

// Hanging returns how many calls are hung now.
func (s *Store) Hanging() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging
}

// Calls returns how many times op was called, faulted or not.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// do runs call under the first matching rule for op.
func (s *Store) do(ctx context.Context, op Op, call func() error) error {
	s.mu.Lock()
	s.calls[op]++
	var f Fault
	matched := false
	for i, r := range s.rules {
		if r.Op != op {
			continue
		}
		f, matched = r.Fault, true
		if r.Times > 0 {
			if r.left--; r.left == 0 {
				s.rules = slices.Delete(s.rules, i, i+1)
			}
		}
		break
	}
	release := s.release
	s.mu.Unlock()
	if !matched {
		return call()
	}
	wait := func() error {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", op, ctx.Err())
			}
		}
		if f.Hang {
			s.mu.Lock()
			s.hanging++
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				s.hanging--
				s.mu.Unlock()
			}()
			select {
			case <-release:
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", op, ctx.Err())
			}
		}
		return nil
	}
	ferr := f.Err
	if ferr == nil && f.Delay == 0 && !f.Hang {
		ferr = ErrInjected
	}
	if f.AfterWrite {
		if err := call(); err != nil {
			return err
		}
		if err := wait(); err != nil {
			return err
		}
		if ferr != nil {
			return fmt.Errorf("%s: %w", op, ferr)
		}
		return nil
	}
	if err := wait(); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("%s: %w", op, ferr)
	}
	return call()
}

// AcquireLease implements metadata.Store.
func (s *Store) AcquireLease(ctx context.Context, tp metadata.TopicPartition, agentID string, now time.Time, ttl time.Duration) (l metadata.Lease, err error) {
	err = s.do(ctx, OpAcquireLease, func() error {
		l, err = s.Store.AcquireLease(ctx, tp, agentID, now, ttl)
		return err
	})
	return l, err
}

// RenewLeases implements metadata.Store.
func (s *Store) RenewLeases(ctx context.Context, agentID string, now time.Time, ttl time.Duration) (ls []metadata.Lease, err error) {
	err = s.do(ctx, OpRenewLeases, func() error {
		ls, err = s.Store.RenewLeases(ctx, agentID, now, ttl)
		return err
	})
	return ls, err
}

// ReleaseLease implements metadata.Store.
func (s *Store) ReleaseLease(ctx context.Context, tp metadata.TopicPartition, agentID string, epoch int32) error {
	return s.do(ctx, OpReleaseLease, func() error {
		return s.Store.ReleaseLease(ctx, tp, agentID, epoch)
	})
}

// CommitObject implements metadata.Store.
func (s *Store) CommitObject(ctx context.Context, c metadata.ObjectCommit) error {
	return s.do(ctx, OpCommitObject, func() error {
		return s.Store.CommitObject(ctx, c)
	})
}

// ReplaceIndex implements metadata.Store.
func (s *Store) ReplaceIndex(ctx context.Context, r metadata.IndexReplacement) error {
	return s.do(ctx, OpReplaceIndex, func() error {
		return s.Store.ReplaceIndex(ctx, r)
	})
}

// IsObjectCommitted implements metadata.Store.
func (s *Store) IsObjectCommitted(ctx context.Context, key string) (ok bool, err error) {
	err = s.do(ctx, OpCommitted, func() error {
		ok, err = s.Store.IsObjectCommitted(ctx, key)
		return err
	})
	return ok, err
}

// CommittedObjects implements metadata.Store.
func (s *Store) CommittedObjects(ctx context.Context, keys []string) (m map[string]bool, err error) {
	err = s.do(ctx, OpCommitted, func() error {
		m, err = s.Store.CommittedObjects(ctx, keys)
		return err
	})
	return m, err
}

// PutTxn implements metadata.Store.
func (s *Store) PutTxn(ctx context.Context, fence metadata.GroupFence, t metadata.Txn) error {
	return s.do(ctx, OpPutTxn, func() error {
		return s.Store.PutTxn(ctx, fence, t)
	})
}

// AddTxnOffsets implements metadata.Store.
func (s *Store) AddTxnOffsets(ctx context.Context, fence metadata.GroupFence, id string, producerID int64, epoch int16, offsets []metadata.GroupOffset) error {
	return s.do(ctx, OpAddTxnOffsets, func() error {
		return s.Store.AddTxnOffsets(ctx, fence, id, producerID, epoch, offsets)
	})
}

// CreateACLs implements metadata.Store.
func (s *Store) CreateACLs(ctx context.Context, bs []acl.Binding) error {
	return s.do(ctx, OpCreateACLs, func() error {
		return s.Store.CreateACLs(ctx, bs)
	})
}

// ListACLs implements metadata.Store.
func (s *Store) ListACLs(ctx context.Context, f acl.Filter) (bs []acl.Binding, err error) {
	err = s.do(ctx, OpListACLs, func() error {
		bs, err = s.Store.ListACLs(ctx, f)
		return err
	})
	return bs, err
}

// DeleteACLs implements metadata.Store.
func (s *Store) DeleteACLs(ctx context.Context, fs []acl.Filter) (out [][]acl.Binding, err error) {
	err = s.do(ctx, OpDeleteACLs, func() error {
		out, err = s.Store.DeleteACLs(ctx, fs)
		return err
	})
	return out, err
}

// ACLVersion implements metadata.Store.
func (s *Store) ACLVersion(ctx context.Context) (v acl.Version, err error) {
	err = s.do(ctx, OpACLVersion, func() error {
		v, err = s.Store.ACLVersion(ctx)
		return err
	})
	return v, err
}

// GetScramCredential implements metadata.Store.
func (s *Store) GetScramCredential(ctx context.Context, user, mechanism string) (c metadata.ScramCredential, err error) {
	err = s.do(ctx, OpGetCredential, func() error {
		c, err = s.Store.GetScramCredential(ctx, user, mechanism)
		return err
	})
	return c, err
}

// PutScramCredential implements metadata.Store.
func (s *Store) PutScramCredential(ctx context.Context, c metadata.ScramCredential) error {
	return s.do(ctx, OpPutCredential, func() error {
		return s.Store.PutScramCredential(ctx, c)
	})
}

// CreateScramUser implements metadata.Store.
func (s *Store) CreateScramUser(ctx context.Context, creds []metadata.ScramCredential) (created bool, err error) {
	err = s.do(ctx, OpPutCredential, func() error {
		created, err = s.Store.CreateScramUser(ctx, creds)
		return err
	})
	return created, err
}

// AlterClientQuotas implements metadata.Store.
func (s *Store) AlterClientQuotas(ctx context.Context, alts []metadata.QuotaAlteration) error {
	return s.do(ctx, OpAlterQuotas, func() error {
		return s.Store.AlterClientQuotas(ctx, alts)
	})
}

// ClientQuotas implements metadata.Store.
func (s *Store) ClientQuotas(ctx context.Context) (qs []metadata.ClientQuota, err error) {
	err = s.do(ctx, OpListQuotas, func() error {
		qs, err = s.Store.ClientQuotas(ctx)
		return err
	})
	return qs, err
}

// ListGroups lists the groups unless a fault applies.
func (s *Store) ListGroups(ctx context.Context) (gs []string, err error) {
	err = s.do(ctx, OpListGroups, func() error {
		gs, err = s.Store.ListGroups(ctx)
		return err
	})
	return gs, err
}

// WatchChanges passes the inner store's change notices through, when it
// has them (metadata.ChangeNotifier); otherwise it waits for ctx and
// reports that notices do not flow.
func (s *Store) WatchChanges(ctx context.Context, w metadata.ChangeWatch) error {
	if n, ok := s.Store.(metadata.ChangeNotifier); ok {
		return n.WatchChanges(ctx, w)
	}
	<-ctx.Done()
	return ctx.Err()
}
