// Package schemaregistry serves the Confluent Schema Registry REST API
// (SPEC.md "Schema registry"), mounted under /schemas on the REST port, so
// Confluent-compatible serializers work with
// schema.registry.url=http://host:8080/schemas. Schemas, subject versions
// and compatibility levels live in the metadata store; this package parses
// schemas (AVRO, JSON Schema, PROTOBUF, with references), decides
// compatibility, and answers with Confluent's bodies and error codes. It
// also validates produced records against registered schemas
// (validate.go).
package schemaregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ContentType is what the registry answers with.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Compatibility levels; BACKWARD is the default.
var levels = []string{"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"}

const defaultLevel = "BACKWARD"

// defaultMaxBody bounds request bodies when Config.MaxBodyBytes is unset.
const defaultMaxBody = 16 << 20

// registerAttempts bounds retries of a registration that lost a race.
const registerAttempts = 10

// Config configures a Registry.
type Config struct {
	Store        metadata.Store
	Logger       *slog.Logger // default slog.Default()
	MaxBodyBytes int64
	// ACL decides what each caller may do (authorize.go); nil: everything
	// is allowed.
	ACL *acl.Authorizer
}

// Registry is the schema registry: an http.Handler serving the API with
// paths relative to its mount point (/subjects, /schemas/ids/1, ...).
type Registry struct {
	store   metadata.Store
	log     *slog.Logger
	maxBody int64
	mux     *http.ServeMux
	acl     *authz.Checker
	// gen counts this agent's registrations and deletions; validation
	// caches (validate.go) drop what they saw under an older one.
	gen atomic.Uint64
}

// changed marks a registration or deletion through this agent.
func (r *Registry) changed() { r.gen.Add(1) }

// New returns a Registry over cfg.Store.
func New(cfg Config) *Registry {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultMaxBody
	}
	r := &Registry{store: cfg.Store, log: cfg.Logger.With("component", "schemaregistry"), maxBody: cfg.MaxBodyBytes,
		mux: http.NewServeMux(), acl: authz.New(cfg.ACL, auth.ListenerHTTP)}
	h := r.handle
	h("GET /{$}", r.loggedIn, func(w http.ResponseWriter, _ *http.Request) error { return writeJSON(w, http.StatusOK, struct{}{}) })
	h("GET /subjects", r.loggedIn, r.listSubjects)
	h("GET /subjects/{subject}/versions", r.onSubject(readAccess), r.listVersions)
	h("POST /subjects/{subject}/versions", r.onSubject(writeAccess), r.register)
	h("GET /subjects/{subject}/versions/{version}", r.onSubject(readAccess), r.getVersion)
	h("GET /subjects/{subject}/versions/{version}/schema", r.onSubject(readAccess), r.getVersionSchema)
	h("GET /subjects/{subject}/versions/{version}/referencedby", r.onSubject(readAccess), r.referencedBy)
	h("DELETE /subjects/{subject}/versions/{version}", r.onSubject(deleteAccess), r.deleteVersion)
	h("POST /subjects/{subject}", r.onSubject(readAccess), r.lookup)
	h("DELETE /subjects/{subject}", r.onSubject(deleteAccess), r.deleteSubject)
	h("GET /schemas/ids/{id}", r.loggedIn, r.schemaByID)
	h("GET /schemas/ids/{id}/schema", r.loggedIn, r.schemaTextByID)
	h("GET /schemas/ids/{id}/versions", r.loggedIn, r.schemaVersions)
	h("GET /schemas/ids/{id}/subjects", r.loggedIn, r.schemaSubjects)
	h("GET /schemas/types", r.loggedIn, r.types)
	h("GET /config", r.onCluster(acl.OpDescribeConfigs), r.getGlobalConfig)
	h("PUT /config", r.onCluster(acl.OpAlterConfigs), r.putGlobalConfig)
	h("GET /config/{subject}", r.onSubject(readConfigAccess), r.getSubjectConfig)
	h("PUT /config/{subject}", r.onSubject(writeConfigAccess), r.putSubjectConfig)
	h("DELETE /config/{subject}", r.onSubject(writeConfigAccess), r.deleteSubjectConfig)
	h("POST /compatibility/subjects/{subject}/versions/{version}", r.onSubject(readAccess), r.checkCompatibility)
	h("POST /compatibility/subjects/{subject}/versions", r.onSubject(readAccess), r.checkCompatibility)
	return r
}

