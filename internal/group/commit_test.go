package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// CommitValidated writes only what ValidateCommit accepts, and writes
// while still holding the lock the check was made under, so no member can
// join in between.
func TestCommitValidated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	res := h.form(consumerReq("g", "a"))
	h.stabilize("g", res)

	for _, tc := range []struct {
		name      string
		group     string
		gen       int32
		member    string
		want      error
		wantWrite bool
	}{
		{"admin commit to a group with a member", "g", -1, "", kerr.UnknownMemberID, false},
		{"admin commit to an unknown group", "other", -1, "", nil, true},
		{"the member's commit", "g", 1, res[0].MemberID, nil, true},
		{"empty group id", "", -1, "", kerr.InvalidGroupID, false},
	} {
		wrote, locked := false, false
		err := h.c.CommitValidated(t.Context(), tc.group, tc.gen, tc.member, "", func(metadata.GroupFence) {
			wrote = true
			if h.c.mu.TryLock() {
				h.c.mu.Unlock()
			} else {
				locked = true
			}
		})
		wantErr(t, tc.name, err, tc.want)
		if wrote != tc.wantWrite || wrote && !locked {
			t.Errorf("%s: wrote %v (want %v), under the lock %v", tc.name, wrote, tc.wantWrite, locked)
		}
	}

	// Once the member left, the admin commit is accepted.
	if errs, err := h.c.Leave(t.Context(), "g", []LeaveMember{{MemberID: res[0].MemberID}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	wrote := false
	if err := h.c.CommitValidated(t.Context(), "g", -1, "", "", func(metadata.GroupFence) { wrote = true }); err != nil || !wrote {
		t.Fatalf("admin commit after the member left: %v, wrote %v", err, wrote)
	}
}
