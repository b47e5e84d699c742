package eval

import (
	"fmt"
	"strings"
	"testing"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Benchmarks of docs/benchmarks.md ("Evaluation engine"). Contexts are built before
// the loop, as the evaluator does per request.

var sinkResult Result

func BenchmarkStatic(b *testing.B) {
	m := compileJSON(b, `{"version":"1","flags":[{"key":"static","type":"FLAG_TYPE_BOOLEAN",
		"variants":[{"key":"on","value":true},{"key":"off","value":false}],
		"config":{"on":true,"defaultServe":{"variant":"on"}}}]}`)
	ctx := mustContext(b, map[string]any{"targetingKey": "user-1"})
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = m.Evaluate("static", ctx, Bool, false)
	}
	if sinkResult.Reason != ReasonStatic {
		b.Fatalf("%+v", sinkResult)
	}
}

// targetingManifest: 5 rules x 3 clauses (a regexp, a semver and a segment_match
// among them); only the last rule matches benchContext.
const targetingManifest = `{"version":"1","flags":[{"key":"targeting","type":"FLAG_TYPE_STRING",
 "variants":[{"key":"a","value":"A"},{"key":"b","value":"B"},{"key":"c","value":"C"}],
 "config":{"on":true,"rules":[
  {"id":"r1","clauses":[
    {"attribute":"country","operator":"OPERATOR_IN","values":["fr","de","it"]},
    {"attribute":"plan","operator":"OPERATOR_IN","values":["enterprise"]},
    {"attribute":"beta","operator":"OPERATOR_IN","values":[true]}],"serve":{"variant":"a"}},
  {"id":"r2","clauses":[
    {"attribute":"email","operator":"OPERATOR_ENDS_WITH","values":["@competitor.com"],"caseInsensitive":true},
    {"attribute":"age","operator":"OPERATOR_GTE","values":[18]},
    {"attribute":"app.version","operator":"OPERATOR_SEMVER_LT","values":["1.0.0"]}],"serve":{"variant":"b"}},
  {"id":"r3","clauses":[
    {"attribute":"age","operator":"OPERATOR_LT","values":[13]},
    {"attribute":"country","operator":"OPERATOR_IN","values":["us"]},
    {"attribute":"plan","operator":"OPERATOR_EXISTS"}],"serve":{"variant":"b"}},
  {"id":"r4","clauses":[
    {"attribute":"ip","operator":"OPERATOR_IP_IN_CIDR","values":["10.0.0.0/8"]},
    {"attribute":"plan","operator":"OPERATOR_IN","values":["free"]},
    {"attribute":"beta","operator":"OPERATOR_EXISTS"}],"serve":{"variant":"b"}},
  {"id":"r5","clauses":[
    {"attribute":"email","operator":"OPERATOR_MATCHES","values":["^[a-z0-9.]+@example\\.com$"]},
    {"attribute":"app.version","operator":"OPERATOR_SEMVER_GT","values":["2.3.0"]},
    {"operator":"OPERATOR_SEGMENT_MATCH","values":["paying"]}],"serve":{"variant":"c"}}],
  "defaultServe":{"variant":"a"}}}],
 "segments":[{"key":"paying","included":["vip-1"],"rules":[{"id":"pro","clauses":[
   {"attribute":"plan","operator":"OPERATOR_IN","values":["pro","enterprise"]}]}]}]}`

var benchContext = map[string]any{
	"targetingKey": "user-12345",
	"email":        "jane.doe@example.com",
	"country":      "ca",
	"plan":         "pro",
	"age":          34.0,
	"beta":         false,
	"ip":           "192.168.1.20",
	"app":          map[string]any{"version": "2.4.1", "platform": "ios"},
	"org":          map[string]any{"id": "acme", "tier": 2.0},
	"createdAt":    "2024-03-01T12:00:00Z",
}

func BenchmarkTargeting(b *testing.B) {
	m := compileJSON(b, targetingManifest)
	ctx := mustContext(b, benchContext)
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = m.Evaluate("targeting", ctx, String, "")
	}
	if sinkResult.RuleID != "r5" || sinkResult.Variant != "c" {
		b.Fatalf("%+v", sinkResult)
	}
}

