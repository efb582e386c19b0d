package acl

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store is what the Authorizer needs of the metadata store
// (metadata.Store implements it).
type Store interface {
	// CreateACLs stores the bindings that are not stored yet, all or
	// none; bindings already stored are left as they are (creating is
	// idempotent). A binding that fails Validate fails the call with
	// ErrInvalid and nothing is stored; so does one that would make the
	// store hold more than MaxBindings bindings, with ErrLimit.
	CreateACLs(ctx context.Context, bindings []Binding) error
	// ListACLs returns the stored bindings f selects, in a stable order
	// (resource type, resource name, pattern type, principal, host,
	// operation, permission).
	ListACLs(ctx context.Context, f Filter) ([]Binding, error)
	// DeleteACLs deletes, in one transaction, every stored binding one of
	// filters selects, and returns per filter the bindings it selected
	// (a binding two filters select is listed under both, as Kafka
	// does), each binding deleted once whatever the number of filters
	// selecting it. An invalid filter fails the call with ErrInvalid and
	// nothing is deleted; so do filters that select, counted once per
	// filter, more than MaxDeleteMatches bindings (the answer's bound).
	DeleteACLs(ctx context.Context, filters []Filter) ([][]Binding, error)
	// ACLVersion returns the stored bindings' version: a number that
	// grows with every change and a random ID written with each, so a
	// cache can tell cheaply whether it is current. The pair changes
	// whenever the bindings do, including when the store goes back in
	// time (a backup restored: a lower number, or, once changed again, the
	// number a cache holds with another change ID).
	ACLVersion(ctx context.Context) (Version, error)
}

// Version is the version of the stored bindings (Store.ACLVersion).
type Version struct {
	Number   int64
	ChangeID string
}

// Notifier is implemented by stores that announce ACL changes to every
// agent as they commit (sqlstore: PostgreSQL LISTEN/NOTIFY, and within one
// process). It is optional: the Authorizer also polls ACLVersion.
type Notifier interface {
	// WatchACLs calls w.Changed after ACL changes of any agent commit,
	// until ctx ends, and returns ctx's error. w.Listening(false) says
	// notices may be lost from now on, w.Listening(true) that they flow
	// (again): re-read then. Neither may block.
	WatchACLs(ctx context.Context, w Watch) error
}

// Watch receives ACL change notices (see Notifier).
type Watch struct {
	Changed   func()
	Listening func(ok bool)
}

// Config configures an Authorizer.
type Config struct {
	Store Store
	// Enforce turns authorization on (AUTH_ENABLED). Off, every Authorize
	// call allows: ACLs are still stored and listed, so they can be
	// prepared before authentication is switched on.
	Enforce bool
	// SuperUsers may do anything, whatever the ACLs say (Kafka's
	// super.users). "alice" and "User:alice" both name User:alice.
	SuperUsers []string
	// SuperUser, if set, names more principals that bypass the ACLs (the
	// authenticator's: SUPER_USERS and the agents' own logins).
	SuperUser func(principal string) bool
	Logger    *slog.Logger
	// RefreshInterval is how often the Authorizer checks the store's ACL
	// version (one one-row read) in case a change notice was lost: a change
	// made on another agent applies here within this long at worst, and
	// within milliseconds when the store announces changes. Default 5 s.
	RefreshInterval time.Duration
	// Registry, if set, gets streamhouse_authorization_denials_total
	// (metrics.go).
	Registry prometheus.Registerer
}

// DefaultRefreshInterval is Config.RefreshInterval's default.
const DefaultRefreshInterval = 5 * time.Second

// Authorizer decides operations from an in-memory copy of the stored
// bindings, and creates, lists and deletes bindings in the store. Create
// with New; Run keeps the copy current. Safe for concurrent use; Authorize
// takes no lock and does no I/O.
type Authorizer struct {
	cfg   Config
	log   *slog.Logger
	super map[string]bool

	snap atomic.Pointer[snapshot]
	// reloadMu serialises reloads, so a slower reload never replaces a
	// newer snapshot.
	reloadMu sync.Mutex
	kick     chan struct{}
	failing  atomic.Bool // the last refresh failed (logged once)

	denials *denials // metrics.go
	// changes wakes the waiters of Changed when a copy is installed.
	changes changes
}

