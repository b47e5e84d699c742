package app_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRESTWalkthrough is the documented sequence: bootstrap, create a project
// (three environments), create a flag (off everywhere), turn it on in production
// with the revision read, then read the audit log.
func TestRESTWalkthrough(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		p := c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "web", "name": "Web"}}).want(t, 200)
		var envs []string
		for i := range 3 {
			k, _ := p.get("environments", i, "key").(string)
			envs = append(envs, k)
		}
		if strings.Join(envs, ",") != "development,staging,production" {
			t.Fatalf("environments %v", envs)
		}
		f := c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 200)
		if f.get("flag", "variants", 0, "key") != "on" || f.get("flag", "variants", 0, "value") != true || f.get("flag", "variants", 1, "key") != "off" || f.get("flag", "variants", 1, "value") != false {
			t.Fatalf("boolean variants: %s", f.raw)
		}
		for _, env := range envs {
			g := c.call("GET", "/v1/orgs/acme/projects/web/environments/"+env+"/flags/new-ui", c.owner, nil).want(t, 200)
			if g.get("config", "config", "on") != false || g.get("config", "config", "offVariant") != "off" || g.get("config", "config", "defaultServe", "variant") != "off" {
				t.Fatalf("%s: initial config %s", env, g.raw)
			}
		}
		put := c.call("PUT", "/v1/orgs/acme/projects/web/environments/production/flags/new-ui", c.owner,
			map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": 1, "comment": "launch"},
			"X-Request-Id", "req-launch-1").want(t, 200)
		if put.get("config", "config", "on") != true || put.get("config", "revision") != "2" {
			t.Fatalf("turned on: %s", put.raw)
		}
		// The write's answer carries the lifecycle status like a read does: on and
		// never evaluated is inactive.
		if got := put.get("config", "status"); got != "FLAG_STATUS_INACTIVE" {
			t.Fatalf("status after turning on = %v, want FLAG_STATUS_INACTIVE", got)
		}
		if put.header.Get("X-Request-Id") != "req-launch-1" {
			t.Fatalf("X-Request-Id echoed as %q", put.header.Get("X-Request-Id"))
		}
		a := c.call("GET", "/v1/orgs/acme/audit?resourceType=flag_config", c.owner, nil).want(t, 200)
		if a.get("entries", 0, "action") != "flag_config.update" || a.get("entries", 0, "actorName") != "admin@acme.test" ||
			a.get("entries", 0, "requestId") != "req-launch-1" || a.get("entries", 0, "comment") != "launch" ||
			a.get("entries", 0, "resource") != "projects/web/environments/production/flags/new-ui" {
			t.Fatalf("audit: %s", a.raw)
		}
		v := c.call("POST", "/v1/orgs/acme/audit:verify", c.owner, map[string]any{}).want(t, 200)
		if v.get("ok") != true {
			t.Fatalf("verify: %s", v.raw)
		}
	})
}

