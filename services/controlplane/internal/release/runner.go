package release

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Config tunes the runner.
type Config struct {
	// PollInterval is how often due steps and checks are looked for (default 1s).
	PollInterval time.Duration `env:"RELEASE_POLL_INTERVAL, default=1s"`
	// CheckInterval is how often a running plan's guardrails are evaluated
	// (default 30s; a breach is acted on within CheckInterval plus
	// PollInterval). Guardrails are also evaluated right before each step.
	CheckInterval time.Duration `env:"RELEASE_CHECK_INTERVAL, default=30s"`
	// PrometheusURL is the Prometheus that PromQL guardrails query ("": none;
	// plans with PromQL guardrails are then refused).
	PrometheusURL string `env:"PROMETHEUS_URL"`
	// QueryTimeout bounds one guardrail query (default 10s); a query that times
	// out pauses the plan.
	QueryTimeout time.Duration `env:"RELEASE_QUERY_TIMEOUT, default=10s"`
}

// Defaults is the configuration with every default applied.
func Defaults() Config {
	return Config{PollInterval: time.Second, CheckInterval: 30 * time.Second, QueryTimeout: 10 * time.Second}
}

// WithDefaults fills zero fields with defaults.
func (c Config) WithDefaults() Config {
	d := Defaults()
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = d.CheckInterval
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var es []error
	if c.PollInterval <= 0 || c.PollInterval > 5*time.Second {
		es = append(es, errors.New("release: poll interval must be in (0, 5s]"))
	}
	if c.CheckInterval < 100*time.Millisecond || c.CheckInterval > time.Hour {
		es = append(es, errors.New("release: check interval must be in [100ms, 1h]"))
	}
	if c.QueryTimeout <= 0 || c.QueryTimeout > time.Minute {
		es = append(es, errors.New("release: query timeout must be in (0, 1m]"))
	}
	if c.PrometheusURL != "" {
		if _, err := NewPrometheus(c.PrometheusURL, c.QueryTimeout); err != nil {
			es = append(es, err)
		}
	}
	return errors.Join(es...)
}

// Evaluator returns the guardrail evaluator the configuration describes;
// sdk_errors guardrails read u (nil: they cannot be evaluated) with clock now
// (nil: time.Now).
func (c Config) Evaluator(u Usage, now func() time.Time) (Guardrails, error) {
	g := Guardrails{Usage: u, Now: now}
	if c.PrometheusURL != "" {
		p, err := NewPrometheus(c.PrometheusURL, c.WithDefaults().QueryTimeout)
		if err != nil {
			return g, err
		}
		g.Prometheus = p
	}
	return g, nil
}

// Store is what the runner needs.
type Store interface {
	DueReleasePlans(ctx context.Context, now time.Time, limit int) ([]store.DuePlan, error)
	ClaimGuardrailCheck(ctx context.Context, ref store.EnvRef, id string, now, next time.Time) (bool, error)
	RecordGuardrailStates(ctx context.Context, ref store.EnvRef, id string, revision int64, states []*adminv1.GuardrailState) error
	ChangeReleasePlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, t *store.PlanTransition, check store.Check) (*adminv1.ReleasePlan, error)
}

// Actor is the audit identity of the runner's writes: steps applied, automatic
// pauses and rollbacks.
var Actor = store.WriteMeta{ActorID: "system:release", ActorName: "release scheduler"}

// Runner applies due steps and watches guardrails, one per replica.
type Runner struct {
	st    Store
	ev    Evaluator
	cfg   Config
	now   func() time.Time
	check func(flag string) store.Check
	log   *slog.Logger
}

// NewRunner returns a runner. now is the clock (nil: time.Now); check validates
// the configuration a step writes, as a direct update would be (nil: none).
func NewRunner(st Store, ev Evaluator, cfg Config, now func() time.Time, check func(flag string) store.Check, log *slog.Logger) *Runner {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Runner{st: st, ev: ev, cfg: cfg.WithDefaults(), now: now, check: check, log: log}
}

// Run polls until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "release plans", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick handles every plan due now and returns the plans it changed (steps
// applied, paused, rolled back), as they were saved.
func (r *Runner) Tick(ctx context.Context) ([]*adminv1.ReleasePlan, error) {
	now := r.now().UTC()
	due, err := r.st.DueReleasePlans(ctx, now, 100)
	if err != nil {
		return nil, err
	}
	var changed []*adminv1.ReleasePlan
	var errs []error
	for _, d := range due {
		p, err := r.handle(ctx, d, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p != nil {
			changed = append(changed, p)
		}
	}
	return changed, errors.Join(errs...)
}

func (r *Runner) handle(ctx context.Context, d store.DuePlan, now time.Time) (*adminv1.ReleasePlan, error) {
	if !d.StepDue {
		// Only a check is due: one replica takes it.
		ok, err := r.st.ClaimGuardrailCheck(ctx, d.Ref, d.Plan.GetId(), now, now.Add(r.cfg.CheckInterval))
		if err != nil || !ok {
			return nil, err
		}
	}
	states, outcome, why := evaluate(ctx, r.ev, d.Ref, d.Plan, now)
	if outcome == Held && !d.StepDue {
		return nil, r.st.RecordGuardrailStates(ctx, d.Ref, d.Plan.GetId(), d.Plan.GetRevision(), states)
	}
	var chk store.Check
	if r.check != nil {
		chk = r.check(d.Plan.GetFlag())
	}
	m := Actor
	if outcome != Held {
		m.Comment = "automatic: " + why
	}
	p, err := r.st.ChangeReleasePlan(ctx, m, d.Ref, d.Plan.GetId(), Observe(d.Plan.GetRevision(), now, d.StepDue, states, outcome, why), chk)
	if err != nil || p == nil {
		return nil, err
	}
	r.log.InfoContext(ctx, "release plan", slog.String("org", d.Ref.Org), slog.String("id", p.GetId()), slog.String("flag", p.GetFlag()),
		slog.String("state", p.GetState().String()), slog.Int("applied_steps", int(p.GetAppliedSteps())), slog.String("reason", p.GetPauseReason()))
	return p, nil
}

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