// New creates an Authorizer and loads the stored bindings.
func New(ctx context.Context, cfg Config) (*Authorizer, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("acl: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	a := &Authorizer{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "acl"),
		super: make(map[string]bool),
		kick:  make(chan struct{}, 1),

		denials: newDenials(cfg.Registry),
	}
	for _, u := range cfg.SuperUsers {
		if u = strings.TrimSpace(u); u != "" {
			a.super[QualifyPrincipal(u)] = true
		}
	}
	a.snap.Store(buildSnapshot(Version{Number: -1}, nil))
	if err := a.reload(ctx); err != nil {
		return nil, fmt.Errorf("load ACLs: %w", err)
	}
	return a, nil
}

// QualifyPrincipal returns p with the "User:" type prefixed when it has no
// type of its own ("alice" becomes "User:alice").
func QualifyPrincipal(p string) string {
	if strings.Contains(p, ":") {
		return p
	}
	return "User:" + p
}

// Enforcing reports whether authorization is on.
func (a *Authorizer) Enforcing() bool { return a.cfg.Enforce }

// IsSuperUser reports whether principal bypasses the ACLs.
func (a *Authorizer) IsSuperUser(principal string) bool {
	return a.super[principal] || (a.cfg.SuperUser != nil && a.cfg.SuperUser(principal))
}

// Authorize reports whether principal, connected from host (an IP address),
// may perform op on res: always when not enforcing or for a super user;
// otherwise when some ALLOW binding matches and no DENY binding does (no
// binding matching means denied, Kafka's default). A handler calls it in
// one line:
//
//	if !c.acl.Authorize(ctx, c.principal, c.host, acl.OpWrite, acl.Topic(name)) { ... TOPIC_AUTHORIZATION_FAILED }
func (a *Authorizer) Authorize(ctx context.Context, principal, host string, op Operation, res Resource) bool {
	if !a.cfg.Enforce || a.IsSuperUser(principal) {
		return true
	}
	ok := a.snap.Load().authorize(principal, parseHost(host), op, res)
	if !ok && a.log.Enabled(ctx, slog.LevelDebug) {
		a.log.DebugContext(ctx, "denied", "principal", principal, "host", host, "operation", op, "resource", res)
	}
	return ok
}

// AuthorizeAny reports whether principal may perform op on some resource
// of type typ: Kafka's authorizeByResourceType, which lets an idempotent
// producer with WRITE on any topic skip IDEMPOTENT_WRITE on the cluster.
// It holds when an ALLOW binding for op (or ALL; no implications) matches
// the principal and host, and is not cancelled by a matching DENY: a DENY
// on the wildcard name cancels everything, a DENY on a LITERAL name the
// LITERAL ALLOW of that name, and a DENY on a PREFIXED name every ALLOW
// whose name starts with it.
func (a *Authorizer) AuthorizeAny(ctx context.Context, principal, host string, op Operation, typ ResourceType) bool {
	if !a.cfg.Enforce || a.IsSuperUser(principal) {
		return true
	}
	return a.snap.Load().authorizeAny(principal, parseHost(host), op, typ)
}

// Allowed returns the names, of resources of type typ, on which principal
// may perform op, in their order: Metadata, REST, gRPC and SQL listings
// show only these.
func (a *Authorizer) Allowed(ctx context.Context, principal, host string, op Operation, typ ResourceType, names []string) []string {
	if !a.cfg.Enforce || a.IsSuperUser(principal) {
		return names
	}
	s, addr := a.snap.Load(), parseHost(host)
	out := make([]string, 0, len(names))
	for _, n := range names {
		if s.authorize(principal, addr, op, Resource{typ, n}) {
			out = append(out, n)
		}
	}
	return out
}

// DescribableTopics returns the topics principal may DESCRIBE, in their
// order.
func (a *Authorizer) DescribableTopics(ctx context.Context, principal, host string, topics []string) []string {
	return a.Allowed(ctx, principal, host, OpDescribe, ResourceTopic, topics)
}

