// Package acl owns StreamHouse's access control lists, in Kafka's model:
// bindings of (resource pattern, principal, host, operation, permission),
// the filters DescribeAcls and DeleteAcls select them with, and the
// Authorizer that decides whether a principal may perform an operation on a
// resource, from an in-memory copy of the bindings that follows changes made
// on every agent (authorizer.go).
//
// The numeric values of every enum are Kafka's wire codes, so the Kafka front
// end passes them through and the metadata store keeps them as they are.
// The semantics follow Kafka's StandardAuthorizer (KRaft): DENY wins over
// ALLOW; ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE, ALLOW of
// ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL implies everything (for DENY
// too), and nothing else implies anything; a LITERAL binding named "*"
// matches every name of its resource type; the principal "User:*" matches
// every principal; the host "*" matches every client address.
//
// This package depends on nothing else of StreamHouse: the metadata store
// implements its Store interface.
package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// ErrInvalid marks a binding or filter that Kafka would refuse with
// INVALID_REQUEST: an unknown or filter-only value where a concrete one is
// needed, an empty resource name, a principal without a type. Nothing is
// stored.
var ErrInvalid = errors.New("invalid ACL")

// ErrLimit marks a creation refused because the store would hold more than
// MaxBindings bindings (Kafka's POLICY_VIOLATION). Nothing is stored.
var ErrLimit = errors.New("ACL limit reached")

// ResourceType is the kind of resource a binding protects.
type ResourceType int8

// Kafka's resource types. Any is for filters only. DelegationToken and User
// exist in the protocol; StreamHouse has neither delegation tokens nor
// user-scoped token operations, so bindings on them are refused.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

// PatternType says how a binding's resource name matches resource names.
type PatternType int8

// Kafka's pattern types. Any and Match are for filters only: Any selects
// bindings of any pattern type whose name equals the filter's, Match selects
// the bindings that would apply to a resource of the filter's name (the
// literal one, the "*" wildcard and every prefix of it).
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1
	PatternMatch    PatternType = 2
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is what a principal does to a resource.
type Operation int8

// Kafka's operations. Any is for filters only. CreateTokens,
// DescribeTokens and TwoPhaseCommit exist in the protocol for resources
// StreamHouse does not have (delegation tokens, KIP-939); bindings with them
// are refused.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14
	OpTwoPhaseCommit  Operation = 15
)

// Permission says whether a binding allows or denies.
type Permission int8

// Kafka's permission types. Any is for filters only.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

// Wildcards, as Kafka spells them.
const (
	// WildcardName, as the name of a LITERAL binding, matches every
	// resource of its type.
	WildcardName = "*"
	// WildcardPrincipal matches every principal.
	WildcardPrincipal = "User:*"
	// WildcardHost matches every client address.
	WildcardHost = "*"
	// ClusterName is the only name of the CLUSTER resource.
	ClusterName = "kafka-cluster"
)

// Limits on what one binding may hold: every agent keeps every binding in
// memory, and PostgreSQL bounds an index entry (about 2,700 bytes) for the
// primary key over the whole binding.
const (
	MaxNameBytes      = 1024
	MaxPrincipalBytes = 512
	MaxHostBytes      = 64
)

// Limits on how many bindings there are: every agent holds them all in
// memory (a few hundred bytes each), and DeleteAcls answers with every
// binding each filter selected.
const (
	// MaxBindings is how many bindings the store holds at most; a
	// creation past it is refused (ErrLimit) and stores nothing.
	MaxBindings = 100_000
	// MaxCreatePerRequest is how many bindings one CreateAcls request may
	// create; a request with more is refused whole (ErrInvalid).
	MaxCreatePerRequest = 1_000
	// MaxDeleteMatches bounds a DeleteAcls answer: the bindings its
	// filters select, counted once per filter that selects them, at most
	// this many (one filter selecting every binding always fits); past
	// it the request is refused whole (ErrInvalid) and deletes nothing.
	MaxDeleteMatches = MaxBindings
)

// Resource is one concrete resource an operation is asked on.
type Resource struct {
	Type ResourceType
	Name string
}

