package eval

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// validationEnv is the environment the validation tests save into.
func validationEnv(t *testing.T) ([]*manifestv1.Flag, []*manifestv1.Segment) {
	flags := []*manifestv1.Flag{
		parseFlag(t, `{"key":"base","type":"FLAG_TYPE_STRING","variants":[{"key":"x","value":"X"},{"key":"y","value":"Y"}],
			"config":{"on":true,"defaultServe":{"variant":"x"}}}`),
		parseFlag(t, `{"key":"loop","type":"FLAG_TYPE_STRING","variants":[{"key":"x","value":"X"}],
			"config":{"on":true,"prerequisites":[{"flagKey":"f","variants":["a"]}],"defaultServe":{"variant":"x"}}}`),
	}
	var segs []*manifestv1.Segment
	for _, js := range []string{
		`{"key":"beta","included":["u1"]}`,
		`{"key":"outer","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["s"]}]}]}`,
	} {
		segs = append(segs, parseSegment(t, js))
	}
	return flags, segs
}

func parseSegment(t testing.TB, js string) *manifestv1.Segment {
	t.Helper()
	m := parseManifest(t, `{"segments":[`+js+`]}`)
	return m.Segments[0]
}

// validFlag is a valid string flag "f" touching every part of a flag; the table
// below replaces pieces of it.
const validFlag = `{"key":"f","type":"FLAG_TYPE_STRING",
 "variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
 "config":{"on":true,"offVariant":"b",
  "prerequisites":[{"flagKey":"base","variants":["x"]}],
  "targets":[{"variant":"a","values":["u1"]}],
  "rules":[
   {"id":"r0","clauses":[{"attribute":"email","operator":"OPERATOR_MATCHES","values":["@corp\\.com$"]}],"serve":{"variant":"a"}},
   {"id":"r1","clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["beta"]}],
    "serve":{"rollout":{"weights":[{"variant":"a","weight":50},{"variant":"b","weight":50}]}}}],
  "defaultServe":{"variant":"b"}}}`