// supportedOperations are the operations that apply to each resource type
// (Kafka's AclEntry.supportedOperations, without those StreamHouse has no
// use for), which AuthorizedOperations reports on.
var supportedOperations = map[ResourceType][]Operation{
	ResourceTopic:           {OpRead, OpWrite, OpCreate, OpDescribe, OpDelete, OpAlter, OpDescribeConfigs, OpAlterConfigs},
	ResourceGroup:           {OpRead, OpDescribe, OpDelete, OpDescribeConfigs, OpAlterConfigs},
	ResourceCluster:         {OpCreate, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite, OpAlter, OpDescribe},
	ResourceTransactionalID: {OpDescribe, OpWrite},
}

// AuthorizedOperations returns the operations of res's type that principal
// may perform on res, as the bit field Kafka's Metadata, DescribeGroups and
// DescribeCluster answer with (bit n set: operation code n allowed).
func (a *Authorizer) AuthorizedOperations(ctx context.Context, principal, host string, res Resource) int32 {
	var bits int32
	for _, op := range supportedOperations[res.Type] {
		if a.Authorize(ctx, principal, host, op, res) {
			bits |= 1 << op
		}
	}
	return bits
}

// CreateACLs validates bindings and stores the valid ones (idempotently,
// in one transaction), returning one error per binding, nil for those
// stored: an invalid one's error wraps ErrInvalid, and when the store
// fails every valid one gets the store's error. This agent enforces the
// bindings stored when it returns; the other agents within the refresh
// interval.
func (a *Authorizer) CreateACLs(ctx context.Context, bindings []Binding) []error {
	errs := make([]error, len(bindings))
	if len(bindings) > MaxCreatePerRequest {
		err := fmt.Errorf("%w: %d ACL creations in one request, at most %d allowed", ErrInvalid, len(bindings), MaxCreatePerRequest)
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	valid := make([]Binding, 0, len(bindings))
	for i, b := range bindings {
		if errs[i] = b.Validate(); errs[i] == nil {
			valid = append(valid, b)
		}
	}
	if len(valid) == 0 {
		return errs
	}
	if err := a.cfg.Store.CreateACLs(ctx, valid); err != nil {
		err = fmt.Errorf("store ACLs: %w", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if loaded, err := a.reloadAfterChangeLoaded(ctx); !loaded {
		if err != nil {
			a.log.WarnContext(ctx, "reload ACLs after a creation; adding the new ones to this agent's copy", "err", err)
		}
		// A new DENY is a revocation: enforced here before the answer,
		// as a deletion is.
		a.remember(valid)
	}
	return errs
}

// DescribeACLs returns the stored bindings f selects, read from the store
// (so an agent lists what another one just created).
func (a *Authorizer) DescribeACLs(ctx context.Context, f Filter) ([]Binding, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	bs, err := a.cfg.Store.ListACLs(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list ACLs: %w", err)
	}
	return bs, nil
}

// DeleteResult is what one filter of DeleteACLs did.
type DeleteResult struct {
	Deleted []Binding
	Err     error // wraps ErrInvalid for an invalid filter
}

// DeleteACLs deletes the bindings each valid filter selects, all filters
// in one transaction, and returns one result per filter. This agent stops
// enforcing them when it returns, whether or not it could re-read the
// store (it drops what the store deleted from its copy); the other agents
// within the refresh interval.
func (a *Authorizer) DeleteACLs(ctx context.Context, filters []Filter) []DeleteResult {
	out := make([]DeleteResult, len(filters))
	valid := make([]Filter, 0, len(filters))
	idx := make([]int, 0, len(filters))
	for i, f := range filters {
		if out[i].Err = f.Validate(); out[i].Err == nil {
			valid = append(valid, f)
			idx = append(idx, i)
		}
	}
	if len(valid) == 0 {
		return out
	}
	deleted, err := a.cfg.Store.DeleteACLs(ctx, valid)
	if err == nil && len(deleted) != len(valid) {
		err = fmt.Errorf("store answered %d filter results for %d filters", len(deleted), len(valid))
	}
	if err != nil {
		err = fmt.Errorf("delete ACLs: %w", err)
		for _, i := range idx {
			out[i].Err = err
		}
		return out
	}
	for j, i := range idx {
		out[i].Deleted = deleted[j]
	}
	if loaded, err := a.reloadAfterChangeLoaded(ctx); !loaded {
		if err != nil {
			a.log.WarnContext(ctx, "reload ACLs after a deletion; dropping the deleted ones from this agent's copy", "err", err)
		}
		// A copy read after the deletion is the store's, including any
		// binding someone created again meanwhile: only a copy that
		// could not be read again loses the deleted bindings here.
		a.forget(deleted)
	}
	return out
}

// localChangeID marks a copy patched in memory (remember, forget): no
// store writes it, so the next refresh always reads the store, even one
// restored to the very version the copy was patched from.
const localChangeID = "local"

func patched(v Version) Version { v.ChangeID = localChangeID; return v }

// remember adds bindings the store created to the in-memory copy when it
// could not be read again, marking its version patched so the next
// refresh reads the store.
func (a *Authorizer) remember(created []Binding) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	s := a.snap.Load()
	var all []Binding
	for _, ti := range s.types {
		for i := range ti.all {
			all = append(all, ti.all[i].Binding)
		}
	}
	for _, b := range created {
		if !s.has(b) {
			all = append(all, b)
		}
	}
	a.install(buildSnapshot(patched(s.version), all))
}

// forget drops bindings the store deleted from the in-memory copy if it
// still has them (the reload after the deletion failed, or kept a newer
// copy), marking its version patched so the next refresh reads the store.
func (a *Authorizer) forget(deleted [][]Binding) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	s := a.snap.Load()
	gone := make(map[Binding]bool)
	for _, bs := range deleted {
		for _, b := range bs {
			if s.has(b) {
				gone[b] = true
			}
		}
	}
	if len(gone) == 0 {
		return
	}
	var keep []Binding
	for _, ti := range s.types {
		for i := range ti.all {
			if !gone[ti.all[i].Binding] {
				keep = append(keep, ti.all[i].Binding)
			}
		}
	}
	a.install(buildSnapshot(patched(s.version), keep))
	a.Refresh()
}

// reloadAfterChange reloads after a change made through this agent, so
// it is enforced here at once; if that fails, Run's next refresh does it.
func (a *Authorizer) reloadAfterChange(ctx context.Context) {
	if _, err := a.reloadAfterChangeLoaded(ctx); err != nil {
		a.log.WarnContext(ctx, "reload ACLs after a change; retrying on the next refresh", "err", err)
	}
}

// reloadAfterChangeLoaded is reloadAfterChange reporting whether this
// agent's copy is now the store's, read after the change (false: the read
// failed).
func (a *Authorizer) reloadAfterChangeLoaded(ctx context.Context) (bool, error) {
	loaded, err := a.reloadLoaded(ctx)
	if err != nil || !loaded {
		a.Refresh()
	}
	return loaded, err
}

// Refresh asks Run to check the store's ACL version now.
func (a *Authorizer) Refresh() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Version returns the store's ACL version number the in-memory copy
// reflects (-1 before the first load).
func (a *Authorizer) Version() int64 { return a.snap.Load().version.Number }

// Run keeps the in-memory bindings current until ctx ends: at once when the
// store announces a change (Notifier), and every RefreshInterval by
// comparing the store's ACL version.
func (a *Authorizer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if n, ok := a.cfg.Store.(Notifier); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.WatchACLs(ctx, Watch{
				Changed: a.Refresh,
				// Once notices flow (again), re-read what may have been
				// missed while they did not.
				Listening: func(ok bool) {
					if ok {
						a.Refresh()
					}
				},
			})
		}()
	}
	t := time.NewTicker(a.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
		a.refresh(ctx)
	}
}

