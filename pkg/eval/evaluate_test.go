package eval

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// reasonsManifest exercises every reason and error code.
const reasonsManifest = `{"version":"7","flags":[
 {"key":"static","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"defaultServe":{"variant":"a"}}},
 {"key":"off-with-variant","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
  "config":{"on":false,"offVariant":"b","defaultServe":{"variant":"a"}}},
 {"key":"off-without-variant","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":false,"defaultServe":{"variant":"a"}}},
 {"key":"targeted","type":"FLAG_TYPE_NUMBER","variants":[{"key":"one","value":1},{"key":"two","value":2}],
  "config":{"on":true,"targets":[{"variant":"two","values":["u1","42","true"]},{"variant":"one","values":["u1"]}],
   "rules":[{"id":"everyone","serve":{"variant":"one"}}],"defaultServe":{"variant":"one"}}},
 {"key":"ruled","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
  "config":{"on":true,"rules":[
    {"id":"first","clauses":[{"attribute":"plan","operator":"OPERATOR_IN","values":["pro"]}],"serve":{"variant":"on"}},
    {"id":"second","clauses":[{"attribute":"plan","operator":"OPERATOR_EXISTS"}],"serve":{"rollout":{"weights":[{"variant":"on","weight":0},{"variant":"off","weight":1}]}}},
    {"id":"by-org","clauses":[],"serve":{"rollout":{"bucketBy":"org.id","weights":[{"variant":"on","weight":1}]}}}],
   "defaultServe":{"variant":"off"}}},
 {"key":"default-split","type":"FLAG_TYPE_JSON","variants":[{"key":"x","value":{"a":[1,"b",null]}}],
  "config":{"on":true,"defaultServe":{"rollout":{"weights":[{"variant":"x","weight":5}]}}}},
 {"key":"default-single","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"rules":[{"id":"never","clauses":[{"attribute":"nope","operator":"OPERATOR_EXISTS"}],"serve":{"variant":"a"}}],
   "defaultServe":{"variant":"a"}}},
 {"key":"broken","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"defaultServe":{"variant":"zzz"}}},
 {"key":"untyped","variants":[{"key":"a","value":"A"}],"config":{"on":true,"defaultServe":{"variant":"a"}}},
 {"key":"needs-static","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
  "config":{"on":true,"offVariant":"b","prerequisites":[{"flagKey":"static","variants":["a"]}],"defaultServe":{"variant":"a"}}},
 {"key":"needs-off","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
  "config":{"on":true,"offVariant":"b","prerequisites":[{"flagKey":"off-with-variant","variants":["a","b"]}],"defaultServe":{"variant":"a"}}},
 {"key":"needs-missing","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"prerequisites":[{"flagKey":"nope","variants":["a"]}],"defaultServe":{"variant":"a"}}},
 {"key":"needs-broken","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"prerequisites":[{"flagKey":"broken","variants":["a"]}],"defaultServe":{"variant":"a"}}},
 {"key":"needs-pro","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
  "config":{"on":true,"offVariant":"b","prerequisites":[{"flagKey":"ruled","variants":["on"]}],"defaultServe":{"variant":"a"}}},
 {"key":"needs-failed","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"prerequisites":[{"flagKey":"needs-off","variants":["b"]}],"defaultServe":{"variant":"a"}}},
 {"key":"cycle-a","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"prerequisites":[{"flagKey":"cycle-b","variants":["a"]}],"defaultServe":{"variant":"a"}}},
 {"key":"cycle-b","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":true,"prerequisites":[{"flagKey":"cycle-a","variants":["a"]}],"defaultServe":{"variant":"a"}}},
 {"key":"cycle-off","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
  "config":{"on":false,"prerequisites":[{"flagKey":"cycle-a","variants":["a"]}],"defaultServe":{"variant":"a"}}},
 {"key":"seg-cycle","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
  "config":{"on":true,"rules":[{"id":"r","clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["s1"]}],"serve":{"variant":"a"}}],"defaultServe":{"variant":"b"}}},
 {"key":"seg-broken","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"},{"key":"b","value":"B"}],
  "config":{"on":true,"rules":[{"id":"r","clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["bad"]}],"serve":{"variant":"a"}}],"defaultServe":{"variant":"b"}}}
],
"segments":[
 {"key":"s1","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["s2"]}]}]},
 {"key":"s2","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["s1"]}]}]},
 {"key":"bad","rules":[{"clauses":[{"attribute":"a","operator":"OPERATOR_MATCHES","values":["("]}]}]}
]}`