// TestRESTErrors: a stale revision is 409; a bad field is 400 and the body names
// the field (BadRequest field violation); an unknown resource is 404.
func TestRESTErrors(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		on := map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": 1}
		const path = "/v1/orgs/acme/projects/web/environments/production/flags/new-ui"
		c.call("PUT", path, c.owner, on).want(t, 200)
		if r := c.call("PUT", path, c.owner, on).want(t, 409); !strings.Contains(r.raw, "stale") {
			t.Fatalf("stale: %s", r.raw)
		}
		tests := []struct {
			name, method, path string
			body               any
			field              string
		}{
			{"flag key not a slug", "POST", "/v1/orgs/acme/projects/web/flags", map[string]any{"flag": map[string]any{"key": "New UI", "type": "FLAG_TYPE_BOOLEAN"}}, "flag.key"},
			{"flag type missing", "POST", "/v1/orgs/acme/projects/web/flags", map[string]any{"flag": map[string]any{"key": "x"}}, "flag.type"},
			{"string flag without variants", "POST", "/v1/orgs/acme/projects/web/flags", map[string]any{"flag": map[string]any{"key": "x", "type": "FLAG_TYPE_STRING"}}, "flag.variants"},
			{"variant value of the wrong type", "POST", "/v1/orgs/acme/projects/web/flags", map[string]any{"flag": map[string]any{"key": "x", "type": "FLAG_TYPE_STRING", "variants": []any{map[string]any{"key": "a", "value": 1}}}}, "flag.variants[0].value"},
			{"name too long", "POST", "/v1/orgs/acme/projects", map[string]any{"project": map[string]any{"key": "p", "name": strings.Repeat("n", 201)}}, "project.name"},
			{"page size too big", "GET", "/v1/orgs/acme/projects?pageSize=5000", nil, "pageSize"},
			{"revision missing", "PUT", path, map[string]any{"config": map[string]any{"on": true}}, "revision"},
			{"unknown variant served (engine check)", "PUT", path, map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "nope"}}, "revision": 2}, "config.defaultServe.variant"},
			{"unknown segment in a rule (engine check)", "PUT", path, map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"},
				"rules": []any{map[string]any{"id": "beta", "clauses": []any{map[string]any{"operator": "OPERATOR_SEGMENT_MATCH", "values": []any{"beta-users"}}}, "serve": map[string]any{"variant": "on"}}}}, "revision": 2}, "config.rules[0].clauses[0].values[0]"},
			{"emergency off without a reason", "POST", path + ":emergencyOff", map[string]any{}, "reason"},
		}
		for _, tt := range tests {
			r := c.call(tt.method, tt.path, c.owner, tt.body)
			if r.status != 400 || r.fieldViolation() != tt.field {
				t.Errorf("%s: status %d field %q, want 400 %q: %s", tt.name, r.status, r.fieldViolation(), tt.field, r.raw)
			}
		}
		c.call("GET", "/v1/orgs/acme/projects/web/flags/missing", c.owner, nil).want(t, 404)
		c.call("GET", "/v1/orgs/acme/projects/web/environments/missing/change-requests/x", c.owner, nil).want(t, 404)
	})
}

// TestIdempotentCreate: a retried create with the same key (header or field)
// returns the first result and writes nothing twice; the same key for another
// request is a conflict.
func TestIdempotentCreate(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "web"}}).want(t, 200)
		body := map[string]any{"flag": map[string]any{"key": "checkout", "type": "FLAG_TYPE_BOOLEAN"}}
		first := c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, body, "Idempotency-Key", "create-checkout-1").want(t, 200)
		again := c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, body, "Idempotency-Key", "create-checkout-1").want(t, 200)
		if first.raw != again.raw {
			t.Fatalf("retry differs:\n%s\n%s", first.raw, again.raw)
		}
		other := map[string]any{"flag": map[string]any{"key": "other", "type": "FLAG_TYPE_BOOLEAN"}}
		c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, other, "Idempotency-Key", "create-checkout-1").want(t, 409)
		// Without a key a repeat is a duplicate.
		c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, body).want(t, 409)
		a := c.call("GET", "/v1/orgs/acme/audit?action=flag.create", c.owner, nil).want(t, 200)
		if n := len(a.body["entries"].([]any)); n != 1 {
			t.Fatalf("%d flag.create audit entries, want 1", n)
		}
		// The request field works too.
		p1 := c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "api"}, "idempotencyKey": "k2"}).want(t, 200)
		p2 := c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "api"}, "idempotencyKey": "k2"}).want(t, 200)
		if p1.raw != p2.raw {
			t.Fatalf("project retry differs")
		}
		// A token's secret is shown once: a replay returns the first token without a
		// secret, and never creates a second one.
		t1 := c.call("POST", "/v1/orgs/acme/api-tokens", c.owner, map[string]any{"name": "ci"}, "Idempotency-Key", "tok-1").want(t, 200)
		if s, _ := t1.get("secret").(string); !strings.HasPrefix(s, "ffat_") {
			t.Fatalf("token: %s", t1.raw)
		}
		t2 := c.call("POST", "/v1/orgs/acme/api-tokens", c.owner, map[string]any{"name": "ci"}, "Idempotency-Key", "tok-1")
		if t2.status != 200 || (t2.get("secret") != nil && t2.get("secret") != "") || t1.get("token", "id") != t2.get("token", "id") {
			t.Fatalf("token replay: %s", t2.raw)
		}
	})
}

