package eval

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/structpb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// TestExplainDecidesAsEvaluate: on every shared test vector, Explain's result is
// Evaluate's, field for field.
func TestExplainDecidesAsEvaluate(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, suite := range v.Suites {
		m := compileVectorManifest(t, suite.Manifest)
		for _, c := range suite.Cases {
			want, err := ParseValueType(c.ValueType)
			if err != nil {
				t.Fatal(err)
			}
			ctx, err := NewContext(c.Context)
			if err != nil {
				t.Fatal(err)
			}
			exp := m.Evaluate(c.FlagKey, ctx, want, c.DefaultValue)
			got, tr := m.Explain(c.FlagKey, ctx, want, c.DefaultValue)
			if diff := cmp.Diff(exp, got, cmp.Comparer(func(a, b *structpb.Value) bool { return a == b })); diff != "" {
				t.Errorf("%s/%s: Explain differs from Evaluate (-evaluate +explain):\n%s", suite.Name, c.Name, diff)
			}
			if tr == nil {
				t.Errorf("%s/%s: no explanation", suite.Name, c.Name)
			}
		}
	}
}

const explainManifest = `{"version":"3","flags":[
 {"key":"checkout","type":"FLAG_TYPE_BOOLEAN",
  "variants":[{"key":"on","value":true},{"key":"off","value":false}],
  "config":{"on":true,"offVariant":"off",
   "prerequisites":[{"flagKey":"gate","variants":["on"]}],
   "targets":[{"variant":"on","values":["qa-1"]}],
   "rules":[
    {"id":"beta","clauses":[{"attribute":"beta","operator":"OPERATOR_IN","values":[true]},{"attribute":"plan","operator":"OPERATOR_IN","values":["pro"]}],"serve":{"variant":"on"}},
    {"id":"us-10","clauses":[{"attribute":"country","operator":"OPERATOR_IN","values":["US"]}],
     "serve":{"rollout":{"weights":[{"variant":"on","weight":10},{"variant":"off","weight":90}]}}},
    {"id":"never","clauses":[{"attribute":"country","operator":"OPERATOR_EXISTS"}],"serve":{"variant":"on"}}],
   "defaultServe":{"variant":"off"}}},
 {"key":"gate","type":"FLAG_TYPE_BOOLEAN",
  "variants":[{"key":"on","value":true},{"key":"off","value":false}],
  "config":{"on":true,"rules":[{"id":"blocked","clauses":[{"attribute":"blocked","operator":"OPERATOR_IN","values":[true]}],"serve":{"variant":"off"}}],
   "defaultServe":{"variant":"on"}}}]}`

