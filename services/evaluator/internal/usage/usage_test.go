package usage

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
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

// capture is a control plane that records what it is sent.
type capture struct{ sent []*syncv1.ReportUsageRequest }

func (c *capture) ReportUsage(_ context.Context, in *syncv1.ReportUsageRequest, _ ...grpc.CallOption) (*syncv1.ReportUsageResponse, error) {
	c.sent = append(c.sent, in)
	return &syncv1.ReportUsageResponse{}, nil
}

func TestPrivateAttributesNeverLeaveTheEvaluator(t *testing.T) {
	t.Parallel()
	c, err := NewCounter(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SampleContexts(100)
	cp := &capture{}
	now := time.Date(2026, 11, 28, 10, 0, 30, 0, time.UTC)
	r, err := NewReporter(ReporterConfig{Client: cp, Now: func() time.Time { return now }}, c)
	if err != nil {
		t.Fatal(err)
	}
	private := []string{"email", "card.number"}
	for i := range 3 {
		attrs := map[string]any{"targetingKey": fmt.Sprintf("user-%d", i), "email": "secret@example.com", "plan": "pro",
			"card": map[string]any{"number": "4111111111111111", "brand": "visa"}}
		m := Minute(now)
		if c.WantContext("acme/web/production", m) {
			c.SampleContext("acme/web/production", m, now, private, attrs)
		}
		c.Add("acme/web/production", "checkout", "on", m, 1)
	}
	r.Flush(context.Background())
	if len(cp.sent) != 1 || len(cp.sent[0].GetContexts()) != 3 {
		t.Fatalf("sent %d batches; want one with 3 contexts: %v", len(cp.sent), cp.sent)
	}
	wire, err := proto.Marshal(cp.sent[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"secret@example.com", "4111111111111111"} {
		if bytes.Contains(wire, []byte(secret)) {
			t.Errorf("the report sent to the control plane carries the private value %q", secret)
		}
	}
	for _, public := range []string{"user-2", "visa", "pro"} {
		if !bytes.Contains(wire, []byte(public)) {
			t.Errorf("the report lacks the public value %q", public)
		}
	}
}

func TestSampledContextsAreBoundedPerMinute(t *testing.T) {
	t.Parallel()
	c, _ := NewCounter(0, nil)
	c.SampleContexts(10)
	cp := &capture{}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	r, _ := NewReporter(ReporterConfig{Client: cp, Now: func() time.Time { return now }}, c)
	for i := range 1000 {
		at := now.Add(time.Duration(i) * 100 * time.Millisecond) // 100 s: two minutes
		if c.WantContext("acme/web/production", Minute(at)) {
			c.SampleContext("acme/web/production", Minute(at), at, nil, map[string]any{"targetingKey": fmt.Sprintf("u%d", i)})
		}
	}
	r.Flush(context.Background())
	perMinute := map[int64]int{}
	for _, b := range cp.sent {
		for _, sc := range b.GetContexts() {
			perMinute[Minute(sc.GetTime().AsTime())]++
		}
	}
	if len(perMinute) != 2 || perMinute[Minute(now)] != 10 || perMinute[Minute(now.Add(time.Minute))] != 10 {
		t.Fatalf("contexts per minute: %v, want 10 in each of 2 minutes", perMinute)
	}
}

// BenchmarkSampleFull is the hot-path cost of the sampling check once the
// environment's reservoir for the minute is full (what every request pays).
func BenchmarkSampleFull(b *testing.B) {
	c, _ := NewCounter(0, nil)
	c.SampleContexts(1)
	m := Minute(time.Now())
	c.SampleContext("acme/web/production", m, time.Now(), nil, map[string]any{"targetingKey": "u"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c.WantContext("acme/web/production", m) {
				b.Fatal("the reservoir should be full")
			}
		}
	})
}

func TestErrorsTravelWithTheCountsAndAnErrorOnlyEntryIsReported(t *testing.T) {
	t.Parallel()
	c, err := NewCounter(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 21, 10, 0, 30, 0, time.UTC)
	c.AddWithErrors("a/b/c", "f", "on", Minute(t0), 10, 0)
	c.AddWithErrors("a/b/c", "f", "on", Minute(t0), 0, 3) // errors an SDK reported
	c.AddWithErrors("a/b/c", "f", "", Minute(t0), 1, 1)   // an evaluation that failed
	c.AddWithErrors("a/b/c", "f", "off", Minute(t0), 0, 2)
	c.AddWithErrors("a/b/c", "f", "x", Minute(t0), 0, 0) // nothing: no entry
	got := map[string][2]int64{}
	for _, e := range c.take(t0)["a/b/c"] {
		got[e.GetVariant()] = [2]int64{e.GetCount(), e.GetErrors()}
	}
	want := map[string][2]int64{"on": {10, 3}, "": {1, 1}, "off": {0, 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("(count, errors) per variant = %v, want %v", got, want)
	}
}