// TestRateLimit: over the organization's budget REST answers 429 with
// Retry-After and gRPC RESOURCE_EXHAUSTED with RetryInfo; other organizations are
// not affected.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	// One token per 20 s: the four calls below must not see a refill even when a
	// loaded machine makes them take seconds (at 0.5/s a slow call let one in).
	c := start(t, ratelimit.Config{Rate: 0.05, Burst: 3})
	for range 3 {
		c.call("GET", "/v1/orgs/acme/projects", c.owner, nil).want(t, 200)
	}
	r := c.call("GET", "/v1/orgs/acme/projects", c.owner, nil).want(t, 429)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 20 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	_, err := adminv1.NewProjectServiceClient(c.conn).ListProjects(as(c.owner), &adminv1.ListProjectsRequest{Org: "acme"})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("gRPC: %v", err)
	}
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if x, ok := d.(*errdetails.RetryInfo); ok {
			ri = x
		}
	}
	if ri == nil || ri.GetRetryDelay().AsDuration() <= 0 {
		t.Fatalf("no RetryInfo in %v", st.Details())
	}
}

// TestRoles: viewers read but cannot write; editors write flags but not projects;
// the most specific grant wins; admins cannot make owners; unauthenticated calls
// are 401.
func TestRoles(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		_, viewer := c.member(c.owner, "acme", "viewer@acme.test", adminv1.Role_ROLE_VIEWER, nil)
		_, editor := c.member(c.owner, "acme", "editor@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		adminID, admin := c.member(c.owner, "acme", "admin@acme.test.example", adminv1.Role_ROLE_ADMIN, nil)
		// A project editor who is only a viewer in production.
		scopedID, scoped := c.member(c.owner, "acme", "scoped@acme.test", adminv1.Role_ROLE_EDITOR, &adminv1.Scope{Project: "web"})
		if _, err := adminv1.NewMemberServiceClient(c.conn).GrantRole(as(c.owner), &adminv1.GrantRoleRequest{Org: "acme", Binding: &adminv1.RoleBinding{
			MemberId: scopedID, Role: adminv1.Role_ROLE_VIEWER, Scope: &adminv1.Scope{Project: "web", Environment: "production"}}}); err != nil {
			t.Fatal(err)
		}
		on := func(rev int) map[string]any {
			return map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": rev}
		}
		const prod = "/v1/orgs/acme/projects/web/environments/production/flags/new-ui"
		const staging = "/v1/orgs/acme/projects/web/environments/staging/flags/new-ui"

		c.call("GET", prod, viewer, nil).want(t, 200)
		c.call("PUT", prod, viewer, on(1)).want(t, 403)
		c.call("POST", "/v1/orgs/acme/projects/web/flags", viewer, map[string]any{"flag": map[string]any{"key": "v", "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 403)
		c.call("GET", "/v1/orgs/acme/audit", viewer, nil).want(t, 403)

		c.call("PUT", prod, editor, on(1)).want(t, 200)
		c.call("POST", "/v1/orgs/acme/projects", editor, map[string]any{"project": map[string]any{"key": "e"}}).want(t, 403)
		c.call("POST", "/v1/orgs/acme/api-tokens", editor, map[string]any{"name": "x"}).want(t, 403)

		c.call("PUT", staging, scoped, on(1)).want(t, 200)
		c.call("GET", prod, scoped, nil).want(t, 200)
		c.call("POST", prod+":emergencyOff", scoped, map[string]any{"reason": "incident"}).want(t, 403)
		c.call("POST", "/v1/orgs/acme/projects/web/flags/new-ui:kill", scoped, map[string]any{"reason": "incident"}).want(t, 403)
		c.call("GET", "/v1/orgs/acme/projects", scoped, nil).want(t, 403) // no organization-wide grant

		c.call("POST", "/v1/orgs/acme/projects", admin, map[string]any{"project": map[string]any{"key": "a"}}).want(t, 200)
		c.call("GET", "/v1/orgs/acme/audit", admin, nil).want(t, 200)
		c.call("POST", "/v1/orgs/acme/role-bindings", admin, map[string]any{"binding": map[string]any{"memberId": adminID, "role": "ROLE_OWNER"}}).want(t, 403)
		c.call("PATCH", "/v1/orgs/acme", admin, map[string]any{"name": "Acme", "revision": 1}).want(t, 403)
		ownerID := c.call("GET", "/v1/orgs/acme/members", c.owner, nil).want(t, 200)
		for _, m := range ownerID.body["members"].([]any) {
			if mm := m.(map[string]any); mm["email"] == "admin@acme.test" {
				c.call("DELETE", "/v1/orgs/acme/members/"+mm["id"].(string), admin, nil).want(t, 403)
				c.call("POST", "/v1/orgs/acme/api-tokens", admin, map[string]any{"name": "steal", "memberId": mm["id"]}).want(t, 403)
			}
		}
		c.call("PATCH", "/v1/orgs/acme", c.owner, map[string]any{"name": "Acme Inc", "revision": 1}).want(t, 200)

		c.call("GET", "/v1/orgs/acme/projects", "", nil).want(t, 401)
		c.call("GET", "/v1/orgs/acme/projects", "ffat_not-a-real-token", nil).want(t, 401)
		// A revoked token stops working at once.
		tok := c.call("POST", "/v1/orgs/acme/api-tokens", c.owner, map[string]any{"name": "short-lived"}).want(t, 200)
		secret := tok.get("secret").(string)
		c.call("GET", "/v1/orgs/acme/projects", secret, nil).want(t, 200)
		c.call("POST", "/v1/orgs/acme/api-tokens/"+tok.get("token", "id").(string)+":revoke", c.owner, map[string]any{}).want(t, 200)
		c.call("GET", "/v1/orgs/acme/projects", secret, nil).want(t, 401)
	})
}

// TestKillAndEmergencyOff: emergency off needs a reason and records it; kill turns
// the flag off in every environment.
func TestKillAndEmergencyOff(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		for _, env := range []string{"development", "staging", "production"} {
			c.call("PUT", "/v1/orgs/acme/projects/web/environments/"+env+"/flags/new-ui", c.owner,
				map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": 1}).want(t, 200)
		}
		e := c.call("POST", "/v1/orgs/acme/projects/web/environments/production/flags/new-ui:emergencyOff", c.owner, map[string]any{"reason": "errors spiking"}).want(t, 200)
		if e.get("config", "config", "on") != false {
			t.Fatalf("emergency off: %s", e.raw)
		}
		a := c.call("GET", "/v1/orgs/acme/audit?action=flag_config.emergency_off", c.owner, nil).want(t, 200)
		if a.get("entries", 0, "comment") != "errors spiking" {
			t.Fatalf("audit: %s", a.raw)
		}
		c.call("POST", "/v1/orgs/acme/projects/web/flags/new-ui:kill", c.owner, map[string]any{}).want(t, 400)
		k := c.call("POST", "/v1/orgs/acme/projects/web/flags/new-ui:kill", c.owner, map[string]any{"reason": "rollback"}).want(t, 200)
		cfgs := k.body["configs"].([]any)
		if len(cfgs) != 3 {
			t.Fatalf("kill: %s", k.raw)
		}
		for i := range cfgs {
			if k.get("configs", i, "config", "on") != false {
				t.Fatalf("kill left %v on", k.get("configs", i, "environment"))
			}
		}
		a = c.call("GET", "/v1/orgs/acme/audit?action=flag.kill", c.owner, nil).want(t, 200)
		if n := len(a.body["entries"].([]any)); n != 2 { // production was already off
			t.Fatalf("%d kill entries, want 2: %s", n, a.raw)
		}
	})
}

// TestFlagTypesAndSegments: non-boolean flags serve their first variant when new;
// segments are validated by reference and cannot be deleted while used.
func TestFlagTypesAndSegments(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "theme", "type": "FLAG_TYPE_STRING",
			"variants": []any{map[string]any{"key": "light", "value": "light"}, map[string]any{"key": "dark", "value": "dark"}}}}).want(t, 200)
		g := c.call("GET", "/v1/orgs/acme/projects/web/environments/staging/flags/theme", c.owner, nil).want(t, 200)
		if g.get("config", "config", "offVariant") != "light" || g.get("config", "config", "defaultServe", "variant") != "light" {
			t.Fatalf("string flag initial config: %s", g.raw)
		}
		c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "limits", "type": "FLAG_TYPE_JSON",
			"variants": []any{map[string]any{"key": "default", "value": map[string]any{"max": 10}}}}}).want(t, 200)
		c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "ratio", "type": "FLAG_TYPE_NUMBER",
			"variants": []any{map[string]any{"key": "half", "value": 0.5}}}}).want(t, 200)

		const segs = "/v1/orgs/acme/projects/web/environments/production/segments"
		c.call("POST", segs, c.owner, map[string]any{"segment": map[string]any{"key": "beta-users", "included": []any{"u1", "u2"}}}).want(t, 200)
		put := c.call("PUT", "/v1/orgs/acme/projects/web/environments/production/flags/new-ui", c.owner, map[string]any{"config": map[string]any{
			"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "off"},
			"rules": []any{map[string]any{"id": "beta", "clauses": []any{map[string]any{"operator": "OPERATOR_SEGMENT_MATCH", "values": []any{"beta-users"}}}, "serve": map[string]any{"variant": "on"}}},
		}, "revision": 1}).want(t, 200)
		_ = put
		seg := c.call("GET", segs+"/beta-users", c.owner, nil).want(t, 200)
		rev, _ := strconv.Atoi(seg.get("segment", "revision").(string))
		c.call("DELETE", segs+"/beta-users?revision="+strconv.Itoa(rev), c.owner, nil).want(t, 400) // in use: FAILED_PRECONDITION
		up := c.call("PUT", segs+"/beta-users", c.owner, map[string]any{"definition": map[string]any{"included": []any{"u3"}}, "revision": rev}).want(t, 200)
		if up.get("segment", "included", 0) != "u3" {
			t.Fatalf("segment update: %s", up.raw)
		}
		c.call("PUT", segs+"/beta-users", c.owner, map[string]any{"definition": map[string]any{"key": "other"}, "revision": rev + 1}).want(t, 400)

		// SDK keys: secret once, rotation keeps the old key alive for the overlap.
		const keys = "/v1/orgs/acme/projects/web/environments/production/sdk-keys"
		k := c.call("POST", keys, c.owner, map[string]any{"name": "backend", "kind": "SDK_KEY_KIND_SERVER"}).want(t, 200)
		if s, _ := k.get("secret").(string); !strings.HasPrefix(s, "ffsk_") || !strings.HasPrefix(s, k.get("key", "prefix").(string)) {
			t.Fatalf("sdk key: %s", k.raw)
		}
		r := c.call("POST", keys+"/"+k.get("key", "id").(string)+":rotate", c.owner, map[string]any{"overlapSeconds": 60}).want(t, 200)
		if r.get("oldKey", "expireTime") == nil || r.get("newKey", "id") == k.get("key", "id") {
			t.Fatalf("rotate: %s", r.raw)
		}
		l := c.call("GET", keys, c.owner, nil).want(t, 200)
		if n := len(l.body["keys"].([]any)); n != 2 {
			t.Fatalf("%d keys after rotation", n)
		}
		c.call("GET", "/v1/orgs/acme/projects/web/environments/production/flags/new-ui/usage", c.owner, nil).want(t, 200)
	})
}

// TestServiceEndpoints: health, readiness, metrics and the OpenAPI document.
func TestServiceEndpoints(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.call("GET", "/healthz", "", nil).want(t, 200)
	c.call("GET", "/readyz", "", nil).want(t, 200)
	c.call("GET", "/v1/orgs/acme", c.owner, nil).want(t, 200)
	m := c.call("GET", "/metrics", "", nil).want(t, 200)
	if !strings.Contains(m.raw, `flagforge_controlplane_grpc_requests_total{code="OK",method="/flagforge.admin.v1.OrganizationService/GetOrganization"} 1`) ||
		!strings.Contains(m.raw, "flagforge_controlplane_grpc_request_duration_seconds_bucket") {
		t.Fatalf("metrics:\n%s", m.raw)
	}
	o := c.call("GET", "/openapi.json", "", nil).want(t, 200)
	var doc map[string]any
	if err := json.Unmarshal([]byte(o.raw), &doc); err != nil || doc["swagger"] == nil {
		t.Fatalf("openapi: %v", err)
	}
	if !strings.Contains(o.raw, "/v1/orgs/{org}/projects/{project}/flags") {
		t.Fatal("openapi lacks the flag paths")
	}
}