func BenchmarkRollout5050(b *testing.B) {
	m := compileJSON(b, `{"version":"1","flags":[{"key":"rollout","type":"FLAG_TYPE_BOOLEAN",
		"variants":[{"key":"on","value":true},{"key":"off","value":false}],
		"config":{"on":true,"defaultServe":{"rollout":{"weights":[{"variant":"on","weight":50},{"variant":"off","weight":50}]}}}}]}`)
	ctx := mustContext(b, map[string]any{"targetingKey": "user-12345"})
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = m.Evaluate("rollout", ctx, Bool, false)
	}
	if sinkResult.Reason != ReasonSplit {
		b.Fatalf("%+v", sinkResult)
	}
}

// bigManifest builds a manifest of nFlags flags and nSegments segments with a
// realistic mix: half the flags static, the others with targets, two or three rules
// (string, numeric, semver, segment clauses; a regexp in one flag of ten, from a
// small set of patterns) and a percentage rollout.
func bigManifest(tb testing.TB, nFlags, nSegments int) *manifestv1.Manifest {
	var sb strings.Builder
	sb.WriteString(`{"version":"1","bucketing":"murmur3-v1","flags":[`)
	for i := range nFlags {
		if i > 0 {
			sb.WriteByte(',')
		}
		if i%2 == 0 {
			fmt.Fprintf(&sb, `{"key":"flag-%d","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
				"config":{"on":true,"offVariant":"off","defaultServe":{"variant":"on"}}}`, i)
			continue
		}
		regexpClause := ""
		if i%10 == 1 {
			regexpClause = fmt.Sprintf(`,{"attribute":"email","operator":"OPERATOR_MATCHES","values":["^[a-z]+@tenant%d\\.example\\.com$"]}`, i%50)
		}
		fmt.Fprintf(&sb, `{"key":"flag-%d","type":"FLAG_TYPE_STRING","clientVisible":true,
			"variants":[{"key":"control","value":"control"},{"key":"treatment","value":"treatment-%d"}],
			"config":{"on":true,"offVariant":"control",
			 "targets":[{"variant":"treatment","values":["user-1","user-2","user-%d"]}],
			 "rules":[
			  {"id":"internal","clauses":[{"attribute":"email","operator":"OPERATOR_ENDS_WITH","values":["@flagforge.dev"]}%s],"serve":{"variant":"treatment"}},
			  {"id":"segment","clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["segment-%d"]},
			    {"attribute":"app.version","operator":"OPERATOR_SEMVER_GT","values":["1.%d.0"]}],
			   "serve":{"rollout":{"weights":[{"variant":"control","weight":50},{"variant":"treatment","weight":50}]}}},
			  {"id":"country","clauses":[{"attribute":"country","operator":"OPERATOR_IN","values":["fr","de","it","es","nl"]},
			    {"attribute":"age","operator":"OPERATOR_GTE","values":[18]}],"serve":{"variant":"treatment"}}],
			 "defaultServe":{"rollout":{"weights":[{"variant":"control","weight":90},{"variant":"treatment","weight":10}]}}}}`,
			i, i, i, regexpClause, i%max(nSegments, 1), i%20)
	}
	sb.WriteString(`],"segments":[`)
	for i := range nSegments {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"key":"segment-%d","included":["user-%d","user-%d"],"excluded":["user-0"],
			"rules":[{"id":"plan","clauses":[{"attribute":"plan","operator":"OPERATOR_IN","values":["pro","enterprise"]},
			  {"attribute":"org.id","operator":"OPERATOR_STARTS_WITH","values":["org-%d"]}]},
			 {"id":"net","clauses":[{"attribute":"ip","operator":"OPERATOR_IP_IN_CIDR","values":["10.%d.0.0/16"]}]}]}`,
			i, i, i+1, i, i%256)
	}
	sb.WriteString(`]}`)
	return parseManifest(tb, sb.String())
}

func BenchmarkCompile10k(b *testing.B) {
	pm := bigManifest(b, 10000, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(pm); err != nil {
			b.Fatal(err)
		}
	}
}
