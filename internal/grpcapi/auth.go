package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
)

// Authentication (Config.Auth, AUTH_ENABLED). Every call runs with its
// principal in its context (auth.PrincipalFrom). With logins required, a
// call needs metadata "authorization: Basic base64(user:password)" of a
// user, an agent token (another agent forwarding a call, below), or a
// verified client certificate (mutual TLS); otherwise it fails with
// Unauthenticated (after the client address's slowdown for bad
// credentials), or Unavailable when the store cannot check it. The rule
// that picks the principal is the REST listener's (auth.HTTP) and
// Kafka's: credentials sent explicitly (Basic, an agent token) decide it
// even over a client certificate, as SASL's login does on a Kafka
// connection with one; the certificate counts only for a call that sends
// none. So an agent presenting its own certificate forwards a call under
// its own login. The gRPC health service stays open, as /health does on
// REST, so probes need no password. Then the call is authorized
// (authorize.go). A call forwarded to another agent (forward.go) was
// authorized here, as its caller, and carries this agent's agent token.

// openMethods answer without a login.
func openMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/")
}

// authenticate returns ctx with the call's principal, or the status that
// refuses the call.
func (s *Server) authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	a := s.auth
	remote := ""
	pr, hasPeer := peer.FromContext(ctx)
	if hasPeer && pr.Addr != nil {
		remote = pr.Addr.String()
		ctx = authz.WithHost(ctx, remote) // ACLs may name it
	}
	md, _ := grpcmd.FromIncomingContext(ctx)
	if s.observeAuth != nil {
		s.observeAuth(fullMethod, md)
	}
	values := md.Get("authorization")
	// Certificates, when no credentials are sent (or logins are off, so
	// that sent credentials are not checked): the one small path that
	// reads the TLS state (mutual TLS).
	if hasPeer && (len(values) == 0 || !a.Enabled()) {
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			if p, ok := auth.PrincipalFromTLS(&ti.State); ok {
				if a.Enabled() {
					a.Succeeded(auth.ListenerGRPC, auth.MechanismMTLS)
					ctx = withLogin(ctx, a, p, auth.MechanismMTLS)
				}
				return auth.WithPrincipal(ctx, p), nil
			}
		}
	}
	if !a.Enabled() || openMethod(fullMethod) {
		return auth.WithPrincipal(ctx, auth.Anonymous), nil
	}
	if len(values) == 0 {
		a.Missing(auth.ListenerGRPC)
		return nil, status.Error(codes.Unauthenticated, "authentication required: send metadata authorization: Basic base64(user:password)")
	}
	var p auth.Principal
	mechanism, err := auth.MechanismBasic, auth.ErrBadCredentials
	if auth.IsAgentToken(values[0]) {
		mechanism = auth.MechanismAgent
		p, err = a.VerifyAgentToken(ctx, values[0], fullMethod)
	} else if user, password, ok := parseBasic(values[0]); ok {
		p, err = a.VerifyPassword(ctx, user, password)
	}
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		if werr := a.Failed(ctx, auth.ListenerGRPC, mechanism, remote, err); werr != nil {
			return nil, status.FromContextError(werr).Err()
		}
		return nil, status.Error(codes.Unauthenticated, "invalid user or password")
	case err != nil:
		s.log.Warn("cannot check gRPC credentials", "err", err)
		return nil, status.Error(codes.Unavailable, "cannot check credentials now; retry")
	}
	a.Succeeded(auth.ListenerGRPC, mechanism)
	return auth.WithPrincipal(withLogin(ctx, a, p, mechanism), p), nil
}

// withLogin returns ctx carrying how its caller logged in (auth.Login,
// with the mechanism authenticate checked), so that a stream ends when
// that login would no longer be accepted (streams.go).
func withLogin(ctx context.Context, a *auth.Authenticator, p auth.Principal, mechanism string) context.Context {
	return auth.WithLogin(ctx, auth.Login{Principal: p, Mechanism: mechanism, At: a.Now()})
}

// parseBasic reads "Basic base64(user:password)"; the scheme is
// case-insensitive, as in HTTP.
func parseBasic(v string) (user, password string, ok bool) {
	scheme, cred, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeCall(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	// The request arrives with the stream's first message.
	return handler(srv, &authorizingStream{ServerStream: ss, ctx: ctx, s: s, method: info.FullMethod})
}
