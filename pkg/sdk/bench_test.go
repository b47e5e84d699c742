package sdk_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/eval"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// Benchmarks of docs/benchmarks.md ("SDK"): local evaluation through the client,
// against the bare engine on the same flag shapes as pkg/eval's bench_test.go.
// Contexts are built before the loop; usage counting is on.

var (
	sinkBool   bool
	sinkResult eval.Result
)

const staticManifest = `{"org":"acme","project":"web","environment":"production","version":"1","flags":[{"key":"static","type":"FLAG_TYPE_BOOLEAN",
	"variants":[{"key":"on","value":true},{"key":"off","value":false}],
	"config":{"on":true,"defaultServe":{"variant":"on"}}}]}`

// targetingManifest is pkg/eval's BenchmarkTargeting flag: 5 rules x 3 clauses (a
// regexp, a semver and a segment_match among them); only the last rule matches.
const targetingManifest = `{"org":"acme","project":"web","environment":"production","version":"1","flags":[{"key":"targeting","type":"FLAG_TYPE_STRING",
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

func benchManifest(b *testing.B, js string) *manifestv1.Manifest {
	m := &manifestv1.Manifest{}
	must(b, protojson.Unmarshal([]byte(js), m))
	m.IssuedAt, m.ExpiresAt = timestamppb.Now(), timestamppb.New(time.Now().Add(48*time.Hour))
	return m
}

func benchClient(b *testing.B, js string, mod ...func(*sdk.Config)) *sdk.Client {
	raw, err := proto.Marshal(sign(b, benchManifest(b, js)))
	must(b, err)
	cfg := sdk.Config{TrustedKeys: trustedKeys(b), Bootstrap: raw}
	for _, f := range mod {
		f(&cfg)
	}
	c, err := sdk.New(cfg)
	must(b, err)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func BenchmarkClientStatic(b *testing.B) {
	c := benchClient(b, staticManifest)
	ctx := mustContext(b, map[string]any{"targetingKey": "user-1"})
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = c.Bool("static", ctx, false)
	}
	if !sinkBool {
		b.Fatal("static flag served false")
	}
}

func BenchmarkClientStaticDetail(b *testing.B) {
	c := benchClient(b, staticManifest)
	ctx := mustContext(b, map[string]any{"targetingKey": "user-1"})
	b.ReportAllocs()
	var d sdk.Detail[bool]
	for b.Loop() {
		d = c.BoolDetail("static", ctx, false)
	}
	if d.Reason != sdk.ReasonStatic {
		b.Fatalf("%+v", d)
	}
}

func BenchmarkClientStaticNoUsage(b *testing.B) {
	c := benchClient(b, staticManifest, func(cfg *sdk.Config) { cfg.DisableUsage = true })
	ctx := mustContext(b, map[string]any{"targetingKey": "user-1"})
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = c.Bool("static", ctx, false)
	}
}

func BenchmarkClientStaticParallel(b *testing.B) {
	c := benchClient(b, staticManifest)
	ctx := mustContext(b, map[string]any{"targetingKey": "user-1"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = c.Bool("static", ctx, false)
		}
	})
}

func BenchmarkEngineStatic(b *testing.B) {
	m, err := eval.Compile(benchManifest(b, staticManifest))
	must(b, err)
	ctx := mustContext(b, map[string]any{"targetingKey": "user-1"})
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = m.Evaluate("static", ctx, eval.Bool, false)
	}
}

func BenchmarkClientTargeting(b *testing.B) {
	c := benchClient(b, targetingManifest)
	ctx := mustContext(b, benchContext)
	b.ReportAllocs()
	var d sdk.Detail[string]
	for b.Loop() {
		d = c.StringDetail("targeting", ctx, "")
	}
	if d.RuleID != "r5" || d.Variant != "c" {
		b.Fatalf("%+v", d)
	}
}

// BenchmarkEngineTargeting is pkg/eval's BenchmarkTargeting, run here so both
// figures come from one run on one machine.
func BenchmarkEngineTargeting(b *testing.B) {
	m, err := eval.Compile(benchManifest(b, targetingManifest))
	must(b, err)
	ctx := mustContext(b, benchContext)
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = m.Evaluate("targeting", ctx, eval.String, "")
	}
	if sinkResult.RuleID != "r5" || sinkResult.Variant != "c" {
		b.Fatalf("%+v", sinkResult)
	}
}
