// Package limit rate-limits calls per SDK key with token buckets
// (golang.org/x/time/rate).
//
// The contract: Allow never blocks; a refused call gets an errs.ResourceExhausted
// error whose RetryAfter is when the bucket will hold a token again, so gRPC
// callers see RESOURCE_EXHAUSTED with RetryInfo and HTTP callers 429 with
// Retry-After (the one mapping in pkg/errs). Buckets are keyed by the SHA-256 of an
// authenticated key, so their number is bounded by the keys the manifests list;
// buckets idle for a while are swept.
package limit

import (
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/flagforge/flagforge/pkg/errs"
)

const shards = 32

// Limiter holds one token bucket per SDK key. The zero rate disables it.
type Limiter struct {
	limit  rate.Limit
	burst  int
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[[sha256.Size]byte]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter allowing perSecond calls per key with bursts of burst
// (burst < 1: perSecond rounded up). perSecond <= 0 disables limiting.
func New(perSecond float64, burst int) *Limiter {
	l := &Limiter{limit: rate.Limit(perSecond), burst: burst}
	if l.burst < 1 {
		l.burst = max(1, int(perSecond+0.999))
	}
	for i := range l.shards {
		l.shards[i].buckets = map[[sha256.Size]byte]*bucket{}
	}
	return l
}

// Enabled reports whether calls are limited at all.
func (l *Limiter) Enabled() bool { return l != nil && l.limit > 0 }

// Allow takes a token from key's bucket at now, or returns a ResourceExhausted
// error saying when to retry.
func (l *Limiter) Allow(key [sha256.Size]byte, now time.Time) error {
	if !l.Enabled() {
		return nil
	}
	s := &l.shards[key[0]%shards]
	s.mu.Lock()
	b := s.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		s.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	s.mu.Unlock()
	if !r.OK() {
		return &errs.Error{Kind: errs.ResourceExhausted, Message: "rate limit exceeded for this SDK key", RetryAfter: time.Second}
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &errs.Error{Kind: errs.ResourceExhausted, Message: "rate limit exceeded for this SDK key", RetryAfter: d}
	}
	return nil
}

// Sweep forgets buckets unused since before cutoff (they are full again anyway
// when idle longer than burst/rate).
func (l *Limiter) Sweep(cutoff time.Time) {
	if !l.Enabled() {
		return
	}
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, b := range s.buckets {
			if b.seen.Before(cutoff) {
				delete(s.buckets, k)
			}
		}
		s.mu.Unlock()
	}
}
