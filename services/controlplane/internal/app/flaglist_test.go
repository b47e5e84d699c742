package app_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

const flagsURL = "/v1/orgs/acme/projects/web/flags"

// keys lists the flag keys of a ListFlags answer, in order.
func keys(r resp) []string {
	var out []string
	for i := 0; ; i++ {
		k, ok := r.get("flags", i, "key").(string)
		if !ok {
			return out
		}
		out = append(out, k)
	}
}

// TestListFlagsFiltersAndSortsOnTheServer: search, tags, owner, type, lifecycle
// status and on/off per environment filter in the control plane; sort and pages
// follow; environments answer each flag's state everywhere in the same call; bad
// filters name their field.
func TestListFlagsFiltersAndSortsOnTheServer(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project() // new-ui: boolean, untagged
		mk := func(body map[string]any) {
			t.Helper()
			c.call("POST", flagsURL, c.owner, map[string]any{"flag": body}).want(t, 200)
		}
		mk(map[string]any{"key": "alpha", "name": "Zeta checkout", "type": "FLAG_TYPE_BOOLEAN", "tags": []string{"checkout", "web"}, "owner": "ann@acme.test", "description": "the new checkout"})
		mk(map[string]any{"key": "beta", "name": "Banner", "type": "FLAG_TYPE_STRING", "tags": []string{"web"}, "owner": "Bob@acme.test",
			"variants": []map[string]any{{"key": "x", "value": "X"}, {"key": "y", "value": "Y"}}})
		mk(map[string]any{"key": "gone", "type": "FLAG_TYPE_BOOLEAN"})
		c.call("POST", flagsURL+"/gone:archive", c.owner, map[string]any{"revision": 1}).want(t, 200)
		// beta was evaluated in production a minute ago: active there.
		if err := c.st.RecordUsage(context.Background(), store.EnvRef{Org: "acme", Project: "web", Environment: "production"}, "b1",
			[]store.UsageCount{{Flag: "beta", Variant: "x", Minute: time.Now().Add(-time.Minute), Count: 7}}); err != nil {
			t.Fatal(err)
		}
		// alpha is turned on in staging last: the latest change.
		c.call("PUT", "/v1/orgs/acme/projects/web/environments/staging/flags/alpha", c.owner, map[string]any{
			"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": 1}).want(t, 200)

		list := func(q string) []string {
			t.Helper()
			return keys(c.call("GET", flagsURL+"?"+q, c.owner, nil).want(t, 200))
		}
		for _, tc := range []struct{ name, query, want string }{
			{"no filter lists live flags by key", "", "[alpha beta new-ui]"},
			{"every tag must be carried", "tags=web&tags=checkout", "[alpha]"},
			{"owner contains, any case", "owner=bob", "[beta]"},
			{"type", "type=FLAG_TYPE_STRING", "[beta]"},
			{"free text over key, name, description and tags", "query=CHECKOUT", "[alpha]"},
			{"every word must match", "query=checkout+banner", "[]"},
			{"on in an environment", "environment=staging&on=true", "[alpha]"},
			{"off in an environment", "environment=staging&on=false", "[beta new-ui]"},
			{"status in any environment", "status=FLAG_STATUS_ACTIVE", "[beta]"},
			{"status in one environment", "status=FLAG_STATUS_ACTIVE&environment=staging", "[]"},
			{"inactive: on, never evaluated", "status=FLAG_STATUS_INACTIVE&environment=staging", "[alpha]"},
			{"archived status lists archived flags", "status=FLAG_STATUS_ARCHIVED", "[gone]"},
			{"sort by name", "sort=FLAG_SORT_NAME", "[beta new-ui alpha]"},
			{"latest change first", "sort=FLAG_SORT_UPDATE_TIME&descending=true&includeEnvironments=true", "[alpha beta new-ui]"},
			{"descending key", "descending=true", "[new-ui beta alpha]"},
		} {
			if got := fmt.Sprint(list(tc.query)); got != tc.want {
				t.Errorf("%s (?%s) = %s, want %s", tc.name, tc.query, got, tc.want)
			}
		}

		// Environments: each listed flag's state in every environment, in one call.
		r := c.call("GET", flagsURL+"?includeEnvironments=true&tags=checkout", c.owner, nil).want(t, 200)
		if r.get("environments", 0, "flag") != "alpha" || r.get("totalSize") != float64(1) {
			t.Fatalf("environments of alpha: %s", r.raw)
		}
		states := map[string]string{}
		for i := 0; ; i++ {
			e, ok := r.get("environments", 0, "states", i, "environment").(string)
			if !ok {
				break
			}
			on, _ := r.get("environments", 0, "states", i, "on").(bool)
			states[e] = fmt.Sprint(on, " ", r.get("environments", 0, "states", i, "status"))
		}
		if states["staging"] != "true FLAG_STATUS_INACTIVE" || states["production"] != "false FLAG_STATUS_NEW" || len(states) != 3 {
			t.Errorf("alpha's states = %v", states)
		}

		// Pages of one, sorted by name: the token carries the position.
		var paged []string
		tok := ""
		for range 5 {
			p := c.call("GET", flagsURL+"?sort=FLAG_SORT_NAME&pageSize=1&pageToken="+tok, c.owner, nil).want(t, 200)
			paged = append(paged, keys(p)...)
			if p.get("totalSize") != float64(3) {
				t.Errorf("totalSize = %v, want 3", p.get("totalSize"))
			}
			if tok, _ = p.get("nextPageToken").(string); tok == "" {
				break
			}
		}
		if fmt.Sprint(paged) != "[beta new-ui alpha]" {
			t.Errorf("paged by name = %v", paged)
		}

		for _, tc := range []struct{ query, field string }{
			{"on=true", "on"},
			{"tags=Not_A_Slug", "tags[0]"},
			{"sort=FLAG_SORT_NAME&pageToken=bm9wZQ", "pageToken"},
		} {
			if f := c.call("GET", flagsURL+"?"+tc.query, c.owner, nil).want(t, 400).fieldViolation(); f != tc.field {
				t.Errorf("?%s names %q, want %q", tc.query, f, tc.field)
			}
		}
		for _, q := range []string{"status=FLAG_STATUS_ANCIENT", "sort=FLAG_SORT_BY_MOOD"} {
			if r := c.call("GET", flagsURL+"?"+q, c.owner, nil).want(t, 400); !strings.Contains(r.raw, strings.Split(q, "=")[0]) {
				t.Errorf("?%s is refused naming the parameter: %s", q, r.raw)
			}
		}
		c.call("GET", flagsURL+"?environment=nowhere&on=true", c.owner, nil).want(t, 404)
	})
}

