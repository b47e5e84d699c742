// Package auditcheck verifies every organization's audit hash chain on a period
// and exports the result as metrics, so a broken chain (an audit row edited or
// deleted behind the API's back) raises an alert instead of waiting for someone
// to run `flagforge-controlplane verify-audit`.
//
// Metrics:
//
//	flagforge_audit_chain_broken{org}                     1 while the org's chain does not verify
//	flagforge_audit_verifications_total{result}           ok | broken | error, per organization checked
//	flagforge_audit_last_verification_timestamp_seconds   end of the last complete pass
package auditcheck

import (
	"context"
	"errors"
	"log/slog"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes the checker.
type Config struct {
	// Interval between passes over every organization; 0 disables the checker.
	Interval time.Duration `env:"AUDIT_VERIFY_INTERVAL, default=1h"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Interval < 0 {
		return errors.New("auditcheck: FLAGFORGE_AUDIT_VERIFY_INTERVAL must not be negative")
	}
	return nil
}

// Store is what the checker reads.
type Store interface {
	ListOrgs(ctx context.Context, keys []string, p store.Page) ([]*adminv1.Organization, string, error)
	VerifyAudit(ctx context.Context, org string) (*store.AuditVerification, error)
}

// Checker runs the periodic verification.
type Checker struct {
	cfg    Config
	st     Store
	log    *slog.Logger
	now    func() time.Time
	broken *prometheus.GaugeVec
	runs   *prometheus.CounterVec
	last   prometheus.Gauge
}

// New registers the metrics on reg and returns a checker. now may be nil
// (time.Now).
func New(cfg Config, st Store, reg prometheus.Registerer, now func() time.Time, log *slog.Logger) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	c := &Checker{cfg: cfg, st: st, log: log, now: now,
		broken: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flagforge", Subsystem: "audit", Name: "chain_broken",
			Help: "1 while the organization's audit hash chain does not verify."}, []string{"org"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "audit", Name: "verifications_total",
			Help: "Audit chain verifications by result (ok, broken, error), one per organization per pass."}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flagforge", Subsystem: "audit", Name: "last_verification_timestamp_seconds",
			Help: "Unix time at which the last complete verification pass ended."}),
	}
	for _, r := range []string{"ok", "broken", "error"} {
		c.runs.WithLabelValues(r) // export zeros so rate() and absent() work from the start
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.broken, c.runs, c.last} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Run checks once at start and then every Interval until ctx ends. It returns nil
// when the checker is disabled or ctx ends; a failed pass is logged and counted,
// never fatal.
func (c *Checker) Run(ctx context.Context) error {
	if c.cfg.Interval == 0 {
		return nil
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		if err := c.Check(ctx); err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "audit verification pass failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check verifies every organization once and updates the metrics. It returns an
// error when a listing or a verification failed (the other organizations are
// still checked).
func (c *Checker) Check(ctx context.Context) error {
	var errs []error
	for page := ""; ; {
		orgs, next, err := c.st.ListOrgs(ctx, nil, store.Page{Size: 500, Token: page})
		if err != nil {
			c.runs.WithLabelValues("error").Inc()
			return errors.Join(append(errs, err)...)
		}
		for _, o := range orgs {
			v, err := c.st.VerifyAudit(ctx, o.GetKey())
			switch {
			case err != nil:
				c.runs.WithLabelValues("error").Inc()
				errs = append(errs, err)
			case v.OK:
				c.runs.WithLabelValues("ok").Inc()
				c.broken.WithLabelValues(o.GetKey()).Set(0)
			default:
				c.runs.WithLabelValues("broken").Inc()
				c.broken.WithLabelValues(o.GetKey()).Set(1)
				c.log.ErrorContext(ctx, "audit chain broken", slog.String("org", o.GetKey()),
					slog.Int64("sequence", v.FirstBroken.GetSequence()), slog.String("entry_id", v.FirstBroken.GetId()),
					slog.String("problem", v.Problem))
			}
		}
		if next == "" {
			break
		}
		page = next
	}
	if len(errs) == 0 {
		c.last.Set(float64(c.now().Unix()))
	}
	return errors.Join(errs...)
}
