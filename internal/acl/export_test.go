package acl

import "context"

// Reload is reload, for tests that drive refreshes one at a time.
func (a *Authorizer) Reload(ctx context.Context) error { return a.reload(ctx) }
