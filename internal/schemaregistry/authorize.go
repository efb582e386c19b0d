package schemaregistry

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Authorization (Config.ACL; docs/security.md, "REST, gRPC, schema
// registry and SQL"). Kafka has no subject resource (Confluent's RBAC
// has), so a subject is authorized as the topic it belongs to under the
// default TopicNameStrategy: "<topic>-key" and "<topic>-value" are the
// topic <topic>; any other subject (RecordNameStrategy, a shared
// reference such as "com.acme.Address") is the cluster. On that resource:
//
//	reading a subject (its versions, schemas, lookup, compatibility checks,
//	  a schema it references)                   DESCRIBE topic | DESCRIBE cluster
//	registering a version                       WRITE topic    | ALTER cluster
//	deleting a version or the subject           DELETE topic   | ALTER cluster
//	reading its compatibility level             DESCRIBE_CONFIGS (topic | cluster)
//	setting or deleting its level               ALTER_CONFIGS  (topic | cluster)
//	GET /config; PUT /config                    DESCRIBE_CONFIGS; ALTER_CONFIGS on the cluster
//	GET /subjects                               the subjects the caller may read
//	GET /schemas/ids/{id}[/schema]              read on some subject using the schema
//	GET /schemas/ids/{id}/versions|subjects     the usages the caller may read (none: 403)
//	GET /, GET /schemas/types                   a login only: they name no resource
//
// So a producer with WRITE on its topic can auto-register its schemas, and
// a consumer with READ (which implies DESCRIBE) can fetch them by ID. An
// unauthorized subject or schema ID answers 403 (40301) whether it exists
// or not.

// codeForbidden is the registry's error code of an authorization refusal
// (Confluent's 40301).
const codeForbidden = 40301

// access is what an endpoint does to a subject.
type access int

const (
	readAccess access = iota
	writeAccess
	deleteAccess
	readConfigAccess
	writeConfigAccess
)

// subjectPerm is the operation and resource access to subject needs.
func subjectPerm(subject string, a access) authz.Perm {
	topic, ok := subjectTopic(subject)
	if !ok {
		op := [...]acl.Operation{acl.OpDescribe, acl.OpAlter, acl.OpAlter, acl.OpDescribeConfigs, acl.OpAlterConfigs}[a]
		return authz.Need(op, acl.Cluster())
	}
	op := [...]acl.Operation{acl.OpDescribe, acl.OpWrite, acl.OpDelete, acl.OpDescribeConfigs, acl.OpAlterConfigs}[a]
	return authz.Need(op, acl.Topic(topic))
}

// subjectTopic is the topic of a TopicNameStrategy subject.
func subjectTopic(subject string) (string, bool) {
	for _, suffix := range []string{"-value", "-key"} {
		if t, ok := strings.CutSuffix(subject, suffix); ok && t != "" {
			return t, true
		}
	}
	return "", false
}

// rule authorizes one request before its handler runs.
type rule func(req *http.Request) error

// onSubject is the rule of the endpoints under /subjects/{subject},
// /config/{subject} and /compatibility/subjects/{subject}.
func (r *Registry) onSubject(a access) rule {
	return func(req *http.Request) error {
		return r.acl.Require(req.Context(), subjectPerm(req.PathValue("subject"), a))
	}
}

// onCluster is the rule of the global endpoints.
func (r *Registry) onCluster(op acl.Operation) rule {
	return func(req *http.Request) error {
		return r.acl.Require(req.Context(), authz.Need(op, acl.Cluster()))
	}
}

// loggedIn is the rule of the endpoints that name no resource, or filter
// what they answer themselves: a login, when enforcing.
func (r *Registry) loggedIn(req *http.Request) error { return r.acl.Require(req.Context()) }

// mayRead reports whether the caller may read subject.
func (r *Registry) mayRead(ctx context.Context, subject string) bool {
	p := subjectPerm(subject, readAccess)
	return r.acl.May(ctx, p.Op, p.Res)
}

// readable keeps the subject versions the caller may read.
func (r *Registry) readable(ctx context.Context, vs []metadata.SchemaVersion) []metadata.SchemaVersion {
	if !r.acl.Enforcing() {
		return vs
	}
	seen := map[string]bool{}
	out := vs[:0:0]
	for _, v := range vs {
		ok, known := seen[v.Subject]
		if !known {
			ok = r.mayRead(ctx, v.Subject)
			seen[v.Subject] = ok
		}
		if ok {
			out = append(out, v)
		}
	}
	return out
}

// idRefusedAs is the resource type a refused schema ID is counted under
// (streamhouse_authorization_denials_total; the answer names neither):
// the cluster when every subject using it is one the cluster authorizes
// (RecordNameStrategy, shared types), else a topic, also for an unknown
// ID, which no subject uses.
func idRefusedAs(vs []metadata.SchemaVersion) acl.ResourceType {
	if len(vs) == 0 {
		return acl.ResourceTopic
	}
	for _, v := range vs {
		if _, ok := subjectTopic(v.Subject); ok {
			return acl.ResourceTopic
		}
	}
	return acl.ResourceCluster
}

// schemaDenied refuses a schema ID the caller may read under no subject,
// the same whether the ID exists or not.
func schemaDenied(id int64) error {
	return newErr(http.StatusForbidden, codeForbidden, "not authorized to read schema %d: DESCRIBE on a topic (or the cluster) whose subject uses it is needed", id)
}

// authErrorInto sets *ae to the registry's answer to an authorization
// refusal, if err is one: 401 with the Basic challenge, or 403 (40301).
func authErrorInto(ae **apiError, w http.ResponseWriter, err error) bool {
	var denied *authz.DeniedError
	switch {
	case errors.Is(err, authz.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Basic realm="`+auth.Realm+`"`)
		*ae = &apiError{status: http.StatusUnauthorized, code: http.StatusUnauthorized, msg: "authentication required: send HTTP Basic credentials"}
	case errors.As(err, &denied):
		*ae = &apiError{status: http.StatusForbidden, code: codeForbidden, msg: denied.Error()}
	default:
		return false
	}
	return true
}
