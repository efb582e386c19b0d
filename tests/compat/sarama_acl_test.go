package compat

import (
	"slices"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// aclRows flattens sarama's ResourceAcls to sorted strings.
func aclRows(rs []sarama.ResourceAcls) []string {
	var out []string
	for _, r := range rs {
		for _, a := range r.Acls {
			out = append(out, strings.Join([]string{r.ResourceType.String(), r.ResourceName, r.ResourcePatternType.String(),
				a.Principal, a.Host, a.Operation.String(), a.PermissionType.String()}, " "))
		}
	}
	slices.Sort(out)
	return out
}

// TestSaramaACLs creates, lists and deletes ACLs through sarama's
// ClusterAdmin (CreateAcls v1, DescribeAcls and DeleteAcls v2), with the
// real binary on each backend.
func TestSaramaACLs(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			admin, err := sarama.NewClusterAdminFromClient(saramaClient(t, s.KafkaAddr, nil))
			if err != nil {
				t.Fatal(err)
			}
			err = admin.CreateACLs([]*sarama.ResourceAcls{
				{
					Resource: sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: "orders", ResourcePatternType: sarama.AclPatternLiteral},
					Acls: []*sarama.Acl{
						{Principal: "User:alice", Host: "*", Operation: sarama.AclOperationRead, PermissionType: sarama.AclPermissionAllow},
						{Principal: "User:mallory", Host: "10.0.0.9", Operation: sarama.AclOperationAll, PermissionType: sarama.AclPermissionDeny},
					},
				},
				{
					Resource: sarama.Resource{ResourceType: sarama.AclResourceGroup, ResourceName: "app-", ResourcePatternType: sarama.AclPatternPrefixed},
					Acls:     []*sarama.Acl{{Principal: "User:alice", Host: "*", Operation: sarama.AclOperationRead, PermissionType: sarama.AclPermissionAllow}},
				},
			})
			if err != nil {
				t.Fatalf("CreateACLs: %v", err)
			}
			all := sarama.AclFilter{ResourceType: sarama.AclResourceAny, ResourcePatternTypeFilter: sarama.AclPatternAny,
				Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
			listed, err := admin.ListAcls(all)
			if err != nil {
				t.Fatalf("ListAcls: %v", err)
			}
			want := []string{
				"Group app- Prefixed User:alice * Read Allow",
				"Topic orders Literal User:alice * Read Allow",
				"Topic orders Literal User:mallory 10.0.0.9 All Deny",
			}
			if got := aclRows(listed); !slices.Equal(got, want) {
				t.Fatalf("ListAcls:\n%v\nwant\n%v", got, want)
			}
			// MATCH: the bindings that apply to the group app-1.
			name := "app-1"
			match := sarama.AclFilter{ResourceType: sarama.AclResourceGroup, ResourceName: &name, ResourcePatternTypeFilter: sarama.AclPatternMatch,
				Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
			if listed, err := admin.ListAcls(match); err != nil || len(aclRows(listed)) != 1 {
				t.Fatalf("ListAcls MATCH app-1: %v, %v", aclRows(listed), err)
			}

			mallory := "User:mallory"
			deny := all
			deny.Principal = &mallory
			deleted, err := admin.DeleteACL(deny, false)
			if err != nil {
				t.Fatalf("DeleteACL: %v", err)
			}
			if len(deleted) != 1 || deleted[0].Principal != mallory || deleted[0].ResourceName != "orders" || deleted[0].Err != sarama.ErrNoError {
				t.Fatalf("DeleteACL matched %+v", deleted)
			}
			listed, err = admin.ListAcls(all)
			if err != nil {
				t.Fatal(err)
			}
			if got := aclRows(listed); !slices.Equal(got, want[:2]) {
				t.Fatalf("after the delete:\n%v\nwant\n%v", got, want[:2])
			}
		})
	}
}
