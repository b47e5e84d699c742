package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

func usageManifest(flags ...string) *manifestv1.Manifest {
	m := &manifestv1.Manifest{}
	for _, f := range flags {
		m.Flags = append(m.Flags, &manifestv1.Flag{Key: f, Variants: []*manifestv1.Variant{{Key: "on"}, {Key: "off"}}})
	}
	return m
}

func sum(batch []*evaluationv1.EvaluationCount) map[string]int64 {
	out := map[string]int64{}
	for _, c := range batch {
		out[c.GetFlagKey()+"/"+c.GetVariant()] += c.GetCount()
	}
	return out
}

func TestUsageCountsPerFlagAndVariantAndSurvivesAManifestSwap(t *testing.T) {
	u := newUsage(100)
	cs := u.build(usageManifest("a", "b"))
	u.count(cs, "a", "on")
	u.count(cs, "a", "on")
	u.count(cs, "b", "")
	cs2 := u.build(usageManifest("a")) // b deleted; a's counter is the same one
	u.count(cs, "a", "off")            // an evaluation still holding the old table
	u.count(cs2, "a", "on")
	minute := time.Date(2026, 1, 2, 3, 4, 59, 0, time.UTC)
	batch := u.take(minute)
	want := map[string]int64{"a/on": 3, "a/off": 1, "b/": 1}
	got := sum(batch)
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	for _, c := range batch {
		if !c.GetMinute().AsTime().Equal(minute.Truncate(time.Minute)) {
			t.Errorf("minute %v, want the start of the minute", c.GetMinute().AsTime())
		}
	}
	if again := u.take(minute); len(again) != 0 {
		t.Errorf("counts taken twice: %v", sum(again))
	}
	if _, ok := u.all[counterKey{"b", ""}]; ok {
		t.Error("an idle counter of a deleted flag was kept")
	}
}

func TestUsageBoundsCountersAndQueuedCountsAndCountsWhatItDrops(t *testing.T) {
	u := newUsage(4)
	cs := u.build(usageManifest("a", "b")) // 6 counters wanted, 4 allowed
	if n := len(u.all); n != 4 {
		t.Fatalf("%d counters, want 4", n)
	}
	u.count(cs, "b", "off") // b/off has no counter: dropped
	if d := u.dropped.Load(); d != 1 {
		t.Errorf("dropped %d, want 1", d)
	}
	for range 3 {
		u.count(cs, "a", "on")
		u.count(cs, "a", "off")
		u.count(cs, "a", "")
		u.enqueue(u.take(time.Now())) // 3 counts queued each time, 4 allowed
	}
	if u.pendingN > 4 {
		t.Errorf("%d counts queued, bound 4", u.pendingN)
	}
	if d := u.dropped.Load(); d != 1+6 {
		t.Errorf("dropped %d, want 7 (1 + two batches of 3 evaluations)", d)
	}
	// A failed send keeps the batch for the next round; a good one empties the queue.
	fail := errors.New("down")
	if err := u.flush(context.Background(), func(context.Context, []*evaluationv1.EvaluationCount) error { return fail }); !errors.Is(err, fail) {
		t.Fatal(err)
	}
	var sent []*evaluationv1.EvaluationCount
	must(t, u.flush(context.Background(), func(_ context.Context, b []*evaluationv1.EvaluationCount) error {
		sent = append(sent, b...)
		return nil
	}))
	if len(sent) != 3 || u.pendingN != 0 || len(u.pending) != 0 {
		t.Errorf("sent %d counts, %d still queued", len(sent), u.pendingN)
	}
}

func TestUsageSplitsBatchesAtTheEvaluatorsLimit(t *testing.T) {
	u := newUsage(50_000)
	batch := make([]*evaluationv1.EvaluationCount, 25_000)
	for i := range batch {
		batch[i] = &evaluationv1.EvaluationCount{Count: 1}
	}
	u.enqueue(batch)
	var sizes []int
	must(t, u.flush(context.Background(), func(_ context.Context, b []*evaluationv1.EvaluationCount) error {
		sizes = append(sizes, len(b))
		return nil
	}))
	if len(sizes) != 3 || sizes[0] != maxReportCounts || sizes[2] != 5_000 {
		t.Errorf("batch sizes %v", sizes)
	}
}

func TestCountingDoesNotAllocate(t *testing.T) {
	u := newUsage(100)
	cs := u.build(usageManifest("a"))
	if n := testing.AllocsPerRun(1000, func() { u.count(cs, "a", "on") }); n != 0 {
		t.Errorf("%v allocations per count", n)
	}
}

func BenchmarkUsageCount(b *testing.B) {
	u := newUsage(100)
	cs := u.build(usageManifest("a", "b", "c"))
	b.ReportAllocs()
	for b.Loop() {
		u.count(cs, "b", "on")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestErrorsAreCountedPerFlagAndVariantNextToTheEvaluations(t *testing.T) {
	u := newUsage(100)
	cs := u.build(usageManifest("a"))
	u.count(cs, "a", "on")
	u.count(cs, "a", "on")
	u.count(cs, "a", "") // a failed evaluation: an evaluation and an error
	for _, v := range []string{"on", "on", "off"} {
		if !u.fail(cs, "a", v) {
			t.Fatalf("fail refused flag a, variant %q of the manifest", v)
		}
	}
	if u.fail(cs, "a", "blue") || u.fail(cs, "nope", "on") {
		t.Fatal("fail accepted a flag or variant the manifest does not have")
	}
	got := map[string][2]int64{}
	for _, c := range u.take(time.Now()) {
		got[c.GetFlagKey()+"/"+c.GetVariant()] = [2]int64{c.GetCount(), c.GetErrors()}
	}
	want := map[string][2]int64{"a/on": {2, 2}, "a/": {1, 1}, "a/off": {0, 1}}
	if len(got) != len(want) {
		t.Fatalf("counts and errors %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v (count, errors), want %v", k, got[k], v)
		}
	}
}