// handle serves pattern with fn once allow (authorize.go) lets the
// request through.
func (r *Registry) handle(pattern string, allow rule, fn func(w http.ResponseWriter, req *http.Request) error) {
	r.mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
		err := allow(req)
		if err == nil {
			err = fn(w, req)
		}
		if err != nil {
			r.writeError(w, req, err)
		}
	})
}

// ServeHTTP answers a registry request; unknown paths and methods get
// Confluent-shaped 404 and 405 answers.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if _, pattern := r.mux.Handler(req); pattern == "" {
		probe := &probeWriter{header: http.Header{}}
		r.mux.ServeHTTP(probe, req)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			r.writeError(w, req, newErr(http.StatusMethodNotAllowed, codeMethodNotAllowed, "HTTP %s is not allowed on %s", req.Method, req.URL.Path))
			return
		}
		r.writeError(w, req, newErr(http.StatusNotFound, codeNotFound, "HTTP 404 Not Found: %s", req.URL.Path))
		return
	}
	r.mux.ServeHTTP(w, req)
}

type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) { p.WriteHeader(http.StatusOK); return len(b), nil }

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case authErrorInto(&ae, w, err):
	case errors.Is(err, context.DeadlineExceeded):
		ae = &apiError{status: http.StatusInternalServerError, code: codeOperationTimeout, msg: "operation timed out"}
	case errors.Is(err, context.Canceled):
		ae = &apiError{status: http.StatusServiceUnavailable, code: codeStoreError, msg: "request canceled"}
	default:
		r.log.Error("schema registry request failed", "method", req.Method, "path", req.URL.Path, "err", err)
		ae = &apiError{status: http.StatusInternalServerError, code: codeStoreError, msg: "Error in the backend data store: " + err.Error()}
	}
	body, _ := json.Marshal(map[string]any{"error_code": ae.code, "message": ae.msg})
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(ae.status)
	_, _ = w.Write(append(body, '\n'))
}

// decode reads a JSON body into v. The registry's own content types and
// application/json are accepted; so is a missing Content-Type (curl and
// some clients send none).
func (r *Registry) decode(w http.ResponseWriter, req *http.Request, v any) error {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return newErr(http.StatusUnsupportedMediaType, codeUnsupportedContentType, "Content-Type %q is not valid", ct)
		case mt == "application/vnd.schemaregistry.v1+json", mt == "application/vnd.schemaregistry+json",
			mt == "application/json", mt == "application/octet-stream":
		default:
			return newErr(http.StatusUnsupportedMediaType, codeUnsupportedContentType,
				"Content-Type %q is not supported: use %s or application/json", ct, ContentType)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, r.maxBody))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newErr(http.StatusRequestEntityTooLarge, 413, "request body is larger than %d bytes", mbe.Limit)
		}
		if errors.Is(err, io.EOF) {
			return unprocessable("request body is empty")
		}
		return unprocessable("malformed request body: %v", err)
	}
	return nil
}

func boolParam(req *http.Request, name string) bool {
	v, _ := strconv.ParseBool(req.URL.Query().Get(name))
	return v
}

// parseVersion reads a version path segment: a positive number, "latest"
// or -1 (latest).
func parseVersion(s string) (v int32, latest bool, err error) {
	if s == "latest" || s == "-1" {
		return 0, true, nil
	}
	n, perr := strconv.ParseInt(s, 10, 32)
	if perr != nil || n < 1 {
		return 0, false, newErr(http.StatusUnprocessableEntity, codeInvalidVersion,
			"The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", s)
	}
	return int32(n), false, nil
}

