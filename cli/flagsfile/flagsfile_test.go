package flagsfile

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/flagforge/flagforge/pkg/errs"
)

func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asJSON turns a YAML document into the JSON value the schema checks.
func asJSON(t *testing.T, doc []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaDescribesTheFormat: the example file and its encoding (what export
// writes) satisfy the committed JSON Schema; a file with a misspelt field or an
// unknown operator does not, and Decode names the same paths.
func TestSchemaDescribesTheFormat(t *testing.T) {
	t.Parallel()
	s := schema(t)
	example, err := os.ReadFile("testdata/every-feature.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(asJSON(t, example)); err != nil {
		t.Fatalf("the example does not satisfy the schema: %v", err)
	}
	f, err := Decode(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []Format{YAML, JSON} {
		enc, err := Encode(f, format)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(asJSON(t, enc)); err != nil {
			t.Fatalf("the %s encoding does not satisfy the schema: %v\n%s", format, err, enc)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		enc2, _ := Encode(again, format)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("%s encoding is not stable:\n%s\n---\n%s", format, enc, enc2)
		}
	}
	bad := strings.Replace(string(example), "offVariant: none", "offVarient: none", 1)
	bad = strings.Replace(bad, "operator: semver_gt", "operator: semvr_gt", 1)
	if err := s.Validate(asJSON(t, []byte(bad))); err == nil {
		t.Fatal("the schema accepts a misspelt field")
	}
	_, err = Decode([]byte(bad))
	got := map[string]string{}
	for _, v := range errs.ViolationsOf(err) {
		got[v.Field] = v.Description
	}
	if !strings.Contains(got["environments.production.flags.plan-banner.offVarient"], `did you mean "offVariant"?`) ||
		!strings.Contains(got["environments.production.flags.checkout.rules[1].clauses[0].operator"], `did you mean "semver_gt"?`) {
		t.Fatalf("decode errors: %v", got)
	}
}

// TestValidateRunsTheEngineChecks offline, naming the file's paths.
func TestValidateRunsTheEngineChecks(t *testing.T) {
	t.Parallel()
	f, err := Decode([]byte(`version: 1
flags: [{key: a, type: boolean}]
environments:
  production:
    flags:
      a: {on: true, offVariant: "off", defaultServe: {rollout: {weights: [{variant: "on", weight: 1}, {variant: "on", weight: 2}]}}, rules: [{id: r, clauses: [{operator: segment_match, values: [nope]}], serve: {variant: maybe}}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(Validate(f), "\n")
	for _, want := range []string{"environments.production.flags.a.defaultServe.rollout.weights[1].variant", "environments.production.flags.a.rules[0].serve.variant", "environments.production.flags.a.rules[0].clauses[0].values[0]"} {
		if !strings.Contains(problems, want) {
			t.Errorf("validate does not name %s:\n%s", want, problems)
		}
	}
}

// TestEvaluateExplains: offline evaluation with the engine, explained.
func TestEvaluateExplains(t *testing.T) {
	t.Parallel()
	example, _ := os.ReadFile("testdata/every-feature.yaml")
	f, err := Decode(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ctx  map[string]any
		flag string
		want string
	}{
		{map[string]any{"targetingKey": "u1"}, "checkout", `rule "beta" matched`},
		{map[string]any{"targetingKey": "vip-1"}, "checkout", "listed in the flag's targets"},
		{map[string]any{"targetingKey": "x", "plan": "gold", "since": "2029-05-01T00:00:00Z"}, "plan-banner", "prerequisite"},
		{map[string]any{"targetingKey": "u1", "plan": "gold", "since": "2029-05-01T00:00:00Z"}, "plan-banner", `value Gold! (variant "gold")`},
		{map[string]any{}, "theme", "the flag is off"},
	} {
		d, err := Evaluate(f, "production", tt.flag, tt.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Explain(); !strings.Contains(got, tt.want) {
			t.Errorf("%s %v: %s", tt.flag, tt.ctx, got)
		}
	}
}
