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
// user or a verified client certificate (mutual TLS); otherwise it fails
// with Unauthenticated (after the client address's slowdown for a wrong
// password), or Unavailable when the store cannot check it. Credentials
// sent in metadata decide the principal even over a client certificate,
// as SASL does on a Kafka listener with client certificates: so an agent
// presenting its own certificate can forward a call under its own login.
// The gRPC health service stays open, as /health does on REST, so probes
// need no password. Then the call is authorized (authorize.go). A call
// forwarded to another agent (forward.go) was authorized here, as its
// caller, and carries this agent's own login.

// openMethods answer without a login.
func openMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/")
}

// authenticate returns ctx with the call's principal, or the status that
// refuses the call.
func (s *Server) authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	a := s.auth
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		ctx = authz.WithHost(ctx, pr.Addr.String()) // ACLs may name it
	}
	md, _ := grpcmd.FromIncomingContext(ctx)
	values := md.Get("authorization")
	// Certificates: the one small path that reads the TLS state (mutual
	// TLS).
	if pr, ok := peer.FromContext(ctx); ok && (len(values) == 0 || !a.Enabled()) {
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			if p, ok := auth.PrincipalFromTLS(&ti.State); ok {
				if a.Enabled() {
					a.Succeeded(auth.ListenerGRPC, auth.MechanismMTLS)
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
	user, password, ok := parseBasic(values[0])
	remote := ""
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		remote = pr.Addr.String()
	}
	var p auth.Principal
	err := auth.ErrBadCredentials
	if ok {
		p, err = a.VerifyPassword(ctx, user, password)
	}
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		if werr := a.Failed(ctx, auth.ListenerGRPC, auth.MechanismBasic, remote, err); werr != nil {
			return nil, status.FromContextError(werr).Err()
		}
		return nil, status.Error(codes.Unauthenticated, "invalid user or password")
	case err != nil:
		s.log.Warn("cannot check gRPC credentials", "err", err)
		return nil, status.Error(codes.Unavailable, "cannot check credentials now; retry")
	}
	a.Succeeded(auth.ListenerGRPC, auth.MechanismBasic)
	return auth.WithPrincipal(ctx, p), nil
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
	return handler(srv, &authorizingStream{ServerStream: ss, ctx: s.streamLogin(ctx), s: s, method: info.FullMethod})
}