// TestProjectUsageSeries: one call answers every evaluated flag's counts per
// bucket; a bucket that is not whole minutes is refused naming its field.
func TestProjectUsageSeries(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	now := time.Now().UTC().Truncate(time.Minute)
	ref := store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	if err := c.st.RecordUsage(context.Background(), ref, "b1", []store.UsageCount{
		{Flag: "new-ui", Variant: "on", Minute: now.Add(-90 * time.Minute), Count: 5},
		{Flag: "new-ui", Variant: "off", Minute: now.Add(-90 * time.Minute), Count: 2},
		{Flag: "new-ui", Variant: "on", Minute: now.Add(-10 * time.Minute), Count: 4},
		{Flag: "other", Variant: "on", Minute: now.Add(-10 * 24 * time.Hour), Count: 100}, // outside the window
	}); err != nil {
		t.Fatal(err)
	}
	u := "/v1/orgs/acme/projects/web/environments/production/usage"
	r := c.call("GET", u+"?bucketSeconds=3600&startTime="+now.Add(-3*time.Hour).Format(time.RFC3339)+"&endTime="+now.Format(time.RFC3339), c.owner, nil).want(t, 200)
	if r.get("series", 0, "flag") != "new-ui" || r.get("series", 0, "total") != "11" || r.get("series", 1) != nil {
		t.Fatalf("series: %s", r.raw)
	}
	if got := fmt.Sprint(r.get("series", 0, "counts")); got != "[0 7 4]" {
		t.Errorf("hourly counts = %s, want [0 7 4]", got)
	}
	d := c.call("GET", u, c.owner, nil).want(t, 200) // default: 7 days by day
	if d.get("bucketSeconds") != "86400" || len(d.get("series", 0, "counts").([]any)) != 7 {
		t.Errorf("default window: %s", d.raw)
	}
	if f := c.call("GET", u+"?bucketSeconds=30", c.owner, nil).want(t, 400).fieldViolation(); f != "bucketSeconds" {
		t.Errorf("bucketSeconds=30 names %q", f)
	}
	c.call("GET", "/v1/orgs/acme/projects/web/environments/nowhere/usage", c.owner, nil).want(t, 404)
}

