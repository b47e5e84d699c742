package webhook

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// TestMembershipChangesAreAnnounced: who may act (members, role bindings, API
// tokens) is announced organization-wide; other entries outside a project are not.
func TestMembershipChangesAreAnnounced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resource, action, wantType string
		ok                         bool
	}{
		{"members/m1", "member.create", "member.created", true},
		{"members/m1/bindings/projects/web", "member.role_grant", "member.role_granted", true},
		{"members/m1/bindings/organization", "member.role_revoke", "member.role_revoked", true},
		{"api_tokens/t1", "api_token.create", "api_token.created", true},
		{"organizations/acme", "organization.update", "", false},
	}
	for _, tt := range tests {
		typ, _, body, ok := Render(&adminv1.AuditEntry{Id: "e", Resource: tt.resource, Action: tt.action, Time: timestamppb.Now()}, "acme")
		if ok != tt.ok || typ != tt.wantType {
			t.Errorf("%s %s: type %q ok %v, want %q %v", tt.resource, tt.action, typ, ok, tt.wantType, tt.ok)
			continue
		}
		if ok {
			var ev Event
			if err := json.Unmarshal(body, &ev); err != nil || ev.Org != "acme" || ev.Project != "" || ev.Resource != tt.resource {
				t.Errorf("%s: body %s (%v)", tt.resource, body, err)
			}
		}
	}
}

// TestReleasePlanEventsAreAnnouncedAndAutomaticOnesMarked: a plan's changes are
// announced in its flag's delivery order, and what the control plane did by
// itself (a guardrail's rollback or pause) carries "automatic": true.
func TestReleasePlanEventsAreAnnouncedAndAutomaticOnesMarked(t *testing.T) {
	t.Parallel()
	const res = "projects/web/environments/production/flags/checkout/release-plans/p1"
	tests := []struct {
		action, wantType string
		automatic        bool
	}{
		{"release_plan.create", "release_plan.created", false},
		{"release_plan.start", "release_plan.started", false},
		{"release_plan.advance", "release_plan.advanced", false},
		{"release_plan.complete", "release_plan.completed", false},
		{"release_plan.rollback", "release_plan.rolled_back", false},
		{"release_plan.auto_rollback", "release_plan.rolled_back_automatically", true},
		{"release_plan.auto_pause", "release_plan.paused_automatically", true},
	}
	for _, tt := range tests {
		typ, order, body, ok := Render(&adminv1.AuditEntry{Id: "e", Resource: res, Action: tt.action, ActorId: "system:release", Time: timestamppb.Now()}, "acme")
		var ev Event
		if err := json.Unmarshal(body, &ev); !ok || err != nil || typ != tt.wantType || order != "flag:checkout" ||
			ev.Automatic != tt.automatic || ev.Environment != "production" {
			t.Errorf("%s: type %q order %q body %s, want %q automatic %v", tt.action, typ, order, body, tt.wantType, tt.automatic)
		}
	}
}
