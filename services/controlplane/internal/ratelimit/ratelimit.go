// Package ratelimit limits the admin API per organization with token buckets
// (golang.org/x/time/rate): each organization gets Rate requests per second on
// average and bursts of up to Burst.
package ratelimit

import (
	"errors"
	"sync"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	"golang.org/x/time/rate"
)

// Config configures the limiter.
type Config struct {
	// Rate is the sustained requests per second per organization; 0 disables limits.
	Rate float64 `env:"RATE_LIMIT_RPS, default=50"`
	// Burst is the bucket size.
	Burst int `env:"RATE_LIMIT_BURST, default=100"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Rate < 0 {
		return errors.New("ratelimit: rate must be >= 0")
	}
	if c.Rate > 0 && c.Burst < 1 {
		return errors.New("ratelimit: burst must be >= 1 when a rate is set")
	}
	return nil
}

// Limiter holds one bucket per organization. Safe for concurrent use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// New returns a limiter; now is the clock (nil: time.Now).
func New(cfg Config, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, now: now, buckets: map[string]*rate.Limiter{}}
}

// Allow takes one token from org's bucket. When none is left it returns
// errs.ResourceExhausted with RetryAfter set to when the next token is due.
func (l *Limiter) Allow(org string) error {
	if l == nil || l.cfg.Rate <= 0 {
		return nil
	}
	l.mu.Lock()
	b, ok := l.buckets[org]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)
		l.buckets[org] = b
	}
	l.mu.Unlock()
	now := l.now()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &errs.Error{Kind: errs.ResourceExhausted, Message: "rate limit exceeded for organization " + org, RetryAfter: d}
	}
	return nil
}
