package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Client quotas (migration 00011): client_quotas holds one row per entity
// and key; see the migration for how an entity is spelled.

// entityCols returns the four column values naming e.
func entityCols(e metadata.QuotaEntity) []any {
	return []any{boolInt(e.HasUser), e.User, boolInt(e.HasClientID), e.ClientID}
}

// AlterClientQuotas applies alts in one transaction; see metadata.Store.
func (s *Store) AlterClientQuotas(ctx context.Context, alts []metadata.QuotaAlteration) error {
	if err := metadata.CheckQuotaAlterations(alts); err != nil {
		return fmt.Errorf("alter client quotas: %w", err)
	}
	if len(alts) == 0 {
		return nil
	}
	err := s.b.tx(ctx, func(q querier) error {
		for _, a := range alts {
			ent := entityCols(a.Entity)
			for _, k := range a.Remove {
				if _, err := q.exec(ctx, `DELETE FROM client_quotas
					WHERE has_user = $1 AND user_name = $2 AND has_client_id = $3 AND client_id = $4 AND quota_key = $5`,
					append(ent, k)...); err != nil {
					return fmt.Errorf("remove %s %s: %w", a.Entity, k, err)
				}
			}
			for k, v := range a.Set {
				if _, err := q.exec(ctx, `INSERT INTO client_quotas
					(has_user, user_name, has_client_id, client_id, quota_key, quota_value) VALUES ($1, $2, $3, $4, $5, $6)
					ON CONFLICT (has_user, user_name, has_client_id, client_id, quota_key) DO UPDATE SET quota_value = excluded.quota_value`,
					append(ent, k, v)...); err != nil {
					return fmt.Errorf("set %s %s: %w", a.Entity, k, err)
				}
			}
		}
		return s.noticeInTx(ctx, q, metadata.ChangeQuotas)
	})
	if err != nil {
		return fmt.Errorf("alter client quotas: %w", err)
	}
	s.changed(metadata.ChangeQuotas)
	return nil
}

// ClientQuotas returns every stored quota; see metadata.Store.
func (s *Store) ClientQuotas(ctx context.Context) ([]metadata.ClientQuota, error) {
	type row struct {
		e metadata.QuotaEntity
		k string
		v float64
	}
	rs, err := queryAll(ctx, s.b.reader(), func(r rows) (row, error) {
		var (
			x          row
			hasU, hasC int64
		)
		err := r.Scan(&hasU, &x.e.User, &hasC, &x.e.ClientID, &x.k, &x.v)
		x.e.HasUser, x.e.HasClientID = hasU != 0, hasC != 0
		return x, err
	}, `SELECT has_user, user_name, has_client_id, client_id, quota_key, quota_value FROM client_quotas
`)
	if err != nil {
		return nil, fmt.Errorf("list client quotas: %w", err)
	}
	// Sorted here, byte-wise, rather than by the database, whose text
	// collation may depend on its locale.
	slices.SortStableFunc(rs, func(a, b row) int { return metadata.CompareQuotaEntities(a.e, b.e) })
	var out []metadata.ClientQuota
	for _, r := range rs {
		if len(out) == 0 || out[len(out)-1].Entity != r.e {
			out = append(out, metadata.ClientQuota{Entity: r.e, Values: make(map[string]float64)})
		}
		out[len(out)-1].Values[r.k] = r.v
	}
	return out, nil
}
