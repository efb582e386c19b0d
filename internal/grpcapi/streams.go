package grpcapi

import (
	"context"

	grpcmd "google.golang.org/grpc/metadata"

	"github.com/streamhouse/streamhouse/internal/auth"
)

// Streams stay authorized while they run (authz.Guard): Subscribe is
// re-checked when the ACLs change, ends when its user is deleted or its
// login's AUTH_SESSION_LIFETIME_MS passes, counted from the call's start
// (a Basic login; a client certificate does not expire).

// streamLogin returns ctx, authenticated (authenticate), carrying how
// its caller logged in (auth.Login): metadata credentials decide the
// principal when sent, else a client certificate did.
func (s *Server) streamLogin(ctx context.Context) context.Context {
	p := auth.PrincipalFrom(ctx)
	if !s.auth.Enabled() || p.IsAnonymous() {
		return ctx
	}
	mech := auth.MechanismMTLS
	if md, _ := grpcmd.FromIncomingContext(ctx); len(md.Get("authorization")) > 0 {
		mech = auth.MechanismBasic
		if auth.IsAgentToken(md.Get("authorization")[0]) {
			mech = auth.MechanismAgent
		}
	}
	return auth.WithLogin(ctx, auth.Login{Principal: p, Mechanism: mech, At: s.auth.Now()})
}
