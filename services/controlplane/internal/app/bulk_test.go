package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"google.golang.org/protobuf/encoding/protojson"
)

// bulkBody is a bulk write of n boolean flags, each on in production with a rule
// and a 25% rollout, plus one segment the rules use.
func bulkBody(n int, prefix string) map[string]any {
	flags, configs := make([]any, 0, n), make([]any, 0, n)
	for i := range n {
		key := fmt.Sprintf("%s-%04d", prefix, i)
		flags = append(flags, map[string]any{"key": key, "type": "boolean", "tags": []any{"bulk"}})
		configs = append(configs, map[string]any{"environment": "production", "flag": key, "config": map[string]any{
			"on": true, "offVariant": "off",
			"rules": []any{map[string]any{"id": "beta", "clauses": []any{map[string]any{"operator": "segment_match", "values": []any{"beta"}}}, "serve": map[string]any{"variant": "on"}}},
			"defaultServe": map[string]any{"rollout": map[string]any{"weights": []any{
				map[string]any{"variant": "on", "weight": 25}, map[string]any{"variant": "off", "weight": 75}}}},
		}})
	}
	return map[string]any{"flags": flags, "configs": configs, "comment": "import",
		"segments": []any{map[string]any{"environment": "production", "segment": map[string]any{"key": "beta", "included": []any{"u1"}}}}}
}

func manifestVersion(c *cp, t *testing.T) string {
	t.Helper()
	r := c.call("GET", "/v1/orgs/acme/projects/web/environments/production/manifest", c.owner, nil)
	if r.status != 200 {
		return ""
	}
	v, _ := r.get("version").(string)
	return v
}

// TestBulkWrite: 300 flags with their configurations and a segment in one call
// (BenchmarkBulkWrite measures 1,000), one transaction: one audit entry per resource, one new manifest version;
// a second identical call changes nothing; an invalid item refuses everything.
func TestBulkWrite(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		const bulk = "/v1/orgs/acme/projects/web:bulkWrite"
		// Wait for the version that holds the set-up's last write (flag new-ui):
		// project and flag creation publish one version each, so the first
		// version seen may have another behind it.
		var before string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if v, ok := publishedWith(c, t, "new-ui"); ok {
				before = v
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no manifest published")
			}
		}
		r := c.call("POST", bulk, c.owner, bulkBody(300, "f")).want(t, 200)
		if r.get("flagsCreated") != float64(300) || r.get("configsUpdated") != float64(300) || r.get("segmentsCreated") != float64(1) {
			t.Fatalf("bulk write: %s", r.raw)
		}
		var after string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			m := c.call("GET", "/v1/orgs/acme/projects/web/environments/production/manifest", c.owner, nil)
			if strings.Contains(m.raw, `"version"`) && manifestVersion(c, t) != before {
				after = manifestVersion(c, t)
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the bulk write was never published")
			}
		}
		if want := fmt.Sprint(atoi(before) + 1); after != want {
			t.Fatalf("manifest version %s after the bulk write, want one new version (%s)", after, want)
		}
		audit := c.call("GET", "/v1/orgs/acme/audit?pageSize=1000&resourceType=flag_config", c.owner, nil).want(t, 200)
		if n := strings.Count(audit.raw, `"flag_config.update"`); n < 100 {
			t.Fatalf("audit entries per configuration: %d", n)
		}
		again := c.call("POST", bulk, c.owner, bulkBody(300, "f")).want(t, 200)
		if again.get("flagsUnchanged") != float64(300) || again.get("configsUnchanged") != float64(300) || again.get("segmentsUnchanged") != float64(1) {
			t.Fatalf("an identical bulk write changed something: %s", again.raw)
		}
		// All or nothing: one configuration serving an unknown variant refuses the
		// new flags too, naming the item.
		bad := bulkBody(3, "g")
		bad["configs"].([]any)[2].(map[string]any)["config"].(map[string]any)["offVariant"] = "nope"
		r = c.call("POST", bulk, c.owner, bad)
		if got := r.violations(); r.status != 400 || got["configs[2].config.offVariant"] == "" {
			t.Fatalf("invalid bulk write: %d %s", r.status, r.raw)
		}
		c.call("GET", "/v1/orgs/acme/projects/web/flags/g-0000", c.owner, nil).want(t, 404)
		// A protected environment refuses a bulk change of what it serves.
		c.protect(t, false)
		changed := bulkBody(1, "f")
		changed["configs"].([]any)[0].(map[string]any)["config"].(map[string]any)["on"] = false
		r = c.call("POST", bulk, c.owner, changed)
		if r.status != 400 || !strings.Contains(r.raw, "requires approvals") {
			t.Fatalf("bulk write into a protected environment: %d %s", r.status, r.raw)
		}
	})
}

