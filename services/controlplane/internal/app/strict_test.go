package app_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// violations maps each field of a 400 body's BadRequest detail to its description.
func (r resp) violations() map[string]string {
	out := map[string]string{}
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		fvs, _ := m["fieldViolations"].([]any)
		for _, fv := range fvs {
			f, _ := fv.(map[string]any)
			field, _ := f["field"].(string)
			desc, _ := f["description"].(string)
			out[field] = desc
		}
	}
	return out
}

// TestAdminInputIsStrict: the mistakes a new user makes are refused with a 400
// naming each field as the request spells it, all at once, and nothing is saved.
func TestAdminInputIsStrict(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const cfgPath = "/v1/orgs/acme/projects/web/environments/production/flags/new-ui"
	const flags = "/v1/orgs/acme/projects/web/flags"
	tests := []struct {
		name, method, path, body string
		want                     map[string]string // field -> part of its description
	}{
		{"a misspelt offVariant", "PUT", cfgPath, `{"revision":1,"config":{"on":true,"offVarient":"on","defaultServe":{"variant":"on"}}}`,
			map[string]string{"config.offVarient": `unknown field "offVarient"; did you mean "offVariant"?`}},
		{"bucketBy in the wrong case", "PUT", cfgPath, `{"revision":1,"config":{"on":true,"defaultServe":{"rollout":{"bucketby":"userId","weights":[{"variant":"on","weight":1}]}}}}`,
			map[string]string{"config.defaultServe.rollout.bucketby": `did you mean "bucketBy"?`}},
		{"a field no flag has", "POST", flags, `{"flag":{"key":"x","type":"boolean","colour":"red"}}`,
			map[string]string{"flag.colour": `unknown field "colour"`}},
		{"an unknown operator echoes what was sent", "PUT", cfgPath, `{"revision":1,"config":{"on":true,"defaultServe":{"variant":"on"},"rules":[{"id":"r","clauses":[{"attribute":"v","operator":"semvr_gt","values":["1.0.0"]}],"serve":{"variant":"on"}}]}}`,
			map[string]string{"config.rules[0].clauses[0].operator": `unknown value "semvr_gt"; did you mean "semver_gt"?`}},
		{"an unknown flag type", "POST", flags, `{"flag":{"key":"x","type":"bool"}}`,
			map[string]string{"flag.type": `unknown value "bool"; did you mean "boolean"?`}},
		{"a malformed shape names its path", "POST", flags, `{"flag":{"key":"x","type":"string","variants":{"key":"a"}}}`,
			map[string]string{"flag.variants": "must be an array, got an object"}},
		{"a rule that is not an object", "PUT", cfgPath, `{"revision":1,"config":{"on":true,"rules":["r1"]}}`,
			map[string]string{"config.rules[0]": "must be an object, got a string"}},
		{"every shape problem at once", "POST", flags, `{"flag":{"key":7,"type":"boolean","clientVisible":"yes","tgas":["a"]}}`,
			map[string]string{"flag.key": "must be a string", "flag.clientVisible": "must be true or false", "flag.tgas": `did you mean "tags"?`}},
		{"every validation error at once, in camelCase", "POST", flags, `{"flag":{"key":"New UI","type":"string","variants":[{"key":"a","value":1},{"key":"b","value":"x"}]}}`,
			map[string]string{"flag.key": "slug", "flag.variants[0].value": "string"}},
		{"engine paths in camelCase", "PUT", cfgPath, `{"revision":1,"config":{"on":true,"offVariant":"nope","defaultServe":{"variant":"missing"}}}`,
			map[string]string{"config.offVariant": "", "config.defaultServe.variant": ""}},
		{"request-level paths in camelCase", "GET", "/v1/orgs/acme/projects?pageSize=5000", "", map[string]string{"pageSize": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := c.call(tt.method, tt.path, c.owner, body)
			got := r.violations()
			if r.status != 400 || len(got) != len(tt.want) {
				t.Fatalf("got %d %v; want 400 with exactly %v: %s", r.status, got, tt.want, r.raw)
			}
			for f, d := range tt.want {
				desc, ok := got[f]
				if !ok || !strings.Contains(desc, d) {
					t.Errorf("field %q: %q, want it to say %q (%s)", f, desc, d, r.raw)
				}
			}
		})
	}
	// Nothing was saved by the refused writes.
	if r := c.call("GET", cfgPath, c.owner, nil).want(t, 200); r.get("config", "revision") != "1" && r.get("config", "config", "on") == true {
		t.Fatalf("a refused write changed the configuration: %s", r.raw)
	}
	c.call("GET", flags+"/x", c.owner, nil).want(t, 404)
}

