package seen

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func minute(t time.Time) int64 { return t.Unix() / 60 * 60 }

func offer(s *Sampler, env string, at time.Time, private []string, attrs map[string]any) {
	if s.Want(env, minute(at)) {
		s.Add(env, minute(at), at, private, attrs)
	}
}

func TestSamplerKeepsAtMostLimitPerEnvironmentAndMinute(t *testing.T) {
	t.Parallel()
	s := New(5)
	for m := range 3 {
		at := t0.Add(time.Duration(m) * time.Minute)
		for i := range 50 {
			offer(s, "acme/web/prod", at.Add(time.Duration(i)*time.Second), nil, map[string]any{"targetingKey": fmt.Sprintf("user-%d-%d", m, i)})
			offer(s, "acme/web/dev", at, nil, map[string]any{"targetingKey": fmt.Sprintf("user-%d-%d", m, i)})
		}
	}
	got := s.Take()
	if n := len(got["acme/web/prod"]); n != 15 {
		t.Errorf("prod kept %d contexts over 3 minutes, want 5 a minute = 15", n)
	}
	if n := len(got["acme/web/dev"]); n != 15 {
		t.Errorf("dev kept %d contexts over 3 minutes, want 15 (its own reservoir)", n)
	}
	perMinute := map[int64]int{}
	for _, c := range got["acme/web/prod"] {
		perMinute[minute(c.Time)]++
	}
	for m, n := range perMinute {
		if n > 5 {
			t.Errorf("minute %d: %d contexts, bound is 5", m, n)
		}
	}
	if again := s.Take(); len(again) != 0 {
		t.Errorf("Take twice returned %d environments again", len(again))
	}
}

func TestSamplerDeduplicatesWithinAMinute(t *testing.T) {
	t.Parallel()
	s := New(10)
	for range 5 {
		offer(s, "e", t0, nil, map[string]any{"targetingKey": "same", "plan": "pro"})
	}
	offer(s, "e", t0, nil, map[string]any{"plan": "pro", "targetingKey": "same"})
	offer(s, "e", t0, nil, map[string]any{"targetingKey": "other"})
	if n := len(s.Take()["e"]); n != 2 {
		t.Fatalf("kept %d, want 2 distinct contexts", n)
	}
}

func TestSamplerStopsExaminingAfterTenTimesTheLimit(t *testing.T) {
	t.Parallel()
	s := New(2)
	for range 20 {
		offer(s, "e", t0, nil, map[string]any{"targetingKey": "same"})
	}
	if s.Want("e", minute(t0)) {
		t.Fatal("after 20 offers with a limit of 2 the minute should be closed")
	}
	if !s.Want("e", minute(t0.Add(time.Minute))) {
		t.Fatal("the next minute opens again")
	}
}

func TestPrivateAttributesNeverReachTake(t *testing.T) {
	t.Parallel()
	s := New(10)
	attrs := map[string]any{
		"targetingKey": "u1", "email": "ann@example.com", "plan": "pro",
		"address": map[string]any{"street": "1 Secret Way", "country": "NL"},
		"a.b":     "literal dotted name",
	}
	offer(s, "e", t0, []string{"email", "address.street", "a.b"}, attrs)
	got := s.Take()["e"]
	if len(got) != 1 {
		t.Fatalf("samples: %v", got)
	}
	b, _ := json.Marshal(got[0].Attributes)
	for _, secret := range []string{"ann@example.com", "1 Secret Way", "literal dotted name"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("private value %q left in the sample: %s", secret, b)
		}
	}
	if !strings.Contains(string(b), `"country":"NL"`) || !strings.Contains(string(b), `"plan":"pro"`) {
		t.Errorf("public attributes lost: %s", b)
	}
	if attrs["email"] != "ann@example.com" || attrs["address"].(map[string]any)["street"] != "1 Secret Way" {
		t.Errorf("Add modified the caller's context: %v", attrs)
	}
}

func TestNilSamplerSamplesNothing(t *testing.T) {
	t.Parallel()
	var s *Sampler
	if s.Want("e", 0) {
		t.Fatal("nil sampler wants")
	}
	s.Add("e", 0, t0, nil, map[string]any{"a": 1})
	if len(s.Take()) != 0 {
		t.Fatal("nil sampler took")
	}
	if New(-1) != nil {
		t.Fatal("a negative limit disables sampling")
	}
}

// BenchmarkWantFull is the hot-path cost once the minute's reservoir is full:
// what every evaluation pays beyond the first Limit distinct contexts.
func BenchmarkWantFull(b *testing.B) {
	s := New(1)
	m := minute(time.Now())
	s.Add("acme/web/production", m, time.Now(), nil, map[string]any{"targetingKey": "u"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Want("acme/web/production", m) {
				b.Fatal("reservoir should be full")
			}
		}
	})
}
