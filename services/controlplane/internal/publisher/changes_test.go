package publisher

import (
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// The outbox rows the store writes (their audit resource paths) narrow to the
// entries a manifest holds; anything else reads the environment whole.
func TestOutboxRowsNarrowToTheEntriesTheyName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		resource, kind, key string
	}{
		{"projects/web/flags/new-ui", "flag", "new-ui"},
		{"projects/web/environments/production/flags/new-ui", "flag", "new-ui"},
		{"projects/web/environments/production/flags/new-ui/release-plans/p1", "flag", "new-ui"},
		{"projects/web/environments/production/segments/beta", "segment", "beta"},
		{"projects/web/environments/production/sdk_keys/k1", "sdk_key", "k1"},
		{"projects/web/environments/production/change-requests/c1", "none", ""},
		{"projects/web/environments/production/scheduled-changes/s1", "none", ""},
		{"projects/web/environments/production", "", ""},
		{"projects/web", "", ""},
		{"projects/web/context-policy", "", ""},
		{"projects/web/environments/production/flags/", "", ""},
		{"organizations/acme", "", ""},
	} {
		if kind, key := resourceOf(c.resource); kind != c.kind || key != c.key {
			t.Errorf("%s: (%q, %q), want (%q, %q)", c.resource, kind, key, c.kind, c.key)
		}
	}
	var ch changes
	for _, e := range []store.OutboxEvent{
		{Kind: "flag_config.update", Resource: "projects/web/environments/production/flags/a"},
		{Kind: "flag_config.emergency_off", Resource: "projects/web/environments/production/flags/b"},
		{Kind: "segment.delete", Resource: "projects/web/environments/production/segments/beta"},
		{Kind: "context_policy.update", Resource: "projects/web/context-policy"},
		{Kind: "change_request.apply", Resource: "projects/web/environments/production/change-requests/c1"},
	} {
		ch.add(e)
	}
	if ch.full || ch.force || len(ch.flagKeys()) != 2 || ch.flagKeys()[1] != "b" || ch.segmentKeys()[0] != "beta" {
		t.Fatalf("narrowed to %+v", ch)
	}
	ch.add(store.OutboxEvent{Kind: "environment.rollback", Resource: "projects/web/environments/production"})
	if !ch.full || ch.force {
		t.Fatalf("a rollback row: %+v, want a full read", ch)
	}
	ch.add(store.OutboxEvent{Kind: store.RecoveryAction, Resource: "projects/web/environments/production"})
	if !ch.force {
		t.Fatal("a recovery forces a version")
	}
	for _, e := range []store.OutboxEvent{
		{Kind: "member.create", Resource: "members/m1"},
		{Kind: "member.role_grant", Resource: "members/m1/bindings/projects/web"},
		{Kind: "api_token.create", Resource: "api_tokens/t1"},
		{Kind: "webhook.create", Resource: "projects/web/webhooks/w1"},
	} {
		if !ignored(e) {
			t.Errorf("%+v is not ignored", e)
		}
	}
	if ignored(store.OutboxEvent{Kind: "flag.create", Resource: "projects/web/flags/a"}) {
		t.Error("a flag row is ignored")
	}
}
