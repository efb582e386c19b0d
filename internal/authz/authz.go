// Package authz applies the ACLs (internal/acl) to the front ends that are
// not Kafka: the REST API, the schema registry, the gRPC API and SQL over
// topics. Each of them maps its endpoints to the Kafka operation and
// resource their Kafka equivalent needs (docs/security.md, "REST, gRPC,
// schema registry and SQL") and asks a Checker, which reads the caller
// from the request's context (auth.PrincipalFrom, Host) and answers nil,
// ErrUnauthenticated or a *DeniedError; each front end turns those into its
// own answer (REST 401/403, the registry's 40301, gRPC Unauthenticated /
// PermissionDenied).
//
// Nothing is enforced unless the authorizer is Enforcing (AUTH_ENABLED).
// Super users (SUPER_USERS) and the agents' own users
// (__streamhouse-agent-<ID>, which act for callers another agent already
// authorized) may do anything.
package authz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
)

// ErrUnauthenticated refuses a request that reached an enforcing checker
// without a login (User:ANONYMOUS): 401, not 403.
var ErrUnauthenticated = errors.New("authentication required")

// DeniedError refuses an operation the caller may not perform. Its message
// is the same whether the resource exists or not.
type DeniedError struct {
	Op  acl.Operation
	Res acl.Resource
	// Hidden leaves the resource's name out of the message: the caller
	// did not name it, the server looked it up (a producer's
	// transactional ID, a group's topics), and it must not learn it.
	Hidden bool
}

func (e *DeniedError) Error() string {
	what := strings.ToLower(strings.ReplaceAll(e.Res.Type.String(), "_", " "))
	if e.Hidden {
		return fmt.Sprintf("%s: not authorized to %s a %s involved", e.Code(), e.Op, what)
	}
	if e.Res.Type == acl.ResourceCluster {
		return fmt.Sprintf("%s: not authorized to %s the cluster", e.Code(), e.Op)
	}
	return fmt.Sprintf("%s: not authorized to %s %s %q", e.Code(), e.Op, what, e.Res.Name)
}

// Code is Kafka's error name for the refusal: TOPIC_AUTHORIZATION_FAILED,
// GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED or
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
func (e *DeniedError) Code() string {
	return e.Res.Type.String() + "_AUTHORIZATION_FAILED"
}

// Perm is one operation on one resource.
type Perm struct {
	Op     acl.Operation
	Res    acl.Resource
	Hidden bool // a refusal does not name Res (DeniedError.Hidden)
}

// Need is a Perm, for reading call sites: authz.Need(acl.OpWrite, acl.Topic(t)).
func Need(op acl.Operation, res acl.Resource) Perm { return Perm{Op: op, Res: res} }

// NeedUnnamed is Need on a resource the server looked up rather than the
// caller named: a refusal does not name it.
func NeedUnnamed(op acl.Operation, res acl.Resource) Perm {
	return Perm{Op: op, Res: res, Hidden: true}
}

type hostKey struct{}

// WithHost returns ctx carrying the client's address (an IP address, or
// host:port), which ACLs with a host other than "*" match.
func WithHost(ctx context.Context, addr string) context.Context {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	return context.WithValue(ctx, hostKey{}, addr)
}

// Host returns the client address WithHost put in ctx ("" if none: only
// host "*" ACLs match then).
func Host(ctx context.Context) string {
	h, _ := ctx.Value(hostKey{}).(string)
	return h
}

// Checker decides with one authorizer, for one listener. A nil Checker,
// or one over a nil authorizer, allows everything (front ends built
// without ACLs, tests).
type Checker struct {
	a        *acl.Authorizer
	listener string
}

// New returns a Checker over a (nil: allow everything) for the front end
// of listener (auth.ListenerHTTP, auth.ListenerGRPC): the "listener" label
// of the refusals it counts (streamhouse_authorization_denials_total),
// whose series exist at zero from now on.
func New(a *acl.Authorizer, listener string) *Checker {
	a.PrepareDenials(listener)
	return &Checker{a: a, listener: listener}
}

// Enforcing reports whether requests are checked at all.
func (c *Checker) Enforcing() bool { return c != nil && c.a != nil && c.a.Enforcing() }

// caller returns the principal of ctx, and ok false when every check
// passes without looking at ACLs (not enforcing, or an agent).
func (c *Checker) caller(ctx context.Context) (p auth.Principal, check bool, err error) {
	if !c.Enforcing() {
		return p, false, nil
	}
	p = auth.PrincipalFrom(ctx)
	if p.IsAnonymous() {
		return p, false, ErrUnauthenticated
	}
	// Agents act for callers the first agent authorized (forwarded
	// calls); their users cannot be made through the user APIs.
	if auth.IsAgent(p) {
		return p, false, nil
	}
	return p, true, nil
}

