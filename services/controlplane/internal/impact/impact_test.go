package impact

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/eval"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// current is an environment with a rollout, a rule on a segment, a flag with a
// prerequisite on it, and an unrelated flag.
const current = `{"org":"acme","project":"web","environment":"production","version":"7","bucketing":"murmur3-v1",
 "segments":[
  {"key":"beta","included":["user-1","user-2"],"rules":[{"id":"s1","clauses":[{"attribute":"plan","operator":"OPERATOR_IN","values":["pro"]}]}]},
  {"key":"eu","rules":[{"id":"s2","clauses":[{"attribute":"country","operator":"OPERATOR_IN","values":["NL","DE","FR"]}]}]}],
 "flags":[
  {"key":"checkout","type":"FLAG_TYPE_STRING","variants":[{"key":"old","value":"old"},{"key":"new","value":"new"},{"key":"fast","value":"fast"}],
   "config":{"on":true,"offVariant":"old",
    "rules":[{"id":"beta-users","clauses":[{"attribute":"targetingKey","operator":"OPERATOR_SEGMENT_MATCH","values":["beta"]}],"serve":{"variant":"new"}}],
    "defaultServe":{"rollout":{"bucketBy":"targetingKey","seed":"checkout","weights":[{"variant":"old","weight":90},{"variant":"new","weight":10}]}}}},
  {"key":"upsell","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
   "config":{"on":true,"offVariant":"off","prerequisites":[{"flagKey":"checkout","variants":["new"]}],"defaultServe":{"variant":"on"}}},
  {"key":"banner","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
   "config":{"on":true,"offVariant":"off","rules":[{"id":"eu-banner","clauses":[{"attribute":"targetingKey","operator":"OPERATOR_SEGMENT_MATCH","values":["eu"]}],"serve":{"variant":"on"}}],"defaultServe":{"variant":"off"}}},
  {"key":"unrelated","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
   "config":{"on":true,"offVariant":"off","defaultServe":{"variant":"on"}}}]}`

