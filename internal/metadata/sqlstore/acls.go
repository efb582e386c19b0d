package sqlstore

// Kafka ACLs (migration 00009): one acls row per binding, keyed by the
// whole binding, and the one-row acl_version, raised by every transaction
// that changes acls. Writers lock the acl_version row first, so ACL changes
// are serial on PostgreSQL too and a DeleteACLs reports exactly what it
// deleted. A change is announced once it commits: on PostgreSQL by a NOTIFY
// on aclChannel sent from the changing transaction (delivered only if it
// commits), and to this Store's own watchers directly.

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// aclChannel is the PostgreSQL notification channel of ACL changes; the
// payload is empty (a notice means "re-read the ACLs").
const aclChannel = "streamhouse_acls"

// deleteACLsChunk is how many bindings one DELETE statement removes (7
// parameters each).
const deleteACLsChunk = 100

var _ acl.Notifier = (*Store)(nil)

const aclColumns = `resource_type, resource_name, pattern_type, principal, host, operation, permission`

func scanACL(r rows) (acl.Binding, error) {
	var (
		b                     acl.Binding
		rtype, ptype, op, per int64
	)
	if err := r.Scan(&rtype, &b.ResourceName, &ptype, &b.Principal, &b.Host, &op, &per); err != nil {
		return b, err
	}
	b.ResourceType, b.PatternType = acl.ResourceType(rtype), acl.PatternType(ptype)
	b.Operation, b.Permission = acl.Operation(op), acl.Permission(per)
	return b, nil
}

func aclRow(b acl.Binding) []any {
	return []any{int64(b.ResourceType), b.ResourceName, int64(b.PatternType), b.Principal, b.Host, int64(b.Operation), int64(b.Permission)}
}

// compareACLs orders bindings as ListACLs returns them; Go's byte order,
// so both backends (whatever PostgreSQL's collation) agree.
func compareACLs(a, b acl.Binding) int {
	return cmp.Or(
		cmp.Compare(a.ResourceType, b.ResourceType),
		cmp.Compare(a.ResourceName, b.ResourceName),
		cmp.Compare(a.PatternType, b.PatternType),
		cmp.Compare(a.Principal, b.Principal),
		cmp.Compare(a.Host, b.Host),
		cmp.Compare(a.Operation, b.Operation),
		cmp.Compare(a.Permission, b.Permission),
	)
}

// lockACLs takes the ACL writers' lock (the acl_version row) in a write
// transaction.
func (s *Store) lockACLs(ctx context.Context, q querier) error {
	var v int64
	found, err := queryOne(ctx, q, []any{&v}, `SELECT version FROM acl_version WHERE id = 1`+s.b.lockRows())
	if err != nil {
		return fmt.Errorf("lock ACLs: %w", err)
	}
	if !found {
		return fmt.Errorf("lock ACLs: acl_version row missing")
	}
	return nil
}

// aclsChanged raises the ACL version, with a new random change ID
// (migration 00012), and, on PostgreSQL, queues the notice that goes out
// if the transaction commits.
func (s *Store) aclsChanged(ctx context.Context, q querier) error {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	if _, err := q.exec(ctx, `UPDATE acl_version SET version = version + 1, change_id = $1 WHERE id = 1`, hex.EncodeToString(id)); err != nil {
		return fmt.Errorf("raise ACL version: %w", err)
	}
	if _, ok := s.b.(*pgBackend); ok {
		if _, err := q.exec(ctx, `SELECT pg_notify($1, '')`, aclChannel); err != nil {
			return fmt.Errorf("announce ACL change: %w", err)
		}
	}
	return nil
}

func countACLs(ctx context.Context, q querier) (int64, error) {
	var n int64
	if _, err := queryOne(ctx, q, []any{&n}, `SELECT count(*) FROM acls`); err != nil {
		return 0, fmt.Errorf("count ACLs: %w", err)
	}
	return n, nil
}

