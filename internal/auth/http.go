package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// HTTP authentication (REST and the schema registry, one listener).

// openPaths answer without a login: probes and the Prometheus scrape.
// /live is the original StreamHouse's liveness probe, as bare as /health.
var openPaths = map[string]bool{"/health": true, "/live": true, "/ready": true, "/metrics": true}

// Realm is the Basic realm of the 401 challenge.
const Realm = "streamhouse"

// HTTP wraps next so that every request runs with its principal in its
// context (PrincipalFrom). With logins required, a request needs a
// verified client certificate or HTTP Basic credentials of a user, except
// on /health, /live, /ready and /metrics; otherwise it is answered 401
// with WWW-Authenticate: Basic realm="streamhouse" (in the schema
// registry's error format under /schemas), or 503 when the store cannot
// check it. Logins off, every request is Anonymous or its certificate's
// user.
//
// Which one decides when a request has both (one rule for every
// listener, Kafka's: with mutual TLS and SASL, SASL's login is the
// principal): credentials sent explicitly, in an Authorization header,
// win over the client certificate, and must hold; the certificate counts
// only for a request that sends none. The gRPC interceptor does the same
// (internal/grpcapi auth.go).
func (a *Authenticator) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Certificates, when no credentials are sent (or logins are off,
		// so that sent credentials are not checked): the one small path
		// that reads r.TLS (mutual TLS).
		if _, sent := r.Header["Authorization"]; !sent || !a.Enabled() {
			if p, ok := PrincipalFromTLS(r.TLS); ok {
				ctx := WithPrincipal(r.Context(), p)
				if a.Enabled() {
					a.Succeeded(ListenerHTTP, MechanismMTLS)
					ctx = WithLogin(ctx, Login{Principal: p, Mechanism: MechanismMTLS, At: a.cfg.Now()})
				}
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
		}
		if !a.Enabled() || openPaths[r.URL.Path] {
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), Anonymous)))
			return
		}
		if _, sent := r.Header["Authorization"]; !sent {
			a.Missing(ListenerHTTP)
			unauthorized(w, r, "authentication required: send HTTP Basic credentials")
			return
		}
		var p Principal
		err := ErrBadCredentials
		if user, password, ok := r.BasicAuth(); ok {
			p, err = a.VerifyPassword(r.Context(), user, password)
		}
		switch {
		case errors.Is(err, ErrBadCredentials):
			if a.Failed(r.Context(), ListenerHTTP, MechanismBasic, r.RemoteAddr, err) != nil {
				return // the client left
			}
			unauthorized(w, r, "invalid user or password")
			return
		case err != nil:
			a.log.Warn("cannot check HTTP credentials", "err", err)
			w.Header().Set("Retry-After", "1")
			writeError(w, r, http.StatusServiceUnavailable, "unavailable", "cannot check credentials now; retry")
			return
		}
		a.Succeeded(ListenerHTTP, MechanismBasic)
		ctx := WithLogin(WithPrincipal(r.Context(), p), Login{Principal: p, Mechanism: MechanismBasic, At: a.cfg.Now()})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	writeError(w, r, http.StatusUnauthorized, "unauthorized", msg)
}

// writeError answers in the REST format {"error","message"}, or the
// schema registry's {"error_code","message"} under /schemas.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	var body any = map[string]string{"error": code, "message": msg}
	if r.URL.Path == "/schemas" || strings.HasPrefix(r.URL.Path, "/schemas/") {
		body = map[string]any{"error_code": status, "message": msg}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
