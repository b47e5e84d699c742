package app_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flagforge/flagforge/cli/release"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	releasecfg "github.com/flagforge/flagforge/services/controlplane/internal/release"
)

const prodPlans = "/v1/orgs/acme/projects/web/environments/production/release-plans"

// weights is a step serving on to pct percent.
func weights(pct int) []any {
	return []any{map[string]any{"variant": "on", "weight": pct}, map[string]any{"variant": "off", "weight": 100 - pct}}
}

var planBody = map[string]any{"flag": "new-ui", "description": "new ui", "steps": []any{
	map[string]any{"weights": weights(5), "minDuration": "3600s"},
	map[string]any{"weights": weights(100)},
}}

// TestReleasePlanBadInputNamesTheField: every mistake in a plan is refused with
// 400 naming the field as the caller spelled it, and nothing is stored.
func TestReleasePlanBadInputNamesTheField(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no steps", map[string]any{"flag": "new-ui"}, "steps"},
		{"unknown variant", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": []any{map[string]any{"variant": "blue", "weight": 1}}}}}, "steps[0].weights[0].variant"},
		{"weights total 0", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 0}}}}}, "steps[0].weights"},
		{"negative hold", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": weights(5), "minDuration": "-5s"}}}, "steps[0].minDuration"},
		{"PromQL without Prometheus", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": weights(5)}},
			"guardrails": []any{map[string]any{"name": "errors", "promql": map[string]any{"query": "up"}, "threshold": 1, "window": "60s"}}}, "guardrails[0].promql"},
		{"guardrail without check", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": weights(5)}},
			"guardrails": []any{map[string]any{"name": "errors", "threshold": 1, "window": "60s"}}}, "guardrails[0]"},
		{"SDK errors of an unknown variant", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": weights(5)}},
			"guardrails": []any{map[string]any{"name": "errors", "sdkErrors": map[string]any{"variant": "blue"}, "threshold": 0.1, "window": "60s"}}},
			"guardrails[0].sdkErrors.variant"},
		{"SDK errors with a negative minimum", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": weights(5)}},
			"guardrails": []any{map[string]any{"name": "errors", "sdkErrors": map[string]any{"variant": "on", "minEvaluations": -1}, "threshold": 0.1, "window": "60s"}}},
			"guardrails[0].sdkErrors.minEvaluations"},
		{"SDK errors with a negative threshold", map[string]any{"flag": "new-ui", "steps": []any{map[string]any{"weights": weights(5)}},
			"guardrails": []any{map[string]any{"name": "errors", "sdkErrors": map[string]any{}, "threshold": -1, "window": "60s"}}},
			"guardrails[0].threshold"},
	}
	for _, tc := range cases {
		r := c.call("POST", prodPlans, c.owner, tc.body).want(t, 400)
		if got := r.fieldViolation(); got != tc.field {
			t.Errorf("%s: field %q, want %q: %s", tc.name, got, tc.field, r.raw)
		}
	}
	c.call("POST", prodPlans, c.owner, map[string]any{"flag": "nope", "steps": []any{map[string]any{"weights": weights(5)}}}).want(t, 404)
	if l := c.call("GET", prodPlans, c.owner, nil).want(t, 200); l.get("releasePlans", 0) != nil {
		t.Fatalf("a refused plan was stored: %s", l.raw)
	}
}

