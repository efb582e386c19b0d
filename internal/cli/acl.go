package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// The acl commands manage Kafka ACLs with rpk's flags (rpk security acl
// create / list / delete): like the transaction commands they speak the
// Kafka protocol through franz-go's kadm (CreateAcls, DescribeAcls,
// DeleteAcls) to --brokers, so they work against any Kafka-compatible
// server, and StreamHouse has one source of ACL truth on the wire.

const aclLong = `Manages Kafka ACLs through the Kafka protocol (CreateAcls, DescribeAcls,
DeleteAcls, as rpk security acl and kafka-acls.sh), at --brokers (default
` + defaultBrokers + `).

An ACL allows or denies a principal (User:NAME; a bare NAME means
User:NAME, and User:* is everyone), connecting from a host (an IP address,
or * for any), an operation on a resource: a topic, a group, the cluster,
or a transactional ID, named literally or by prefix
(--resource-pattern-type prefixed); the literal name * is every resource
of its type. Create makes every combination of the principals, hosts,
resources and operations given.

Operations: all, read, write, create, delete, alter, describe,
cluster_action, describe_configs, alter_configs, idempotent_write. READ,
WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
DESCRIBE_CONFIGS; a DENY wins over any ALLOW. ACLs are stored (and listed)
whether the server enforces them (AUTH_ENABLED) or not.`

// aclRow is one ACL as the commands print it.
type aclRow struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
	Error        string `json:"error,omitempty"`
}

func newACLRow(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType, err error, msg string) aclRow {
	r := aclRow{
		Principal: principal, Host: host, ResourceType: acl.ResourceType(rt).String(), ResourceName: name,
		PatternType: acl.PatternType(pt).String(), Operation: acl.Operation(op).String(), Permission: acl.Permission(perm).String(),
	}
	if err != nil {
		r.Error = err.Error()
		if msg != "" && !strings.Contains(r.Error, msg) {
			r.Error += ": " + msg
		}
	}
	return r
}

func compareACLRows(a, b aclRow) int {
	return cmp.Or(strings.Compare(a.ResourceType, b.ResourceType), strings.Compare(a.ResourceName, b.ResourceName),
		strings.Compare(a.PatternType, b.PatternType), strings.Compare(a.Principal, b.Principal), strings.Compare(a.Host, b.Host),
		strings.Compare(a.Operation, b.Operation), strings.Compare(a.Permission, b.Permission))
}

var aclHeader = []string{"PRINCIPAL", "HOST", "RESOURCE-TYPE", "RESOURCE-NAME", "PATTERN", "OPERATION", "PERMISSION"}

func (inv *invocation) printACLs(rows []aclRow, none string) error {
	p := inv.out()
	if p.json {
		if rows == nil {
			rows = []aclRow{}
		}
		return p.value(rows)
	}
	if len(rows) == 0 {
		return p.textf("%s", none)
	}
	withErr := slices.ContainsFunc(rows, func(r aclRow) bool { return r.Error != "" })
	header := aclHeader
	if withErr {
		header = append(slices.Clone(aclHeader), "ERROR")
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{r.Principal, r.Host, r.ResourceType, r.ResourceName, r.PatternType, r.Operation, r.Permission}
		if withErr {
			out[i] = append(out[i], r.Error)
		}
	}
	return p.table(header, out)
}

// aclFlags are the flags the three commands share.
type aclFlags struct {
	inv         *invocation // its TLS and login options
	brokers     string
	timeout     time.Duration
	allow, deny []string // principals
	allowHosts  []string
	denyHosts   []string
	ops         []string
	topics      []string
	groups      []string
	cluster     bool
	txnIDs      []string
	pattern     string
	all         bool // delete: every resource
	dryRun      bool // delete: list only
}

func (f *aclFlags) add(cmd *cobra.Command, filter bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.brokers, "brokers", defaultBrokers, "bootstrap brokers, host:port[,host:port...]")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.StringSliceVar(&f.allow, "allow-principal", nil, "principal to allow (User:NAME, or NAME; User:* is everyone); repeatable or comma-separated")
	fs.StringSliceVar(&f.deny, "deny-principal", nil, "principal to deny; repeatable or comma-separated")
	fs.StringSliceVar(&f.allowHosts, "allow-host", nil, "host (IP address or *) the allowed principals connect from; default *")
	fs.StringSliceVar(&f.denyHosts, "deny-host", nil, "host (IP address or *) the denied principals connect from; default *")
	fs.StringSliceVar(&f.ops, "operation", nil, "operation (all, read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write); repeatable or comma-separated")
	fs.StringSliceVar(&f.topics, "topic", nil, "topic name (or prefix); repeatable or comma-separated")
	fs.StringSliceVar(&f.groups, "group", nil, "consumer group ID (or prefix); repeatable or comma-separated")
	fs.BoolVar(&f.cluster, "cluster", false, "the cluster resource (kafka-cluster)")
	fs.StringSliceVar(&f.txnIDs, "transactional-id", nil, "transactional ID (or prefix); repeatable or comma-separated")
	ops := []string{"all", "read", "write", "create", "delete", "alter", "describe", "cluster_action", "describe_configs", "alter_configs", "idempotent_write"}
	if filter {
		fs.StringVar(&f.pattern, "resource-pattern-type", "any", "how resource names match: any (literal and prefixed ACLs of the name), match (every ACL that applies to the name), literal or prefixed")
		setFlagCompletion(cmd, "resource-pattern-type", fixedCompletions("any", "match", "literal", "prefixed"))
		ops = append(ops, "any")
	} else {
		fs.StringVar(&f.pattern, "resource-pattern-type", "literal", "literal (the exact name; * is every name) or prefixed (every name starting with it)")
		setFlagCompletion(cmd, "resource-pattern-type", fixedCompletions("literal", "prefixed"))
	}
	setFlagCompletion(cmd, "operation", fixedCompletions(ops...))
}

