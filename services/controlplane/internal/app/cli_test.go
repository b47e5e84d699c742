package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/flagforge/flagforge/cli/flagsfile"
	"github.com/flagforge/flagforge/cli/remote"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// everyFeature is a flags file using every feature of the format: each flag type,
// variants with names, tags, owner, client visibility, a temporary flag, targets,
// rules with several operators, negation and case folding, rollouts with
// bucketBy and seed, prerequisites, segments with included, excluded and rules.
const everyFeature = `
version: 1
flags:
  - key: checkout
    name: New checkout
    description: The redesigned checkout
    type: boolean
    tags: [checkout, web]
    owner: ann@acme.test
    clientVisible: true
  - key: plan-banner
    type: string
    variants:
      - {key: gold, value: "Gold!", name: Gold}
      - {key: silver, value: "Silver"}
      - {key: none, value: ""}
  - key: max-items
    type: number
    variants: [{key: low, value: 10}, {key: high, value: 100.5}]
  - key: theme
    type: json
    temporary: true
    expiresAt: "2031-01-01T00:00:00Z"
    variants:
      - {key: dark, value: {bg: "#000", contrast: [1, 2]}}
      - {key: light, value: {bg: "#fff"}}
environments:
  production:
    segments:
      - key: beta
        description: Beta testers
        included: [u1, u2]
        excluded: [u3]
        rules:
          - id: staff
            clauses: [{attribute: email, operator: ends_with, values: ["@acme.test"], caseInsensitive: true}]
    flags:
      checkout:
        on: true
        offVariant: "off"
        targets: [{variant: "on", values: [vip-1]}]
        rules:
          - id: beta
            description: beta users first
            clauses: [{operator: segment_match, values: [beta]}]
            serve: {variant: "on"}
          - id: new-app
            clauses:
              - {attribute: appVersion, operator: semver_gt, values: ["2.3.0"]}
              - {attribute: country, operator: in, values: [de, fr], negate: true}
            serve: {rollout: {bucketBy: accountId, seed: checkout-2031, weights: [{variant: "on", weight: 1}, {variant: "off", weight: 3}]}}
        defaultServe: {rollout: {weights: [{variant: "on", weight: 25}, {variant: "off", weight: 75}]}}
      plan-banner:
        on: true
        offVariant: none
        prerequisites: [{flagKey: checkout, variants: ["on"]}]
        rules:
          - id: gold
            clauses: [{attribute: plan, operator: in, values: [gold, platinum]}, {attribute: since, operator: before, values: ["2030-01-01T00:00:00Z"]}]
            serve: {variant: gold}
        defaultServe: {variant: silver}
      max-items:
        on: true
        offVariant: low
        rules:
          - id: big
            clauses: [{attribute: cart, operator: gte, values: [50]}, {attribute: ip, operator: ip_in_cidr, values: ["10.0.0.0/8"]}, {attribute: beta, operator: exists}]
            serve: {variant: high}
        defaultServe: {variant: low}
      theme:
        on: false
        offVariant: light
        defaultServe: {variant: dark}
  staging:
    flags:
      checkout: {on: true, offVariant: "off", defaultServe: {variant: "on"}}
`

