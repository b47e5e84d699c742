package release

import (
	"testing"
	"time"
)

// TestParseSteps: the notation of the docs becomes weights in hundredths of a
// percent and minimum durations; a bad step is refused naming it.
func TestParseSteps(t *testing.T) {
	t.Parallel()
	steps, err := ParseSteps("1%/1h, 5%/4h, 25%/1d, 100%", "on", "off")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		on   int32
		hold time.Duration
	}{{100, time.Hour}, {500, 4 * time.Hour}, {2500, 24 * time.Hour}, {10000, 0}}
	if len(steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(steps), len(want))
	}
	for i, w := range want {
		st := steps[i]
		if st.GetWeights()[0].GetVariant() != "on" || st.GetWeights()[0].GetWeight() != w.on || st.GetMinDuration().AsDuration() != w.hold {
			t.Errorf("step %d = %v, want on %d for %s", i, st, w.on, w.hold)
		}
		if w.on < 10000 && (len(st.GetWeights()) != 2 || st.GetWeights()[1].GetWeight() != 10000-w.on) {
			t.Errorf("step %d: the rest %v, want off %d", i, st.GetWeights(), 10000-w.on)
		}
	}
	if got := Step(steps[1]); got != "5% on / 95% off" {
		t.Errorf("Step = %q", got)
	}
	for _, bad := range []string{"", "101%", "5%/forever", "x%"} {
		if _, err := ParseSteps(bad, "on", "off"); err == nil {
			t.Errorf("ParseSteps(%q) accepted", bad)
		}
	}
}
