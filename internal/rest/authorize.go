package rest

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// Authorization (Config.ACL; docs/security.md, "REST, gRPC, schema
// registry and SQL"). Every endpoint asks for what its Kafka equivalent
// needs, before it looks anything up, so an unauthorized topic or group
// answers the same 403 whether it exists or not:
//
//	GET    /api/v1/topics                       DESCRIBE topic (the list shows only those)
//	POST   /api/v1/topics                       CREATE cluster, or CREATE topic
//	GET    /api/v1/topics/{name}[/partitions]   DESCRIBE topic
//	DELETE /api/v1/topics/{name}                DELETE topic
//	POST   /api/v1/produce[/batch]              WRITE topic
//	GET    /api/v1/consume                      READ topic
//	GET    /api/v1/consumer-groups             DESCRIBE group (the list shows only those, all with
//	                                            DESCRIBE cluster); offsets of topics not DESCRIBEd are left out
//	POST   /api/v1/consumer-groups             READ group (Kafka creates a group on JoinGroup)
//	POST   /api/v1/consumer-groups/commit      READ group and READ topic (OffsetCommit)
//	GET    .../{id}, .../offsets, .../lag       DESCRIBE group; offsets of topics not DESCRIBEd left out
//	DELETE .../{id}                             DELETE group
//	POST   .../{id}/reset, .../{id}/seek        READ group and READ on every topic moved
//	GET    /api/v1/agents[/{id}[/metrics]]      DESCRIBE cluster
//	GET    /api/v1/metrics                      DESCRIBE cluster
//	GET    /debug/pprof/                        ALTER cluster
//	GET    /api/v1/users                        DESCRIBE cluster (DescribeUserScramCredentials)
//	POST, DELETE /api/v1/users                  ALTER cluster (AlterUserScramCredentials)
//	POST   /api/v1/sql[/stream]                 READ on every topic read, DESCRIBE for DESCRIBE;
//	                                            SHOW TOPICS lists the DESCRIBEd (internal/sql)
//
// /health, /live, /ready and /metrics stay open.

// authorize is the one authorization step of every handler: nil when the
// caller may perform every one of perms, else the refusal writeError
// answers 401 or 403.
func (s *server) authorize(r *http.Request, perms ...authz.Perm) error {
	return s.acl.Require(r.Context(), perms...)
}

// authorizeAny is authorize when one of perms suffices.
func (s *server) authorizeAny(r *http.Request, perms ...authz.Perm) error {
	return s.acl.RequireAny(r.Context(), perms...)
}

// authError answers an authorization refusal, if err is one: 401 with
// the Basic challenge, or 403 with Kafka's error name in lower case
// (topic_authorization_failed, group_..., cluster_..., transactional_id_...).
func authError(w http.ResponseWriter, err error) bool {
	var denied *authz.DeniedError
	var ended *authz.LoginEndedError
	switch {
	case errors.As(err, &ended): // a long poll whose login ended meanwhile
		w.Header().Set("WWW-Authenticate", `Basic realm="`+auth.Realm+`"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "unauthorized", Message: ended.Error()})
	case errors.Is(err, authz.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Basic realm="`+auth.Realm+`"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "unauthorized", Message: "authentication required: send HTTP Basic credentials"})
	case errors.As(err, &denied):
		writeJSON(w, http.StatusForbidden, errorBody{Error: strings.ToLower(denied.Code()), Message: denied.Error()})
	default:
		return false
	}
	return true
}

// describable keeps the partitions of topics the caller may DESCRIBE, as
// Kafka's OffsetFetch does, with the total lag of those.
func (s *server) describable(ctx context.Context, gl broker.GroupLag) broker.GroupLag {
	if !s.acl.Enforcing() {
		return gl
	}
	topics := topicsOf(gl)
	ok := make(map[string]bool, len(topics))
	for _, t := range s.acl.Allowed(ctx, acl.OpDescribe, acl.ResourceTopic, topics) {
		ok[t] = true
	}
	out := broker.GroupLag{Group: gl.Group}
	for _, p := range gl.Partitions {
		if ok[p.Topic] {
			out.Partitions = append(out.Partitions, p)
			out.TotalLag += p.Lag
		}
	}
	return out
}

// clusterOnly wraps a plain handler (the profiler) with ALTER on the
// cluster: profiles and traces cost the agent CPU and show its command
// line, more than monitoring's DESCRIBE should give.
func (s *server) clusterOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(r, authz.Need(acl.OpAlter, acl.Cluster())); err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

// describableAssignment keeps a member's assigned partitions of topics the
// caller may DESCRIBE.
func (s *server) describableAssignment(ctx context.Context, as map[string][]int32) map[string][]int32 {
	if !s.acl.Enforcing() || len(as) == 0 {
		return as
	}
	out := make(map[string][]int32, len(as))
	for t, ps := range as {
		if s.acl.May(ctx, acl.OpDescribe, acl.Topic(t)) {
			out[t] = ps
		}
	}
	return out
}

// streamErrorBody is the last line of a stream (a live SQL query) that a
// refusal ends after it started: {"error":"unauthorized"} when its login
// ended (the user deleted, the session lifetime passed), Kafka's error
// name in lower case when the ACLs no longer allow it; ok false for
// other errors.
func streamErrorBody(err error) (errorBody, bool) {
	var denied *authz.DeniedError
	switch {
	case errors.Is(err, authz.ErrUnauthenticated):
		return errorBody{Error: "unauthorized", Message: err.Error()}, true
	case errors.As(err, &denied):
		return errorBody{Error: strings.ToLower(denied.Code()), Message: denied.Error()}, true
	}
	return errorBody{}, false
}