func TestReasons(t *testing.T) {
	t.Parallel()
	m := compileJSON(t, reasonsManifest)
	type want struct {
		Value     any
		Variant   string
		Reason    Reason
		RuleID    string
		ErrorCode ErrorCode
	}
	tests := []struct {
		name    string
		flag    string
		ctx     map[string]any
		typ     ValueType
		want    want
		message string // a substring of ErrorMessage
	}{
		{"unknown flag: FLAG_NOT_FOUND with the default", "nope", nil, Any, want{"dflt", "", ReasonError, "", ErrorFlagNotFound}, `"nope"`},
		{"on, single variant, nothing else: STATIC", "static", nil, Any, want{"A", "a", ReasonStatic, "", ""}, ""},
		{"off with offVariant: DISABLED serving it", "off-with-variant", nil, String, want{"B", "b", ReasonDisabled, "", ""}, ""},
		{"off without offVariant: DISABLED with the default", "off-without-variant", nil, String, want{"dflt", "", ReasonDisabled, "", ""}, ""},
		{"individual target: TARGETING_MATCH without rule", "targeted", map[string]any{"targetingKey": "u1"}, Number, want{2.0, "two", ReasonTargetingMatch, "", ""}, ""},
		{"targets beat rules; numbers formatted", "targeted", map[string]any{"targetingKey": 42}, Any, want{2.0, "two", ReasonTargetingMatch, "", ""}, ""},
		{"targets: booleans formatted", "targeted", map[string]any{"targetingKey": true}, Any, want{2.0, "two", ReasonTargetingMatch, "", ""}, ""},
		{"targets: a list is never targeted", "targeted", map[string]any{"targetingKey": []any{"u1"}}, Any, want{1.0, "one", ReasonTargetingMatch, "everyone", ""}, ""},
		{"rule with a variant: TARGETING_MATCH with rule id", "ruled", map[string]any{"plan": "pro"}, Bool, want{true, "on", ReasonTargetingMatch, "first", ""}, ""},
		{"rule with a rollout: SPLIT with rule id", "ruled", map[string]any{"plan": "free", "targetingKey": "k"}, Bool, want{false, "off", ReasonSplit, "second", ""}, ""},
		{"rollout with missing bucketBy skips the rule", "ruled", map[string]any{"plan": "free", "org": map[string]any{"id": 7}}, Bool, want{true, "on", ReasonSplit, "by-org", ""}, ""},
		{"no rule matches: DEFAULT", "ruled", map[string]any{}, Bool, want{false, "off", ReasonDefault, "", ""}, ""},
		{"defaultServe rollout: SPLIT without rule id", "default-split", map[string]any{"targetingKey": "k"}, JSON, want{map[string]any{"a": []any{1.0, "b", nil}}, "x", ReasonSplit, "", ""}, ""},
		{"defaultServe rollout without targetingKey: TARGETING_KEY_MISSING", "default-split", nil, Any, want{"dflt", "", ReasonError, "", ErrorTargetingKeyMissing}, ""},
		{"rules present: DEFAULT, not STATIC", "default-single", nil, Any, want{"A", "a", ReasonDefault, "", ""}, ""},
		{"wrong type requested: TYPE_MISMATCH", "static", nil, Bool, want{"dflt", "", ReasonError, "", ErrorTypeMismatch}, ""},
		{"json request accepts only json flags", "static", nil, JSON, want{"dflt", "", ReasonError, "", ErrorTypeMismatch}, ""},
		{"a json flag answers only json requests", "default-split", map[string]any{"targetingKey": "k"}, String, want{"dflt", "", ReasonError, "", ErrorTypeMismatch}, ""},
		{"TYPE_MISMATCH before DISABLED", "off-with-variant", nil, Number, want{"dflt", "", ReasonError, "", ErrorTypeMismatch}, ""},
		{"TYPE_MISMATCH before PARSE_ERROR", "broken", nil, Number, want{"dflt", "", ReasonError, "", ErrorTypeMismatch}, ""},
		{"broken flag: PARSE_ERROR", "broken", nil, String, want{"dflt", "", ReasonError, "", ErrorParse}, "config.defaultServe.variant"},
		{"unspecified type: PARSE_ERROR", "untyped", nil, String, want{"dflt", "", ReasonError, "", ErrorParse}, "type"},
		{"prerequisite met", "needs-static", nil, Any, want{"A", "a", ReasonDefault, "", ""}, ""},
		{"prerequisite off is unmet even with a listed offVariant", "needs-off", nil, Any, want{"B", "b", ReasonPrerequisiteFailed, "", ""}, `prerequisite "off-with-variant" not met`},
		{"prerequisite missing is unmet", "needs-missing", nil, Any, want{"dflt", "", ReasonPrerequisiteFailed, "", ""}, `prerequisite "nope" not met`},
		{"prerequisite in error is unmet", "needs-broken", nil, Any, want{"dflt", "", ReasonPrerequisiteFailed, "", ""}, `"broken"`},
		{"prerequisite evaluated for the same context: met", "needs-pro", map[string]any{"plan": "pro"}, Any, want{"A", "a", ReasonDefault, "", ""}, ""},
		{"prerequisite evaluated for the same context: unmet", "needs-pro", map[string]any{"plan": "x", "targetingKey": "k"}, Any, want{"B", "b", ReasonPrerequisiteFailed, "", ""}, ""},
		{"prerequisite that failed its own prerequisite is unmet", "needs-failed", nil, Any, want{"dflt", "", ReasonPrerequisiteFailed, "", ""}, ""},
		{"prerequisite cycle: GENERAL", "cycle-a", nil, Any, want{"dflt", "", ReasonError, "", ErrorGeneral}, "cycle-a -> cycle-b -> cycle-a"},
		{"cycle behind an off flag is not met", "cycle-off", nil, Any, want{"dflt", "", ReasonDisabled, "", ""}, ""},
		{"segment cycle: GENERAL", "seg-cycle", nil, Any, want{"dflt", "", ReasonError, "", ErrorGeneral}, "segment cycle"},
		{"broken segment met: PARSE_ERROR", "seg-broken", nil, Any, want{"dflt", "", ReasonError, "", ErrorParse}, `segment "bad"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ctx *Context
			if tt.ctx != nil {
				ctx = mustContext(t, tt.ctx)
			}
			r := m.Evaluate(tt.flag, ctx, tt.typ, "dflt")
			got := want{r.Value, r.Variant, r.Reason, r.RuleID, r.ErrorCode}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nmessage: %s", diff, r.ErrorMessage)
			}
			if !strings.Contains(r.ErrorMessage, tt.message) {
				t.Errorf("ErrorMessage %q does not contain %q", r.ErrorMessage, tt.message)
			}
			if r.FlagKey != tt.flag || r.ManifestVersion != 7 {
				t.Errorf("FlagKey %q, ManifestVersion %d", r.FlagKey, r.ManifestVersion)
			}
			if (r.ProtoValue == nil) != (r.Variant == "") {
				t.Errorf("ProtoValue %v with variant %q", r.ProtoValue, r.Variant)
			}
			if r.ProtoValue != nil && !cmp.Equal(r.ProtoValue.AsInterface(), r.Value) {
				t.Errorf("ProtoValue %v and Value %v differ", r.ProtoValue, r.Value)
			}
		})
	}
}

func TestPrerequisiteDepth(t *testing.T) {
	t.Parallel()
	// chain(n): flag p0 requires p1 ... requires p(n-1), which has none.
	chain := func(n int) string {
		var flags []string
		for i := range n {
			pre := ""
			if i+1 < n {
				pre = fmt.Sprintf(`"prerequisites":[{"flagKey":"p%d","variants":["a"]}],`, i+1)
			}
			flags = append(flags, fmt.Sprintf(`{"key":"p%d","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],
				"config":{"on":true,%s"defaultServe":{"variant":"a"}}}`, i, pre))
		}
		return `{"flags":[` + strings.Join(flags, ",") + `]}`
	}
	tests := []struct {
		name   string
		flags  int
		reason Reason
	}{
		{"32 nested prerequisites are allowed", 33, ReasonDefault},
		{"33 nested prerequisites: GENERAL", 34, ReasonError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := compileJSON(t, chain(tt.flags))
			r := m.Evaluate("p0", nil, Any, nil)
			if r.Reason != tt.reason || (tt.reason == ReasonError && r.ErrorCode != ErrorGeneral) {
				t.Errorf("got %s %s (%s), want %s", r.Reason, r.ErrorCode, r.ErrorMessage, tt.reason)
			}
		})
	}
}

func TestOneBrokenFlagDoesNotBreakTheOthers(t *testing.T) {
	t.Parallel()
	m := compileJSON(t, `{"flags":[
		{"key":"bad-regexp","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
		 "config":{"on":true,"rules":[{"id":"r","clauses":[{"attribute":"a","operator":"OPERATOR_MATCHES","values":["(["]}],"serve":{"variant":"on"}}],"defaultServe":{"variant":"off"}}},
		{"key":"zero-weight","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
		 "config":{"on":true,"defaultServe":{"rollout":{"weights":[{"variant":"on","weight":0}]}}}},
		{"key":"wrong-value","type":"FLAG_TYPE_NUMBER","variants":[{"key":"a","value":"1"}],"config":{"on":true,"defaultServe":{"variant":"a"}}},
		{"key":"good","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
		 "config":{"on":true,"defaultServe":{"variant":"on"}}}]}`)
	for _, key := range []string{"bad-regexp", "zero-weight", "wrong-value"} {
		if r := m.Evaluate(key, nil, Any, "d"); r.ErrorCode != ErrorParse || r.Value != "d" {
			t.Errorf("%s: %+v, want PARSE_ERROR", key, r)
		}
	}
	if r := m.Evaluate("good", nil, Bool, false); r.Reason != ReasonStatic || r.Value != true {
		t.Errorf("good: %+v", r)
	}
}

func TestCompileRefusesOnlyUnusableManifests(t *testing.T) {
	t.Parallel()
	if _, err := Compile(nil); err == nil {
		t.Error("Compile(nil) succeeded")
	}
	if _, err := Compile(parseManifest(t, `{"bucketing":"sha1-v0"}`)); err == nil {
		t.Error("unknown bucketing accepted")
	}
	for _, b := range []string{"", "murmur3-v1"} {
		if _, err := Compile(parseManifest(t, `{"bucketing":"`+b+`"}`)); err != nil {
			t.Errorf("bucketing %q: %v", b, err)
		}
	}
}

func TestDuplicateFlagKeyIsAParseError(t *testing.T) {
	t.Parallel()
	m := compileJSON(t, `{"flags":[
		{"key":"f","type":"FLAG_TYPE_STRING","variants":[{"key":"a","value":"A"}],"config":{"on":true,"defaultServe":{"variant":"a"}}},
		{"key":"f","type":"FLAG_TYPE_STRING","variants":[{"key":"b","value":"B"}],"config":{"on":true,"defaultServe":{"variant":"b"}}}]}`)
	if r := m.Evaluate("f", nil, Any, nil); r.ErrorCode != ErrorParse {
		t.Errorf("got %+v", r)
	}
	if diff := cmp.Diff([]string{"f"}, m.FlagKeys()); diff != "" {
		t.Error(diff)
	}
}

func TestManifestAccessors(t *testing.T) {
	t.Parallel()
	pm := parseManifest(t, `{"version":"3","flags":[
		{"key":"b","type":"FLAG_TYPE_JSON","clientVisible":true,"variants":[{"key":"a","value":{}}],"config":{"on":true,"defaultServe":{"variant":"a"}}},
		{"key":"a","type":"FLAG_TYPE_NUMBER","variants":[{"key":"a","value":1}],"config":{"on":true,"defaultServe":{"variant":"a"}}}]}`)
	m, err := Compile(pm)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != 3 || m.Proto() != pm {
		t.Errorf("Version %d, Proto %p want %p", m.Version(), m.Proto(), pm)
	}
	if diff := cmp.Diff([]string{"b", "a"}, m.FlagKeys()); diff != "" {
		t.Errorf("FlagKeys (-want +got): %s", diff)
	}
	if !m.ClientVisible("b") || m.ClientVisible("a") || m.ClientVisible("zz") {
		t.Error("ClientVisible wrong")
	}
	if typ, ok := m.FlagType("a"); typ != Number || !ok {
		t.Errorf("FlagType(a) = %v, %v", typ, ok)
	}
	if _, ok := m.FlagType("zz"); ok || m.HasFlag("zz") || !m.HasFlag("a") {
		t.Error("unknown flag reported")
	}
}

func TestProtoValueIsTheManifestValue(t *testing.T) {
	t.Parallel()
	pm := parseManifest(t, `{"flags":[{"key":"j","type":"FLAG_TYPE_JSON","variants":[{"key":"a","value":{"x":[1,2]}}],"config":{"on":true,"defaultServe":{"variant":"a"}}}]}`)
	m, err := Compile(pm)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Evaluate("j", nil, JSON, nil)
	if r.ProtoValue != pm.Flags[0].Variants[0].Value {
		t.Error("ProtoValue is not the manifest's value")
	}
	want, _ := structpb.NewValue(map[string]any{"x": []any{1.0, 2.0}})
	if !proto.Equal(r.ProtoValue, want) {
		t.Errorf("ProtoValue %v", r.ProtoValue)
	}
}

func TestNilManifestAndContext(t *testing.T) {
	t.Parallel()
	var m *Manifest
	if r := m.Evaluate("f", nil, Any, 1); r.ErrorCode != ErrorGeneral || r.Value != 1 {
		t.Errorf("nil manifest: %+v", r)
	}
	mm := compileJSON(t, clauseManifest(`{"attribute":"a","operator":"OPERATOR_EXISTS","negate":true}`, ""))
	if r := mm.Evaluate("f", nil, Any, nil); r.Reason != ReasonTargetingMatch {
		t.Errorf("nil context: %+v", r)
	}
}

func TestValueTypeNames(t *testing.T) {
	t.Parallel()
	for _, vt := range []ValueType{Any, Bool, String, Number, JSON} {
		got, err := ParseValueType(vt.String())
		if err != nil || got != vt {
			t.Errorf("round trip of %v: %v, %v", vt, got, err)
		}
	}
	if _, err := ParseValueType("int"); err == nil {
		t.Error("ParseValueType(int) succeeded")
	}
}