// publishedWith reports the production manifest's version once it holds the flag.
func publishedWith(c *cp, t *testing.T, flag string) (string, bool) {
	t.Helper()
	r := c.call("GET", "/v1/orgs/acme/projects/web/environments/production/manifest", c.owner, nil)
	if r.status != 200 {
		return "", false
	}
	var got adminv1.GetSignedManifestResponse
	if err := protojson.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatalf("%v: %s", err, r.raw)
	}
	verifier, err := manifest.NewVerifier(time.Now, c.signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	m, err := verifier.Manifest(got.GetManifest())
	if err != nil {
		t.Fatalf("published manifest does not verify: %v", err)
	}
	if _, found := flagOn(m.GetFlags(), flag); !found {
		return "", false
	}
	return fmt.Sprint(m.GetVersion()), true
}

func atoi(s string) int {
	var n int
	_, _ = fmt.Sscan(s, &n)
	return n
}

// BenchmarkBulkWrite is one REST bulk write of 1,000 boolean flags, each with a
// configuration (rule on a segment, 25% rollout), into a control plane on
// SQLite (figure in docs/benchmarks.md).
func BenchmarkBulkWrite(b *testing.B) {
	c := start(b, ratelimit.Config{})
	c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "web", "name": "Web"}})
	i := 0
	for b.Loop() {
		if r := c.call("POST", "/v1/orgs/acme/projects/web:bulkWrite", c.owner, bulkBody(1000, fmt.Sprintf("b%d", i))); r.status != 200 {
			b.Fatalf("%d %s", r.status, r.raw)
		}
		i++
	}
}

// TestPatchFlagConfig: a JSON merge patch changes only what it names (leaving
// offVariant out no longer clears it), rolloutPercentage sets a boolean rollout,
// mistakes are refused naming the field, and a protected environment gets a
// change request.
func TestPatchFlagConfig(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const path = "/v1/orgs/acme/projects/web/environments/production/flags/new-ui"
	r := c.call("PATCH", path, c.owner, `{"on": true, "rolloutPercentage": 25, "rules": [{"id": "staff", "clauses": [{"attribute": "email", "operator": "ends_with", "values": ["@acme.test"]}], "serve": {"variant": "on"}}]}`).want(t, 200)
	cfg := func(r resp, p ...any) any { return r.get(append([]any{"config", "config"}, p...)...) }
	if cfg(r, "on") != true || cfg(r, "offVariant") != "off" || cfg(r, "rules", 0, "id") != "staff" ||
		cfg(r, "defaultServe", "rollout", "weights", 0, "weight") != float64(25000) || cfg(r, "defaultServe", "rollout", "weights", 1, "variant") != "off" {
		t.Fatalf("patch: %s", r.raw)
	}
	r = c.call("PATCH", path+"?revision=2", c.owner, `{"on": false}`).want(t, 200)
	if cfg(r, "on") != false || cfg(r, "rules", 0, "id") != "staff" || r.get("config", "revision") != "3" {
		t.Fatalf("a patch of on kept the rest? %s", r.raw)
	}
	c.call("PATCH", path+"?revision=2", c.owner, `{"on": true}`).want(t, 409)
	r = c.call("PATCH", path, c.owner, `{"rules": null, "offVarient": "on"}`)
	if got := r.violations(); r.status != 400 || !strings.Contains(got["offVarient"], `did you mean "offVariant"?`) {
		t.Fatalf("misspelt patch: %d %s", r.status, r.raw)
	}
	r = c.call("PATCH", path, c.owner, `{"rolloutPercentage": 140}`)
	if got := r.violations(); r.status != 400 || got["rolloutPercentage"] == "" {
		t.Fatalf("percentage out of range: %d %s", r.status, r.raw)
	}
	// defaultServe is replaced whole: a variant after a rollout is not both.
	r = c.call("PATCH", path, c.owner, `{"defaultServe": {"variant": "on"}}`).want(t, 200)
	if cfg(r, "defaultServe", "variant") != "on" || cfg(r, "defaultServe", "rollout") != nil {
		t.Fatalf("defaultServe patch: %s", r.raw)
	}
	c.protect(t, false)
	r = c.call("PATCH", path, c.owner, `{"rolloutPercentage": 50}`).want(t, 200)
	if r.get("changeRequest", "id") == nil || r.get("config") != nil {
		t.Fatalf("patch in a protected environment: %s", r.raw)
	}
}

