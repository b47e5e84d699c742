package eval

import "testing"

// TestEvaluateDoesNotAllocate: the success paths of ordinary flags allocate nothing.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := compileJSON(t, reasonsManifest)
	targeting := compileJSON(t, targetingManifest)
	tests := []struct {
		name string
		m    *Manifest
		flag string
		ctx  map[string]any
	}{
		{"static", m, "static", nil},
		{"off", m, "off-with-variant", nil},
		{"individual target", m, "targeted", map[string]any{"targetingKey": 42}},
		{"rule", m, "ruled", map[string]any{"plan": "pro"}},
		{"rollout in a rule", m, "ruled", map[string]any{"plan": "free", "targetingKey": "k"}},
		{"rollout by a nested number", m, "ruled", map[string]any{"org": map[string]any{"id": 12345.5}}},
		{"default rollout", m, "default-split", map[string]any{"targetingKey": "k"}},
		{"prerequisites", m, "needs-pro", map[string]any{"plan": "pro"}},
		{"prerequisite failed", m, "needs-off", nil},
		{"targeting", targeting, "targeting", benchContext},
	}
	for _, tt := range tests {
		ctx := mustContext(t, tt.ctx)
		var r Result
		allocs := testing.AllocsPerRun(200, func() { r = tt.m.Evaluate(tt.flag, ctx, Any, nil) })
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Evaluate (%+v)", tt.name, allocs, r)
		}
		if r.Reason == ReasonError {
			t.Errorf("%s: %+v", tt.name, r)
		}
	}
}