func (f *aclFlags) hasResource() bool {
	return len(f.topics)+len(f.groups)+len(f.txnIDs) > 0 || f.cluster
}

// builder turns the flags into kadm's builder: principals, hosts,
// resources, operations and pattern.
func (f *aclFlags) builder(filter bool) (*kadm.ACLBuilder, error) {
	var ops []kadm.ACLOperation
	for _, s := range f.ops {
		op, err := acl.ParseOperation(s)
		if err != nil || (!filter && op == acl.OpAny) {
			return nil, usagef("--operation %q: not one of all, read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write", s)
		}
		ops = append(ops, kmsg.ACLOperation(op))
	}
	pt, err := acl.ParsePatternType(f.pattern)
	if err != nil || (!filter && pt != acl.PatternLiteral && pt != acl.PatternPrefixed) {
		want := "literal or prefixed"
		if filter {
			want = "any, match, literal or prefixed"
		}
		return nil, usagef("--resource-pattern-type %q: not %s", f.pattern, want)
	}
	if len(f.allowHosts) > 0 && len(f.allow) == 0 && !filter {
		return nil, usagef("--allow-host needs --allow-principal")
	}
	if len(f.denyHosts) > 0 && len(f.deny) == 0 && !filter {
		return nil, usagef("--deny-host needs --deny-principal")
	}
	qualify := func(ps []string) []string {
		out := make([]string, 0, len(ps))
		for _, p := range ps {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, acl.QualifyPrincipal(p))
			}
		}
		return out
	}
	allow, deny := qualify(f.allow), qualify(f.deny)
	b := kadm.NewACLs().ResourcePatternType(kadm.ACLPattern(pt))
	if !filter {
		b.Allow(allow...).AllowHosts(f.allowHosts...).Deny(deny...).DenyHosts(f.denyHosts...).
			MaybeTopics(f.topics...).MaybeGroups(f.groups...).MaybeClusters(f.cluster).MaybeTransactionalIDs(f.txnIDs...).
			Operations(ops...)
		return b, nil
	}
	// Filters: nothing given means anything; principals without hosts
	// match any host, hosts without principals any principal.
	switch {
	case len(allow)+len(deny)+len(f.allowHosts)+len(f.denyHosts) == 0:
		b.Allow().AllowHosts().Deny().DenyHosts()
	default:
		side := func(ps, hosts []string, set, setHosts func(...string) *kadm.ACLBuilder, maybe, maybeHosts func(...string) *kadm.ACLBuilder) {
			switch {
			case len(ps) == 0 && len(hosts) == 0:
				maybe()
				maybeHosts()
			default:
				set(ps...)
				setHosts(hosts...)
			}
		}
		side(allow, f.allowHosts, b.Allow, b.AllowHosts, b.MaybeAllow, b.MaybeAllowHosts)
		side(deny, f.denyHosts, b.Deny, b.DenyHosts, b.MaybeDeny, b.MaybeDenyHosts)
	}
	if f.hasResource() {
		b.MaybeTopics(f.topics...).MaybeGroups(f.groups...).MaybeClusters(f.cluster).MaybeTransactionalIDs(f.txnIDs...)
	} else {
		b.AnyResource()
	}
	b.Operations(ops...)
	return b, nil
}

// run connects and calls fn with a bounded context.
func (f *aclFlags) run(cmd *cobra.Command, fn func(ctx context.Context, adm *kadm.Client) error) error {
	if f.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	opts, err := f.inv.kafkaOpts()
	if err != nil {
		return err
	}
	adm, closeFn, err := kafkaAdmin(f.brokers, opts...)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, adm)
}

