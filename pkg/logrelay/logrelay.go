// Package logrelay carries a third-party library's printf-style log lines into
// our structured log (log/slog), at a bounded rate: at most Burst lines per
// Window go through, the rest are counted and reported as one line when the next
// window opens. A library that repeats a failure every few milliseconds (a
// client redialling a server that is down) can no longer flood the log, and its
// lines come out as JSON beside ours instead of unstructured text.
//
// Relay has the Printf(ctx, format, args...) method go-redis expects
// (redis.SetLogger), without this package importing go-redis.
package logrelay

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Relay writes a library's lines to a slog.Logger at a bounded rate. It is safe
// for concurrent use.
type Relay struct {
	log    *slog.Logger
	level  slog.Level
	burst  int
	window time.Duration
	now    func() time.Time

	mu         sync.Mutex
	start      time.Time // of the current window
	passed     int       // lines written in the current window
	suppressed int       // lines dropped in the current window
}

// Config configures a Relay.
type Config struct {
	// Logger receives the lines (required).
	Logger *slog.Logger
	// Source names the library on every line ("source" attribute).
	Source string
	// Level of the lines (default warn).
	Level slog.Level
	// Burst is the number of lines written per Window (default 5).
	Burst int
	// Window is the rate window (default 1 minute).
	Window time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns a relay.
func New(cfg Config) *Relay {
	if cfg.Level == 0 {
		cfg.Level = slog.LevelWarn
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if cfg.Source != "" {
		log = log.With(slog.String("source", cfg.Source))
	}
	return &Relay{log: log, level: cfg.Level, burst: cfg.Burst, window: cfg.Window, now: cfg.Now}
}

// Printf relays one line (go-redis's internal.Logging interface).
func (r *Relay) Printf(ctx context.Context, format string, args ...any) {
	now := r.now()
	r.mu.Lock()
	var dropped int
	if r.start.IsZero() || now.Sub(r.start) >= r.window {
		dropped = r.suppressed
		r.start, r.passed, r.suppressed = now, 0, 0
	}
	pass := r.passed < r.burst
	if pass {
		r.passed++
	} else {
		r.suppressed++
	}
	r.mu.Unlock()
	if dropped > 0 {
		r.log.Log(ctx, r.level, "library log lines suppressed (rate limit)",
			slog.Int("suppressed", dropped), slog.Duration("window", r.window))
	}
	if pass {
		msg := strings.TrimSpace(fmt.Sprintf(format, args...))
		r.log.Log(ctx, r.level, "library log line", slog.String("message", msg))
	}
}