// TestValidateFlagConfigWhileTyping: the validate endpoint answers exactly the
// problems a save would have, by field, and saves nothing.
func TestValidateFlagConfigWhileTyping(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	v := "/v1/orgs/acme/projects/web/environments/staging/flags/new-ui:validate"
	bad := map[string]any{"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"},
		"rules": []any{map[string]any{"id": "r1", "clauses": []any{map[string]any{"attribute": "email", "operator": "OPERATOR_MATCHES", "values": []any{"(unclosed"}}},
			"serve": map[string]any{"variant": "on"}}}}}
	r := c.call("POST", v, c.owner, bad).want(t, 200)
	field, _ := r.get("violations", 0, "field").(string)
	if !strings.HasPrefix(field, "config.rules[0].clauses[0].values") {
		t.Fatalf("violations: %s", r.raw)
	}
	put := c.call("PUT", "/v1/orgs/acme/projects/web/environments/staging/flags/new-ui", c.owner, map[string]any{"config": bad["config"], "revision": 1}).want(t, 400)
	if put.fieldViolation() != field {
		t.Errorf("validate names %q, save names %q", field, put.fieldViolation())
	}
	good := c.call("POST", v, c.owner, map[string]any{"config": map[string]any{"on": true, "defaultServe": map[string]any{"variant": "on"}}}).want(t, 200)
	if vs, _ := good.get("violations").([]any); len(vs) != 0 {
		t.Errorf("a valid configuration has violations: %s", good.raw)
	}
	if g := c.call("GET", "/v1/orgs/acme/projects/web/environments/staging/flags/new-ui", c.owner, nil).want(t, 200); g.get("config", "revision") != "1" {
		t.Errorf("validate saved something: %s", g.raw)
	}
	if f := c.call("POST", v, c.owner, map[string]any{}).want(t, 400).fieldViolation(); f != "config" {
		t.Errorf("no config names %q", f)
	}
	c.call("POST", "/v1/orgs/acme/projects/web/environments/staging/flags/nope:validate", c.owner, bad).want(t, 404)
}

// TestDisabledRuleIsSkippedAndExplained: a disabled rule is saved and published
// but evaluation skips it; explain lists it as disabled.
func TestDisabledRuleIsSkippedAndExplained(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	cfg := map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "off"},
		"rules": []any{
			map[string]any{"id": "everyone", "disabled": true, "clauses": []any{map[string]any{"attribute": "targetingKey", "operator": "OPERATOR_EXISTS"}}, "serve": map[string]any{"variant": "on"}},
		}}
	put := c.call("PUT", "/v1/orgs/acme/projects/web/environments/staging/flags/new-ui", c.owner, map[string]any{"config": cfg, "revision": 1}).want(t, 200)
	if put.get("config", "config", "rules", 0, "disabled") != true {
		t.Fatalf("disabled not saved: %s", put.raw)
	}
	// Explain decides on the published manifest: wait for the new version.
	var ex resp
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ex = c.call("POST", "/v1/orgs/acme/projects/web/environments/staging/flags/new-ui:explain", c.owner, map[string]any{"context": map[string]any{"targetingKey": "u1"}}).want(t, 200)
		if ex.get("reason") != "ERROR" && ex.get("reason") != "DISABLED" || time.Now().After(deadline) {
			break
		}
	}
	if ex.get("variant") != "off" || ex.get("reason") != "DEFAULT" || ex.get("explanation", "rules", 0, "disabled") != true || ex.get("explanation", "rules", 0, "evaluated") != false {
		t.Fatalf("explain with a disabled rule: %s", ex.raw)
	}
}

// BenchmarkListFlagsByStatus is the flags list's request with a lifecycle filter
// and every environment's state over 1,000 flags in 3 environments: the
// configurations are read in one query (figure in docs/benchmarks.md).
func BenchmarkListFlagsByStatus(b *testing.B) {
	c := start(b, ratelimit.Config{})
	c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "web", "name": "Web"}})
	if r := c.call("POST", "/v1/orgs/acme/projects/web:bulkWrite", c.owner, bulkBody(1000, "f")); r.status != 200 {
		b.Fatalf("%d %s", r.status, r.raw)
	}
	// CPU time of the whole process (client, control plane) per request: less
	// distorted by other work on a shared machine than ns/op.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	time.Sleep(2 * time.Second) // the bulk write's publication settles first
	start := cpu()
	for b.Loop() {
		r := c.call("GET", flagsURL+"?status=FLAG_STATUS_NEW&includeEnvironments=true&pageSize=1000", c.owner, nil)
		if r.status != 200 || r.get("totalSize") != float64(1000) {
			b.Fatalf("%d %.300s", r.status, r.raw)
		}
	}
	b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
}