func manifest(t *testing.T) *manifestv1.Manifest {
	t.Helper()
	var m manifestv1.Manifest
	if err := protojson.Unmarshal([]byte(current), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func change(t *testing.T, js string) *adminv1.ProposedChange {
	t.Helper()
	var c adminv1.ProposedChange
	if err := protojson.Unmarshal([]byte(js), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func contexts(n int) []*structpb.Struct {
	r := rand.New(rand.NewPCG(1, 2))
	plans := []string{"free", "pro", "team"}
	countries := []string{"US", "NL", "DE", "BR", "FR", "JP"}
	out := make([]*structpb.Struct, n)
	for i := range out {
		s, _ := structpb.NewStruct(map[string]any{
			"targetingKey": fmt.Sprintf("user-%d", i), "plan": plans[r.IntN(len(plans))], "country": countries[r.IntN(len(countries))],
		})
		out[i] = s
	}
	return out
}

type pair struct{ from, to string }

// bruteForce evaluates every flag of the manifest for every context on both
// configurations with pkg/eval directly.
func bruteForce(t *testing.T, cur *manifestv1.Manifest, changes []*adminv1.ProposedChange, cs []*structpb.Struct) map[string]map[pair]int64 {
	t.Helper()
	proposed, _, _, err := Apply(cur, changes)
	if err != nil {
		t.Fatal(err)
	}
	before, err := eval.Compile(cur)
	if err != nil {
		t.Fatal(err)
	}
	after, err := eval.Compile(proposed)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[pair]int64{}
	for _, f := range cur.GetFlags() {
		out[f.GetKey()] = map[pair]int64{}
		for _, s := range cs {
			c, err := eval.ContextFromStruct(s)
			if err != nil {
				t.Fatal(err)
			}
			a, b := before.Evaluate(f.GetKey(), c, eval.Any, nil), after.Evaluate(f.GetKey(), c, eval.Any, nil)
			out[f.GetKey()][pair{a.Variant, b.Variant}]++
		}
	}
	return out
}

func TestPreviewEqualsBruteForceEvaluation(t *testing.T) {
	t.Parallel()
	cs := contexts(2000)
	for _, tc := range []struct {
		name    string
		changes []string
	}{
		{"raising a rollout moves users from old to new, and upsell follows through its prerequisite", []string{
			`{"flagConfig":{"flag":"checkout","config":{"on":true,"offVariant":"old","rules":[{"id":"beta-users","clauses":[{"attribute":"targetingKey","operator":"OPERATOR_SEGMENT_MATCH","values":["beta"]}],"serve":{"variant":"new"}}],"defaultServe":{"rollout":{"bucketBy":"targetingKey","seed":"checkout","weights":[{"variant":"old","weight":50},{"variant":"new","weight":50}]}}}}}`}},
		{"a new rule for a country", []string{
			`{"flagConfig":{"flag":"checkout","config":{"on":true,"offVariant":"old","rules":[{"id":"japan-fast","clauses":[{"attribute":"country","operator":"OPERATOR_IN","values":["JP"]}],"serve":{"variant":"fast"}},{"id":"beta-users","clauses":[{"attribute":"targetingKey","operator":"OPERATOR_SEGMENT_MATCH","values":["beta"]}],"serve":{"variant":"new"}}],"defaultServe":{"rollout":{"bucketBy":"targetingKey","seed":"checkout","weights":[{"variant":"old","weight":90},{"variant":"new","weight":10}]}}}}}`}},
		{"turning a flag off", []string{`{"flagConfig":{"flag":"banner","config":{"on":false,"offVariant":"off","defaultServe":{"variant":"off"}}}}`}},
		{"a segment change reaches the flags that use it and their dependents", []string{
			`{"segment":{"key":"beta","included":["user-1"],"rules":[{"id":"s1","clauses":[{"attribute":"plan","operator":"OPERATOR_IN","values":["pro","team"]}]}]}}`}},
		{"two changes at once", []string{
			`{"segment":{"key":"eu","rules":[{"id":"s2","clauses":[{"attribute":"country","operator":"OPERATOR_IN","values":["NL"]}]}]}}`,
			`{"flagConfig":{"flag":"upsell","config":{"on":true,"offVariant":"off","defaultServe":{"variant":"on"}}}}`}},
		{"a change that changes nothing", []string{`{"flagConfig":{"flag":"unrelated","config":{"on":true,"offVariant":"off","defaultServe":{"variant":"on"}}}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var changes []*adminv1.ProposedChange
			for _, js := range tc.changes {
				changes = append(changes, change(t, js))
			}
			cur := manifest(t)
			got, err := Preview(cur, changes, cs, 5)
			if err != nil {
				t.Fatal(err)
			}
			want := bruteForce(t, cur, changes, cs)
			if got.GetContexts() != int64(len(cs)) {
				t.Errorf("contexts = %d, want %d", got.GetContexts(), len(cs))
			}
			reported := map[string]*adminv1.FlagImpact{}
			var total int64
			for _, fi := range got.GetFlags() {
				reported[fi.GetFlag()] = fi
			}
			for flag, matrix := range want {
				var changed int64
				for p, n := range matrix {
					if p.from != p.to {
						changed += n
					}
				}
				total += changed
				fi := reported[flag]
				if fi == nil {
					if changed > 0 {
						t.Errorf("%s: %d decisions change but the preview leaves the flag out", flag, changed)
					}
					continue
				}
				if fi.GetChanged() != changed {
					t.Errorf("%s: changed = %d, brute force %d", flag, fi.GetChanged(), changed)
				}
				gotMatrix := map[pair]int64{}
				for _, tr := range fi.GetTransitions() {
					gotMatrix[pair{tr.GetFromVariant(), tr.GetToVariant()}] = tr.GetCount()
				}
				if fmt.Sprint(gotMatrix) != fmt.Sprint(matrix) {
					t.Errorf("%s: matrix %v, brute force %v", flag, gotMatrix, matrix)
				}
				if want := min(changed, 5); int64(len(fi.GetExamples())) != want {
					t.Errorf("%s: %d examples, want %d", flag, len(fi.GetExamples()), want)
				}
				for _, ex := range fi.GetExamples() {
					c, _ := eval.ContextFromStruct(ex.GetContext())
					proposed, _, _, _ := Apply(cur, changes)
					after, _ := eval.Compile(proposed)
					r := after.Evaluate(flag, c, eval.Any, nil)
					if r.Variant != ex.GetToVariant() || r.RuleID != ex.GetToRuleId() || string(r.Reason) != ex.GetToReason() {
						t.Errorf("%s: example %v does not match the engine: %+v", flag, ex, r)
					}
					if ex.GetFromVariant() == ex.GetToVariant() {
						t.Errorf("%s: example does not change: %v", flag, ex)
					}
				}
			}
			if got.GetChanged() != total {
				t.Errorf("total changed = %d, brute force %d", got.GetChanged(), total)
			}
		})
	}
}

func TestPreviewFollowsSegmentsAndPrerequisites(t *testing.T) {
	t.Parallel()
	cur := manifest(t)
	got, err := Preview(cur, []*adminv1.ProposedChange{change(t,
		`{"segment":{"key":"beta","included":["user-1","user-2","user-3","user-4","user-5"]}}`)}, contexts(200), 3)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, fi := range got.GetFlags() {
		flags[fi.GetFlag()] = true
		if fi.GetDirect() {
			t.Errorf("%s reported as changed directly by a segment change", fi.GetFlag())
		}
	}
	if !flags["checkout"] || !flags["upsell"] || flags["banner"] || flags["unrelated"] {
		t.Errorf("flags reached by the beta segment change: %v, want checkout and upsell", flags)
	}
}

func TestPreviewRefusesAnUnknownFlag(t *testing.T) {
	t.Parallel()
	_, err := Preview(manifest(t), []*adminv1.ProposedChange{change(t, `{"flagConfig":{"flag":"nope","config":{}}}`)}, contexts(1), 0)
	var u *UnknownFlagError
	if !errors.As(err, &u) || u.Flag != "nope" || u.Index != 0 {
		t.Fatalf("err = %v, want an UnknownFlagError for nope", err)
	}
}

// BenchmarkPreview is a preview of one flag over a full environment sample
// (10,000 seen contexts).
func BenchmarkPreview(b *testing.B) {
	var m manifestv1.Manifest
	if err := protojson.Unmarshal([]byte(current), &m); err != nil {
		b.Fatal(err)
	}
	var c adminv1.ProposedChange
	_ = protojson.Unmarshal([]byte(`{"flagConfig":{"flag":"banner","config":{"on":false,"offVariant":"off","defaultServe":{"variant":"off"}}}}`), &c)
	cs := contexts(10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Preview(&m, []*adminv1.ProposedChange{&c}, cs, 3); err != nil {
			b.Fatal(err)
		}
	}
}