// refresh reloads if the store's version (number or change ID) differs
// from the copy's.
func (a *Authorizer) refresh(ctx context.Context) {
	v, err := a.cfg.Store.ACLVersion(ctx)
	if err == nil && v != a.snap.Load().version {
		err = a.reload(ctx)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		if !a.failing.Swap(true) {
			a.log.WarnContext(ctx, "refresh ACLs; enforcing the last loaded ones", "err", err, "version", a.Version())
		}
	case err == nil && a.failing.Swap(false):
		a.log.InfoContext(ctx, "ACLs refreshed again", "version", a.Version())
	}
}

// reload reads the version, then the bindings (so the copy is never older
// than the version it claims), and installs them unless the version is
// the loaded one. A version that is not the loaded one is the store's
// current state whichever way it differs: reads go to the store's
// primary, so a lower number, or the loaded number with another change
// ID, means the store itself went back (a backup restored, a failover to
// a replica that had not received the last changes), and every agent
// follows it at once, as one that starts now would load it.
func (a *Authorizer) reload(ctx context.Context) error {
	_, err := a.reloadLoaded(ctx)
	return err
}

// reloadLoaded is reload, reporting whether the copy now is the store's.
func (a *Authorizer) reloadLoaded(ctx context.Context) (bool, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	v, err := a.cfg.Store.ACLVersion(ctx)
	if err != nil {
		return false, fmt.Errorf("read ACL version: %w", err)
	}
	cur := a.snap.Load().version
	if v == cur {
		return true, nil
	}
	if cur.Number >= 0 && v.Number <= cur.Number && cur.ChangeID != localChangeID {
		a.log.WarnContext(ctx, "the store's ACLs went back in time (a backup restored?): loading them",
			"store_version", v.Number, "store_change_id", v.ChangeID, "loaded_version", cur.Number, "loaded_change_id", cur.ChangeID)
	}
	bs, err := a.cfg.Store.ListACLs(ctx, AnyFilter)
	if err != nil {
		return false, fmt.Errorf("list ACLs: %w", err)
	}
	a.install(buildSnapshot(v, bs))
	return true, nil
}