func TestValidateFlag(t *testing.T) {
	t.Parallel()
	flags, segs := validationEnv(t)
	clause := func(c string) string {
		return strings.Replace(validFlag, `{"attribute":"email","operator":"OPERATOR_MATCHES","values":["@corp\\.com$"]}`, c, 1)
	}
	tests := []struct {
		name string
		flag string
		want []FieldError // paths and a substring of each message
	}{
		{"a valid flag passes", validFlag, nil},
		{"key must be a lowercase slug", strings.Replace(validFlag, `"key":"f"`, `"key":"F"`, 1),
			[]FieldError{{"key", "lowercase slug"}}},
		{"key at most 64 characters", strings.Replace(validFlag, `"key":"f"`, `"key":"`+strings.Repeat("f", 65)+`"`, 1),
			[]FieldError{{"key", "lowercase slug"}}},
		{"type unspecified refused", strings.Replace(validFlag, `"type":"FLAG_TYPE_STRING",`, ``, 1),
			[]FieldError{{"type", "unspecified"}}},
		{"variant value of the wrong type", strings.Replace(validFlag, `"value":"B"`, `"value":2`, 1),
			[]FieldError{{"variants[1].value", "number value for a string flag"}}},
		{"variant without value", strings.Replace(validFlag, `,"value":"B"`, ``, 1),
			[]FieldError{{"variants[1].value", "value required"}}},
		{"variant keys unique", strings.Replace(validFlag, `{"key":"b","value":"B"}`, `{"key":"a","value":"B"}`, 1),
			[]FieldError{{"variants[1].key", "duplicate variant key"}, {"config.offVariant", `unknown variant "b"`},
				{"config.rules[1].serve.rollout.weights[1].variant", `unknown variant "b"`}, {"config.defaultServe.variant", `unknown variant "b"`}}},
		{"variant keys are slugs", strings.Replace(validFlag, `{"key":"a","value":"A"}`, `{"key":"A a","value":"A"}`, 1),
			[]FieldError{{"variants[0].key", "slug"}, {"config.targets[0].variant", "unknown variant"},
				{"config.rules[0].serve.variant", "unknown variant"}, {"config.rules[1].serve.rollout.weights[0].variant", "unknown variant"}}},
		{"unknown offVariant", strings.Replace(validFlag, `"offVariant":"b"`, `"offVariant":"c"`, 1),
			[]FieldError{{"config.offVariant", `unknown variant "c"`}}},
		{"config required", `{"key":"f","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}]}`,
			[]FieldError{{"config", "required"}}},
		{"prerequisite with no variants", strings.Replace(validFlag, `"variants":["x"]`, `"variants":[]`, 1),
			[]FieldError{{"config.prerequisites[0].variants", "at least one variant"}}},
		{"prerequisite on an unknown flag", strings.Replace(validFlag, `"flagKey":"base"`, `"flagKey":"nope"`, 1),
			[]FieldError{{"config.prerequisites[0].flagKey", `unknown flag "nope"`}}},
		{"prerequisite on an unknown variant", strings.Replace(validFlag, `"variants":["x"]`, `"variants":["x","z"]`, 1),
			[]FieldError{{"config.prerequisites[0].variants[1]", `unknown variant "z" of flag "base"`}}},
		{"prerequisite on itself is a cycle", strings.Replace(validFlag, `{"flagKey":"base","variants":["x"]}`, `{"flagKey":"f","variants":["a"]}`, 1),
			[]FieldError{{"config.prerequisites[0].flagKey", "prerequisite cycle: f -> f"}}},
		{"prerequisite cycle through the environment", strings.Replace(validFlag, `{"flagKey":"base","variants":["x"]}`, `{"flagKey":"loop","variants":["x"]}`, 1),
			[]FieldError{{"config.prerequisites[0].flagKey", "prerequisite cycle: f -> loop -> f"}}},
		{"unknown target variant", strings.Replace(validFlag, `"targets":[{"variant":"a"`, `"targets":[{"variant":"q"`, 1),
			[]FieldError{{"config.targets[0].variant", `unknown variant "q"`}}},
		{"unknown rule variant", strings.Replace(validFlag, `"serve":{"variant":"a"}`, `"serve":{"variant":"q"}`, 1),
			[]FieldError{{"config.rules[0].serve.variant", `unknown variant "q"`}}},
		{"a serve must set variant or rollout", strings.Replace(validFlag, `"serve":{"variant":"a"}`, `"serve":{}`, 1),
			[]FieldError{{"config.rules[0].serve", "required"}}},
		{"defaultServe required", strings.Replace(validFlag, ",\n  \"defaultServe\":{\"variant\":\"b\"}", ``, 1),
			[]FieldError{{"config.defaultServe", "required"}}},
		{"unknown defaultServe variant", strings.Replace(validFlag, `"defaultServe":{"variant":"b"}`, `"defaultServe":{"variant":"c"}`, 1),
			[]FieldError{{"config.defaultServe.variant", `unknown variant "c"`}}},
		{"negative weight", strings.Replace(validFlag, `"weight":50}]`, `"weight":-1}]`, 1),
			[]FieldError{{"config.rules[1].serve.rollout.weights[1].weight", "must be >= 0"}}},
		{"total weight 0", strings.Replace(strings.Replace(validFlag, `"weight":50`, `"weight":0`, 2), `"weight":50`, `"weight":0`, 1),
			[]FieldError{{"config.rules[1].serve.rollout.weights", "total weight must be between 1 and 2147483647, is 0"}}},
		{"total weight over 2^31-1", strings.Replace(strings.Replace(validFlag, `"weight":50`, `"weight":2147483647`, 1), `"weight":50`, `"weight":1`, 1),
			[]FieldError{{"config.rules[1].serve.rollout.weights", "is 2147483648"}}},
		{"rollout variant unknown", strings.Replace(validFlag, `{"variant":"b","weight":50}`, `{"variant":"z","weight":50}`, 1),
			[]FieldError{{"config.rules[1].serve.rollout.weights[1].variant", `unknown variant "z"`}}},
		{"rule ids are slugs", strings.Replace(validFlag, `"id":"r0"`, `"id":"Rule 0"`, 1),
			[]FieldError{{"config.rules[0].id", "slug"}}},
		{"rule ids are required", strings.Replace(validFlag, `"id":"r0",`, ``, 1),
			[]FieldError{{"config.rules[0].id", "slug"}}},
		{"rule ids are unique", strings.Replace(validFlag, `"id":"r1"`, `"id":"r0"`, 1),
			[]FieldError{{"config.rules[1].id", `duplicate rule id "r0"`}}},
		{"invalid regexp", clause(`{"attribute":"a","operator":"OPERATOR_MATCHES","values":["ok","(["]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[1]", "invalid regexp: error parsing regexp"}}},
		{"invalid CIDR", clause(`{"attribute":"a","operator":"OPERATOR_IP_IN_CIDR","values":["10.0.0.0/33"]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[0]", "invalid CIDR"}}},
		{"invalid semver", clause(`{"attribute":"a","operator":"OPERATOR_SEMVER_GT","values":["1.2.3.4"]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[0]", "invalid semver"}}},
		{"invalid timestamp", clause(`{"attribute":"a","operator":"OPERATOR_BEFORE","values":["2024-13-01T00:00:00Z"]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[0]", "invalid RFC 3339 timestamp"}}},
		{"invalid number", clause(`{"attribute":"a","operator":"OPERATOR_LT","values":["ten"]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[0]", "invalid number"}}},
		{"string operator with a number value", clause(`{"attribute":"a","operator":"OPERATOR_STARTS_WITH","values":[1]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[0]", "must be a string"}}},
		{"in with an object value", clause(`{"attribute":"a","operator":"OPERATOR_IN","values":["x",{}]}`),
			[]FieldError{{"config.rules[0].clauses[0].values[1]", "must be a string, number or boolean"}}},
		{"clause with no values", clause(`{"attribute":"a","operator":"OPERATOR_IN"}`),
			[]FieldError{{"config.rules[0].clauses[0].values", "at least one value"}}},
		{"exists needs no values", clause(`{"attribute":"a","operator":"OPERATOR_EXISTS"}`), nil},
		{"unknown operator", clause(`{"attribute":"a","operator":99,"values":["x"]}`),
			[]FieldError{{"config.rules[0].clauses[0].operator", "unknown operator"}}},
		{"unspecified operator", clause(`{"attribute":"a","values":["x"]}`),
			[]FieldError{{"config.rules[0].clauses[0].operator", "unknown operator"}}},
		{"attribute required", clause(`{"operator":"OPERATOR_IN","values":["x"]}`),
			[]FieldError{{"config.rules[0].clauses[0].attribute", "required"}}},
		{"unknown segment", strings.Replace(validFlag, `"values":["beta"]`, `"values":["beta","gamma"]`, 1),
			[]FieldError{{"config.rules[1].clauses[0].values[1]", `unknown segment "gamma"`}}},
		{"boolean flag has exactly two variants", `{"key":"f","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"on2","value":true}],
			"config":{"on":true,"defaultServe":{"variant":"on"}}}`,
			[]FieldError{{"variants", "exactly two variants"}}},
		{"boolean flag variant value must be a boolean", `{"key":"f","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":"true"},{"key":"off","value":false}],
			"config":{"on":true,"defaultServe":{"variant":"on"}}}`,
			[]FieldError{{"variants[0].value", "string value for a boolean flag"}, {"variants", "exactly two variants"}}},
		{"json flag refuses null", `{"key":"f","type":"FLAG_TYPE_JSON","variants":[{"key":"a","value":null}],"config":{"on":true,"defaultServe":{"variant":"a"}}}`,
			[]FieldError{{"variants[0].value", "value required"}}},
		{"json flag takes any non-null value", `{"key":"f","type":"FLAG_TYPE_JSON","variants":[{"key":"a","value":[1,{"b":null}]},{"key":"b","value":"s"}],"config":{"on":true,"defaultServe":{"variant":"a"}}}`, nil},
		{"flag with no variants", `{"key":"f","type":"FLAG_TYPE_NUMBER","config":{"on":false,"defaultServe":{"variant":"a"}}}`,
			[]FieldError{{"variants", "at least one variant"}, {"config.defaultServe.variant", "unknown variant"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := parseFlag(t, tt.flag)
			env := NewLookup(append([]*manifestv1.Flag{f}, flags...), segs)
			err := ValidateFlag(f, env)
			compareFieldErrors(t, tt.want, err)
		})
	}
}

// compareFieldErrors compares paths exactly and messages as substrings.
func compareFieldErrors(t *testing.T, want []FieldError, err error) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var gotPaths, wantPaths []string
	for _, fe := range ve.Errors {
		gotPaths = append(gotPaths, fe.Path)
	}
	for _, fe := range want {
		wantPaths = append(wantPaths, fe.Path)
	}
	if diff := cmp.Diff(wantPaths, gotPaths); diff != "" {
		t.Fatalf("paths (-want +got):\n%s\nerror: %v", diff, err)
	}
	for i, fe := range want {
		if !strings.Contains(ve.Errors[i].Message, fe.Message) {
			t.Errorf("%s: message %q does not contain %q", fe.Path, ve.Errors[i].Message, fe.Message)
		}
	}
}

func TestValidationErrorString(t *testing.T) {
	t.Parallel()
	f := parseFlag(t, strings.Replace(validFlag, `"@corp\\.com$"`, `"(["`, 1))
	flags, segs := validationEnv(t)
	err := ValidateFlag(f, NewLookup(append(flags, f), segs))
	want := "config.rules[0].clauses[0].values[0]: invalid regexp: error parsing regexp: missing closing ]: `[`"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error() = %v, want prefix %q", err, want)
	}
}

func TestPrerequisiteDepthValidation(t *testing.T) {
	t.Parallel()
	var flags []*manifestv1.Flag
	for i := range 40 {
		pre := ""
		if i+1 < 40 {
			pre = fmt.Sprintf(`"prerequisites":[{"flagKey":"p%d","variants":["a"]}],`, i+1)
		}
		flags = append(flags, parseFlag(t, fmt.Sprintf(`{"key":"p%d","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
			"config":{"on":true,%s"defaultServe":{"variant":"a"}}}`, i, pre)))
	}
	env := NewLookup(flags, nil)
	if err := ValidateFlag(flags[7], env); err != nil { // 32 nested below p7
		t.Errorf("p7: %v", err)
	}
	compareFieldErrors(t, []FieldError{{"config.prerequisites[0].flagKey", "nested deeper than 32"}}, ValidateFlag(flags[6], env))
}

func TestValidateSegment(t *testing.T) {
	t.Parallel()
	_, segs := validationEnv(t)
	tests := []struct {
		name string
		seg  string
		want []FieldError
	}{
		{"a valid segment passes", `{"key":"s","included":["u1"],"rules":[{"id":"r","clauses":[{"attribute":"a","operator":"OPERATOR_IN","values":["x"]}]},
			{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["beta"]}]}]}`, nil},
		{"key must be a slug", `{"key":"S!"}`, []FieldError{{"key", "slug"}}},
		{"unknown segment", `{"key":"s","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["nope"]}]}]}`,
			[]FieldError{{"rules[0].clauses[0].values[0]", `unknown segment "nope"`}}},
		{"a segment referencing itself is a cycle", `{"key":"s","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["s"]}]}]}`,
			[]FieldError{{"rules[0].clauses[0].values[0]", "segment cycle: s -> s"}}},
		{"a cycle through the environment", `{"key":"s","rules":[{"clauses":[{"attribute":"a","operator":"OPERATOR_EXISTS"},{"operator":"OPERATOR_SEGMENT_MATCH","values":["beta","outer"]}]}]}`,
			[]FieldError{{"rules[0].clauses[1].values[1]", "segment cycle: s -> outer -> s"}}},
		{"invalid regexp", `{"key":"s","rules":[{"clauses":[{"attribute":"a","operator":"OPERATOR_MATCHES","values":["("]}]}]}`,
			[]FieldError{{"rules[0].clauses[0].values[0]", "invalid regexp"}}},
		{"rule ids are unique slugs", `{"key":"s","rules":[{"id":"r","clauses":[]},{"id":"r"},{"id":"R"}]}`,
			[]FieldError{{"rules[1].id", "duplicate"}, {"rules[2].id", "slug"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := parseSegment(t, tt.seg)
			compareFieldErrors(t, tt.want, ValidateSegment(s, NewLookup(nil, append([]*manifestv1.Segment{s}, segs...))))
		})
	}
}

func TestValidateManifest(t *testing.T) {
	t.Parallel()
	if err := ValidateManifest(parseManifest(t, reasonsManifestValidPart)); err != nil {
		t.Errorf("valid manifest: %v", err)
	}
	m := parseManifest(t, `{"bucketing":"x","flags":[
		{"key":"a","type":"FLAG_TYPE_STRING","variants":[{"key":"v","value":"V"}],"config":{"on":true,"defaultServe":{"variant":"v"}}},
		{"key":"a","type":"FLAG_TYPE_STRING","variants":[{"key":"v","value":"V"}],"config":{"on":true,"defaultServe":{"variant":"w"}}}],
		"segments":[{"key":"s"},{"key":"s"}]}`)
	compareFieldErrors(t, []FieldError{
		{"bucketing", "unknown bucketing"},
		{"flags[1].key", "duplicate flag key"},
		{"flags[1].config.defaultServe.variant", "unknown variant"},
		{"segments[1].key", "duplicate segment key"},
	}, ValidateManifest(m))
	compareFieldErrors(t, []FieldError{{"", "manifest required"}}, ValidateManifest(nil))
}

// reasonsManifestValidPart is a manifest in which everything is valid.
const reasonsManifestValidPart = `{"flags":[
 {"key":"a","type":"FLAG_TYPE_STRING","variants":[{"key":"x","value":"X"}],
  "config":{"on":true,"prerequisites":[{"flagKey":"b","variants":["y"]}],
   "rules":[{"id":"r","clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["s"]}],"serve":{"variant":"x"}}],"defaultServe":{"variant":"x"}}},
 {"key":"b","type":"FLAG_TYPE_NUMBER","variants":[{"key":"y","value":1}],"config":{"on":true,"defaultServe":{"variant":"y"}}}],
 "segments":[{"key":"s","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["t"]}]}]},{"key":"t","included":["u"]}]}`

func TestValidatorsAcceptNilEnvironment(t *testing.T) {
	t.Parallel()
	f := parseFlag(t, `{"key":"f","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
		"config":{"on":true,"prerequisites":[{"flagKey":"g","variants":["a"]}],"defaultServe":{"variant":"a"}}}`)
	compareFieldErrors(t, []FieldError{{"config.prerequisites[0].flagKey", "unknown flag"}}, ValidateFlag(f, nil))
	compareFieldErrors(t, []FieldError{{"", "flag required"}}, ValidateFlag(nil, nil))
	compareFieldErrors(t, []FieldError{{"", "segment required"}}, ValidateSegment(nil, nil))
}