// Unrestricted reports whether the caller may do anything: nothing is
// enforced, or it is a super user or an agent.
func (c *Checker) Unrestricted(ctx context.Context) bool {
	p, check, err := c.caller(ctx)
	return err == nil && (!check || c.a.IsSuperUser(p.String()))
}

// Require returns nil when the caller of ctx may perform every one of
// perms, else the refusal of the first it may not, counted as a denial:
// the caller's answer is that refusal.
func (c *Checker) Require(ctx context.Context, perms ...Perm) error {
	err := c.require(ctx, perms)
	c.count(err)
	return err
}

func (c *Checker) require(ctx context.Context, perms []Perm) error {
	p, check, err := c.caller(ctx)
	if !check {
		return err
	}
	host := Host(ctx)
	for _, pm := range perms {
		if !c.a.Authorize(ctx, p.String(), host, pm.Op, pm.Res) {
			return &DeniedError{Op: pm.Op, Res: pm.Res, Hidden: pm.Hidden}
		}
	}
	return nil
}

// RequireAny returns nil when the caller may perform at least one of
// perms (say CREATE on the cluster or on the topic), else the refusal of
// the last, counted as a denial.
func (c *Checker) RequireAny(ctx context.Context, perms ...Perm) error {
	p, check, err := c.caller(ctx)
	if !check {
		return err
	}
	host := Host(ctx)
	for _, pm := range perms {
		if c.a.Authorize(ctx, p.String(), host, pm.Op, pm.Res) {
			return nil
		}
	}
	last := perms[len(perms)-1]
	err = &DeniedError{Op: last.Op, Res: last.Res, Hidden: last.Hidden}
	c.count(err)
	return err
}

// count counts err as a denial if it is a *DeniedError.
func (c *Checker) count(err error) {
	var denied *DeniedError
	if errors.As(err, &denied) {
		c.a.Denied(c.listener, denied.Op, denied.Res.Type)
	}
}

// Refused counts a refusal the front end answers without Require: one
// whose answer names no single resource (the registry's schema IDs). As
// with Require, only a caller the ACLs apply to is counted: not one
// without a login (an authentication failure, not a denial), nor a super
// user or an agent, whom nothing is refused.
func (c *Checker) Refused(ctx context.Context, op acl.Operation, typ acl.ResourceType) {
	p, check, err := c.caller(ctx)
	if check && err == nil && !c.a.IsSuperUser(p.String()) {
		c.a.Denied(c.listener, op, typ)
	}
}

// May reports whether the caller may perform op on res (false for a
// caller without a login when enforcing). It answers a question (a
// listing's filter, a choice between rules) rather than refusing, so a
// false is not counted as a denial.
func (c *Checker) May(ctx context.Context, op acl.Operation, res acl.Resource) bool {
	return c.require(ctx, []Perm{Need(op, res)}) == nil
}

// MayAny reports whether the caller may perform op on some resource of
// type typ (acl.Authorizer.AuthorizeAny): an idempotent producer's WRITE
// on some topic.
func (c *Checker) MayAny(ctx context.Context, op acl.Operation, typ acl.ResourceType) bool {
	p, check, err := c.caller(ctx)
	if !check {
		return err == nil
	}
	return c.a.AuthorizeAny(ctx, p.String(), Host(ctx), op, typ)
}

// Allowed returns the names, of resources of type typ, on which the
// caller may perform op, in their order: listings show only these.
func (c *Checker) Allowed(ctx context.Context, op acl.Operation, typ acl.ResourceType, names []string) []string {
	p, check, err := c.caller(ctx)
	switch {
	case err != nil:
		return []string{}
	case !check:
		return names
	}
	return c.a.Allowed(ctx, p.String(), Host(ctx), op, typ, names)
}

// Topics is what SQL over topics asks (sql.Access): READ on a topic a
// statement reads, DESCRIBE on one it describes, and SHOW TOPICS lists the
// topics the caller may DESCRIBE. SQL is served by the REST API, so C's
// listener is auth.ListenerHTTP.
type Topics struct{ C *Checker }

// Use is sql.Access.Use.
func (t Topics) Use(ctx context.Context, topic string, read bool) error {
	op := acl.OpDescribe
	if read {
		op = acl.OpRead
	}
	return t.C.Require(ctx, Need(op, acl.Topic(topic)))
}

// Visible is sql.Access.Visible.
func (t Topics) Visible(ctx context.Context, names []string) []string {
	return t.C.Allowed(ctx, acl.OpDescribe, acl.ResourceTopic, names)
}