// snapshot is an immutable index of every binding.
type snapshot struct {
	version Version
	types   map[ResourceType]*typeIndex
}

// typeIndex holds one resource type's bindings by how they match names.
type typeIndex struct {
	literal  map[string][]entry // LITERAL bindings by name, "*" excluded
	wildcard []entry            // LITERAL bindings named "*"
	prefixed map[string][]entry // PREFIXED bindings by prefix
	// prefixLens are the distinct prefix lengths, ascending: a name is
	// checked against the prefixes of these lengths only.
	prefixLens []int
	all        []indexed // for AuthorizeAny
}

type indexed struct {
	Binding
	entry entry
}

// entry is the part of a binding that is checked once its name matches.
type entry struct {
	principal string
	host      string
	addr      netip.Addr // host parsed; invalid for "*"
	op        Operation
	perm      Permission
}

// has reports whether b is in s.
func (s *snapshot) has(b Binding) bool {
	ti := s.types[b.ResourceType]
	if ti == nil {
		return false
	}
	for i := range ti.all {
		if ti.all[i].Binding == b {
			return true
		}
	}
	return false
}

func buildSnapshot(version Version, bs []Binding) *snapshot {
	s := &snapshot{version: version, types: make(map[ResourceType]*typeIndex)}
	for _, b := range bs {
		ti := s.types[b.ResourceType]
		if ti == nil {
			ti = &typeIndex{literal: make(map[string][]entry), prefixed: make(map[string][]entry)}
			s.types[b.ResourceType] = ti
		}
		e := entry{principal: b.Principal, host: b.Host, op: b.Operation, perm: b.Permission}
		if b.Host != WildcardHost {
			if addr, err := netip.ParseAddr(b.Host); err == nil {
				e.addr = addr.Unmap()
			}
		}
		ti.all = append(ti.all, indexed{b, e})
		switch {
		case b.PatternType == PatternLiteral && b.ResourceName == WildcardName:
			ti.wildcard = append(ti.wildcard, e)
		case b.PatternType == PatternLiteral:
			ti.literal[b.ResourceName] = append(ti.literal[b.ResourceName], e)
		case b.PatternType == PatternPrefixed:
			if len(ti.prefixed[b.ResourceName]) == 0 {
				ti.prefixLens = append(ti.prefixLens, len(b.ResourceName))
			}
			ti.prefixed[b.ResourceName] = append(ti.prefixed[b.ResourceName], e)
		}
	}
	for _, ti := range s.types {
		slices.Sort(ti.prefixLens)
		ti.prefixLens = slices.Compact(ti.prefixLens)
	}
	return s
}