// TestReleasePlanIsApprovedOnceAndItsStepsRunWithoutApprovals is the four-eyes
// rule of plans: in a protected environment a plan waits for one change request
// holding its whole content; its author cannot start it before another member
// approves; once applied, start runs its first step with no new approval; editing
// it opens a new change request and holds it again.
func TestReleasePlanIsApprovedOnceAndItsStepsRunWithoutApprovals(t *testing.T) {
	t.Parallel()
	eachBackendWith(t, func(c *app.Config) {
		c.Release = releasecfg.Config{PollInterval: 50 * time.Millisecond, CheckInterval: time.Second}
	},
		func(t *testing.T, c *cp) {
			c.project()
			c.protect(t, false)
			_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
			_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)

			cr := c.call("POST", prodPlans, alice, planBody).want(t, 200)
			if cr.get("releasePlan", "state") != "RELEASE_PLAN_STATE_AWAITING_APPROVAL" || cr.get("changeRequest", "id") == nil {
				t.Fatalf("a plan in a protected environment waits for its change request: %s", cr.raw)
			}
			id, _ := cr.get("releasePlan", "id").(string)
			crID, _ := cr.get("changeRequest", "id").(string)
			digest, _ := cr.get("changeRequest", "contentDigest").(string)
			req := c.call("GET", prodCRs+"/"+crID, bob, nil).want(t, 200)
			if req.get("changeRequest", "change", "releasePlan", "flag") != "new-ui" || len(req.get("changeRequest", "change", "releasePlan", "steps").([]any)) != 2 ||
				!strings.Contains(req.raw, `new release plan of flag \"new-ui\": 5% on/95% off for 1h0m0s, 100% on`) {
				t.Fatalf("the reviewer sees the whole plan: %s", req.raw)
			}
			c.call("POST", prodPlans+"/"+id+":start", alice, map[string]any{}).want(t, 400)
			c.call("PATCH", prodCRs+"/"+crID, alice, map[string]any{"description": "x", "revision": 1}).want(t, 400)
			c.call("POST", prodCRs+"/"+crID+":approve", alice, map[string]any{"contentDigest": digest}).want(t, 403)
			c.call("POST", prodCRs+"/"+crID+":approve", bob, map[string]any{"contentDigest": digest}).want(t, 200)
			c.call("POST", prodCRs+"/"+crID+":apply", alice, map[string]any{}).want(t, 200)
			if g := c.call("GET", prodPlans+"/"+id, alice, nil).want(t, 200); g.get("releasePlan", "state") != "RELEASE_PLAN_STATE_READY" {
				t.Fatalf("approved plan: %s", g.raw)
			}

			c.call("POST", prodPlans+"/"+id+":start", alice, map[string]any{"comment": "go"}).want(t, 200)
			waitFor(t, func() bool {
				return c.call("GET", prodPlans+"/"+id, alice, nil).get("releasePlan", "appliedSteps") == float64(1)
			}, "the first step applied without a new approval")
			fc := c.call("GET", prodFlag, alice, nil).want(t, 200)
			if fc.get("config", "config", "on") != true || fc.get("config", "config", "defaultServe", "rollout", "weights", 0, "weight") != float64(5) {
				t.Fatalf("first step: %s", fc.raw)
			}

			// An edit needs a new approval: the plan waits again (paused, as it had started).
			c.call("POST", prodPlans+"/"+id+":pause", alice, map[string]any{"comment": "edit"}).want(t, 200)
			g := c.call("GET", prodPlans+"/"+id, alice, nil).want(t, 200)
			ed := c.call("PATCH", prodPlans+"/"+id, alice, map[string]any{"steps": planBody["steps"], "description": "slower",
				"revision": g.get("releasePlan", "revision")}).want(t, 200)
			if ed.get("releasePlan", "state") != "RELEASE_PLAN_STATE_AWAITING_APPROVAL" || ed.get("changeRequest", "id") == crID {
				t.Fatalf("edit of an approved plan: %s", ed.raw)
			}
			c.call("POST", prodPlans+"/"+id+":resume", alice, map[string]any{}).want(t, 400)
			crID, _ = ed.get("changeRequest", "id").(string)
			digest, _ = ed.get("changeRequest", "contentDigest").(string)
			c.call("POST", prodCRs+"/"+crID+":approve", bob, map[string]any{"contentDigest": digest}).want(t, 200)
			c.call("POST", prodCRs+"/"+crID+":apply", alice, map[string]any{}).want(t, 200)
			if g := c.call("GET", prodPlans+"/"+id, alice, nil).want(t, 200); g.get("releasePlan", "state") != "RELEASE_PLAN_STATE_PAUSED" {
				t.Fatalf("re-approved plan that had started: %s", g.raw)
			}
			rb := c.call("POST", prodPlans+"/"+id+":rollback", alice, map[string]any{"comment": "not today"}).want(t, 200)
			if rb.get("releasePlan", "state") != "RELEASE_PLAN_STATE_ROLLED_BACK" {
				t.Fatalf("rollback: %s", rb.raw)
			}
			if fc := c.call("GET", prodFlag, alice, nil).want(t, 200); fc.get("config", "config", "on") != false {
				t.Fatalf("rolled back before the first step: the flag is off again: %s", fc.raw)
			}
			a := c.call("GET", "/v1/orgs/acme/audit?resourceType=release_plan&pageSize=50", c.owner, nil).want(t, 200)
			for _, want := range []string{"release_plan.create", "release_plan.approve", "release_plan.start", "release_plan.advance", "release_plan.pause", "release_plan.update", "release_plan.rollback"} {
				if !strings.Contains(a.raw, `"action":"`+want+`"`) {
					t.Errorf("no %s in the audit log", want)
				}
			}
		})
}

