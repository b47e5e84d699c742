package governance

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

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
	if err := Approve(cr, Approver{Member: "alice"}, cr.GetContentDigest(), "", nil); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("the author approving: %v, want PermissionDenied", err)
	}
	if err := Approve(cr, Approver{Member: "bob"}, "0000", "", nil); errs.KindOf(err) != errs.FailedPrecondition {
		t.Fatalf("approving another digest: %v, want FailedPrecondition", err)
	}
	if err := Ready(cr); errs.KindOf(err) != errs.FailedPrecondition {
		t.Fatalf("ready without approvals: %v", err)
	}
	if err := Approve(cr, Approver{Member: "bob"}, cr.GetContentDigest(), "ok", nil); err != nil {
		t.Fatal(err)
	}
	if err := Approve(cr, Approver{Member: "bob"}, cr.GetContentDigest(), "again", nil); errs.KindOf(err) != errs.AlreadyExists {
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
	if err := Withdraw(cr, "alice"); err != nil || Approve(cr, Approver{Member: "bob"}, cr.GetContentDigest(), "", nil) == nil {
		t.Fatalf("a withdrawn request cannot be approved: %v", err)
	}
}

// allowed stands for "no error" in tables of error kinds.
const allowed errs.Kind = -1

func TestApprovalsArePersonalNotPerToken(t *testing.T) {
	t.Parallel()
	opened := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	settings := func() *adminv1.ChangeRequest {
		cr := request()
		cr.Change = SettingsChange(&adminv1.EnvironmentSettings{})
		cr.ContentDigest = Digest(cr.Change, 1)
		cr.CreateTime = timestamppb.New(opened)
		return cr
	}
	tests := []struct {
		name string
		cr   *adminv1.ChangeRequest
		a    Approver
		want errs.Kind
	}{
		{"a token the author minted for bob cannot approve", request(), Approver{Member: "bob", Issuer: "alice"}, errs.PermissionDenied},
		{"bob's own token approves", request(), Approver{Member: "bob", Issuer: "bob"}, allowed},
		{"a token a third admin minted for bob approves", request(), Approver{Member: "bob", Issuer: "carol"}, allowed},
		{"the member who minted the author's token cannot approve", func() *adminv1.ChangeRequest { cr := request(); cr.AuthorIssuerId = "carol"; return cr }(), Approver{Member: "carol"}, errs.PermissionDenied},
		{"weakening settings needs an admin", settings(), Approver{Member: "bob"}, errs.PermissionDenied},
		{"another admin approves weakening", settings(), Approver{Member: "bob", Admin: true}, allowed},
		{"rights granted after the request was opened do not count", settings(), Approver{Member: "bob", Admin: true, Since: opened.Add(time.Second)}, errs.PermissionDenied},
		{"rights granted before the request was opened count", settings(), Approver{Member: "bob", Admin: true, Since: opened.Add(-time.Second)}, allowed},
	}
	for _, tt := range tests {
		err := Approve(tt.cr, tt.a, tt.cr.GetContentDigest(), "", nil)
		got := allowed
		if err != nil {
			got = errs.KindOf(err)
		}
		if got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := MayApply(request(), Approver{Member: "bob", Issuer: "alice"}); errs.KindOf(err) != errs.PermissionDenied {
		t.Errorf("applying with a token the author minted: %v", err)
	}
	if err := MayApply(request(), Approver{Member: "alice"}); err != nil {
		t.Errorf("the author applying: %v", err)
	}
}

func TestWeakens(t *testing.T) {
	t.Parallel()
	s := func(on bool, n int32, em bool) *adminv1.EnvironmentSettings {
		return &adminv1.EnvironmentSettings{ApprovalsRequired: &on, RequiredApprovals: &n, EmergencyOffAllowed: &em}
	}
	tests := []struct {
		name      string
		cur, next *adminv1.EnvironmentSettings
		want      bool
	}{
		{"turning approvals off", s(true, 1, false), s(false, 1, false), true},
		{"fewer approvals", s(true, 2, false), s(true, 1, false), true},
		{"allowing emergency off", s(true, 1, false), s(true, 1, true), true},
		{"turning approvals on", s(false, 1, true), s(true, 1, true), false},
		{"more approvals", s(true, 1, true), s(true, 2, true), false},
		{"forbidding emergency off", s(true, 1, true), s(true, 1, false), false},
		{"anything in an unprotected environment", s(false, 3, false), s(false, 1, true), false},
	}
	for _, tt := range tests {
		if got := Weakens(tt.cur, tt.next); got != tt.want {
			t.Errorf("%s: Weakens = %v, want %v", tt.name, got, tt.want)
		}
	}
}
