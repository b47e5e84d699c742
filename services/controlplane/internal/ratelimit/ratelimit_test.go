package ratelimit

import (
	"errors"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
)

func TestLimiterPerOrganization(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(Config{Rate: 1, Burst: 2}, func() time.Time { return now })
	for i := range 2 {
		if err := l.Allow("a"); err != nil {
			t.Fatalf("request %d within burst: %v", i, err)
		}
	}
	err := l.Allow("a")
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.ResourceExhausted {
		t.Fatalf("over burst: got %v, want ResourceExhausted", err)
	}
	if e.RetryAfter <= 0 || e.RetryAfter > time.Second {
		t.Fatalf("RetryAfter = %v, want (0, 1s]", e.RetryAfter)
	}
	if err := l.Allow("b"); err != nil {
		t.Fatalf("another organization has its own bucket: %v", err)
	}
	now = now.Add(time.Second)
	if err := l.Allow("a"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestDisabledLimiterAllowsEverything(t *testing.T) {
	t.Parallel()
	l := New(Config{}, nil)
	for range 1000 {
		if err := l.Allow("a"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (Config{Rate: -1}).Validate(); err == nil {
		t.Error("negative rate accepted")
	}
	if err := (Config{Rate: 1}).Validate(); err == nil {
		t.Error("zero burst accepted")
	}
	if err := (Config{Rate: 1, Burst: 1}).Validate(); err != nil {
		t.Error(err)
	}
}
