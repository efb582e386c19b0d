package schemaregistry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

func (r *Registry) listSubjects(w http.ResponseWriter, req *http.Request) error {
	all, err := r.store.ListSchemaVersions(req.Context(), metadata.SchemaVersionFilter{})
	if err != nil {
		return err
	}
	all = r.readable(req.Context(), all)
	deleted := boolParam(req, "deleted")
	prefix := req.URL.Query().Get("subjectPrefix")
	subjects := []string{}
	for _, v := range all {
		if (v.Deleted && !deleted) || !strings.HasPrefix(v.Subject, prefix) {
			continue
		}
		if len(subjects) == 0 || subjects[len(subjects)-1] != v.Subject {
			subjects = append(subjects, v.Subject)
		}
	}
	return writeJSON(w, http.StatusOK, subjects)
}

func (r *Registry) listVersions(w http.ResponseWriter, req *http.Request) error {
	subject := req.PathValue("subject")
	vs, err := r.versions(req.Context(), subject, boolParam(req, "deleted"))
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return subjectNotFound(subject)
	}
	out := make([]int32, len(vs))
	for i, v := range vs {
		out[i] = v.Version
	}
	return writeJSON(w, http.StatusOK, out)
}

// register is POST /subjects/{s}/versions: the ID of the schema under the
// subject, registering it as the next version if it is new there and
// compatible with the earlier versions.
func (r *Registry) register(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	subject := req.PathValue("subject")
	var body request
	if err := r.decode(w, req, &body); err != nil {
		return err
	}
	c, err := r.prepare(ctx, req, body)
	if err != nil {
		return err
	}
	for range registerAttempts {
		live, err := r.versions(ctx, subject, false)
		if err != nil {
			return err
		}
		for _, v := range live {
			if sameSchema(v.Schema, c.schema) {
				return writeJSON(w, http.StatusOK, map[string]int64{"id": v.Schema.ID})
			}
		}
		level, err := r.level(ctx, subject)
		if err != nil {
			return err
		}
		msgs, err := r.incompatibilities(ctx, c, level, live)
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			return newErr(http.StatusConflict, codeIncompatible,
				"Schema being registered is incompatible with an earlier schema for subject \"%s\", details: [%s]", subject, strings.Join(msgs, ", "))
		}
		var latest int32
		if len(live) > 0 {
			latest = live[len(live)-1].Version
		}
		sv, err := r.store.RegisterSchema(ctx, subject, c.schema, latest)
		if errors.Is(err, metadata.ErrSchemaConflict) {
			continue // another registration got in first: check again
		}
		if err != nil {
			return err
		}
		r.changed()
		r.log.InfoContext(ctx, "schema registered", "subject", subject, "version", sv.Version, "id", sv.Schema.ID, "type", c.schema.Type)
		return writeJSON(w, http.StatusOK, map[string]int64{"id": sv.Schema.ID})
	}
	return fmt.Errorf("register under %s: too many concurrent registrations", subject)
}

func (r *Registry) getVersion(w http.ResponseWriter, req *http.Request) error {
	sv, err := r.findVersion(req.Context(), req.PathValue("subject"), req.PathValue("version"), boolParam(req, "deleted"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, versionJSON(sv))
}

// writeRaw answers a schema's text itself (GET .../schema).
func writeRaw(w http.ResponseWriter, text string) error {
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write([]byte(text))
	return nil
}

func (r *Registry) getVersionSchema(w http.ResponseWriter, req *http.Request) error {
	sv, err := r.findVersion(req.Context(), req.PathValue("subject"), req.PathValue("version"), boolParam(req, "deleted"))
	if err != nil {
		return err
	}
	return writeRaw(w, sv.Schema.Text)
}

// referencedBy lists the IDs of schemas that reference the version,
// those the caller may read only (under some subject it may read, as
// GET /schemas/ids/{id} asks): the others, and so their subjects, are not
// the caller's to learn.
func (r *Registry) referencedBy(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	sv, err := r.findVersion(ctx, req.PathValue("subject"), req.PathValue("version"), false)
	if err != nil {
		return err
	}
	ids, _, err := r.referrers(ctx, sv.Subject, sv.Version)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ids)
}

