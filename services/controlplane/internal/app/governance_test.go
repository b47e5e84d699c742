package app_test

import (
	"fmt"
	"strings"
	"testing"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

const prodFlag = "/v1/orgs/acme/projects/web/environments/production/flags/new-ui"
const prodCRs = "/v1/orgs/acme/projects/web/environments/production/change-requests"

// protect turns approvals on in production (one approval, emergency off allowed
// unless noEmergency).
func (c *cp) protect(t *testing.T, noEmergency bool) {
	t.Helper()
	e := c.call("GET", "/v1/orgs/acme/projects/web/environments/production", c.owner, nil).want(t, 200)
	c.call("PATCH", "/v1/orgs/acme/projects/web/environments/production", c.owner, map[string]any{
		"settings": map[string]any{"approvalsRequired": true, "requiredApprovals": 1, "emergencyOffAllowed": !noEmergency},
		"revision": e.get("environment", "revision"),
	}).want(t, 200)
}

var onBody = map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": 1, "comment": "launch"}

// TestRESTApprovalFlow is the documented four-eyes sequence: enable approvals on
// production, PUT a configuration (200 with a change request, nothing saved),
// the author's approval is refused (403), another editor approves, the author
// applies, the configuration changed, and the audit log shows every step.
func TestRESTApprovalFlow(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.protect(t, false)
		_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)

		put := c.call("PUT", prodFlag, alice, onBody).want(t, 200)
		if put.get("config") != nil || put.get("changeRequest", "state") != "CHANGE_REQUEST_STATE_OPEN" {
			t.Fatalf("PUT in a protected environment: %s", put.raw)
		}
		id, _ := put.get("changeRequest", "id").(string)
		digest, _ := put.get("changeRequest", "contentDigest").(string)
		if diff := put.get("changeRequest", "diff"); diff == nil || !strings.Contains(put.raw, `"/on"`) {
			t.Fatalf("change request carries a diff: %s", put.raw)
		}
		if g := c.call("GET", prodFlag, c.owner, nil).want(t, 200); g.get("config", "config", "on") != false {
			t.Fatalf("nothing saved before approval: %s", g.raw)
		}
		c.call("POST", prodCRs+"/"+id+":apply", alice, map[string]any{}).want(t, 400)
		c.call("POST", prodCRs+"/"+id+":approve", alice, map[string]any{"contentDigest": digest}).want(t, 403)
		c.call("POST", prodCRs+"/"+id+":comment", bob, map[string]any{"text": "looks good"}).want(t, 200)
		ap := c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": digest, "comment": "ok"}).want(t, 200)
		if n := len(ap.get("changeRequest", "approvals").([]any)); n != 1 {
			t.Fatalf("approvals: %s", ap.raw)
		}
		c.call("POST", prodCRs+"/"+id+":apply", alice, map[string]any{}).want(t, 200)
		if g := c.call("GET", prodFlag, c.owner, nil).want(t, 200); g.get("config", "config", "on") != true || g.get("config", "revision") != "2" {
			t.Fatalf("applied: %s", g.raw)
		}
		l := c.call("GET", prodCRs+"?state=CHANGE_REQUEST_STATE_APPLIED", c.owner, nil).want(t, 200)
		if l.get("changeRequests", 0, "id") != id {
			t.Fatalf("list by state: %s", l.raw)
		}
		a := c.call("GET", "/v1/orgs/acme/audit?pageSize=20", c.owner, nil).want(t, 200)
		var actions []string
		for i := 0; ; i++ {
			act, ok := a.get("entries", i, "action").(string)
			if !ok {
				break
			}
			if strings.HasPrefix(act, "change_request.") || act == "flag_config.update" {
				actions = append(actions, act)
			}
			if a.get("entries", i, "diff") == nil && act == "flag_config.update" {
				t.Errorf("audit entry %s has no diff", act)
			}
		}
		want := "change_request.apply,flag_config.update,change_request.approve,change_request.comment,change_request.create"
		if got := strings.Join(actions, ","); got != want {
			t.Fatalf("audit (newest first) %s, want %s", got, want)
		}
	})
}

// TestSelfApprovalIsRefusedForEveryRole: whatever the author's role, owner
// included, approving their own change request is 403.
func TestSelfApprovalIsRefusedForEveryRole(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	c.protect(t, false)
	tokens := map[string]string{"owner": c.owner}
	for _, r := range []adminv1.Role{adminv1.Role_ROLE_OWNER, adminv1.Role_ROLE_ADMIN, adminv1.Role_ROLE_EDITOR} {
		_, tok := c.member(c.owner, "acme", strings.ToLower(r.String())+"@acme.test", r, nil)
		tokens[r.String()] = tok
	}
	rev := 1
	for name, tok := range tokens {
		body := map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": rev}
		put := c.call("PUT", prodFlag, tok, body).want(t, 200)
		id, _ := put.get("changeRequest", "id").(string)
		digest, _ := put.get("changeRequest", "contentDigest").(string)
		if r := c.call("POST", prodCRs+"/"+id+":approve", tok, map[string]any{"contentDigest": digest}); r.status != 403 {
			t.Errorf("%s approving their own request: %d %s", name, r.status, r.raw)
		}
		c.call("POST", prodCRs+"/"+id+":withdraw", tok, map[string]any{}).want(t, 200)
	}
}