// versions returns the subject's versions; with deleted false, only live
// ones.
func (r *Registry) versions(ctx context.Context, subject string, deleted bool) ([]metadata.SchemaVersion, error) {
	all, err := r.store.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{Subject: subject})
	if err != nil {
		return nil, err
	}
	if deleted {
		return all, nil
	}
	return slices.DeleteFunc(all, func(v metadata.SchemaVersion) bool { return v.Deleted }), nil
}

// findVersion resolves a subject version; soft-deleted ones only when
// deleted.
func (r *Registry) findVersion(ctx context.Context, subject, version string, deleted bool) (metadata.SchemaVersion, error) {
	v, latest, err := parseVersion(version)
	if err != nil {
		return metadata.SchemaVersion{}, err
	}
	vs, err := r.versions(ctx, subject, deleted)
	if err != nil {
		return metadata.SchemaVersion{}, err
	}
	if len(vs) == 0 {
		return metadata.SchemaVersion{}, subjectNotFound(subject)
	}
	if latest {
		return vs[len(vs)-1], nil
	}
	for _, sv := range vs {
		if sv.Version == v {
			return sv, nil
		}
	}
	return metadata.SchemaVersion{}, versionNotFound(subject, v)
}

// schemaJSON is a schema as the API shows it. schemaType is left out for
// AVRO, as Confluent does.
type schemaJSON struct {
	Subject    string                     `json:"subject,omitempty"`
	Version    int32                      `json:"version,omitempty"`
	ID         int64                      `json:"id,omitempty"`
	SchemaType string                     `json:"schemaType,omitempty"`
	References []metadata.SchemaReference `json:"references,omitempty"`
	Schema     string                     `json:"schema"`
}

func versionJSON(sv metadata.SchemaVersion) schemaJSON {
	return schemaJSON{Subject: sv.Subject, Version: sv.Version, ID: sv.Schema.ID,
		SchemaType: shownType(sv.Schema.Type), References: sv.Schema.References, Schema: sv.Schema.Text}
}

func shownType(t string) string {
	if t == TypeAvro {
		return ""
	}
	return t
}

// request is the body of register, lookup and compatibility requests.
type request struct {
	Schema     *string                    `json:"schema"`
	SchemaType string                     `json:"schemaType"`
	References []metadata.SchemaReference `json:"references"`
}

// candidate is a schema from a request, canonical and parsed.
type candidate struct {
	schema metadata.Schema
	typ    schemaType
	parsed parsedSchema
}

// prepare validates a request's schema: its type, its text, its references.
func (r *Registry) prepare(ctx context.Context, req *http.Request, body request) (*candidate, error) {
	if body.Schema == nil || strings.TrimSpace(*body.Schema) == "" {
		return nil, invalidSchema("Empty schema")
	}
	typeName := strings.ToUpper(body.SchemaType)
	if typeName == "" {
		typeName = TypeAvro
	}
	typ, ok := typeOf(typeName)
	if !ok {
		return nil, invalidSchema("Invalid schema type %q: use AVRO, JSON or PROTOBUF", body.SchemaType)
	}
	text, err := typ.canonical(*body.Schema, boolParam(req, "normalize"))
	if err != nil {
		return nil, invalidSchema("Invalid schema: %v", err)
	}
	refs := body.References
	if len(refs) == 0 {
		refs = nil
	}
	for _, ref := range refs {
		if ref.Name == "" || ref.Subject == "" {
			return nil, invalidSchema("Invalid schema: a reference needs a name and a subject")
		}
		// A reference reads the referenced subject's schema.
		if err := r.acl.Require(ctx, subjectPerm(ref.Subject, readAccess)); err != nil {
			return nil, err
		}
	}
	c := &candidate{schema: metadata.Schema{Type: typeName, Text: text, References: refs}, typ: typ}
	if c.parsed, err = r.parse(ctx, c.schema); err != nil {
		return nil, err
	}
	return c, nil
}