// TestCreateFlagWithConfigurations: one call creates a flag and its
// configurations (one transaction); errors name the request's fields.
func TestCreateFlagWithConfigurations(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const flags = "/v1/orgs/acme/projects/web/flags"
	c.call("POST", flags, c.owner, `{"flag": {"key": "dark-mode", "type": "boolean"}, "configs": {
		"production": {"on": true, "offVariant": "off", "defaultServe": {"rollout": {"weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]}}},
		"staging": {"on": true, "offVariant": "off", "defaultServe": {"variant": "on"}}}}`).want(t, 200)
	r := c.call("GET", "/v1/orgs/acme/projects/web/environments/production/flags/dark-mode", c.owner, nil).want(t, 200)
	if r.get("config", "config", "on") != true || r.get("config", "config", "defaultServe", "rollout", "weights", 0, "weight") != float64(10) {
		t.Fatalf("production: %s", r.raw)
	}
	if r := c.call("GET", "/v1/orgs/acme/projects/web/environments/development/flags/dark-mode", c.owner, nil).want(t, 200); r.get("config", "config", "on") != false {
		t.Fatalf("development starts off: %s", r.raw)
	}
	r = c.call("POST", flags, c.owner, `{"flag": {"key": "broken", "type": "boolean"}, "configs": {"production": {"on": true, "defaultServe": {"variant": "maybe"}}}}`)
	if got := r.violations(); r.status != 400 || got[`configs["production"].defaultServe.variant`] == "" {
		t.Fatalf("invalid configuration: %d %s", r.status, r.raw)
	}
	c.call("GET", flags+"/broken", c.owner, nil).want(t, 404)
	c.call("POST", flags, c.owner, `{"flag": {"key": "dark-mode", "type": "boolean"}, "configs": {"staging": {"on": true}}}`).want(t, 409)
	c.protect(t, false)
	r = c.call("POST", flags, c.owner, `{"flag": {"key": "later", "type": "boolean"}, "configs": {"production": {"on": true, "offVariant": "off", "defaultServe": {"variant": "on"}}}}`)
	if r.status != 400 || !strings.Contains(r.raw, "requires approvals") {
		t.Fatalf("a configuration of a protected environment: %d %s", r.status, r.raw)
	}
}

// TestCreateFlagWithConfigurationsIdempotent: a retried create with configs and
// the same idempotency key (header or field) returns the first response and
// writes once; the same key with another body is the conflict plain creates give.
func TestCreateFlagWithConfigurationsIdempotent(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const flags = "/v1/orgs/acme/projects/web/flags"
	body := `{"flag": {"key": "dark-mode", "type": "boolean"}, "configs": {
		"production": {"on": true, "offVariant": "off", "defaultServe": {"variant": "on"}},
		"staging": {"on": true, "offVariant": "off", "defaultServe": {"variant": "off"}}}}`
	audit := func() []any {
		return c.call("GET", "/v1/orgs/acme/audit?pageSize=1000", c.owner, nil).want(t, 200).body["entries"].([]any)
	}
	before := len(audit())
	first := c.call("POST", flags, c.owner, body, "Idempotency-Key", "dm-1").want(t, 200)
	written := len(audit()) - before
	prodRev := c.call("GET", "/v1/orgs/acme/projects/web/environments/production/flags/dark-mode", c.owner, nil).want(t, 200).get("config", "revision")
	if written < 3 { // the flag and its two configurations
		t.Fatalf("the create wrote %d audit entries, want at least 3", written)
	}
	again := c.call("POST", flags, c.owner, body, "Idempotency-Key", "dm-1").want(t, 200)
	if first.raw != again.raw {
		t.Fatalf("retry differs:\n%s\n%s", first.raw, again.raw)
	}
	if n := len(audit()) - before; n != written {
		t.Fatalf("the retry wrote: %d audit entries after it, %d after the first create", n, written)
	}
	if r := c.call("GET", flags, c.owner, nil).want(t, 200); strings.Count(r.raw, `"key":"dark-mode"`) != 1 {
		t.Fatalf("flags after the retry: %s", r.raw)
	}
	if r := c.call("GET", "/v1/orgs/acme/projects/web/environments/production/flags/dark-mode", c.owner, nil).want(t, 200); r.get("config", "revision") != prodRev {
		t.Fatalf("production configuration after the retry (revision was %v): %s", prodRev, r.raw)
	}
	// The same key with another body: the conflict a plain create gives.
	other := strings.Replace(body, `"variant": "on"`, `"variant": "off"`, 1)
	c.call("POST", flags, c.owner, `{"flag": {"key": "plain", "type": "boolean"}}`, "Idempotency-Key", "p-1").want(t, 200)
	wantConflict := c.call("POST", flags, c.owner, `{"flag": {"key": "plain2", "type": "boolean"}}`, "Idempotency-Key", "p-1").want(t, 409)
	conflict := c.call("POST", flags, c.owner, other, "Idempotency-Key", "dm-1").want(t, 409)
	if g, w := strings.ReplaceAll(conflict.raw, "dm-1", "KEY"), strings.ReplaceAll(wantConflict.raw, "p-1", "KEY"); g != w {
		t.Fatalf("conflict with configs:\n%s\nplain create:\n%s", g, w)
	}
	// A plain create reusing a key of a create with configs conflicts too.
	c.call("POST", flags, c.owner, `{"flag": {"key": "dark-mode", "type": "boolean"}}`, "Idempotency-Key", "dm-1").want(t, 409)
	// A retry after the flag changed, with approvals now required in production,
	// still replays the first create instead of being judged as a new write.
	c.protect(t, false)
	c.call("PATCH", flags+"/dark-mode", c.owner, `{"definition": {"key": "dark-mode", "type": "boolean", "variants": [{"key": "on", "value": true}, {"key": "off", "value": false}], "description": "edited"}, "revision": 1}`).want(t, 200)
	if late := c.call("POST", flags, c.owner, body, "Idempotency-Key", "dm-1").want(t, 200); late.raw != first.raw {
		t.Fatalf("retry after an edit differs:\n%s\n%s", first.raw, late.raw)
	}
	// The request field works as the header does.
	withField := strings.Replace(strings.Replace(body, `"dark-mode"`, `"light-mode"`, 1), `"production": {"on": true, "offVariant": "off", "defaultServe": {"variant": "on"}},`, "", 1)
	withField = withField[:len(withField)-1] + `, "idempotencyKey": "lm-1"}`
	f1 := c.call("POST", flags, c.owner, withField).want(t, 200)
	mid := len(audit())
	f2 := c.call("POST", flags, c.owner, withField).want(t, 200)
	if f1.raw != f2.raw || len(audit()) != mid {
		t.Fatalf("field key retry: %s vs %s, audit %d -> %d", f1.raw, f2.raw, mid, len(audit()))
	}
}