// parseHost parses a client address ("10.0.0.1", "::1", "fe80::1%eth0",
// with or without brackets, the "/" Kafka prefixes or a port); an invalid
// result matches only "*" bindings. An IPv4-mapped IPv6 address is its
// IPv4 address.
func parseHost(host string) netip.Addr {
	host = strings.TrimPrefix(host, "/")
	if ap, err := netip.ParseAddrPort(host); err == nil {
		return ap.Addr().Unmap()
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return addr.Unmap()
}

// verdict is what one binding says about a request.
type verdict int8

const (
	noMatch verdict = iota
	allow
	deny
)

// implies reports whether an ALLOW of granted allows asked (Kafka's
// StandardAuthorizerData.findResult): ALL allows everything; DESCRIBE is
// implied by READ, WRITE, DELETE and ALTER; DESCRIBE_CONFIGS by
// ALTER_CONFIGS.
func implies(granted, asked Operation) bool {
	switch {
	case granted == OpAll || granted == asked:
		return true
	case asked == OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case asked == OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

func (e *entry) matchesWho(principal string, addr netip.Addr) bool {
	if e.principal != principal && e.principal != WildcardPrincipal {
		return false
	}
	if e.host == WildcardHost {
		return true
	}
	if !addr.IsValid() || !e.addr.IsValid() {
		return false
	}
	// A binding without a zone matches its address on any interface; one
	// with a zone only on that interface.
	if e.addr.Zone() == "" {
		addr = addr.WithZone("")
	}
	return e.addr == addr
}

func (e *entry) verdict(principal string, addr netip.Addr, op Operation) verdict {
	if !e.matchesWho(principal, addr) {
		return noMatch
	}
	switch e.perm {
	case PermissionAllow:
		if implies(e.op, op) {
			return allow
		}
	case PermissionDeny:
		// A DENY applies to its own operation (or to all): denying READ
		// does not deny DESCRIBE.
		if e.op == OpAll || e.op == op {
			return deny
		}
	}
	return noMatch
}

func (s *snapshot) authorize(principal string, addr netip.Addr, op Operation, res Resource) bool {
	ti := s.types[res.Type]
	if ti == nil {
		return false
	}
	allowed := false
	check := func(es []entry) bool { // false: denied
		for i := range es {
			switch es[i].verdict(principal, addr, op) {
			case deny:
				return false
			case allow:
				allowed = true
			}
		}
		return true
	}
	if !check(ti.literal[res.Name]) || !check(ti.wildcard) {
		return false
	}
	for _, n := range ti.prefixLens {
		if n > len(res.Name) {
			break
		}
		if !check(ti.prefixed[res.Name[:n]]) {
			return false
		}
	}
	return allowed
}

func (s *snapshot) authorizeAny(principal string, addr netip.Addr, op Operation, typ ResourceType) bool {
	ti := s.types[typ]
	if ti == nil {
		return false
	}
	denyLiteral := map[string]bool{}
	denyPrefixed := map[string]bool{}
	var allowLiteral, allowPrefixed []string
	wildcardAllow := false
	for i := range ti.all {
		b, e := &ti.all[i].Binding, &ti.all[i].entry
		if !e.matchesWho(principal, addr) || (b.Operation != op && b.Operation != OpAll) {
			continue
		}
		wildcard := b.PatternType == PatternLiteral && b.ResourceName == WildcardName
		switch {
		case b.Permission == PermissionDeny && wildcard:
			return false
		case b.Permission == PermissionDeny && b.PatternType == PatternLiteral:
			denyLiteral[b.ResourceName] = true
		case b.Permission == PermissionDeny && b.PatternType == PatternPrefixed:
			denyPrefixed[b.ResourceName] = true
		case b.Permission == PermissionAllow && wildcard:
			wildcardAllow = true
		case b.Permission == PermissionAllow && b.PatternType == PatternLiteral:
			allowLiteral = append(allowLiteral, b.ResourceName)
		case b.Permission == PermissionAllow && b.PatternType == PatternPrefixed:
			allowPrefixed = append(allowPrefixed, b.ResourceName)
		}
	}
	if wildcardAllow {
		return true
	}
	// An ALLOW counts unless a DENY covers every name it could apply to:
	// a PREFIXED DENY on a prefix of its name, or, for a LITERAL ALLOW,
	// a LITERAL DENY of the same name.
	dominated := func(name string) bool {
		for i := 1; i <= len(name); i++ {
			if denyPrefixed[name[:i]] {
				return true
			}
		}
		return false
	}
	for _, n := range allowLiteral {
		if !denyLiteral[n] && !dominated(n) {
			return true
		}
	}
	for _, n := range allowPrefixed {
		if !dominated(n) {
			return true
		}
	}
	return false
}
