// Package server answers evaluation calls: the flagforge.evaluation.v1
// EvaluationService over gRPC, the same API as REST/JSON through grpc-gateway, and
// the operational HTTP endpoints (/healthz, /readyz, /metrics).
//
// The contract:
//   - Every Evaluate/EvaluateAll call is authenticated by SDK key (package auth)
//     against the manifests held at that instant; a missing, unknown or expired key
//     is UNAUTHENTICATED (HTTP 401). A client key sees only client-visible flags:
//     others answer FLAG_NOT_FOUND as if absent, and EvaluateAll leaves them out.
//   - Results are exactly the engine's. A malformed or over-limit context, or a
//     missing flagKey, is INVALID_ARGUMENT (HTTP 400) naming the field.
//   - Handlers return errors of the pkg/errs vocabulary; errs.GRPCStatus is applied
//     once per transport (the gRPC interceptor, the gateway's error handler).
//   - The hot path takes no lock: it reads one immutable holder state.
package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// Manifests is what the service reads: the current immutable holder state.
type Manifests interface {
	State() *holder.State
}

// Config configures the service.
type Config struct {
	// Now is the clock used for key expiry (nil: time.Now).
	Now func() time.Time
	// Registerer receives the evaluation metrics (nil: none registered).
	Registerer prometheus.Registerer
}

// Service implements evaluationv1.EvaluationServiceServer. StreamManifest and
// ReportEvaluations answer UNIMPLEMENTED for now.
type Service struct {
	evaluationv1.UnimplementedEvaluationServiceServer
	manifests Manifests
	now       func() time.Time
	metrics   *metrics
}

// New returns the service over manifests.
func New(cfg Config, manifests Manifests) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{manifests: manifests, now: cfg.Now, metrics: m}, nil
}

// metrics are the evaluation metrics, resolved once so the hot path does no label
// lookups.
type metrics struct {
	latency  *prometheus.HistogramVec
	evaluate prometheus.Observer
	all      prometheus.Observer
	reasons  *prometheus.CounterVec
	byReason map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flagforge_evaluator_evaluation_duration_seconds",
			Help:    "Time to answer an evaluation call inside the evaluator (authentication, context, evaluation), by method.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2},
		}, []string{"method"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagforge_evaluator_evaluations_total",
			Help: "Flag evaluations answered, by reason.",
		}, []string{"reason"}),
		byReason: make(map[string]prometheus.Counter, len(engine.Reasons)),
	}
	m.evaluate = m.latency.WithLabelValues("Evaluate")
	m.all = m.latency.WithLabelValues("EvaluateAll")
	for _, r := range engine.Reasons {
		m.byReason[r] = m.reasons.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.latency, m.reasons} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) count(reason string) {
	if c, ok := m.byReason[reason]; ok {
		c.Inc()
		return
	}
	m.reasons.WithLabelValues(reason).Inc()
}

// authenticate resolves the caller's key to its environment in one state.
func (s *Service) authenticate(ctx context.Context, now time.Time) (auth.Grant, *holder.Env, error) {
	st := s.manifests.State()
	g, err := st.Keys().Authenticate(ctx, now)
	if err != nil {
		return auth.Grant{}, nil, err
	}
	env := st.Env(g.Environment)
	if env == nil { // cannot happen: the index is built from the environments held
		return auth.Grant{}, nil, errs.E(errs.Unavailable, "environment %s is not loaded", g.Environment)
	}
	return g, env, nil
}

// Evaluate decides one flag for one context.
func (s *Service) Evaluate(ctx context.Context, req *evaluationv1.EvaluateRequest) (*evaluationv1.EvaluateResponse, error) {
	start := s.now()
	g, env, err := s.authenticate(ctx, start)
	if err != nil {
		return nil, err
	}
	key := req.GetFlagKey()
	if key == "" {
		return nil, errs.Invalid("flagKey", "is required")
	}
	c, err := engine.NewContext(req.GetContext())
	if err != nil {
		return nil, err
	}
	var d engine.Decision
	if g.Kind == auth.Client && !env.Compiled.ClientVisible(key) {
		d = env.Compiled.NotFound(key, req.GetDefaultValue())
	} else {
		d = env.Compiled.Evaluate(key, c, req.GetDefaultValue())
	}
	s.metrics.count(d.Reason)
	s.metrics.evaluate.Observe(time.Since(start).Seconds())
	return &evaluationv1.EvaluateResponse{
		Value: d.Value, Variant: d.Variant, Reason: d.Reason, RuleId: d.RuleID,
		ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage, FlagKey: key, ManifestVersion: d.ManifestVersion,
	}, nil
}

// EvaluateAll decides every flag the key may see (or the flags named) for one
// context. A named flag the key may not see answers FLAG_NOT_FOUND.
func (s *Service) EvaluateAll(ctx context.Context, req *evaluationv1.EvaluateAllRequest) (*evaluationv1.EvaluateAllResponse, error) {
	start := s.now()
	g, env, err := s.authenticate(ctx, start)
	if err != nil {
		return nil, err
	}
	c, err := engine.NewContext(req.GetContext())
	if err != nil {
		return nil, err
	}
	named := len(req.GetFlagKeys()) > 0
	keys := req.GetFlagKeys()
	if !named {
		keys = env.Compiled.FlagKeys()
	}
	flags := make(map[string]*evaluationv1.EvaluationResult, len(keys))
	for _, key := range keys {
		var d engine.Decision
		switch {
		case g.Kind == auth.Client && !env.Compiled.ClientVisible(key):
			if !named {
				continue
			}
			d = env.Compiled.NotFound(key, nil)
		default:
			d = env.Compiled.Evaluate(key, c, nil)
		}
		s.metrics.count(d.Reason)
		flags[key] = &evaluationv1.EvaluationResult{
			Value: d.Value, Variant: d.Variant, Reason: d.Reason, RuleId: d.RuleID,
			ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage,
		}
	}
	s.metrics.all.Observe(time.Since(start).Seconds())
	return &evaluationv1.EvaluateAllResponse{Flags: flags, ManifestVersion: env.Version()}, nil
}