// TestEditRevokesApprovalsAndStaleBaseIsRefused: approvals are bound to the
// content digest (an edit revokes them, the old digest no longer approves); a
// target changed since the base revision cannot be applied until rebased.
func TestEditRevokesApprovalsAndStaleBaseIsRefused(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.protect(t, false)
		_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		cr := c.call("PUT", prodFlag, alice, onBody).want(t, 200)
		id, _ := cr.get("changeRequest", "id").(string)
		d1, _ := cr.get("changeRequest", "contentDigest").(string)
		c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": d1}).want(t, 200)
		ed := c.call("PATCH", prodCRs+"/"+id, alice, map[string]any{"description": "serve off by default", "revision": 2,
			"change": map[string]any{"flagConfig": map[string]any{"flag": "new-ui", "config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "off"}}}}}).want(t, 200)
		d2, _ := ed.get("changeRequest", "contentDigest").(string)
		if apps, _ := ed.get("changeRequest", "approvals").([]any); d2 == d1 || len(apps) != 0 {
			t.Fatalf("edit must change the digest and revoke approvals: %s", ed.raw)
		}
		c.call("POST", prodCRs+"/"+id+":apply", alice, map[string]any{}).want(t, 400)
		c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": d1}).want(t, 400)
		c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": d2}).want(t, 200)
		// Meanwhile the flag changes (emergency off is allowed without approval).
		c.call("POST", prodFlag+":emergencyOff", c.owner, map[string]any{"reason": "incident"}).want(t, 200)
		// No write happened (already off): make a real concurrent change in the base.
		c.call("POST", "/v1/orgs/acme/projects/web/flags/new-ui:kill", c.owner, map[string]any{"reason": "x"}).want(t, 200)
		// (Written by alice: bob's token was minted by the owner, so bob never
		// approves the owner's own requests.)
		other := c.call("PUT", prodFlag, alice, onBody).want(t, 200)
		oid, _ := other.get("changeRequest", "id").(string)
		od, _ := other.get("changeRequest", "contentDigest").(string)
		c.call("POST", prodCRs+"/"+oid+":approve", bob, map[string]any{"contentDigest": od}).want(t, 200)
		c.call("POST", prodCRs+"/"+oid+":apply", c.owner, map[string]any{}).want(t, 200)
		stale := c.call("POST", prodCRs+"/"+id+":apply", alice, map[string]any{}).want(t, 409)
		if !strings.Contains(stale.raw, "rebase") {
			t.Fatalf("stale base: %s", stale.raw)
		}
		rb := c.call("PATCH", prodCRs+"/"+id, alice, map[string]any{"baseRevision": 2, "revision": 4}).want(t, 200)
		d3, _ := rb.get("changeRequest", "contentDigest").(string)
		c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": d3}).want(t, 200)
		c.call("POST", prodCRs+"/"+id+":apply", bob, map[string]any{}).want(t, 200)
		if g := c.call("GET", prodFlag, c.owner, nil).want(t, 200); g.get("config", "config", "defaultServe", "variant") != "off" || g.get("config", "revision") != "3" {
			t.Fatalf("rebased and applied: %s", g.raw)
		}
	})
}

// TestEmergencyOffBypassesApprovalOnlyWhereAllowed: in a protected environment
// emergency off works without approval when allowed (audited as
// flag_config.emergency_off with the reason), and is refused where it is not.
func TestEmergencyOffBypassesApprovalOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.call("PUT", prodFlag, c.owner, onBody).want(t, 200) // not protected yet: saved
		for _, allowed := range []bool{true, false} {
			c.protect(t, !allowed)
			r := c.call("POST", prodFlag+":emergencyOff", c.owner, map[string]any{"reason": fmt.Sprint("incident allowed=", allowed)})
			if allowed {
				r.want(t, 200)
				if r.get("config", "config", "on") != false {
					t.Fatalf("emergency off: %s", r.raw)
				}
				a := c.call("GET", "/v1/orgs/acme/audit?action=flag_config.emergency_off", c.owner, nil).want(t, 200)
				if a.get("entries", 0, "comment") != "incident allowed=true" || a.get("entries", 0, "diff") == nil {
					t.Fatalf("audited: %s", a.raw)
				}
				continue
			}
			r.want(t, 400)
		}
	})
}

// TestEnvironmentSettingsUpdateOnlyWhatItSets: enabling approvals without naming
// emergencyOffAllowed keeps emergency off allowed (the default); an update changes
// only the settings it sends.
func TestEnvironmentSettingsUpdateOnlyWhatItSets(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		const env = "/v1/orgs/acme/projects/web/environments/production"
		e := c.call("GET", env, c.owner, nil).want(t, 200)
		if got := e.get("environment", "settings", "emergencyOffAllowed"); got != true {
			t.Fatalf("a new environment allows emergency off: got %v", got)
		}
		u := c.call("PATCH", env, c.owner, map[string]any{
			"settings": map[string]any{"approvalsRequired": true},
			"revision": e.get("environment", "revision"),
		}).want(t, 200)
		if u.get("environment", "settings", "approvalsRequired") != true || u.get("environment", "settings", "emergencyOffAllowed") != true {
			t.Fatalf("enabling approvals changed other settings: %s", u.raw)
		}
		u = c.call("PATCH", env, c.owner, map[string]any{
			"settings": map[string]any{"emergencyOffAllowed": false},
			"revision": u.get("environment", "revision"),
		}).want(t, 200)
		if u.get("environment", "settings", "approvalsRequired") != true || u.get("environment", "settings", "emergencyOffAllowed") != false {
			t.Fatalf("turning emergency off off changed other settings: %s", u.raw)
		}
	})
}