// TestBulkWriteIsBasedOnRevisions: a configuration's base_revision and a flag's
// revision, when set, must be the stored ones or the whole write is refused
// (409, naming the item); a definition change that leaves what a protected
// environment serves alone (a tag) passes, one that changes it is refused.
func TestBulkWriteIsBasedOnRevisions(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		const bulk = "/v1/orgs/acme/projects/web:bulkWrite"
		const cfg = "/v1/orgs/acme/projects/web/environments/production/flags/r-0000"
		c.call("POST", bulk, c.owner, bulkBody(2, "r")).want(t, 200)
		rev := c.call("GET", cfg, c.owner, nil).want(t, 200).get("config", "revision")
		off := map[string]any{"on": false, "offVariant": "off", "defaultServe": map[string]any{"variant": "off"}}
		offAt := func(base any) map[string]any {
			return map[string]any{"comment": "off", "configs": []any{map[string]any{"environment": "production", "flag": "r-0000", "config": off, "baseRevision": base}}}
		}
		r := c.call("POST", bulk, c.owner, offAt(1)).want(t, 409)
		if f := r.fieldViolation(); !strings.HasPrefix(f, "configs[0].base") || !strings.Contains(r.raw, "stale") {
			t.Fatalf("stale base revision: field %q: %s", f, r.raw)
		}
		if on := c.call("GET", cfg, c.owner, nil).get("config", "config", "on"); on != true {
			t.Fatalf("a refused bulk write changed the configuration (on = %v)", on)
		}
		if r := c.call("POST", bulk, c.owner, offAt(rev)).want(t, 200); r.get("configsUpdated") != float64(1) {
			t.Fatalf("bulk write on the current revision: %s", r.raw)
		}
		tagged := func(revision int, variants ...any) map[string]any {
			f := map[string]any{"key": "r-0001", "type": "boolean", "tags": []any{"bulk", "extra"}, "revision": revision}
			if len(variants) > 0 {
				f["variants"] = variants
			}
			return map[string]any{"flags": []any{f}}
		}
		if f := c.call("POST", bulk, c.owner, tagged(5)).want(t, 409).fieldViolation(); f != "flags[0].revision" {
			t.Fatalf("stale flag revision names %q", f)
		}
		c.protect(t, false)
		if r := c.call("POST", bulk, c.owner, tagged(1)).want(t, 200); r.get("flagsUpdated") != float64(1) {
			t.Fatalf("a tag added while production requires approvals: %s", r.raw)
		}
		swapped := tagged(2, map[string]any{"key": "on", "value": false}, map[string]any{"key": "off", "value": true})
		if r := c.call("POST", bulk, c.owner, swapped); r.status != 400 || !strings.Contains(r.raw, "requires approvals") {
			t.Fatalf("a definition change production serves: %d %s", r.status, r.raw)
		}
	})
}
