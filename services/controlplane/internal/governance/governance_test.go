package governance

import (
	"testing"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

func request() *adminv1.ChangeRequest {
	pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{FlagConfig: &adminv1.FlagConfigChange{Flag: "f", Config: &manifestv1.FlagConfig{On: true}}}}
	return &adminv1.ChangeRequest{Id: "cr", Change: pc, BaseRevision: 1, AuthorId: "alice", RequiredApprovals: 1, Revision: 1,
		State: adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN, ContentDigest: Digest(pc, 1)}
}

func TestFourEyesRules(t *testing.T) {
	t.Parallel()
	cr := request()
	if err := Approve(cr, "alice", cr.GetContentDigest(), "", nil); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("the author approving: %v, want PermissionDenied", err)
	}
	if err := Approve(cr, "bob", "0000", "", nil); errs.KindOf(err) != errs.FailedPrecondition {
		t.Fatalf("approving another digest: %v, want FailedPrecondition", err)
	}
	if err := Ready(cr); errs.KindOf(err) != errs.FailedPrecondition {
		t.Fatalf("ready without approvals: %v", err)
	}
	if err := Approve(cr, "bob", cr.GetContentDigest(), "ok", nil); err != nil {
		t.Fatal(err)
	}
	if err := Approve(cr, "bob", cr.GetContentDigest(), "again", nil); errs.KindOf(err) != errs.AlreadyExists {
		t.Fatalf("approving twice: %v", err)
	}
	if err := Ready(cr); err != nil {
		t.Fatalf("ready with one approval: %v", err)
	}
	old := cr.GetContentDigest()
	if err := Revise(cr, "bob", 1, nil, 2, ""); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("another member editing: %v", err)
	}
	if err := Revise(cr, "alice", 1, nil, 2, "rebased"); err != nil {
		t.Fatal(err)
	}
	if cr.GetContentDigest() == old || len(cr.GetApprovals()) != 0 || Ready(cr) == nil {
		t.Fatalf("an edit changes the digest and revokes approvals: %v", cr)
	}
	if err := Reject(cr, "alice", "", nil); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("the author rejecting: %v", err)
	}
	if err := Withdraw(cr, "bob"); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("another member withdrawing: %v", err)
	}
	if err := Withdraw(cr, "alice"); err != nil || Approve(cr, "bob", cr.GetContentDigest(), "", nil) == nil {
		t.Fatalf("a withdrawn request cannot be approved: %v", err)
	}
}