// parse parses a schema with its references resolved.
func (r *Registry) parse(ctx context.Context, s metadata.Schema) (parsedSchema, error) {
	typ, ok := typeOf(s.Type)
	if !ok {
		return nil, fmt.Errorf("stored schema %d has unknown type %q", s.ID, s.Type)
	}
	var deps []dependency
	if err := r.resolve(ctx, s.References, map[string]bool{}, &deps, 0); err != nil {
		return nil, err
	}
	p, err := typ.parse(s.Text, deps)
	if err != nil {
		return nil, invalidSchema("Invalid schema: %v", err)
	}
	return p, nil
}

// resolve appends the referenced schemas, dependencies first.
func (r *Registry) resolve(ctx context.Context, refs []metadata.SchemaReference, seen map[string]bool, deps *[]dependency, depth int) error {
	if depth > 32 {
		return invalidSchema("Invalid schema: references nest too deeply")
	}
	for _, ref := range refs {
		if seen[ref.Name] {
			continue
		}
		version := strconv.Itoa(int(ref.Version))
		if ref.Version <= 0 {
			version = "latest"
		}
		sv, err := r.findVersion(ctx, ref.Subject, version, false)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return invalidSchema("Invalid schema: reference %q (subject %s, version %d) not found", ref.Name, ref.Subject, ref.Version)
			}
			return err
		}
		seen[ref.Name] = true
		if err := r.resolve(ctx, sv.Schema.References, seen, deps, depth+1); err != nil {
			return err
		}
		*deps = append(*deps, dependency{name: ref.Name, typ: sv.Schema.Type, text: sv.Schema.Text})
	}
	return nil
}

func sameSchema(a, b metadata.Schema) bool {
	return a.Type == b.Type && a.Text == b.Text && slices.Equal(a.References, b.References)
}

// level returns the compatibility level that applies to subject.
func (r *Registry) level(ctx context.Context, subject string) (string, error) {
	for _, s := range []string{subject, ""} {
		l, err := r.store.SchemaCompatibility(ctx, s)
		if err != nil {
			return "", err
		}
		if l != "" {
			return l, nil
		}
	}
	return defaultLevel, nil
}

// incompatibilities checks c against the previous versions (oldest
// first) the level asks for, and lists the problems.
func (r *Registry) incompatibilities(ctx context.Context, c *candidate, level string, previous []metadata.SchemaVersion) ([]string, error) {
	if level == "NONE" || len(previous) == 0 {
		return nil, nil
	}
	if !strings.HasSuffix(level, "_TRANSITIVE") {
		previous = previous[len(previous)-1:]
	}
	base := strings.TrimSuffix(level, "_TRANSITIVE")
	var msgs []string
	for i := len(previous) - 1; i >= 0; i-- {
		old := previous[i]
		if old.Schema.Type != c.schema.Type {
			msgs = append(msgs, fmt.Sprintf("version %d: the schema type changed from %s to %s", old.Version, old.Schema.Type, c.schema.Type))
			continue
		}
		op, err := r.parse(ctx, old.Schema)
		if err != nil {
			return nil, fmt.Errorf("parse version %d of %s: %w", old.Version, old.Subject, err)
		}
		var found []string
		if base == "BACKWARD" || base == "FULL" {
			found = append(found, c.typ.compatible(c.parsed, op, true)...)
		}
		if base == "FORWARD" || base == "FULL" {
			found = append(found, c.typ.compatible(op, c.parsed, false)...)
		}
		for _, m := range found {
			msgs = append(msgs, fmt.Sprintf("version %d: %s", old.Version, m))
		}
	}
	if len(msgs) > 0 {
		msgs = append(msgs, "{compatibility: '"+level+"'}")
	}
	return msgs, nil
}
