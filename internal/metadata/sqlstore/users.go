package sqlstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Users' SCRAM credentials (migration 00010): one row per user and
// mechanism.

const credentialColumns = `user_name, mechanism, salt, stored_key, server_key, iterations, updated_at`

func scanCredential(r rows) (metadata.ScramCredential, error) {
	var (
		c       metadata.ScramCredential
		updated int64
	)
	if err := r.Scan(&c.User, &c.Mechanism, &c.Salt, &c.StoredKey, &c.ServerKey, &c.Iterations, &updated); err != nil {
		return c, err
	}
	c.UpdatedAt = fromMillis(updated)
	return c, nil
}

// errBadCredential marks a credential the store refuses before writing.
var errBadCredential = errors.New("invalid scram credential")

func checkCredential(c metadata.ScramCredential) error {
	switch {
	case c.User == "", c.Mechanism == "":
		return fmt.Errorf("%w: empty user or mechanism", errBadCredential)
	case len(c.Salt) == 0, len(c.StoredKey) == 0, len(c.ServerKey) == 0:
		return fmt.Errorf("%w: empty salt or key", errBadCredential)
	case c.Iterations <= 0:
		return fmt.Errorf("%w: %d iterations", errBadCredential, c.Iterations)
	}
	return nil
}

func credentialArgs(c metadata.ScramCredential, now time.Time) []any {
	return []any{c.User, c.Mechanism, c.Salt, c.StoredKey, c.ServerKey, c.Iterations, toMillis(now)}
}

const insertCredential = `INSERT INTO scram_credentials (` + credentialColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`

// PutScramCredential inserts or replaces the credential of (User,
// Mechanism).
func (s *Store) PutScramCredential(ctx context.Context, c metadata.ScramCredential) error {
	if err := checkCredential(c); err != nil {
		return err
	}
	err := s.b.tx(ctx, func(q querier) error {
		_, err := q.exec(ctx, insertCredential+` ON CONFLICT (user_name, mechanism) DO UPDATE SET
			salt = excluded.salt, stored_key = excluded.stored_key, server_key = excluded.server_key,
			iterations = excluded.iterations, updated_at = excluded.updated_at`, credentialArgs(c, time.Now())...)
		return err
	})
	if err != nil {
		return fmt.Errorf("put %s credential of %q: %w", c.Mechanism, c.User, err)
	}
	return nil
}

// CreateScramUser stores creds if their user has no credential yet.
func (s *Store) CreateScramUser(ctx context.Context, creds []metadata.ScramCredential) (bool, error) {
	if len(creds) == 0 {
		return false, fmt.Errorf("%w: no credentials", errBadCredential)
	}
	user := creds[0].User
	for _, c := range creds {
		if err := checkCredential(c); err != nil {
			return false, err
		}
		if c.User != user {
			return false, fmt.Errorf("%w: credentials of users %q and %q in one creation", errBadCredential, user, c.User)
		}
	}
	var created bool
	err := s.b.tx(ctx, func(q querier) error {
		created = false
		var n int64
		if _, err := queryOne(ctx, q, []any{&n}, `SELECT COUNT(*) FROM scram_credentials WHERE user_name = $1`, user); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		now := time.Now()
		for _, c := range creds {
			// A concurrent creation (PostgreSQL, another agent) may have
			// stored this mechanism meanwhile: keep its row.
			if _, err := q.exec(ctx, insertCredential+` ON CONFLICT (user_name, mechanism) DO NOTHING`, credentialArgs(c, now)...); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("create user %q: %w", user, err)
	}
	return created, nil
}

// GetScramCredential returns one credential or ErrCredentialNotFound.
func (s *Store) GetScramCredential(ctx context.Context, user, mechanism string) (metadata.ScramCredential, error) {
	cs, err := queryAll(ctx, s.b.reader(), scanCredential,
		`SELECT `+credentialColumns+` FROM scram_credentials WHERE user_name = $1 AND mechanism = $2`, user, mechanism)
	if err != nil {
		return metadata.ScramCredential{}, fmt.Errorf("get %s credential of %q: %w", mechanism, user, err)
	}
	if len(cs) == 0 {
		return metadata.ScramCredential{}, fmt.Errorf("%s credential of %q: %w", mechanism, user, metadata.ErrCredentialNotFound)
	}
	return cs[0], nil
}

// ListScramCredentials returns every credential, ordered by user and
// mechanism.
func (s *Store) ListScramCredentials(ctx context.Context) ([]metadata.ScramCredential, error) {
	cs, err := queryAll(ctx, s.b.reader(), scanCredential,
		`SELECT `+credentialColumns+` FROM scram_credentials`)
	if err != nil {
		return nil, fmt.Errorf("list scram credentials: %w", err)
	}
	// Byte order whatever the database's collation.
	slices.SortFunc(cs, func(a, b metadata.ScramCredential) int {
		return cmp.Or(strings.Compare(a.User, b.User), strings.Compare(a.Mechanism, b.Mechanism))
	})
	return cs, nil
}

// DeleteScramCredential removes one credential or returns
// ErrCredentialNotFound.
func (s *Store) DeleteScramCredential(ctx context.Context, user, mechanism string) error {
	var n int64
	err := s.b.tx(ctx, func(q querier) error {
		var err error
		n, err = q.exec(ctx, `DELETE FROM scram_credentials WHERE user_name = $1 AND mechanism = $2`, user, mechanism)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %s credential of %q: %w", mechanism, user, err)
	}
	if n == 0 {
		return fmt.Errorf("%s credential of %q: %w", mechanism, user, metadata.ErrCredentialNotFound)
	}
	return nil
}
