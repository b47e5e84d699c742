package usage

import (
	"testing"
	"time"
)

func TestTakeMovesCountsOutAndForgetsIdleOldMinutes(t *testing.T) {
	t.Parallel()
	c, err := NewCounter(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 21, 10, 0, 30, 0, time.UTC)
	c.Add("a/b/c", "f", "on", Minute(t0), 3)
	c.Add("a/b/c", "f", "on", Minute(t0), 2)
	got := c.take(t0)
	if len(got["a/b/c"]) != 1 || got["a/b/c"][0].GetCount() != 5 {
		t.Fatalf("take: %v", got)
	}
	if again := c.take(t0); len(again) != 0 {
		t.Fatalf("counted twice: %v", again)
	}
	c.take(t0.Add(3 * time.Minute))
	if n := c.entries.Load(); n != 0 {
		t.Fatalf("%d idle counters kept, want 0", n)
	}
}

func TestCounterDropsBeyondItsBound(t *testing.T) {
	t.Parallel()
	c, err := NewCounter(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Add("a/b/c", "f", "on", 0, 1)
	c.Add("a/b/c", "g", "on", 0, 1)
	if got := c.take(time.Unix(0, 0)); len(got["a/b/c"]) != 1 {
		t.Fatalf("bound of 1 counter: %v", got)
	}
}

// BenchmarkAdd is the hot-path cost of counting one evaluation (an existing
// counter), from parallel goroutines.
func BenchmarkAdd(b *testing.B) {
	c, _ := NewCounter(0, nil)
	m := Minute(time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add("acme/web/production", "new-checkout-flow", "on", m, 1)
		}
	})
}
