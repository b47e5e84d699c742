package storetest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// GovernanceStore is a backend with the governance surface.
type GovernanceStore interface {
	store.Store
	store.Governance
}

// RunGovernance runs the governance conformance tests (change requests,
// schedules, kill, webhook queue) against the backend open returns; the store
// must implement store.Governance.
func RunGovernance(t *testing.T, open Opener) {
	t.Helper()
	for _, tc := range append(governanceTests, protectionTests...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ok := open(t).(GovernanceStore)
			if !ok {
				t.Fatal("the store does not implement store.Governance")
			}
			tc.run(t, newFixture(t, s), s)
		})
	}
}

func flagChange(flag string, cfg *manifestv1.FlagConfig) *adminv1.ProposedChange {
	return &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{FlagConfig: &adminv1.FlagConfigChange{Flag: flag, Config: cfg}}}
}

func ready(*adminv1.ChangeRequest) error { return nil }

func actions(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	es := f.audit(t, org)
	var out []string
	for i := 0; i < n && i < len(es); i++ {
		out = append(out, es[i].GetAction())
	}
	return out
}

var governanceTests = []struct {
	name string
	run  func(t *testing.T, f *fixture, g GovernanceStore)
}{
	{"change request: applying performs the change and both audit entries in one write", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		cr := must[*adminv1.ChangeRequest](t)(g.CreateChangeRequest(f.ctx, meta, eref, &adminv1.ChangeRequest{Change: flagChange("a", onConfig()), BaseRevision: 1, AuthorId: "u-1"}))
		if cr.GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN || len(cr.GetDiff()) == 0 || cr.GetRevision() != 1 {
			t.Fatalf("created: %v", cr)
		}
		if got := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); got.GetRevision() != 1 {
			t.Fatalf("a change request changes nothing: %v", got)
		}
		out := must[*adminv1.ChangeRequest](t)(g.ApplyChangeRequest(f.ctx, meta, eref, cr.GetId(), ready, nil))
		if out.GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_APPLIED {
			t.Fatalf("applied: %v", out)
		}
		if got := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); !got.GetConfig().GetOn() || got.GetRevision() != 2 {
			t.Fatalf("config after apply: %v", got)
		}
		if diff := diff([]string{"change_request.apply", "flag_config.update", "change_request.create"}, actions(t, f, 3)); diff != "" {
			t.Fatalf("audit (-want +got):\n%s", diff)
		}
	}},
	{"change request: a stale base revision refuses apply and changes nothing", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		cr := must[*adminv1.ChangeRequest](t)(g.CreateChangeRequest(f.ctx, meta, eref, &adminv1.ChangeRequest{Change: flagChange("a", onConfig()), BaseRevision: 1, AuthorId: "u-1"}))
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", &manifestv1.FlagConfig{OffVariant: "on"}, 1, nil))
		f.unchanged(t, func() {
			_, err := g.ApplyChangeRequest(f.ctx, meta, eref, cr.GetId(), ready, nil)
			wantKind(t, err, errs.Aborted)
		})
		if got := must[*adminv1.ChangeRequest](t)(g.GetChangeRequest(f.ctx, eref, cr.GetId())); got.GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN {
			t.Fatalf("still open: %v", got)
		}
	}},
	{"change request: a refused edit or apply callback writes nothing", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		cr := must[*adminv1.ChangeRequest](t)(g.CreateChangeRequest(f.ctx, meta, eref, &adminv1.ChangeRequest{Change: flagChange("a", onConfig()), BaseRevision: 1, AuthorId: "u-1"}))
		f.unchanged(t, func() {
			_, err := g.EditChangeRequest(f.ctx, meta, eref, cr.GetId(), "change_request.approve", func(*adminv1.ChangeRequest) error {
				return errs.E(errs.PermissionDenied, "no")
			})
			wantKind(t, err, errs.PermissionDenied)
			_, err = g.ApplyChangeRequest(f.ctx, meta, eref, cr.GetId(), func(*adminv1.ChangeRequest) error { return errs.E(errs.FailedPrecondition, "not approved") }, nil)
			wantKind(t, err, errs.FailedPrecondition)
		})
		ed := must[*adminv1.ChangeRequest](t)(g.EditChangeRequest(f.ctx, meta, eref, cr.GetId(), "change_request.comment", func(c *adminv1.ChangeRequest) error {
			c.Comments = append(c.Comments, &adminv1.ChangeRequestComment{MemberId: "u-2", Text: "hi"})
			return nil
		}))
		if ed.GetRevision() != 2 || len(ed.GetComments()) != 1 {
			t.Fatalf("edited: %v", ed)
		}
		l, _ := must2[[]*adminv1.ChangeRequest](t)(g.ListChangeRequests(f.ctx, eref, store.ChangeRequestFilter{State: adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN}, store.Page{}))
		if len(l) != 1 {
			t.Fatalf("list open: %v", l)
		}
	}},
	{"schedule: a due schedule runs exactly once", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		sc := must[*adminv1.ScheduledChange](t)(g.CreateScheduledChange(f.ctx, meta, eref, &adminv1.ScheduledChange{Flag: "a",
			Action: adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON, BaseRevision: 1, RunTime: timestamppb.New(now)}, nil))
		if none := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now.Add(-time.Second), nil)); none != nil {
			t.Fatalf("ran before its time: %v", none)
		}
		ran := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now, nil))
		if ran.GetId() != sc.GetId() || ran.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_APPLIED {
			t.Fatalf("ran: %v", ran)
		}
		if again := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now.Add(time.Hour), nil)); again != nil {
			t.Fatalf("ran twice: %v", again)
		}
		if got := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); !got.GetConfig().GetOn() || got.GetRevision() != 2 {
			t.Fatalf("config: %v", got)
		}
	}},
	{"schedule: a stale base revision fails visibly instead of overwriting", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		sc := must[*adminv1.ScheduledChange](t)(g.CreateScheduledChange(f.ctx, meta, eref, &adminv1.ScheduledChange{Flag: "a",
			Action: adminv1.ScheduledAction_SCHEDULED_ACTION_SET_CONFIG, Config: onConfig(), BaseRevision: 1, RunTime: timestamppb.New(now)}, nil))
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", &manifestv1.FlagConfig{OffVariant: "on"}, 1, nil))
		out := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now, nil))
		if out.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_FAILED || out.GetFailureReason() == "" {
			t.Fatalf("failed visibly: %v", out)
		}
		if got := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); got.GetRevision() != 2 || got.GetConfig().GetOn() {
			t.Fatalf("nothing overwritten: %v", got)
		}
		if got := must[*adminv1.ScheduledChange](t)(g.GetScheduledChange(f.ctx, eref, sc.GetId())); got.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_FAILED {
			t.Fatalf("stored state: %v", got)
		}
		if a := actions(t, f, 1); a[0] != "schedule.fail" {
			t.Fatalf("audited: %v", a)
		}
	}},
	{"schedule: awaiting approval it does not run until its change request is applied", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", nil)
		now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		sc := must[*adminv1.ScheduledChange](t)(g.CreateScheduledChange(f.ctx, meta, eref, &adminv1.ScheduledChange{Flag: "a",
			Action: adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON, RunTime: timestamppb.New(now)},
			&adminv1.ChangeRequest{Change: flagChange("a", onConfig()), AuthorId: "u-1"}))
		if sc.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL || sc.GetChangeRequestId() == "" {
			t.Fatalf("created: %v", sc)
		}
		if none := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now, nil)); none != nil {
			t.Fatalf("ran without approval: %v", none)
		}
		must[*adminv1.ChangeRequest](t)(g.ApplyChangeRequest(f.ctx, meta, eref, sc.GetChangeRequestId(), ready, nil))
		if got := must[*adminv1.ScheduledChange](t)(g.GetScheduledChange(f.ctx, eref, sc.GetId())); got.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING {
			t.Fatalf("approved: %v", got)
		}
		if fc := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); fc.GetRevision() != 1 {
			t.Fatalf("approving a schedule does not apply it early: %v", fc)
		}
		if ran := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now, nil)); ran.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_APPLIED {
			t.Fatalf("ran: %v", ran)
		}
		c2 := must[*adminv1.ScheduledChange](t)(g.CreateScheduledChange(f.ctx, meta, eref, &adminv1.ScheduledChange{Flag: "a",
			Action: adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_OFF, RunTime: timestamppb.New(now)}, nil))
		if got := must[*adminv1.ScheduledChange](t)(g.CancelScheduledChange(f.ctx, meta, eref, c2.GetId())); got.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_CANCELLED {
			t.Fatalf("cancelled: %v", got)
		}
		if none := must[*adminv1.ScheduledChange](t)(g.RunDueScheduledChange(f.ctx, meta, now, nil)); none != nil {
			t.Fatalf("a cancelled schedule ran: %v", none)
		}
	}},
	{"kill: every environment is turned off in one write", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "a", onConfig())
		out := must[[]*adminv1.FlagEnvironmentConfig](t)(g.KillFlag(f.ctx, store.WriteMeta{ActorID: "u-1", Action: "flag.kill", Comment: "incident"}, pref, "a"))
		if len(out) != 3 {
			t.Fatalf("configs: %v", out)
		}
		for _, c := range out {
			if c.GetConfig().GetOn() {
				t.Fatalf("still on: %v", c)
			}
		}
		if diff := diff([]string{"flag.kill", "flag.kill", "flag.kill"}, actions(t, f, 3)); diff != "" {
			t.Fatalf("audit (-want +got):\n%s", diff)
		}
	}},
	{"webhooks: deliveries cover every committed change after the webhook's creation, in order", func(t *testing.T, f *fixture, g GovernanceStore) {
		f.flag(t, "before", nil)
		w, secret, err := g.CreateWebhook(f.ctx, meta, pref, &adminv1.Webhook{Url: "http://127.0.0.1:1/hook", MaxFailures: 3}, "s3cret")
		noErr(t, err)
		if secret != "s3cret" || !w.GetEnabled() {
			t.Fatalf("created: %v %q", w, secret)
		}
		f.flag(t, "a", nil)
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		render := func(e *adminv1.AuditEntry, _ string) (string, string, []byte, bool) {
			return e.GetAction(), "k", []byte(e.GetId()), true
		}
		n, err := g.EnqueueWebhookDeliveries(f.ctx, 100, render)
		noErr(t, err)
		if n != 3 { // webhook.create, flag.create, flag_config.update
			t.Fatalf("consumed %d entries", n)
		}
		if n, err := g.EnqueueWebhookDeliveries(f.ctx, 100, render); err != nil || n != 0 {
			t.Fatalf("second pass consumed %d, %v", n, err)
		}
		now := time.Now()
		ds, err := g.ClaimWebhookDeliveries(f.ctx, now, time.Minute, 10)
		noErr(t, err)
		if len(ds) != 1 || ds[0].EventType != "webhook.create" || ds[0].Secret != "s3cret" {
			t.Fatalf("only the head of the ordered queue is claimed: %+v", ds)
		}
		noErr(t, g.CompleteWebhookDelivery(f.ctx, store.DeliveryResult{ID: ds[0].ID, WebhookID: w.GetId(), OK: true, StatusCode: 200, Now: now}))
		ds, err = g.ClaimWebhookDeliveries(f.ctx, now, time.Minute, 10)
		noErr(t, err)
		if len(ds) != 1 || ds[0].EventType != "flag.create" {
			t.Fatalf("next: %+v", ds)
		}
		log, _ := must2[[]*adminv1.WebhookDelivery](t)(g.ListWebhookDeliveries(f.ctx, pref, w.GetId(), store.Page{}))
		if len(log) != 3 || log[2].GetState() != adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_SUCCEEDED {
			t.Fatalf("delivery log (newest first): %v", log)
		}
		// Membership is organization-wide: announced to every project's webhooks.
		m := f.member(t, "erin@example.com")
		must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_ADMIN, Scope: &adminv1.Scope{}}))
		if n, err := g.EnqueueWebhookDeliveries(f.ctx, 100, render); err != nil || n != 2 {
			t.Fatalf("membership entries consumed %d, %v", n, err)
		}
		log, _ = must2[[]*adminv1.WebhookDelivery](t)(g.ListWebhookDeliveries(f.ctx, pref, w.GetId(), store.Page{}))
		if len(log) != 5 || log[0].GetEventType() != "member.role_grant" || log[1].GetEventType() != "member.create" {
			t.Fatalf("membership deliveries (newest first): %v", log)
		}
	}},
}

func must2[T any](t *testing.T) func(v T, next string, err error) (T, string) {
	t.Helper()
	return func(v T, next string, err error) (T, string) {
		t.Helper()
		noErr(t, err)
		return v, next
	}
}