// referrers returns the IDs of the live schemas that reference version of
// subject which the caller may read (some live subject version using the
// ID that it may read), sorted, and whether others the caller may not read
// do too.
func (r *Registry) referrers(ctx context.Context, subject string, version int32) (ids []int64, hidden bool, err error) {
	all, err := r.store.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{})
	if err != nil {
		return nil, false, err
	}
	var live []metadata.SchemaVersion
	for _, v := range all {
		if v.Deleted {
			continue
		}
		for _, ref := range v.Schema.References {
			if ref.Subject == subject && ref.Version == version {
				live = append(live, v)
				break
			}
		}
	}
	ids = []int64{}
	for _, v := range r.readable(ctx, live) {
		if !slices.Contains(ids, v.Schema.ID) {
			ids = append(ids, v.Schema.ID)
		}
	}
	for _, v := range live {
		if !slices.Contains(ids, v.Schema.ID) {
			hidden = true
			break
		}
	}
	slices.Sort(ids)
	return ids, hidden, nil
}

// checkUnreferenced fails with 42206, as Confluent's registry does, when a
// live schema references one of versions of subject: deleting it would
// break that schema. The refusal stands whoever asks, but it names only
// the referencing schemas the caller may read; the others are mentioned
// without an ID, count or subject.
func (r *Registry) checkUnreferenced(ctx context.Context, subject string, versions []int32) error {
	for _, v := range versions {
		ids, hidden, err := r.referrers(ctx, subject, v)
		if err != nil {
			return err
		}
		switch {
		case hidden && len(ids) == 0:
			return newErr(http.StatusUnprocessableEntity, codeReferenceExists,
				"One or more references exist to the schema {subject=%s, version=%d}: from schemas under subjects you may not read", subject, v)
		case hidden:
			return newErr(http.StatusUnprocessableEntity, codeReferenceExists,
				"One or more references exist to the schema {subject=%s, version=%d}: schema ids %v, and schemas under subjects you may not read", subject, v, ids)
		case len(ids) > 0:
			return newErr(http.StatusUnprocessableEntity, codeReferenceExists,
				"One or more references exist to the schema {subject=%s, version=%d}: schema ids %v", subject, v, ids)
		}
	}
	return nil
}

func (r *Registry) deleteVersion(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	subject := req.PathValue("subject")
	v, latest, err := parseVersion(req.PathValue("version"))
	if err != nil {
		return err
	}
	permanent := boolParam(req, "permanent")
	all, err := r.versions(ctx, subject, true)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return subjectNotFound(subject)
	}
	var target *metadata.SchemaVersion
	for i := range all {
		if (latest && !all[i].Deleted) || (!latest && all[i].Version == v) {
			target = &all[i]
		}
	}
	switch {
	case target == nil && latest:
		return subjectNotFound(subject)
	case target == nil:
		return versionNotFound(subject, v)
	case permanent && !target.Deleted:
		return newErr(http.StatusNotFound, codeVersionNotSoftDeleted,
			"Subject '%s' Version %d was not deleted first before being permanently deleted", subject, target.Version)
	case !permanent && target.Deleted:
		return newErr(http.StatusNotFound, codeVersionSoftDeleted,
			"Subject '%s' Version %d was soft deleted. Set permanent=true to delete permanently", subject, target.Version)
	}
	if err := r.checkUnreferenced(ctx, subject, []int32{target.Version}); err != nil {
		return err
	}
	if err := r.store.DeleteSchemaVersions(ctx, subject, []int32{target.Version}, permanent); err != nil {
		return err
	}
	r.changed()
	return writeJSON(w, http.StatusOK, target.Version)
}

// lookup is POST /subjects/{s}: the version of the subject holding the
// schema.
func (r *Registry) lookup(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	subject := req.PathValue("subject")
	var body request
	if err := r.decode(w, req, &body); err != nil {
		return err
	}
	vs, err := r.versions(ctx, subject, boolParam(req, "deleted"))
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return subjectNotFound(subject)
	}
	c, err := r.prepare(ctx, req, body)
	if err != nil {
		return err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if sameSchema(vs[i].Schema, c.schema) {
			return writeJSON(w, http.StatusOK, versionJSON(vs[i]))
		}
	}
	return schemaNotFound("Schema not found")
}