// describe lists the ACLs b selects, each once.
func describeACLs(ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) ([]aclRow, error) {
	rs, err := adm.DescribeACLs(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	var rows []aclRow
	for _, r := range rs {
		if r.Err != nil {
			return nil, fmt.Errorf("describe ACLs: %w%s", r.Err, msgSuffix(r.ErrMessage))
		}
		for _, d := range r.Described {
			rows = append(rows, newACLRow(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission, nil, ""))
		}
	}
	slices.SortFunc(rows, compareACLRows)
	return slices.Compact(rows), nil
}

func msgSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

func (inv *invocation) aclCmd() *cobra.Command {
	cf := aclFlags{inv: inv}
	create := &cobra.Command{
		Use:   "create --allow-principal|--deny-principal P --operation OP --topic|--group|--cluster|--transactional-id NAME",
		Short: "Create ACLs: every combination of the principals, hosts, resources and operations given",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cf.allow)+len(cf.deny) == 0 {
				return usagef("%s: name a principal (--allow-principal or --deny-principal)", cmdPath(cmd))
			}
			if !cf.hasResource() {
				return usagef("%s: name a resource (--topic, --group, --cluster or --transactional-id)", cmdPath(cmd))
			}
			if len(cf.ops) == 0 {
				return usagef("%s: name an operation (--operation)", cmdPath(cmd))
			}
			b, err := cf.builder(false)
			if err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, adm *kadm.Client) error {
				rs, err := adm.CreateACLs(ctx, b)
				if err != nil {
					return fmt.Errorf("create ACLs: %w", err)
				}
				rows := make([]aclRow, len(rs))
				failed := 0
				for i, r := range rs {
					rows[i] = newACLRow(r.Type, r.Name, r.Pattern, r.Principal, r.Host, r.Operation, r.Permission, r.Err, r.ErrMessage)
					if r.Err != nil {
						failed++
					}
				}
				if err := inv.printACLs(rows, "No ACLs created."); err != nil {
					return err
				}
				if failed > 0 {
					return fmt.Errorf("create ACLs: %d of %d refused", failed, len(rows))
				}
				return nil
			})
		},
	}
	cf.add(create, false)

	lf := aclFlags{inv: inv}
	list := &cobra.Command{
		Use:     "list [--topic|--group|--cluster|--transactional-id NAME] [--allow-principal|--deny-principal P] [--operation OP]",
		Aliases: []string{"ls"},
		Short:   "List ACLs, all or those matching the flags",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := lf.builder(true)
			if err != nil {
				return err
			}
			return lf.run(cmd, func(ctx context.Context, adm *kadm.Client) error {
				rows, err := describeACLs(ctx, adm, b)
				if err != nil {
					return err
				}
				return inv.printACLs(rows, "No ACLs.")
			})
		},
	}
	lf.add(list, true)

	df := aclFlags{inv: inv}
	del := &cobra.Command{
		Use:   "delete {--topic|--group|--cluster|--transactional-id NAME | --all} [--allow-principal|--deny-principal P] [--operation OP] [--dry-run]",
		Short: "Delete the ACLs matching the flags, and show them",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case df.all && df.hasResource():
				return usagef("%s: --all names every resource; give it or resource flags, not both", cmdPath(cmd))
			case !df.all && !df.hasResource() && len(df.allow)+len(df.deny)+len(df.ops) == 0:
				return usagef("%s: name what to delete (--topic, --group, --cluster, --transactional-id, a principal or an operation), or --all", cmdPath(cmd))
			}
			b, err := df.builder(true)
			if err != nil {
				return err
			}
			return df.run(cmd, func(ctx context.Context, adm *kadm.Client) error {
				if df.dryRun {
					rows, err := describeACLs(ctx, adm, b)
					if err != nil {
						return err
					}
					return inv.printACLs(rows, "No ACLs match.")
				}
				rs, err := adm.DeleteACLs(ctx, b)
				if err != nil {
					return fmt.Errorf("delete ACLs: %w", err)
				}
				var rows []aclRow
				var failed []string
				for _, r := range rs {
					if r.Err != nil {
						failed = append(failed, r.Err.Error()+msgSuffix(r.ErrMessage))
						continue
					}
					for _, d := range r.Deleted {
						rows = append(rows, newACLRow(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission, d.Err, d.ErrMessage))
					}
				}
				slices.SortFunc(rows, compareACLRows)
				if err := inv.printACLs(slices.Compact(rows), "No ACLs matched; nothing deleted."); err != nil {
					return err
				}
				if len(failed) > 0 {
					return fmt.Errorf("delete ACLs: %s", strings.Join(failed, "; "))
				}
				return nil
			})
		},
	}
	df.add(del, true)
	del.Flags().BoolVar(&df.all, "all", false, "every resource (with the other flags narrowing by principal, host or operation)")
	del.Flags().BoolVar(&df.dryRun, "dry-run", false, "only list what would be deleted")

	for _, c := range []*cobra.Command{create, list, del} {
		setFlagCompletion(c, "topic", inv.completeNames("topic", true))
		setFlagCompletion(c, "group", inv.completeNames("group", true))
	}
	c := group("acl", "Manage Kafka ACLs (create, list, delete)", create, list, del)
	c.Long = aclLong
	return c
}