// TestFlagsAsCodeRoundTrip: a file with every feature applied into a project,
// exported, applied into a new project and exported again gives the same bytes;
// plan then shows no change; into a protected environment apply opens change
// requests and writes nothing there.
func TestFlagsAsCodeRoundTrip(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	ctx := context.Background()
	for _, p := range []string{"web", "copy", "prot"} {
		c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": p, "name": p}}).want(t, 200)
	}
	src, err := flagsfile.Decode([]byte(everyFeature))
	if err != nil {
		t.Fatal(err)
	}
	if problems := flagsfile.Validate(src); len(problems) > 0 {
		t.Fatalf("the example is invalid: %v", problems)
	}
	cl := remote.New(c.conn, c.owner)
	if _, err := cl.Apply(ctx, "acme", "web", src, "seed"); err != nil {
		t.Fatal(err)
	}
	exported := func(project string) []byte {
		t.Helper()
		f, err := cl.Export(ctx, "acme", project, "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := flagsfile.Encode(f, flagsfile.YAML)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := exported("web")
	fa, err := flagsfile.Decode(a)
	if err != nil {
		t.Fatalf("an export does not decode: %v\n%s", err, a)
	}
	res, err := cl.Apply(ctx, "acme", "copy", fa, "copy")
	if err != nil {
		t.Fatal(err)
	}
	if res.Bulk.GetFlagsCreated() != 4 || res.Bulk.GetSegmentsCreated() != 1 {
		t.Fatalf("apply into the new project: %v", res.Bulk)
	}
	if b := exported("copy"); string(a) != string(b) {
		t.Fatalf("export -> apply -> export differs:\n--- web\n%s\n--- copy\n%s", a, b)
	}
	for _, want := range []string{"type: boolean", "operator: semver_gt", "bucketBy: accountId", "expiresAt:", "caseInsensitive: true", "flagKey: checkout"} {
		if !strings.Contains(string(a), want) {
			t.Errorf("the export lacks %q", want)
		}
	}
	cur, err := cl.Export(ctx, "acme", "copy", "")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := flagsfile.Plan(cur, fa)
	if err != nil || len(plan) != 0 {
		t.Fatalf("plan after apply: %v %v", plan, err)
	}
	// A protected production: the bulk write takes definitions and staging, and
	// production's content becomes change requests.
	e := c.call("GET", "/v1/orgs/acme/projects/prot/environments/production", c.owner, nil).want(t, 200)
	c.call("PATCH", "/v1/orgs/acme/projects/prot/environments/production", c.owner, map[string]any{
		"settings": map[string]any{"approvalsRequired": true, "requiredApprovals": 1}, "revision": e.get("environment", "revision")}).want(t, 200)
	res, err = cl.Apply(ctx, "acme", "prot", fa, "protected")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ChangeRequests) != 5 || !strings.Contains(res.ChangeRequests[0], "/environments/production/change-requests/") {
		t.Fatalf("change requests: %v", res.ChangeRequests)
	}
	if g := c.call("GET", "/v1/orgs/acme/projects/prot/environments/production/flags/checkout", c.owner, nil).want(t, 200); g.get("config", "config", "on") == true {
		t.Fatalf("a protected environment changed without approval: %s", g.raw)
	}
	open := c.call("GET", "/v1/orgs/acme/projects/prot/environments/production/change-requests", c.owner, nil).want(t, 200)
	if n := len(open.get("changeRequests").([]any)); n != 5 {
		t.Fatalf("%d change requests listed: %s", n, open.raw)
	}
	pending := must[*flagsfile.File](t, "export")(cl.Export(ctx, "acme", "prot", ""))
	plan, _ = flagsfile.Plan(pending, fa)
	if rendered := flagsfile.Render(plan); !strings.Contains(rendered, "~ config production/checkout") || !strings.Contains(rendered, `  + "on": true`) {
		t.Fatalf("plan of the pending changes:\n%s", rendered)
	}
	// plan's impact preview: production's pending configurations are previewed
	// (no evaluator reported contexts here, so over none), checkout among them.
	ims, err := cl.Impact(ctx, "acme", "prot", pending, fa, plan)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, im := range ims {
		for _, f := range im.Impact.GetFlags() {
			found = found || (im.Environment == "production" && f.GetFlag() == "checkout" && f.GetDirect())
		}
	}
	if out := remote.RenderImpact(ims); !found || !strings.Contains(out, "Impact in production over 0 seen contexts") {
		t.Fatalf("impact of the plan: %v\n%s", ims, out)
	}
}

// BenchmarkApply1000 is one `flagforge apply` of a file of 1,000 boolean flags,
// each with a production configuration (a rule and a 25% rollout), into a control
// plane on SQLite (figure in docs/benchmarks.md).
func BenchmarkApply1000(b *testing.B) {
	c := start(b, ratelimit.Config{})
	cl := remote.New(c.conn, c.owner)
	var sb strings.Builder
	sb.WriteString("version: 1\nflags:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  - {key: f-%04d, type: boolean, tags: [bulk]}\n", i)
	}
	sb.WriteString("environments:\n  production:\n    flags:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "      f-%04d: {on: true, offVariant: \"off\", rules: [{id: beta, clauses: [{attribute: plan, operator: in, values: [beta]}], serve: {variant: \"on\"}}], defaultServe: {rollout: {weights: [{variant: \"on\", weight: 25}, {variant: \"off\", weight: 75}]}}}\n", i)
	}
	f, err := flagsfile.Decode([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		project := fmt.Sprintf("p%d", i)
		i++
		c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": project, "name": project}})
		if _, err := cl.Apply(context.Background(), "acme", project, f, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCLIBulk drives `flagforge bulk` (cli/remote.Bulk): a tag added to the
// flags a filter selects and flags turned off in staging, each in ONE bulk
// write; a dry run changes nothing; a protected environment refuses turning
// flags off in bulk with the server's reason, and nothing changes.
func TestCLIBulk(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		for _, k := range []string{"b-1", "b-2", "other"} {
			c.call("POST", flagsURL, c.owner, map[string]any{"flag": map[string]any{"key": k, "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 200)
			for _, env := range []string{"staging", "production"} {
				c.call("PUT", "/v1/orgs/acme/projects/web/environments/"+env+"/flags/"+k, c.owner, onBody).want(t, 200)
			}
		}
		cl := remote.New(c.conn, c.owner)
		sel := &adminv1.ListFlagsRequest{Org: "acme", Project: "web", Query: "b-"}
		var out strings.Builder
		if _, err := cl.Bulk(t.Context(), &out, sel, nil, remote.BulkAction{AddTag: "wave"}, "tag", true); err != nil || !strings.Contains(out.String(), "dry run") {
			t.Fatalf("dry run: %v\n%s", err, out.String())
		}
		if got := fmt.Sprint(keys(c.call("GET", flagsURL+"?tags=wave", c.owner, nil).want(t, 200))); got != "[]" {
			t.Fatalf("a dry run tagged %s", got)
		}
		res, err := cl.Bulk(t.Context(), &out, sel, nil, remote.BulkAction{AddTag: "wave"}, "tag", false)
		if err != nil || res.GetFlagsUpdated() != 2 {
			t.Fatalf("bulk tag: %v %v\n%s", res, err, out.String())
		}
		if got := fmt.Sprint(keys(c.call("GET", flagsURL+"?tags=wave", c.owner, nil).want(t, 200))); got != "[b-1 b-2]" {
			t.Fatalf("tagged: %s", got)
		}
		res, err = cl.Bulk(t.Context(), &out, &adminv1.ListFlagsRequest{Org: "acme", Project: "web"}, []string{"b-2", "other"}, remote.BulkAction{OffIn: "staging"}, "incident", false)
		if err != nil || res.GetConfigsUpdated() != 2 {
			t.Fatalf("bulk off: %v %v\n%s", res, err, out.String())
		}
		if got := fmt.Sprint(keys(c.call("GET", flagsURL+"?environment=staging&on=false", c.owner, nil).want(t, 200))); got != "[b-2 new-ui other]" {
			t.Fatalf("off in staging: %s", got)
		}
		c.protect(t, false)
		_, err = cl.Bulk(t.Context(), &out, sel, nil, remote.BulkAction{OffIn: "production"}, "incident", false)
		if err == nil || !strings.Contains(err.Error(), "requires approvals") {
			t.Fatalf("bulk off in a protected environment: %v", err)
		}
		if got := fmt.Sprint(keys(c.call("GET", flagsURL+"?environment=production&on=true", c.owner, nil).want(t, 200))); got != "[b-1 b-2 other]" {
			t.Fatalf("a refused bulk write changed production: %s", got)
		}
		if _, err := cl.Bulk(t.Context(), &out, sel, []string{"nope"}, remote.BulkAction{AddTag: "x"}, "", false); err == nil || !strings.Contains(err.Error(), `"nope"`) {
			t.Fatalf("an unknown flag: %v", err)
		}
	})
}
