package otelflag_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	of "github.com/open-feature/go-sdk/openfeature"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/pkg/sdk/openfeature"
	"github.com/flagforge/flagforge/pkg/sdk/otelflag"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// client holds testdata's manifest (version 7: new-ui targets region us-east-1
// with rule "east", banner is static "Welcome!").
func client(t *testing.T) *sdk.Client {
	pem, err := manifest.LoadPEM("../testdata/signing.pub.pem")
	must(t, err)
	pub, err := manifest.ParsePublicKeys(pem)
	must(t, err)
	c, err := sdk.New(sdk.Config{TrustedKeys: pub, BootstrapFile: "../testdata/manifest.pb"})
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type telemetry struct {
	spans   *tracetest.SpanRecorder
	tracer  *sdktrace.TracerProvider
	metrics *sdkmetric.ManualReader
	rec     *otelflag.Recorder
}

func newTelemetry(t *testing.T) *telemetry {
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader()}
	tel.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	rec, err := otelflag.New(otelflag.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.metrics))))
	must(t, err)
	tel.rec = rec
	return tel
}

// events returns the attributes of the feature_flag.evaluation events of the
// ended spans, one map per event.
func (tel *telemetry) events() []map[string]string {
	var out []map[string]string
	for _, s := range tel.spans.Ended() {
		for _, e := range s.Events() {
			if e.Name != otelflag.EventName {
				continue
			}
			m := map[string]string{}
			for _, a := range e.Attributes {
				m[string(a.Key)] = a.Value.String()
			}
			out = append(out, m)
		}
	}
	return out
}

// counts returns the counter's points by "key/variant".
func (tel *telemetry) counts(t *testing.T) map[string]int64 {
	var rm metricdata.ResourceMetrics
	must(t, tel.metrics.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != otelflag.MetricName {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				k, _ := p.Attributes.Value(otelflag.KeyFlag)
				v, _ := p.Attributes.Value(otelflag.KeyVariant)
				out[k.AsString()+"/"+v.AsString()] += p.Value
			}
		}
	}
	return out
}

func TestTheOpenFeatureHookPutsTheVariantOnTheCallersSpan(t *testing.T) {
	tel := newTelemetry(t)
	p := openfeature.New(client(t), openfeature.WithHooks(tel.rec.Hook()))
	must(t, of.SetNamedProviderAndWait("otelflag-test", p))
	t.Cleanup(of.Shutdown)
	ofc := of.NewClient("otelflag-test")

	ctx, span := tel.tracer.Tracer("test").Start(context.Background(), "GET /checkout")
	east := of.NewEvaluationContext("user-1", map[string]any{"region": "us-east-1"})
	if v, err := ofc.BooleanValue(ctx, "new-ui", false, east); err != nil || !v {
		t.Fatalf("new-ui: %v, %v", v, err)
	}
	if _, err := ofc.StringValue(ctx, "nope", "d", of.EvaluationContext{}); err == nil {
		t.Fatal("nope: no error")
	}
	span.End()

	want := []map[string]string{
		{"feature_flag.key": "new-ui", "feature_flag.result.variant": "on", "feature_flag.result.reason": "targeting_match",
			"feature_flag.provider.name": "flagforge", "feature_flag.version": "7"},
		{"feature_flag.key": "nope", "feature_flag.result.reason": "error", "feature_flag.provider.name": "flagforge",
			"feature_flag.version": "7", "error.type": "flag_not_found", "error.message": `flag "nope" not found`},
	}
	got := tel.events()
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		// The message is the engine's wording; only its presence is the contract.
		return p.Last().String() == `["error.message"]`
	}, cmp.Ignore())); diff != "" {
		t.Errorf("span events (-want +got):\n%s", diff)
	}
	if len(got) == 2 && got[1]["error.message"] == "" {
		t.Error("a failed evaluation carries no error.message")
	}
	if diff := cmp.Diff(map[string]int64{"new-ui/on": 1, "nope/": 1}, tel.counts(t)); diff != "" {
		t.Errorf("counter (-want +got):\n%s", diff)
	}
}

func TestRecordReportsAGoSDKDetailAndNeverTheContext(t *testing.T) {
	tel := newTelemetry(t)
	c := client(t)
	user, err := sdk.NewContext(map[string]any{"targetingKey": "alice@example.com", "region": "us-east-1"})
	must(t, err)

	ctx, span := tel.tracer.Tracer("test").Start(context.Background(), "render")
	tel.rec.Record(ctx, otelflag.FromDetail(c.BoolDetail("new-ui", user, false)))
	tel.rec.Record(ctx, otelflag.FromDetail(c.StringDetail("banner", nil, "")))
	span.End()
	// Without a recording span nothing is attached, but the evaluation counts.
	tel.rec.Record(context.Background(), otelflag.FromDetail(c.StringDetail("banner", nil, "")))

	got := tel.events()
	want := []map[string]string{
		{"feature_flag.key": "new-ui", "feature_flag.result.variant": "on", "feature_flag.result.reason": "targeting_match",
			"feature_flag.provider.name": "flagforge", "feature_flag.version": "7"},
		{"feature_flag.key": "banner", "feature_flag.result.variant": "hello", "feature_flag.result.reason": "static",
			"feature_flag.provider.name": "flagforge", "feature_flag.version": "7"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("span events (-want +got):\n%s", diff)
	}
	for _, s := range tel.spans.Ended() {
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if a.Value.Type() == attribute.STRING && (a.Value.AsString() == "alice@example.com" || a.Value.AsString() == "us-east-1") {
					t.Errorf("the context leaked into %s: %s", e.Name, a.Key)
				}
			}
		}
	}
	if diff := cmp.Diff(map[string]int64{"new-ui/on": 1, "banner/hello": 2}, tel.counts(t)); diff != "" {
		t.Errorf("counter (-want +got):\n%s", diff)
	}
}