// Topic, Group, TransactionalID and Cluster name resources for Authorize.
func Topic(name string) Resource         { return Resource{ResourceTopic, name} }
func Group(id string) Resource           { return Resource{ResourceGroup, id} }
func TransactionalID(id string) Resource { return Resource{ResourceTransactionalID, id} }
func Cluster() Resource                  { return Resource{ResourceCluster, ClusterName} }
func (r Resource) String() string        { return r.Type.String() + ":" + r.Name }

// Binding is one ACL: Permission for Principal, connecting from Host, to
// perform Operation on the resources of ResourceType whose name matches
// ResourceName under PatternType.
type Binding struct {
	ResourceType ResourceType
	ResourceName string
	PatternType  PatternType
	Principal    string // "User:alice", or "User:*" for everyone
	Host         string // an IP address, or "*" for every address
	Operation    Operation
	Permission   Permission
}

func (b Binding) String() string {
	return fmt.Sprintf("%s %s %s on %s:%s:%s from %s", b.Permission, b.Principal, b.Operation, b.ResourceType, b.PatternType, b.ResourceName, b.Host)
}

// Validate reports why b cannot be stored (wrapping ErrInvalid), or nil.
// It applies Kafka's checks (concrete resource type, pattern type,
// operation and permission; a non-empty name; the CLUSTER resource named
// "kafka-cluster"; a principal with a type), and StreamHouse's: the
// resource types and operations it has, a host that is "*" or an IP
// address, and the length limits.
func (b Binding) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch b.ResourceType {
	case ResourceTopic, ResourceGroup, ResourceCluster, ResourceTransactionalID:
	case ResourceDelegationToken, ResourceUser:
		return bad("resource type %s is not supported: StreamHouse has no delegation tokens", b.ResourceType)
	default:
		return bad("invalid resource type %s", b.ResourceType)
	}
	if b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed {
		return bad("invalid pattern type %s: a binding is LITERAL or PREFIXED", b.PatternType)
	}
	switch b.Operation {
	case OpAll, OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe, OpClusterAction,
		OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite:
	case OpCreateTokens, OpDescribeTokens, OpTwoPhaseCommit:
		return bad("operation %s is not supported: StreamHouse has no delegation tokens or two-phase commit", b.Operation)
	default:
		return bad("invalid operation %s", b.Operation)
	}
	if b.Permission != PermissionAllow && b.Permission != PermissionDeny {
		return bad("invalid permission type %s", b.Permission)
	}
	for what, s := range map[string]string{"resource name": b.ResourceName, "principal": b.Principal, "host": b.Host} {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return bad("the %s is not UTF-8 text without NUL characters", what)
		}
	}
	switch {
	case b.ResourceName == "":
		return bad("resource name should not be empty")
	case len(b.ResourceName) > MaxNameBytes:
		return bad("resource name is %d bytes, at most %d allowed", len(b.ResourceName), MaxNameBytes)
	case b.ResourceType == ResourceCluster && b.ResourceName != ClusterName:
		return bad("the only valid name for the CLUSTER resource is %s", ClusterName)
	}
	typ, name, ok := strings.Cut(b.Principal, ":")
	switch {
	case !ok:
		return bad("could not parse principal from %q (no colon is present separating the principal type from the principal name)", b.Principal)
	case typ == "" || name == "":
		return bad("principal %q needs a type and a name, as in User:alice", b.Principal)
	case len(b.Principal) > MaxPrincipalBytes:
		return bad("principal is %d bytes, at most %d allowed", len(b.Principal), MaxPrincipalBytes)
	}
	if b.Host != WildcardHost {
		if len(b.Host) > MaxHostBytes {
			return bad("host is %d bytes, at most %d allowed", len(b.Host), MaxHostBytes)
		}
		if _, err := netip.ParseAddr(b.Host); err != nil {
			return bad("host %q is not * or an IP address", b.Host)
		}
	}
	return nil
}

// Filter selects bindings, as Kafka's AclBindingFilter does for
// DescribeAcls and DeleteAcls. Nil strings and the Any values match
// everything; other values match exactly (a filter's "User:*" or "*" host
// selects the wildcard bindings only, it is not itself a wildcard), except
// the resource name under PatternMatch (see PatternMatch).
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// AnyFilter selects every binding.
var AnyFilter = Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}

