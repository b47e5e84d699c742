package release

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func TestSDKErrorsMeasuresAVariantOrTheWholeFlag(t *testing.T) {
	totals := []store.VariantTotal{{Variant: "", Evaluations: 2, Errors: 2}, {Variant: "off", Evaluations: 100, Errors: 1}, {Variant: "on", Evaluations: 50, Errors: 10}}
	ratio, count := adminv1.SdkErrorsMeasure_SDK_ERRORS_MEASURE_RATIO, adminv1.SdkErrorsMeasure_SDK_ERRORS_MEASURE_COUNT
	for _, tc := range []struct {
		name string
		c    *adminv1.SdkErrorsCheck
		want float64
	}{
		{"ratio of a variant", &adminv1.SdkErrorsCheck{Variant: "on"}, 0.2},
		{"explicit ratio", &adminv1.SdkErrorsCheck{Variant: "on", Measure: ratio}, 0.2},
		{"count of a variant", &adminv1.SdkErrorsCheck{Variant: "on", Measure: count}, 10},
		{"whole flag, failed evaluations included", &adminv1.SdkErrorsCheck{}, 13.0 / 152},
		{"below the minimum sample", &adminv1.SdkErrorsCheck{Variant: "on", MinEvaluations: 51}, 0},
		{"at the minimum sample", &adminv1.SdkErrorsCheck{Variant: "on", MinEvaluations: 50}, 0.2},
		{"a variant never served", &adminv1.SdkErrorsCheck{Variant: "blue"}, 0},
	} {
		if got := SDKErrors(tc.c, totals); got != tc.want {
			t.Errorf("%s: %g, want %g", tc.name, got, tc.want)
		}
	}
}

type usageAt struct {
	since time.Time
	out   []store.VariantTotal
}

func (u *usageAt) VariantUsage(_ context.Context, _ store.EnvRef, _ string, since time.Time) ([]store.VariantTotal, error) {
	u.since = since
	return u.out, nil
}

func TestAnSDKErrorsGuardrailReadsItsWindowFromTheStore(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 30, 0, time.UTC)
	u := &usageAt{out: []store.VariantTotal{{Variant: "on", Evaluations: 10, Errors: 5}}}
	g := Guardrails{Usage: u, Now: func() time.Time { return now }}
	v, err := g.Evaluate(context.Background(), store.EnvRef{}, "checkout", &adminv1.Guardrail{Name: "errors",
		Check:  &adminv1.Guardrail_SdkErrors{SdkErrors: &adminv1.SdkErrorsCheck{Variant: "on"}},
		Window: durationpb.New(5 * time.Minute)})
	if err != nil || v != 0.5 {
		t.Fatalf("Evaluate = %g, %v; want 0.5", v, err)
	}
	if !u.since.Equal(now.Add(-5 * time.Minute)) {
		t.Fatalf("window from %v, want %v", u.since, now.Add(-5*time.Minute))
	}
	if _, err := (Guardrails{}).Evaluate(context.Background(), store.EnvRef{}, "checkout", &adminv1.Guardrail{
		Check: &adminv1.Guardrail_SdkErrors{SdkErrors: &adminv1.SdkErrorsCheck{}}}); err == nil {
		t.Fatal("an sdk_errors guardrail without a usage store was evaluated")
	}
}
