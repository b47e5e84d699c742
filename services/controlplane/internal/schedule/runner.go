// Package schedule runs scheduled flag changes when they are due. The Runner polls
// the store; the store claims a due schedule in the same transaction that applies
// it, so any number of runners (one per control-plane replica) apply each
// schedule exactly once, and a restart loses nothing (the schedule is a row).
package schedule

import (
	"context"
	"errors"
	"log/slog"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Config tunes the runner.
type Config struct {
	// PollInterval is how often due schedules are looked for (default 1s; a
	// schedule runs within PollInterval plus one transaction of its due time).
	PollInterval time.Duration `env:"SCHEDULE_POLL_INTERVAL, default=1s"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.PollInterval <= 0 || c.PollInterval > 5*time.Second {
		return errors.New("schedule: poll interval must be in (0, 5s] to meet the 5 s execution promise")
	}
	return nil
}

// Store is what the runner needs.
type Store interface {
	RunDueScheduledChange(ctx context.Context, m store.WriteMeta, now time.Time, check func(flag string) store.Check) (*adminv1.ScheduledChange, error)
}

// Actor is the audit identity of scheduled writes.
var Actor = store.WriteMeta{ActorID: "system:scheduler", ActorName: "scheduler"}

// Runner applies due schedules.
type Runner struct {
	st    Store
	cfg   Config
	now   func() time.Time
	check func(flag string) store.Check
	log   *slog.Logger
}

// NewRunner returns a runner. now is the clock (nil: time.Now); check validates
// the configuration a schedule writes, as a direct update would be (nil: none).
func NewRunner(st Store, cfg Config, now func() time.Time, check func(flag string) store.Check, log *slog.Logger) *Runner {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Runner{st: st, cfg: cfg, now: now, check: check, log: log}
}

// Run polls until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "scheduled changes", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick runs every schedule due now and returns those it applied or failed.
func (r *Runner) Tick(ctx context.Context) ([]*adminv1.ScheduledChange, error) {
	var done []*adminv1.ScheduledChange
	for {
		sc, err := r.st.RunDueScheduledChange(ctx, Actor, r.now(), r.check)
		if err != nil || sc == nil {
			return done, err
		}
		done = append(done, sc)
		r.log.InfoContext(ctx, "scheduled change ran", slog.String("id", sc.GetId()), slog.String("flag", sc.GetFlag()),
			slog.String("state", sc.GetState().String()))
	}
}