// CreateACLs stores the bindings not stored yet; see acl.Store.
func (s *Store) CreateACLs(ctx context.Context, bindings []acl.Binding) error {
	rows := make([][]any, 0, len(bindings))
	for i, b := range bindings {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("create ACLs: binding %d: %w", i, err)
		}
		rows = append(rows, aclRow(b))
	}
	if len(rows) == 0 {
		return nil
	}
	changed := false
	err := s.b.tx(ctx, func(q querier) error {
		changed = false
		if err := s.lockACLs(ctx, q); err != nil {
			return err
		}
		before, err := countACLs(ctx, q)
		if err != nil {
			return err
		}
		if err := insertRows(ctx, q, `INSERT INTO acls (`+aclColumns+`)`, `ON CONFLICT DO NOTHING`, rows); err != nil {
			return fmt.Errorf("insert ACLs: %w", err)
		}
		after, err := countACLs(ctx, q)
		if err != nil {
			return err
		}
		if after > before && after > acl.MaxBindings {
			return fmt.Errorf("%w: %d more bindings would make %d, at most %d are kept", acl.ErrLimit, after-before, after, acl.MaxBindings)
		}
		if changed = after != before; changed {
			return s.aclsChanged(ctx, q)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	if changed {
		s.aclLocal.each(func(w acl.Watch) { w.Changed() })
	}
	return nil
}

// listACLs reads the bindings f selects with q.
func listACLs(ctx context.Context, q querier, f acl.Filter, lock string) ([]acl.Binding, error) {
	query, args := `SELECT `+aclColumns+` FROM acls`, []any(nil)
	if f.ResourceType != acl.ResourceAny {
		query, args = query+` WHERE resource_type = $1`, []any{int64(f.ResourceType)}
	}
	all, err := queryAll(ctx, q, scanACL, query+lock, args...)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, b := range all {
		if f.Matches(b) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, compareACLs)
	return out, nil
}

// ListACLs returns the bindings f selects; see acl.Store.
func (s *Store) ListACLs(ctx context.Context, f acl.Filter) ([]acl.Binding, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("list ACLs: %w", err)
	}
	bs, err := listACLs(ctx, s.b.reader(), f, "")
	if err != nil {
		return nil, fmt.Errorf("list ACLs: %w", err)
	}
	return bs, nil
}

// DeleteACLs deletes the bindings the filters select; see acl.Store.
func (s *Store) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	for i, f := range filters {
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("delete ACLs: filter %d: %w", i, err)
		}
	}
	var out [][]acl.Binding
	deleted := 0
	err := s.b.tx(ctx, func(q querier) error {
		out, deleted = make([][]acl.Binding, len(filters)), 0
		if len(filters) == 0 {
			return nil
		}
		if err := s.lockACLs(ctx, q); err != nil {
			return err
		}
		all, err := listACLs(ctx, q, acl.AnyFilter, "")
		if err != nil {
			return fmt.Errorf("read ACLs: %w", err)
		}
		// One pass over the bindings: each is checked against every
		// filter, listed under each that selects it (the answer, bounded
		// by MaxDeleteMatches) and deleted once.
		type match struct{ filter, binding int }
		var matches []match
		var gone []acl.Binding
		for j, b := range all {
			hit := false
			for i, f := range filters {
				if !f.Matches(b) {
					continue
				}
				if len(matches) == acl.MaxDeleteMatches {
					return fmt.Errorf("%w: the filters select more than %d bindings (each counted once per filter selecting it); use fewer or narrower filters", acl.ErrInvalid, acl.MaxDeleteMatches)
				}
				matches, hit = append(matches, match{i, j}), true
			}
			if hit {
				gone = append(gone, b)
			}
		}
		for _, m := range matches {
			out[m.filter] = append(out[m.filter], all[m.binding])
		}
		for chunk := range slices.Chunk(gone, deleteACLsChunk) {
			where := make([]string, len(chunk))
			args := make([]any, 0, 7*len(chunk))
			for k, b := range chunk {
				n := len(args)
				where[k] = fmt.Sprintf(`(resource_type = $%d AND resource_name = $%d AND pattern_type = $%d AND principal = $%d AND host = $%d AND operation = $%d AND permission = $%d)`,
					n+1, n+2, n+3, n+4, n+5, n+6, n+7)
				args = append(args, aclRow(b)...)
			}
			if _, err := q.exec(ctx, `DELETE FROM acls WHERE `+strings.Join(where, ` OR `), args...); err != nil {
				return fmt.Errorf("delete %d ACLs: %w", len(chunk), err)
			}
		}
		deleted = len(gone)
		if deleted > 0 {
			return s.aclsChanged(ctx, q)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete ACLs: %w", err)
	}
	if deleted > 0 {
		s.aclLocal.each(func(w acl.Watch) { w.Changed() })
	}
	return out, nil
}

// ACLVersion returns the ACL version and its change ID; see acl.Store.
func (s *Store) ACLVersion(ctx context.Context) (acl.Version, error) {
	var v acl.Version
	found, err := queryOne(ctx, s.b.reader(), []any{&v.Number, &v.ChangeID}, `SELECT version, change_id FROM acl_version WHERE id = 1`)
	if err != nil {
		return acl.Version{}, fmt.Errorf("read ACL version: %w", err)
	}
	if !found {
		return acl.Version{}, fmt.Errorf("read ACL version: acl_version row missing")
	}
	return v, nil
}

// WatchACLs tells w about ACL changes of every agent until ctx ends; see
// acl.Notifier. On SQLite, where one process has the database, the
// changes made through this Store are all there are; on PostgreSQL the
// notices of other agents come over a listening connection of their own,
// and w.Listening reports when they may be lost.
func (s *Store) WatchACLs(ctx context.Context, w acl.Watch) error {
	remove := s.aclLocal.add(w)
	defer remove()
	b, ok := s.b.(*pgBackend)
	if !ok {
		w.Listening(true)
		<-ctx.Done()
		return ctx.Err()
	}
	return b.listenLoop(ctx, aclChannel, w.Listening, func(string) { w.Changed() })
}
