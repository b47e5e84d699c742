// Package otelflag reports flag evaluations to OpenTelemetry, following the
// OpenTelemetry semantic conventions for feature flags, so that the traces and
// metrics of the application carry the variant each request was served.
//
// Each evaluation becomes a span event named "feature_flag.evaluation" on the span
// in the caller's context (nothing when that span is not recording) with the
// attributes
//
//	feature_flag.key             the flag key
//	feature_flag.result.variant  the variant served (absent when the default was)
//	feature_flag.result.reason   the reason, lowercase snake_case ("targeting_match")
//	feature_flag.provider.name   "flagforge" (or the OpenFeature provider's name)
//	feature_flag.version         the manifest version that decided
//	error.type, error.message    when the evaluation failed ("flag_not_found")
//
// and increments the counter "flagforge.sdk.evaluations" with key, variant,
// reason and provider as attributes. The evaluation context (targeting key,
// attributes) is never recorded: it may hold personal data.
//
// Two ways in: Recorder.Hook is an OpenFeature hook (register it on the API, a
// client or the FlagForge provider with openfeature.WithHooks) and sees every
// evaluation; Record reports one evaluation of the plain Go SDK:
//
//	d := client.BoolDetail("new-ui", user, false)
//	rec.Record(ctx, otelflag.FromDetail(d))
package otelflag

import (
	"context"
	"strconv"
	"strings"

	of "github.com/open-feature/go-sdk/openfeature"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/flagforge/flagforge/pkg/sdk"
)

// The semantic-convention names this package writes.
const (
	EventName       = "feature_flag.evaluation"
	KeyFlag         = attribute.Key("feature_flag.key")
	KeyVariant      = attribute.Key("feature_flag.result.variant")
	KeyReason       = attribute.Key("feature_flag.result.reason")
	KeyProvider     = attribute.Key("feature_flag.provider.name")
	KeyVersion      = attribute.Key("feature_flag.version")
	KeyErrorType    = attribute.Key("error.type")
	KeyErrorMessage = attribute.Key("error.message")
	// MetricName is the counter of evaluations (FlagForge's name: the conventions
	// define no evaluation metric).
	MetricName = "flagforge.sdk.evaluations"
)

// ProviderName is what FromDetail records as feature_flag.provider.name; it
// equals the OpenFeature provider's name (pkg/sdk/openfeature.Name).
const ProviderName = "flagforge"

// instrumentationName names the meter.
const instrumentationName = "github.com/flagforge/flagforge/pkg/sdk/otelflag"

// Evaluation is one evaluation as it is reported.
type Evaluation struct {
	FlagKey string
	// Variant is "" when the caller's default was served.
	Variant string
	// Reason and ErrorCode use OpenFeature's names (TARGETING_MATCH,
	// FLAG_NOT_FOUND); they are recorded lowercase.
	Reason       string
	ErrorCode    string
	ErrorMessage string
	// Version is the manifest version that decided (0: none, not recorded).
	Version uint64
	// Provider is recorded as feature_flag.provider.name ("" : ProviderName).
	Provider string
}

// FromDetail is the evaluation a Go SDK detail describes.
func FromDetail[T any](d sdk.Detail[T]) Evaluation {
	return Evaluation{FlagKey: d.FlagKey, Variant: d.Variant, Reason: string(d.Reason),
		ErrorCode: string(d.ErrorCode), ErrorMessage: d.ErrorMessage, Version: d.ManifestVersion, Provider: ProviderName}
}

// Recorder reports evaluations. It is safe for concurrent use.
type Recorder struct {
	evaluations metric.Int64Counter
}

// Option configures New.
type Option func(*config)

type config struct{ meters metric.MeterProvider }

// WithMeterProvider sets where the counter lives (default: otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.meters = mp } }

// New returns a recorder. Span events go to the span in each call's context,
// whatever tracer provider made it.
func New(opts ...Option) (*Recorder, error) {
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	if c.meters == nil {
		c.meters = otel.GetMeterProvider()
	}
	counter, err := c.meters.Meter(instrumentationName).Int64Counter(MetricName,
		metric.WithDescription("Flag evaluations by flag, variant, reason and provider."),
		metric.WithUnit("{evaluation}"))
	if err != nil {
		return nil, err
	}
	return &Recorder{evaluations: counter}, nil
}

// Record reports one evaluation: a span event on the span in ctx and one count.
func (r *Recorder) Record(ctx context.Context, e Evaluation) {
	provider := e.Provider
	if provider == "" {
		provider = ProviderName
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, KeyFlag.String(e.FlagKey), KeyProvider.String(provider))
	if e.Variant != "" {
		attrs = append(attrs, KeyVariant.String(e.Variant))
	}
	if e.Reason != "" {
		attrs = append(attrs, KeyReason.String(strings.ToLower(e.Reason)))
	}
	r.evaluations.Add(ctx, 1, metric.WithAttributes(attrs...))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if e.Version != 0 {
		attrs = append(attrs, KeyVersion.String(strconv.FormatUint(e.Version, 10)))
	}
	if e.ErrorCode != "" {
		attrs = append(attrs, KeyErrorType.String(strings.ToLower(e.ErrorCode)))
		if e.ErrorMessage != "" {
			attrs = append(attrs, KeyErrorMessage.String(e.ErrorMessage))
		}
	}
	span.AddEvent(EventName, trace.WithAttributes(attrs...))
}

// Hook is an OpenFeature hook that records every evaluation it sees (in its
// finally stage, so failed evaluations too).
func (r *Recorder) Hook() of.Hook { return hook{r: r} }

type hook struct {
	of.UnimplementedHook
	r *Recorder
}

func (h hook) Finally(ctx context.Context, hc of.HookContext, d of.InterfaceEvaluationDetails, _ of.HookHints) {
	e := Evaluation{FlagKey: hc.FlagKey(), Variant: d.Variant, Reason: string(d.Reason),
		ErrorCode: string(d.ErrorCode), ErrorMessage: d.ErrorMessage, Provider: hc.ProviderMetadata().Name}
	if v, err := d.FlagMetadata.GetInt("manifestVersion"); err == nil && v > 0 {
		e.Version = uint64(v)
	}
	h.r.Record(ctx, e)
}
