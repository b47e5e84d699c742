package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagforge/flagforge/cli/remote"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// permission finds kind/action in a GetMyPermissions REST answer.
func permission(t *testing.T, r resp, kind, action string) map[string]any {
	t.Helper()
	ps, _ := r.get("permissions").([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		if m["kind"] == kind && m["action"] == action {
			return m
		}
	}
	t.Fatalf("no %s %s in %s", action, kind, r.raw)
	return nil
}

// TestMyPermissions: the permissions API answers what the server enforces, at
// organization, project and environment scope, over REST, gRPC and the CLI's
// client; what it refuses is refused with the same message when tried anyway.
func TestMyPermissions(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	_, viewer := c.member(c.owner, "acme", "vic@acme.test", adminv1.Role_ROLE_VIEWER, nil)
	// An editor of web/staging only: no role on the organization or project.
	edID, editor := c.member(c.owner, "acme", "ed@acme.test", adminv1.Role_ROLE_EDITOR, &adminv1.Scope{Project: "web", Environment: "staging"})

	r := c.call("GET", "/v1/orgs/acme/me/permissions?project=web&environment=production", viewer, nil).want(t, 200)
	if r.get("role") != "ROLE_VIEWER" || r.get("email") != "vic@acme.test" || r.get("method") != "token" {
		t.Fatalf("viewer: %s", r.raw)
	}
	if s, _ := r.get("roleScope").(map[string]any); s["project"] != "" || s["environment"] != "" {
		t.Fatalf("the viewer's role comes from the organization grant: %s", r.raw)
	}
	w := permission(t, r, "flag_config", "write")
	if w["allowed"] != false || w["minRole"] != "ROLE_EDITOR" || !strings.Contains(w["reason"].(string), "not allowed for role ROLE_VIEWER") {
		t.Fatalf("viewer writing flag configurations: %v", w)
	}
	if p := permission(t, r, "flag_config", "read"); p["allowed"] != true || p["reason"] != "" {
		t.Fatalf("viewer reading: %v", p)
	}
	// Forced anyway: refused with the reason the permissions gave.
	forced := c.call("PATCH", "/v1/orgs/acme/projects/web/environments/production/flags/new-ui", viewer,
		map[string]any{"patch": []any{map[string]any{"op": "replace", "path": "/on", "value": true}}}).want(t, 403)
	if forced.get("message") != w["reason"] {
		t.Fatalf("the refusal %q differs from the permission's reason %q", forced.get("message"), w["reason"])
	}

	// The staging editor: editor in staging, nothing elsewhere, and may still ask.
	r = c.call("GET", "/v1/orgs/acme/me/permissions?project=web&environment=staging", editor, nil).want(t, 200)
	if r.get("role") != "ROLE_EDITOR" || permission(t, r, "flag_config", "write")["allowed"] != true || permission(t, r, "webhook", "write")["allowed"] != false {
		t.Fatalf("staging editor in staging: %s", r.raw)
	}
	if s, _ := r.get("roleScope").(map[string]any); s["environment"] != "staging" {
		t.Fatalf("the deciding grant is the environment's: %s", r.raw)
	}
	r = c.call("GET", "/v1/orgs/acme/me/permissions?project=web&environment=production", editor, nil).want(t, 200)
	if r.get("role") != "ROLE_UNSPECIFIED" || r.get("roleScope") != nil || permission(t, r, "flag_config", "read")["allowed"] != false {
		t.Fatalf("staging editor in production: %s", r.raw)
	}
	c.call("GET", "/v1/orgs/acme/me/permissions", editor, nil).want(t, 200)

	// Bad input names the field as the caller spelled it; other organizations are not found.
	bad := c.call("GET", "/v1/orgs/acme/me/permissions?environment=staging", viewer, nil).want(t, 400)
	if bad.fieldViolation() != "project" {
		t.Fatalf("environment without project: %s", bad.raw)
	}
	if bad := c.call("GET", "/v1/orgs/acme/me/permissions?project=Not_A_Key", viewer, nil).want(t, 400); bad.fieldViolation() != "project" {
		t.Fatalf("bad project key: %s", bad.raw)
	}
	c.call("GET", "/v1/orgs/other/me/permissions", viewer, nil).want(t, 404)
	c.call("GET", "/v1/orgs/acme/me/permissions", "", nil).want(t, 401)

	// gRPC and the CLI's client, as the owner: role bindings at every scope.
	cli := remote.New(c.conn, c.owner)
	p, err := cli.Permissions(t.Context(), "acme", "web", "")
	if err != nil || p.GetRole() != adminv1.Role_ROLE_OWNER {
		t.Fatalf("owner over gRPC: %v %v", p, err)
	}
	id, err := cli.MemberID(t.Context(), "acme", "ed@acme.test")
	if err != nil || id != edID {
		t.Fatalf("member by email: %q %v", id, err)
	}
	if _, err := cli.GrantRole(t.Context(), "acme", id, adminv1.Role_ROLE_ADMIN, "web", ""); err != nil {
		t.Fatal(err)
	}
	bs, err := cli.RoleBindings(t.Context(), "acme", id)
	if err != nil || len(bs) != 2 {
		t.Fatalf("bindings: %v %v", bs, err)
	}
	// The project grant covers production now; staging keeps its own (more specific) grant.
	r = c.call("GET", "/v1/orgs/acme/me/permissions?project=web&environment=production", editor, nil).want(t, 200)
	if r.get("role") != "ROLE_ADMIN" {
		t.Fatalf("after the project grant: %s", r.raw)
	}
	if err := cli.RevokeRole(t.Context(), "acme", id, "web", "staging"); err != nil {
		t.Fatal(err)
	}
	r = c.call("GET", "/v1/orgs/acme/me/permissions?project=web&environment=staging", editor, nil).want(t, 200)
	if r.get("role") != "ROLE_ADMIN" || permission(t, r, "webhook", "write")["allowed"] != true {
		t.Fatalf("after revoking the environment grant: %s", r.raw)
	}
	if _, err := remote.ParseRole("boss"); err == nil {
		t.Fatal("an unknown role parsed")
	}
}

// TestWebhookTestAndRedeliver: "send test" queues a signed webhook.test delivery
// that reaches the receiver at once; "redeliver" sends a delivery's event again
// with the same id; both are refused to non-admins, on disabled webhooks and
// for unknown deliveries, and show in the delivery log.
func TestWebhookTestAndRedeliver(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		var mu sync.Mutex
		var got []map[string]any
		status := http.StatusNoContent
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var ev map[string]any
			_ = json.Unmarshal(b, &ev)
			mu.Lock()
			defer mu.Unlock()
			if r.Header.Get("FlagForge-Signature") == "" {
				ev["unsigned"] = true
			}
			got = append(got, ev)
			w.WriteHeader(status)
		}))
		t.Cleanup(rcv.Close)
		c.project()
		_, viewer := c.member(c.owner, "acme", "vic@acme.test", adminv1.Role_ROLE_VIEWER, nil)
		hook := c.call("POST", "/v1/orgs/acme/projects/web/webhooks", c.owner, map[string]any{"webhook": map[string]any{"url": rcv.URL, "eventTypes": []string{"segment.created"}}}).want(t, 200)
		id := hook.get("webhook", "id").(string)
		base := "/v1/orgs/acme/projects/web/webhooks/" + id

		c.call("POST", base+":test", viewer, map[string]any{}).want(t, 403)
		d := c.call("POST", base+":test", c.owner, map[string]any{}).want(t, 200)
		if d.get("delivery", "eventType") != "webhook.test" || d.get("delivery", "state") != "WEBHOOK_DELIVERY_STATE_PENDING" {
			t.Fatalf("test delivery: %s", d.raw)
		}
		did := d.get("delivery", "id").(string)
		waitDelivery := func(attempts float64, state string) resp {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for {
				l := c.call("GET", base+"/deliveries", c.owner, nil).want(t, 200)
				for _, x := range l.get("deliveries").([]any) {
					m := x.(map[string]any)
					if m["id"] == did && m["attempts"] == attempts && m["state"] == state {
						return l
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("delivery %s never reached %s after %v attempts: %s", did, state, attempts, l.raw)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		waitDelivery(1, "WEBHOOK_DELIVERY_STATE_SUCCEEDED")
		mu.Lock()
		if len(got) != 1 || got[0]["type"] != "webhook.test" || got[0]["unsigned"] != nil || got[0]["project"] != "web" {
			t.Fatalf("receiver got %v", got)
		}
		first := got[0]["id"]
		status = http.StatusInternalServerError
		mu.Unlock()

		// Redeliver: the same event again, its attempt recorded on the same row.
		c.call("POST", base+"/deliveries/"+did+":redeliver", viewer, map[string]any{}).want(t, 403)
		r := c.call("POST", base+"/deliveries/"+did+":redeliver", c.owner, map[string]any{}).want(t, 200)
		if r.get("delivery", "state") != "WEBHOOK_DELIVERY_STATE_PENDING" {
			t.Fatalf("redeliver: %s", r.raw)
		}
		l := waitDelivery(2, "WEBHOOK_DELIVERY_STATE_RETRYING")
		if !strings.Contains(l.raw, `"lastStatusCode":500`) {
			t.Fatalf("the log shows the failed attempt's status: %s", l.raw)
		}
		mu.Lock()
		if len(got) != 2 || got[1]["id"] != first {
			t.Fatalf("redelivery must carry the same event id: %v", got)
		}
		mu.Unlock()

		// A webhook disabled after failing is refused until enabled again.
		h2 := c.call("POST", "/v1/orgs/acme/projects/web/webhooks", c.owner, map[string]any{"webhook": map[string]any{"url": rcv.URL, "eventTypes": []string{"segment.created"}, "maxFailures": 1}}).want(t, 200)
		base2 := "/v1/orgs/acme/projects/web/webhooks/" + h2.get("webhook", "id").(string)
		c.call("POST", base2+":test", c.owner, map[string]any{}).want(t, 200)
		deadline := time.Now().Add(15 * time.Second)
		for c.call("GET", base2, c.owner, nil).want(t, 200).get("webhook", "enabled") != false {
			if time.Now().After(deadline) {
				t.Fatal("the failing webhook was never disabled")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r := c.call("POST", base2+":test", c.owner, map[string]any{}).want(t, 400); !strings.Contains(r.raw, "is disabled") {
			t.Fatalf("test on a disabled webhook: %s", r.raw)
		}

		// Refusals name what is wrong.
		c.call("POST", base+"/deliveries/nope:redeliver", c.owner, map[string]any{}).want(t, 404)
		c.call("POST", "/v1/orgs/acme/projects/web/webhooks/nope:test", c.owner, map[string]any{}).want(t, 404)
		if _, err := remote.New(c.conn, c.owner).SendTestWebhook(t.Context(), "acme", "web", id); err != nil {
			t.Fatalf("send test over gRPC: %v", err)
		}
		ds, err := remote.New(c.conn, c.owner).Deliveries(t.Context(), "acme", "web", id, 10)
		if err != nil || len(ds) != 2 || !strings.Contains(remote.FormatDelivery(ds[1]), "webhook.test") {
			t.Fatalf("deliveries over gRPC: %v %v", ds, err)
		}
	})
}