// TestReleaseCLI drives a plan with `flagforge release`'s package: create from the
// step notation, start, get shows the applied step, pause, cancel.
func TestReleaseCLI(t *testing.T) {
	t.Parallel()
	c := startWith(t, backends[0].open(t), ratelimit.Config{}, func(c *app.Config) {
		c.Release = releasecfg.Config{PollInterval: 50 * time.Millisecond, CheckInterval: time.Second}
	})
	c.project()
	ctx := context.Background()
	steps, err := release.ParseSteps("10%/1h,100%", "on", "off")
	if err != nil {
		t.Fatal(err)
	}
	cl := release.New(c.conn, c.owner, "acme", "web", "staging")
	chk, err := release.SDKErrorsCheck("on", "ratio", 50)
	if err != nil {
		t.Fatal(err)
	}
	guards := []*adminv1.Guardrail{{Name: "sdk-errors", Check: &adminv1.Guardrail_SdkErrors{SdkErrors: chk},
		Threshold: 0.05, Window: durationpb.New(5 * time.Minute)}}
	p, cr, err := cl.Create(ctx, "new-ui", steps, guards, adminv1.BreachAction_BREACH_ACTION_OFF, "cli")
	if err != nil || cr != nil {
		t.Fatalf("create: %v %v", err, cr)
	}
	if _, err := cl.Act(ctx, "start", p.GetId(), "go"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { g, err := cl.Get(ctx, p.GetId()); return err == nil && g.GetAppliedSteps() == 1 }, "step 1")
	g, _ := cl.Get(ctx, p.GetId())
	var out bytes.Buffer
	if err := release.Render(&out, g); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RUNNING  (1/2 steps applied)", "[>] step 1: 10% on / 90% off for 1h0m0s", "[ ] step 2: 100% on", "next step due", "on breach: off",
		`guardrail sdk-errors: SDK-reported error ratio of variant "on" (at least 50 evaluations) > 0.05 over 5m0s`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("release get lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := cl.Act(ctx, "cancel", p.GetId(), ""); err == nil || !strings.Contains(err.Error(), "pause a running one first") {
		t.Fatalf("cancel of a running plan: %v", err)
	}
	if _, err := cl.Act(ctx, "pause", p.GetId(), "hold"); err != nil {
		t.Fatal(err)
	}
	if p, err := cl.Act(ctx, "cancel", p.GetId(), "done"); err != nil || p.GetState() != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", p, err)
	}
	ps, err := cl.List(ctx, "new-ui")
	if err != nil || len(ps) != 1 {
		t.Fatalf("list: %v %v", ps, err)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// eachBackendWith is eachBackend with an app configuration option.
func eachBackendWith(t *testing.T, opt func(*app.Config), f func(t *testing.T, c *cp)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, startWith(t, b.open(t), ratelimit.Config{}, opt))
		})
	}
}
