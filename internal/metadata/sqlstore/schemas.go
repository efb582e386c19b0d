package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// The schema registry's tables (migration 00003): schemas deduplicated by
// fingerprint, schema_versions (subject, version) with a deleted flag, and
// schema_configs (subject '' is the global level).

const schemaVersionColumns = `v.subject, v.version, v.deleted, s.id, s.schema_type, s.schema_text, s.refs`

func scanSchemaVersion(r rows) (metadata.SchemaVersion, error) {
	var (
		sv      metadata.SchemaVersion
		deleted int64
		refs    string
	)
	if err := r.Scan(&sv.Subject, &sv.Version, &deleted, &sv.Schema.ID, &sv.Schema.Type, &sv.Schema.Text, &refs); err != nil {
		return sv, err
	}
	sv.Deleted = deleted != 0
	var err error
	sv.Schema.References, err = decodeRefs(refs)
	return sv, err
}

func decodeRefs(s string) ([]metadata.SchemaReference, error) {
	var refs []metadata.SchemaReference
	if err := json.Unmarshal([]byte(s), &refs); err != nil {
		return nil, fmt.Errorf("decode schema references: %w", err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return refs, nil
}

// schemaFingerprint identifies a schema's content: type, text and
// references, unambiguously separated.
func schemaFingerprint(typ, text, refs string) string {
	h := sha256.New()
	for _, part := range []string{typ, text, refs} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RegisterSchema stores s under subject; see metadata.Store.
func (s *Store) RegisterSchema(ctx context.Context, subject string, sc metadata.Schema, expectLatest int32) (metadata.SchemaVersion, error) {
	if subject == "" || sc.Type == "" || sc.Text == "" {
		return metadata.SchemaVersion{}, fmt.Errorf("register schema: empty subject, type or text")
	}
	refList := sc.References
	if refList == nil {
		refList = []metadata.SchemaReference{}
	}
	refsJSON, err := json.Marshal(refList)
	if err != nil {
		return metadata.SchemaVersion{}, fmt.Errorf("register schema: %w", err)
	}
	refs := string(refsJSON)
	fp := schemaFingerprint(sc.Type, sc.Text, refs)
	var out metadata.SchemaVersion
	err = s.b.tx(ctx, func(q querier) error {
		if _, err := q.exec(ctx, `INSERT INTO schemas (schema_type, schema_text, refs, fingerprint)
			VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO NOTHING`, sc.Type, sc.Text, refs, fp); err != nil {
			return fmt.Errorf("insert schema: %w", err)
		}
		var id int64
		if found, err := queryOne(ctx, q, []any{&id}, `SELECT id FROM schemas WHERE fingerprint = $1`, fp); err != nil {
			return fmt.Errorf("find schema: %w", err)
		} else if !found {
			return fmt.Errorf("find schema: inserted schema is missing")
		}
		stored := sc
		stored.ID = id
		stored.References = sc.References
		if len(stored.References) == 0 {
			stored.References = nil
		}
		// existing returns the subject's live version with this schema.
		existing := func() (int32, int32, int32, error) {
			vs, err := queryAll(ctx, q, func(r rows) ([3]int64, error) {
				var v [3]int64
				err := r.Scan(&v[0], &v[1], &v[2])
				return v, err
			}, `SELECT version, schema_id, deleted FROM schema_versions WHERE subject = $1 ORDER BY version`+s.b.lockRows(), subject)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("list versions: %w", err)
			}
			var same, latest, highest int32
			for _, v := range vs {
				highest = int32(v[0])
				if v[2] != 0 {
					continue
				}
				latest = int32(v[0])
				if v[1] == id {
					same = int32(v[0])
				}
			}
			return same, latest, highest, nil
		}
		same, latest, highest, err := existing()
		if err != nil {
			return err
		}
		if same != 0 {
			out = metadata.SchemaVersion{Subject: subject, Version: same, Schema: stored}
			return nil
		}
		if latest != expectLatest {
			return fmt.Errorf("subject %q: latest version is %d, not %d: %w", subject, latest, expectLatest, metadata.ErrSchemaConflict)
		}
		n, err := q.exec(ctx, `INSERT INTO schema_versions (subject, version, schema_id, deleted)
			VALUES ($1, $2, $3, 0) ON CONFLICT (subject, version) DO NOTHING`, subject, highest+1, id)
		if err != nil {
			return fmt.Errorf("insert version: %w", err)
		}
		if n == 0 {
			// A concurrent registration committed first; if it registered
			// the same schema (read committed: this statement sees it), that
			// is the answer.
			if same, _, _, err := existing(); err != nil {
				return err
			} else if same != 0 {
				out = metadata.SchemaVersion{Subject: subject, Version: same, Schema: stored}
				return nil
			}
			return fmt.Errorf("subject %q version %d: %w", subject, highest+1, metadata.ErrSchemaConflict)
		}
		out = metadata.SchemaVersion{Subject: subject, Version: highest + 1, Schema: stored}
		return nil
	})
	if err != nil {
		return metadata.SchemaVersion{}, fmt.Errorf("register schema under %q: %w", subject, err)
	}
	return out, nil
}

// GetSchema returns the schema with the ID if a subject version uses it.
func (s *Store) GetSchema(ctx context.Context, id int64) (metadata.Schema, error) {
	var (
		sc   metadata.Schema
		refs string
	)
	found, err := queryOne(ctx, s.b.reader(), []any{&sc.ID, &sc.Type, &sc.Text, &refs},
		`SELECT s.id, s.schema_type, s.schema_text, s.refs FROM schemas s
		WHERE s.id = $1 AND EXISTS (SELECT 1 FROM schema_versions v WHERE v.schema_id = s.id)`, id)
	if err != nil {
		return sc, fmt.Errorf("get schema %d: %w", id, err)
	}
	if !found {
		return sc, fmt.Errorf("get schema %d: %w", id, metadata.ErrSchemaNotFound)
	}
	if sc.References, err = decodeRefs(refs); err != nil {
		return sc, fmt.Errorf("get schema %d: %w", id, err)
	}
	return sc, nil
}

// ListSchemaVersions returns the matching versions, soft-deleted included.
func (s *Store) ListSchemaVersions(ctx context.Context, f metadata.SchemaVersionFilter) ([]metadata.SchemaVersion, error) {
	query := `SELECT ` + schemaVersionColumns + ` FROM schema_versions v JOIN schemas s ON s.id = v.schema_id WHERE 1 = 1`
	var args []any
	if f.Subject != "" {
		args = append(args, f.Subject)
		query += fmt.Sprintf(" AND v.subject = $%d", len(args))
	}
	if f.SchemaID != 0 {
		args = append(args, f.SchemaID)
		query += fmt.Sprintf(" AND v.schema_id = $%d", len(args))
	}
	query += " ORDER BY v.subject, v.version"
	vs, err := queryAll(ctx, s.b.reader(), scanSchemaVersion, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list schema versions: %w", err)
	}
	return vs, nil
}

// DeleteSchemaVersions flags or removes versions of subject.
func (s *Store) DeleteSchemaVersions(ctx context.Context, subject string, versions []int32, permanent bool) error {
	if len(versions) == 0 {
		return nil
	}
	stmt := `UPDATE schema_versions SET deleted = 1 WHERE subject = $1 AND version = $2`
	if permanent {
		stmt = `DELETE FROM schema_versions WHERE subject = $1 AND version = $2`
	}
	err := s.b.tx(ctx, func(q querier) error {
		for _, v := range versions {
			if _, err := q.exec(ctx, stmt, subject, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete versions of %q: %w", subject, err)
	}
	return nil
}

// SchemaCompatibility returns subject's configured level, "" if none.
func (s *Store) SchemaCompatibility(ctx context.Context, subject string) (string, error) {
	var level string
	if _, err := queryOne(ctx, s.b.reader(), []any{&level},
		`SELECT compatibility FROM schema_configs WHERE subject = $1`, subject); err != nil {
		return "", fmt.Errorf("get compatibility of %q: %w", subject, err)
	}
	return level, nil
}

// SetSchemaCompatibility sets or (level "") removes subject's level.
func (s *Store) SetSchemaCompatibility(ctx context.Context, subject, level string) error {
	var err error
	if level == "" {
		err = s.b.tx(ctx, func(q querier) error {
			_, err := q.exec(ctx, `DELETE FROM schema_configs WHERE subject = $1`, subject)
			return err
		})
	} else {
		err = s.b.tx(ctx, func(q querier) error {
			_, err := q.exec(ctx, `INSERT INTO schema_configs (subject, compatibility) VALUES ($1, $2)
				ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility`, subject, level)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("set compatibility of %q: %w", subject, err)
	}
	return nil
}