// Validate reports why f cannot be used (wrapping ErrInvalid), or nil: an
// UNKNOWN or unknown value in any field, as Kafka refuses.
func (f Filter) Validate() error {
	bad := func(what string, v fmt.Stringer) error {
		return fmt.Errorf("%w: filter has an unknown %s (%s)", ErrInvalid, what, v)
	}
	if f.ResourceType < ResourceAny || f.ResourceType > ResourceUser {
		return bad("resource type", f.ResourceType)
	}
	if f.PatternType < PatternAny || f.PatternType > PatternPrefixed {
		return bad("pattern type", f.PatternType)
	}
	if f.Operation < OpAny || f.Operation > OpTwoPhaseCommit {
		return bad("operation", f.Operation)
	}
	if f.Permission < PermissionAny || f.Permission > PermissionAllow {
		return bad("permission type", f.Permission)
	}
	return nil
}

// Matches reports whether f selects b (Kafka's AclBindingFilter.matches).
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	if f.PatternType != PatternAny && f.PatternType != PatternMatch && f.PatternType != b.PatternType {
		return false
	}
	if f.ResourceName != nil {
		name := *f.ResourceName
		if f.PatternType == PatternMatch {
			switch b.PatternType {
			case PatternLiteral:
				if b.ResourceName != name && b.ResourceName != WildcardName {
					return false
				}
			case PatternPrefixed:
				if !strings.HasPrefix(name, b.ResourceName) {
					return false
				}
			default:
				return false
			}
		} else if name != b.ResourceName {
			return false
		}
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != OpAny && f.Operation != b.Operation {
		return false
	}
	return f.Permission == PermissionAny || f.Permission == b.Permission
}

// ExactFilter is the filter that selects b and nothing else.
func ExactFilter(b Binding) Filter {
	return Filter{
		ResourceType: b.ResourceType, ResourceName: &b.ResourceName, PatternType: b.PatternType,
		Principal: &b.Principal, Host: &b.Host, Operation: b.Operation, Permission: b.Permission,
	}
}

var resourceNames = []string{"UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"}
var patternNames = []string{"UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"}
var operationNames = []string{"UNKNOWN", "ANY", "ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE",
	"CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS", "TWO_PHASE_COMMIT"}
var permissionNames = []string{"UNKNOWN", "ANY", "DENY", "ALLOW"}

func enumName(names []string, v int8) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("UNKNOWN(%d)", v)
}

func (t ResourceType) String() string { return enumName(resourceNames, int8(t)) }
func (p PatternType) String() string  { return enumName(patternNames, int8(p)) }
func (o Operation) String() string    { return enumName(operationNames, int8(o)) }
func (p Permission) String() string   { return enumName(permissionNames, int8(p)) }

// norm folds a name as Kafka's tools accept it: any case, with or without
// '_', '-' or '.' ("describe-configs", "DescribeConfigs").
func norm(s string) string {
	s = strings.NewReplacer("_", "", "-", "", ".", "", " ", "").Replace(s)
	return strings.ToLower(s)
}

func parseEnum(names []string, what, s string) (int8, error) {
	n := norm(s)
	for i, name := range names {
		if i > 0 && norm(name) == n { // UNKNOWN is never a valid input
			return int8(i), nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", what, s)
}

// ParseResourceType, ParsePatternType, ParseOperation and ParsePermission
// read a Kafka name in any case, with or without separators.
func ParseResourceType(s string) (ResourceType, error) {
	v, err := parseEnum(resourceNames, "resource type", s)
	return ResourceType(v), err
}

func ParsePatternType(s string) (PatternType, error) {
	v, err := parseEnum(patternNames, "pattern type", s)
	return PatternType(v), err
}

func ParseOperation(s string) (Operation, error) {
	v, err := parseEnum(operationNames, "operation", s)
	return Operation(v), err
}

func ParsePermission(s string) (Permission, error) {
	v, err := parseEnum(permissionNames, "permission type", s)
	return Permission(v), err
}