// TestExplainRecordsThePath: each step the engine takes is recorded, and the steps
// it never reached are marked so.
func TestExplainRecordsThePath(t *testing.T) {
	t.Parallel()
	m := compileJSON(t, explainManifest)
	notReached := func(id string, attrs ...string) RuleStep {
		rs := RuleStep{ID: id}
		for _, a := range attrs {
			op := manifestv1.Operator_OPERATOR_IN
			if id == "never" {
				op = manifestv1.Operator_OPERATOR_EXISTS
			}
			rs.Clauses = append(rs.Clauses, ClauseStep{Attribute: a, Operator: op})
		}
		return rs
	}
	betaFailsOnFirst := RuleStep{ID: "beta", Evaluated: true, Clauses: []ClauseStep{
		{Attribute: "beta", Operator: manifestv1.Operator_OPERATOR_IN, Evaluated: false},
		{Attribute: "plan", Operator: manifestv1.Operator_OPERATOR_IN},
	}}
	betaFailsOnFirst.Clauses[0].Evaluated = true
	gateMet := []PrerequisiteStep{{FlagKey: "gate", Variants: []string{"on"}, Variant: "on", Reason: ReasonDefault, Met: true}}
	bucket := Bucket("checkout", "user-7", 100)
	us := "off"
	if bucket < 10 {
		us = "on"
	}
	tests := []struct {
		name       string
		ctx        map[string]any
		wantReason Reason
		want       Explanation
	}{
		{
			name: "a failed prerequisite stops before targets and rules",
			ctx:  map[string]any{"targetingKey": "qa-1", "blocked": true}, wantReason: ReasonPrerequisiteFailed,
			want: Explanation{On: true,
				Prerequisites: []PrerequisiteStep{{FlagKey: "gate", Variants: []string{"on"}, Variant: "off", Reason: ReasonTargetingMatch}},
				Rules:         []RuleStep{notReached("beta", "beta", "plan"), notReached("us-10", "country"), notReached("never", "country")}},
		},
		{
			name: "an individual target decides before the rules",
			ctx:  map[string]any{"targetingKey": "qa-1"}, wantReason: ReasonTargetingMatch,
			want: Explanation{On: true, Prerequisites: gateMet, TargetsChecked: true, TargetingKey: "qa-1", TargetVariant: "on",
				Rules: []RuleStep{notReached("beta", "beta", "plan"), notReached("us-10", "country"), notReached("never", "country")}},
		},
		{
			name: "the rollout of the first matching rule gives the bucket; later rules are not reached",
			ctx:  map[string]any{"targetingKey": "user-7", "country": "US"}, wantReason: ReasonSplit,
			want: Explanation{On: true, Prerequisites: gateMet, TargetsChecked: true, TargetingKey: "user-7",
				Rules: []RuleStep{betaFailsOnFirst,
					{ID: "us-10", Evaluated: true, Matched: true,
						Clauses: []ClauseStep{{Attribute: "country", Operator: manifestv1.Operator_OPERATOR_IN, Evaluated: true, Present: true, Value: "US", Matched: true}},
						Rollout: &RolloutStep{BucketBy: "targetingKey", Seed: "checkout", BucketValue: "user-7", Bucket: bucket, TotalWeight: 100, Variant: us}},
					notReached("never", "country")}},
		},
		{
			name: "no rule matches: the default serve decides",
			ctx:  map[string]any{"targetingKey": "user-7"}, wantReason: ReasonDefault,
			want: Explanation{On: true, Prerequisites: gateMet, TargetsChecked: true, TargetingKey: "user-7", DefaultReached: true,
				Rules: []RuleStep{betaFailsOnFirst,
					{ID: "us-10", Evaluated: true, Clauses: []ClauseStep{{Attribute: "country", Operator: manifestv1.Operator_OPERATOR_IN, Evaluated: true}}},
					{ID: "never", Evaluated: true, Clauses: []ClauseStep{{Attribute: "country", Operator: manifestv1.Operator_OPERATOR_EXISTS, Evaluated: true}}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := mustContext(t, tt.ctx)
			r, tr := m.Explain("checkout", ctx, Any, nil)
			if r.Reason != tt.wantReason {
				t.Fatalf("reason %s (%s), want %s", r.Reason, r.ErrorMessage, tt.wantReason)
			}
			if exp := m.Evaluate("checkout", ctx, Any, nil); exp.Variant != r.Variant || exp.Reason != r.Reason {
				t.Fatalf("Explain %s/%s, Evaluate %s/%s", r.Variant, r.Reason, exp.Variant, exp.Reason)
			}
			if diff := cmp.Diff(&tt.want, tr, cmpopts.IgnoreUnexported(RolloutStep{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("explanation (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExplainOfAnUnknownFlag: the error result, and an empty explanation.
func TestExplainOfAnUnknownFlag(t *testing.T) {
	t.Parallel()
	m := compileJSON(t, explainManifest)
	r, tr := m.Explain("nope", nil, Any, "dflt")
	if r.ErrorCode != ErrorFlagNotFound || r.Value != "dflt" {
		t.Fatalf("got %+v", r)
	}
	if diff := cmp.Diff(&Explanation{}, tr, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("explanation (-want +got):\n%s", diff)
	}
}