// TestShortEnumNamesAreAccepted: the names the docs use ("boolean", "in",
// "semver_gt") work as well as the full names.
func TestShortEnumNamesAreAccepted(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, `{"flag":{"key":"short","type":"boolean"}}`).want(t, 200)
	r := c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, `{"flag":{"key":"plan","type":"String","variants":[{"key":"a","value":"a"},{"key":"b","value":"b"}]}}`).want(t, 200)
	if r.get("flag", "type") != "FLAG_TYPE_STRING" {
		t.Fatalf("type: %s", r.raw)
	}
	r = c.call("PUT", "/v1/orgs/acme/projects/web/environments/production/flags/short", c.owner, `{"revision":1,"config":{"on":true,"offVariant":"off","defaultServe":{"variant":"off"},"rules":[
		{"id":"beta","clauses":[{"attribute":"email","operator":"ends_with","values":["@acme.test"]},{"attribute":"app","operator":"semver_gt","values":["1.2.0"]}],"serve":{"variant":"on"}},
		{"id":"eu","clauses":[{"attribute":"country","operator":"IN","values":["de","fr"]}],"serve":{"variant":"on"}},
		{"id":"legacy","clauses":[{"attribute":"country","operator":"OPERATOR_EXISTS"}],"serve":{"variant":"off"}}]}}`).want(t, 200)
	ops := []any{r.get("config", "config", "rules", 0, "clauses", 0, "operator"), r.get("config", "config", "rules", 0, "clauses", 1, "operator"),
		r.get("config", "config", "rules", 1, "clauses", 0, "operator"), r.get("config", "config", "rules", 2, "clauses", 0, "operator")}
	want := []any{"OPERATOR_ENDS_WITH", "OPERATOR_SEMVER_GT", "OPERATOR_IN", "OPERATOR_EXISTS"}
	for i := range want {
		if ops[i] != want[i] {
			t.Fatalf("operators %v, want %v: %s", ops, want, r.raw)
		}
	}
}

// TestWrongMethodIs405 on the admin API (the gateway answered 501).
func TestWrongMethodIs405(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	for _, tt := range []struct{ method, path string }{
		{"PUT", "/v1/orgs/acme/projects/web/flags"},
		{"POST", "/v1/orgs/acme/projects/web/flags/new-ui"},
		{"DELETE", "/v1/orgs/acme/projects/web/environments/production/flags"},
	} {
		if r := c.call(tt.method, tt.path, c.owner, nil); r.status != 405 || !strings.Contains(r.raw, "not allowed") {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, r.status, r.raw)
		}
	}
}

// TestClearRefusals: mistakes that used to be accepted are refused naming the
// field: a variant listed twice in a rollout, a change request that changes
// nothing, a schedule in the past (it ran at once).
func TestClearRefusals(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const cfgPath = "/v1/orgs/acme/projects/web/environments/production/flags/new-ui"
	r := c.call("PUT", cfgPath, c.owner, `{"revision":1,"config":{"on":true,"offVariant":"off","defaultServe":{"rollout":{"weights":[{"variant":"on","weight":10},{"variant":"off","weight":90},{"variant":"on","weight":5}]}}}}`)
	if got := r.violations(); r.status != 400 || !strings.Contains(got["config.defaultServe.rollout.weights[2].variant"], "already listed at weights[0]") {
		t.Fatalf("duplicate rollout variant: %d %s", r.status, r.raw)
	}
	r = c.call("POST", "/v1/orgs/acme/projects/web/environments/production/scheduled-changes", c.owner,
		`{"flag":"new-ui","action":"turn_on","runTime":"2020-01-01T00:00:00Z"}`)
	if got := r.violations(); r.status != 400 || !strings.Contains(got["runTime"], "is in the past") {
		t.Fatalf("schedule in the past: %d %s", r.status, r.raw)
	}
	c.call("POST", "/v1/orgs/acme/projects/web/environments/production/scheduled-changes", c.owner,
		`{"flag":"new-ui","action":"turn_on","runTime":"2999-01-01T00:00:00Z"}`).want(t, 200)
	c.protect(t, false)
	cur := c.call("GET", cfgPath, c.owner, nil).want(t, 200)
	cfg, _ := json.Marshal(cur.get("config", "config"))
	r = c.call("POST", "/v1/orgs/acme/projects/web/environments/production/change-requests", c.owner,
		`{"change":{"flagConfig":{"flag":"new-ui","config":`+string(cfg)+`}},"baseRevision":1}`)
	if got := r.violations(); r.status != 400 || !strings.Contains(got["change"], "changes nothing") {
		t.Fatalf("empty change request: %d %s", r.status, r.raw)
	}
	c.call("POST", "/v1/orgs/acme/projects/web/environments/production/change-requests", c.owner,
		`{"change":{"flagConfig":{"flag":"new-ui","config":{"on":true,"offVariant":"off","defaultServe":{"variant":"on"}}}},"baseRevision":1}`).want(t, 200)
}