func (r *Registry) deleteSubject(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	subject := req.PathValue("subject")
	permanent := boolParam(req, "permanent")
	all, err := r.versions(ctx, subject, true)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return subjectNotFound(subject)
	}
	var live, gone []int32
	for _, v := range all {
		if v.Deleted {
			gone = append(gone, v.Version)
		} else {
			live = append(live, v.Version)
		}
	}
	if permanent {
		if len(live) > 0 {
			return newErr(http.StatusNotFound, codeSubjectNotSoftDeleted,
				"Subject '%s' was not deleted first before being permanently deleted", subject)
		}
		if err := r.checkUnreferenced(ctx, subject, gone); err != nil {
			return err
		}
		if err := r.store.DeleteSchemaVersions(ctx, subject, gone, true); err != nil {
			return err
		}
		r.changed()
		if err := r.store.SetSchemaCompatibility(ctx, subject, ""); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, gone)
	}
	if len(live) == 0 {
		return newErr(http.StatusNotFound, codeSubjectSoftDeleted,
			"Subject '%s' was soft deleted. Set permanent=true to delete permanently", subject)
	}
	if err := r.checkUnreferenced(ctx, subject, live); err != nil {
		return err
	}
	if err := r.store.DeleteSchemaVersions(ctx, subject, live, false); err != nil {
		return err
	}
	r.changed()
	return writeJSON(w, http.StatusOK, live)
}

// schemaID reads the {id} path segment and loads the schema.
func (r *Registry) schemaID(req *http.Request) (metadata.Schema, error) {
	raw := req.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return metadata.Schema{}, schemaNotFound("Schema %s not found", raw)
	}
	// Readable under some subject (asked before the schema is looked
	// up: an unknown ID is refused alike).
	if !r.acl.Unrestricted(req.Context()) {
		vs, err := r.store.ListSchemaVersions(req.Context(), metadata.SchemaVersionFilter{SchemaID: id})
		if err != nil {
			return metadata.Schema{}, err
		}
		subject := req.URL.Query().Get("subject")
		if subject != "" && !r.mayRead(req.Context(), subject) {
			p := subjectPerm(subject, readAccess)
			r.acl.Refused(req.Context(), p.Op, p.Res.Type)
			return metadata.Schema{}, schemaDenied(id)
		}
		if len(r.readable(req.Context(), vs)) == 0 {
			r.acl.Refused(req.Context(), acl.OpDescribe, idRefusedAs(vs))
			return metadata.Schema{}, schemaDenied(id)
		}
	}
	sc, err := r.store.GetSchema(req.Context(), id)
	if errors.Is(err, metadata.ErrSchemaNotFound) {
		return sc, schemaNotFound("Schema %d not found", id)
	}
	if err != nil {
		return sc, err
	}
	if subject := req.URL.Query().Get("subject"); subject != "" {
		vs, err := r.store.ListSchemaVersions(req.Context(), metadata.SchemaVersionFilter{Subject: subject, SchemaID: id})
		if err != nil {
			return sc, err
		}
		if len(vs) == 0 {
			return sc, schemaNotFound("Schema %d not found under subject %s", id, subject)
		}
	}
	return sc, nil
}

func (r *Registry) schemaByID(w http.ResponseWriter, req *http.Request) error {
	sc, err := r.schemaID(req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, schemaJSON{SchemaType: shownType(sc.Type), References: sc.References, Schema: sc.Text})
}

func (r *Registry) schemaTextByID(w http.ResponseWriter, req *http.Request) error {
	sc, err := r.schemaID(req)
	if err != nil {
		return err
	}
	return writeRaw(w, sc.Text)
}

// usages lists the subject versions using the schema of the request's id.
func (r *Registry) usages(req *http.Request) ([]metadata.SchemaVersion, error) {
	sc, err := r.schemaID(req)
	if err != nil {
		return nil, err
	}
	vs, err := r.store.ListSchemaVersions(req.Context(), metadata.SchemaVersionFilter{SchemaID: sc.ID})
	if err != nil {
		return nil, err
	}
	if !boolParam(req, "deleted") {
		vs = slices.DeleteFunc(vs, func(v metadata.SchemaVersion) bool { return v.Deleted })
	}
	return r.readable(req.Context(), vs), nil
}

