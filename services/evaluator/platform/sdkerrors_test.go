package platform

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// TestSDKReportedErrorsRollTheFlagBack: a release plan of checkout guarded by
// the errors SDKs report for variant "on" (sdk_errors: ratio above 10% over at
// least 20 evaluations in a minute). A real Go SDK evaluates checkout through a
// real evaluator and reports, with its evaluation counts, an error for every
// other user served "on"; the evaluator forwards counts and errors to the real
// control plane, whose scheduler measures the ratio, pauses the plan and rolls
// checkout back (off, its state before the plan) within one evaluation
// interval of the errors being stored, audited as automatic; the evaluator and
// the SDK then serve off.
func TestSDKReportedErrorsRollTheFlagBack(t *testing.T) {
	const usageInterval = 200 * time.Millisecond
	em := newEmbedded(t, "FLAGFORGE_RELEASE_CHECK_INTERVAL="+checkInterval.String(),
		"FLAGFORGE_RELEASE_POLL_INTERVAL="+pollInterval.String(), "FLAGFORGE_USAGE_INTERVAL="+usageInterval.String())
	em.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "checkout", "type": "FLAG_TYPE_BOOLEAN"}})
	out := em.admin("POST", envPath+"/release-plans", map[string]any{"flag": "checkout", "description": "new checkout",
		"steps": []any{
			map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 100}}, "minDuration": "3600s"},
			map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 100}}},
		},
		"guardrails": []any{map[string]any{"name": "checkout-sdk-errors", "threshold": 0.1, "window": "60s",
			"sdkErrors": map[string]any{"variant": "on", "measure": "SDK_ERRORS_MEASURE_RATIO", "minEvaluations": 20}}}})
	id, _ := out["releasePlan"].(map[string]any)["id"].(string)
	em.admin("POST", envPath+"/release-plans/"+id+":start", map[string]any{"comment": "go"})
	em.waitPlan(id, 10*time.Second, "at its first step", func(p map[string]any) bool { return p["appliedSteps"] == float64(1) })
	em.waitCheckout(true, 10*time.Second)

	pub, err := os.ReadFile(filepath.Join(em.dir, "controlplane", "signing-key.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sdk.New(sdk.Config{Address: em.eval.grpcAddr, SDKKey: em.sdkKey, TrustedKeys: keys, UsageInterval: usageInterval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Healthy traffic first: 40 evaluations of "on", no error; the guardrail
	// holds.
	for i := range 40 {
		if d := c.BoolDetail("checkout", userCtx(t, fmt.Sprintf("user-%d", i)), false); d.Variant != "on" {
			t.Fatalf("the SDK serves %q (%v), want the plan's first step: on", d.Variant, d.ErrorMessage)
		}
	}
	usage := func() (n, errs float64) {
		u := em.admin("GET", envPath+"/flags/checkout/usage", nil)
		bs, _ := u["buckets"].([]any)
		for _, b := range bs {
			b := b.(map[string]any)
			if b["variant"] == "on" {
				n += num(b["count"])
				errs += num(b["errors"])
			}
		}
		return n, errs
	}
	waitUntil(t, 10*time.Second, "the SDK's evaluations reach the control plane", func() bool { n, _ := usage(); return n >= 40 })
	em.waitPlan(id, 10*time.Second, "evaluated OK with the traffic", func(p map[string]any) bool {
		return guardrail(p)["status"] == "GUARDRAIL_STATUS_OK"
	})

	// Now the new checkout fails for every other user: 20 errors over 60
	// evaluations of "on" (33% > 10%).
	for i := range 20 {
		d := c.BoolDetail("checkout", userCtx(t, fmt.Sprintf("user-%d", 100+i)), false)
		if !c.ReportError("checkout", d.Variant) {
			t.Fatalf("ReportError(checkout, %q) refused", d.Variant)
		}
	}
	if c.ReportError("checkout", "blue") {
		t.Fatal("ReportError accepted a variant checkout does not have")
	}
	var stored time.Time
	waitUntil(t, 10*time.Second, "the SDK's errors reach the control plane", func() bool {
		if _, e := usage(); e >= 20 {
			stored = time.Now()
			return true
		}
		return false
	})
	p := em.waitPlan(id, 10*time.Second, "paused by the breach", func(p map[string]any) bool { return state(p) == "RELEASE_PLAN_STATE_PAUSED" })
	g := guardrail(p)
	if g["status"] != "GUARDRAIL_STATUS_BREACHED" || num(g["lastValue"]) <= 0.1 {
		t.Fatalf("guardrail state %v, want BREACHED with the error ratio", g)
	}
	if r, _ := p["pauseReason"].(string); !strings.Contains(r, `guardrail "checkout-sdk-errors" breached`) {
		t.Fatalf("pause reason %q", r)
	}
	audit := em.admin("GET", "/v1/orgs/"+org+"/audit?action=release_plan.auto_rollback", nil)
	entries, _ := audit["entries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("%d release_plan.auto_rollback audit entries, want 1: %v", len(entries), audit)
	}
	e := entries[0].(map[string]any)
	if e["actorId"] != "system:release" || !strings.Contains(fmt.Sprint(e["comment"]), "automatic:") {
		t.Fatalf("audit entry %v: want the scheduler's automatic rollback", e)
	}
	at, err := time.Parse(time.RFC3339Nano, e["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if lag := at.Sub(stored); lag > checkInterval+pollInterval+time.Second {
		t.Fatalf("rolled back %s after the errors were stored, want within one evaluation interval (%s)", lag, checkInterval)
	} else {
		t.Logf("rolled back %s after the test saw the errors stored (check interval %s)", lag, checkInterval)
	}
	em.waitCheckout(false, 10*time.Second)
	waitUntil(t, 10*time.Second, "the SDK serves the rolled-back value", func() bool {
		return !c.Bool("checkout", userCtx(t, "user-1"), true)
	})
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case string: // int64 fields are JSON strings
		var f float64
		_, _ = fmt.Sscan(n, &f)
		return f
	}
	return 0
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func userCtx(t *testing.T, key string) *sdk.Context {
	t.Helper()
	c, err := sdk.NewContext(map[string]any{"targetingKey": key})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
