package storetest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// protect turns approvals on in the fixture's environment (emergency off as given).
func (f *fixture) protect(t *testing.T, emergencyOff bool) {
	t.Helper()
	e := must[*adminv1.Environment](t)(f.s.GetEnvironment(f.ctx, eref))
	e.Settings = &adminv1.EnvironmentSettings{ApprovalsRequired: proto.Bool(true), RequiredApprovals: proto.Int32(1), EmergencyOffAllowed: proto.Bool(emergencyOff)}
	must[*adminv1.Environment](t)(f.s.UpdateEnvironment(f.ctx, meta, pref, e, e.GetRevision()))
}

// protectionTests are the store's part of the four-eyes guarantee: inside the
// write's transaction, writes that would change what a protected environment
// serves are refused and change nothing.
var protectionTests = []struct {
	name string
	run  func(t *testing.T, f *fixture, g GovernanceStore)
}{
	{"protection: definition edits that change served values are refused, others go through", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", onConfig())
		f.protect(t, true)
		edit := func(mut func(fl *adminv1.Flag)) error {
			fl := must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, pref, "a"))
			mut(fl)
			_, err := f.s.UpdateFlag(f.ctx, meta, pref, fl, fl.GetRevision(), nil)
			return err
		}
		f.unchanged(t, func() {
			wantKind(t, edit(func(fl *adminv1.Flag) { fl.Variants[0].Value = structpb.NewBoolValue(false) }), errs.FailedPrecondition)
			wantKind(t, edit(func(fl *adminv1.Flag) { fl.Variants[0].Key = "yes" }), errs.FailedPrecondition)
			wantKind(t, edit(func(fl *adminv1.Flag) { fl.ClientVisible = true }), errs.FailedPrecondition)
			_, err := f.s.SetFlagArchived(f.ctx, meta, pref, "a", true, 1)
			wantKind(t, err, errs.FailedPrecondition)
			wantKind(t, f.s.DeleteFlag(f.ctx, meta, pref, "a", 1), errs.FailedPrecondition)
			wantKind(t, f.s.DeleteEnvironment(f.ctx, meta, eref, 2), errs.FailedPrecondition)
			wantKind(t, f.s.DeleteProject(f.ctx, meta, pref, 1), errs.FailedPrecondition)
			wantKind(t, f.s.DeleteOrg(f.ctx, meta, org, 1), errs.FailedPrecondition)
		})
		noErr(t, edit(func(fl *adminv1.Flag) { fl.Description = "documented"; fl.Tags = []string{"ui"} }))
	}},
	{"protection: kill is refused as a whole where emergency off is forbidden", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", onConfig())
		f.protect(t, false)
		f.unchanged(t, func() {
			_, err := g.KillFlag(f.ctx, meta, pref, "a")
			wantKind(t, err, errs.FailedPrecondition)
		})
	}},
	{"protection: turning approvals on fails the schedules made without one, and a due check fails any left", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		sc := must[*adminv1.ScheduledChange](t)(g.CreateScheduledChange(f.ctx, meta, eref, &adminv1.ScheduledChange{Flag: "a",
			Action: adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON, BaseRevision: 1, RunTime: timestamppb.New(now)}, nil))
		f.protect(t, true)
		got := must[*adminv1.ScheduledChange](t)(g.GetScheduledChange(f.ctx, eref, sc.GetId()))
		if got.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_FAILED || got.GetFailureReason() == "" {
			t.Fatalf("schedule after approvals turned on: %v", got)
		}
		if ran := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now.Add(time.Hour), nil)); ran != nil {
			t.Fatalf("a failed schedule ran: %v", ran)
		}
		if c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); c.GetConfig().GetOn() {
			t.Fatalf("the flag changed: %v", c)
		}
	}},
	{"protection: a role change is a new grant, an unchanged role keeps its time; a token records its issuer", func(t *testing.T, f *fixture, g GovernanceStore) {
		m := f.member(t, "dana@example.com")
		scope := &adminv1.Scope{Project: project}
		b1 := must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_VIEWER, Scope: scope}))
		time.Sleep(2 * time.Millisecond)
		b2 := must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_VIEWER, Scope: scope}))
		time.Sleep(2 * time.Millisecond)
		b3 := must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_EDITOR, Scope: scope}))
		if b1.GetGrantTime() == nil || !proto.Equal(b1.GetGrantTime(), b2.GetGrantTime()) || !b3.GetGrantTime().AsTime().After(b1.GetGrantTime().AsTime()) {
			t.Fatalf("grant times: %v %v %v", b1.GetGrantTime(), b2.GetGrantTime(), b3.GetGrantTime())
		}
		tok := must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "t", MemberId: m.Id, IssuerId: "u-admin"}, []byte("hash-of-dana")))
		p := must[*store.Principal](t)(f.s.Authenticate(f.ctx, []byte("hash-of-dana"), time.Now()))
		if tok.GetIssuerId() != "u-admin" || p.Issuer != "u-admin" {
			t.Fatalf("issuer: token %v, principal %q", tok, p.Issuer)
		}
	}},
	{"protection: a segment something already names cannot be created in a protected environment", func(t *testing.T, f *fixture, g GovernanceStore) {
		// A rule naming a missing segment never matches; creating the segment
		// would change what the flag serves.
		f.flag(t, "a", nil)
		cfg := onConfig()
		cfg.Rules = []*manifestv1.Rule{segmentRule("ghost")}
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", cfg, 1, nil))
		f.protect(t, true)
		f.unchanged(t, func() {
			_, err := f.s.CreateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "ghost", Included: []string{"u1"}}, nil)
			wantKind(t, err, errs.FailedPrecondition)
		})
		must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "unused"}, nil))
	}},
}