func (r *Registry) schemaVersions(w http.ResponseWriter, req *http.Request) error {
	vs, err := r.usages(req)
	if err != nil {
		return err
	}
	type subjectVersion struct {
		Subject string `json:"subject"`
		Version int32  `json:"version"`
	}
	out := []subjectVersion{}
	for _, v := range vs {
		out = append(out, subjectVersion{v.Subject, v.Version})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (r *Registry) schemaSubjects(w http.ResponseWriter, req *http.Request) error {
	vs, err := r.usages(req)
	if err != nil {
		return err
	}
	out := []string{}
	for _, v := range vs {
		if !slices.Contains(out, v.Subject) {
			out = append(out, v.Subject)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (r *Registry) types(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, []string{TypeJSON, TypeProtobuf, TypeAvro})
}

type levelJSON struct {
	Level string `json:"compatibilityLevel"`
}

func (r *Registry) getGlobalConfig(w http.ResponseWriter, req *http.Request) error {
	l, err := r.level(req.Context(), "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, levelJSON{l})
}

// readLevel reads {"compatibility": level} from a PUT body.
func (r *Registry) readLevel(w http.ResponseWriter, req *http.Request) (string, error) {
	var body struct {
		Compatibility string `json:"compatibility"`
	}
	if err := r.decode(w, req, &body); err != nil {
		return "", err
	}
	l := strings.ToUpper(body.Compatibility)
	if !slices.Contains(levels, l) {
		return "", newErr(http.StatusUnprocessableEntity, codeInvalidCompatibility,
			"Invalid compatibility level %q: use one of %s", body.Compatibility, strings.Join(levels, ", "))
	}
	return l, nil
}

func (r *Registry) putGlobalConfig(w http.ResponseWriter, req *http.Request) error {
	return r.putConfig(w, req, "")
}

func (r *Registry) putSubjectConfig(w http.ResponseWriter, req *http.Request) error {
	return r.putConfig(w, req, req.PathValue("subject"))
}

func (r *Registry) putConfig(w http.ResponseWriter, req *http.Request, subject string) error {
	l, err := r.readLevel(w, req)
	if err != nil {
		return err
	}
	if err := r.store.SetSchemaCompatibility(req.Context(), subject, l); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"compatibility": l})
}

func (r *Registry) getSubjectConfig(w http.ResponseWriter, req *http.Request) error {
	subject := req.PathValue("subject")
	l, err := r.store.SchemaCompatibility(req.Context(), subject)
	if err != nil {
		return err
	}
	if l == "" {
		if !boolParam(req, "defaultToGlobal") {
			return newErr(http.StatusNotFound, codeSubjectLevelNotSet,
				"Subject '%s' does not have subject-level compatibility configured", subject)
		}
		if l, err = r.level(req.Context(), ""); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, levelJSON{l})
}

func (r *Registry) deleteSubjectConfig(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	subject := req.PathValue("subject")
	l, err := r.store.SchemaCompatibility(ctx, subject)
	if err != nil {
		return err
	}
	if l == "" {
		vs, err := r.versions(ctx, subject, true)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return subjectNotFound(subject)
		}
		return newErr(http.StatusNotFound, codeSubjectLevelNotSet,
			"Subject '%s' does not have subject-level compatibility configured", subject)
	}
	if err := r.store.SetSchemaCompatibility(ctx, subject, ""); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, levelJSON{l})
}

// checkCompatibility is POST /compatibility/subjects/{s}/versions[/{v}]:
// against one version (in the level's direction), against the latest
// ("latest": as registration would, transitive levels included), or,
// without a version, against every version the level names.
func (r *Registry) checkCompatibility(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	subject := req.PathValue("subject")
	version := req.PathValue("version")
	var body request
	if err := r.decode(w, req, &body); err != nil {
		return err
	}
	level, err := r.level(ctx, subject)
	if err != nil {
		return err
	}
	var previous []metadata.SchemaVersion
	v, latest, err := parseVersion(version)
	switch {
	case version == "" || latest:
		if previous, err = r.versions(ctx, subject, false); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		sv, err := r.findVersion(ctx, subject, strconv.Itoa(int(v)), false)
		if err != nil {
			return err
		}
		previous = []metadata.SchemaVersion{sv}
		level = strings.TrimSuffix(level, "_TRANSITIVE")
	}
	c, err := r.prepare(ctx, req, body)
	if err != nil {
		return err
	}
	msgs, err := r.incompatibilities(ctx, c, level, previous)
	if err != nil {
		return err
	}
	out := map[string]any{"is_compatible": len(msgs) == 0}
	if boolParam(req, "verbose") {
		if msgs == nil {
			msgs = []string{}
		}
		out["messages"] = msgs
	}
	return writeJSON(w, http.StatusOK, out)
}
