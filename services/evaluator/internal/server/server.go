// Package server answers evaluation calls: the flagforge.evaluation.v1
// EvaluationService over gRPC, the same API as REST/JSON through grpc-gateway, and
// the operational HTTP endpoints (/healthz, /readyz, /metrics).
//
// The contract:
//   - Every Evaluate/EvaluateAll call is authenticated by SDK key (package auth)
//     against the manifests held at that instant; a missing, unknown or expired key
//     is UNAUTHENTICATED (HTTP 401) once the evaluator is ready. Before, a key it
//     does not know may belong to an environment not loaded yet: that is
//     UNAVAILABLE (HTTP 503) with a retry hint, never a definitive refusal.
//     A client key sees only client-visible flags:
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
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/broadcast"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/limit"
	"github.com/flagforge/flagforge/services/evaluator/internal/usage"
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
	// Hub serves StreamManifest, /v1/sse and /v1/manifest (nil: those answer
	// FAILED_PRECONDITION).
	Hub *broadcast.Hub
	// Limiter rate-limits calls per SDK key (nil: no limit).
	Limiter *limit.Limiter
	// Usage counts evaluations for the control plane (nil: not counted).
	Usage *usage.Counter
	// MaxBodyBytes bounds the bodies the hand-written endpoints read
	// (POST /v1/evaluate, OFREP): FLAGFORGE_MAX_REQUEST_BYTES, the same limit
	// pkg/limits applies to every request (0: its default, 1 MiB).
	MaxBodyBytes int64
}

// Service implements evaluationv1.EvaluationServiceServer and the plain HTTP
// endpoints (/v1/sse, /v1/manifest).
type Service struct {
	evaluationv1.UnimplementedEvaluationServiceServer
	manifests Manifests
	now       func() time.Time
	metrics   *metrics
	hub       *broadcast.Hub
	limiter   *limit.Limiter
	usage     *usage.Counter
	maxBody   int64
	sse       sseShare // /v1/sse's shared evaluations, by environment and context
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
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = limits.Defaults().MaxBodyBytes
	}
	return &Service{manifests: manifests, now: cfg.Now, metrics: m, hub: cfg.Hub, limiter: cfg.Limiter, usage: cfg.Usage, maxBody: cfg.MaxBodyBytes}, nil
}

// metrics are the evaluation metrics, resolved once so the hot path does no label
// lookups.
type metrics struct {
	latency   *prometheus.HistogramVec
	evaluate  prometheus.Observer
	all       prometheus.Observer
	ofrep     prometheus.Observer
	ofrepBulk prometheus.Observer
	reasons   *prometheus.CounterVec
	byReason  map[string]prometheus.Counter
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
	m.ofrep = m.latency.WithLabelValues("OFREPEvaluate")
	m.ofrepBulk = m.latency.WithLabelValues("OFREPBulk")
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

// authenticate resolves the caller's key (gRPC metadata) to its environment in one
// state, and takes a token from the key's rate limit.
func (s *Service) authenticate(ctx context.Context, now time.Time) (auth.Grant, *holder.Env, error) {
	key, _ := auth.BearerKey(ctx)
	return s.authenticateKey(key, now)
}

// NotReadyRetryAfter is the retry hint of calls refused while the evaluator is
// not ready.
const NotReadyRetryAfter = time.Second

// errNotReady answers a key the evaluator does not know while it is not ready.
var errNotReady = &errs.Error{Kind: errs.Unavailable,
	Message: "the evaluator is not ready: the manifest of this SDK key's environment may not be loaded yet; retry", RetryAfter: NotReadyRetryAfter}

// authenticateKey is authenticate for a key taken from elsewhere (HTTP handlers).
func (s *Service) authenticateKey(key string, now time.Time) (auth.Grant, *holder.Env, error) {
	st := s.manifests.State()
	g, err := st.Keys().Lookup(key, now)
	if err != nil {
		if key != "" && !st.Ready() {
			return auth.Grant{}, nil, errNotReady
		}
		return auth.Grant{}, nil, err
	}
	env := st.Env(g.Environment)
	if env == nil { // cannot happen: the index is built from the environments held
		return auth.Grant{}, nil, errs.E(errs.Unavailable, "environment %s is not loaded", g.Environment)
	}
	if err := s.limiter.Allow(g.KeyHash, now); err != nil {
		return auth.Grant{}, nil, err
	}
	return g, env, nil
}

// countUsage records one decision for the usage report (flags that do not exist
// are not counted).
func (s *Service) countUsage(environment, flag string, d *engine.Decision, minute int64) {
	if s.usage == nil || (d.Reason == engine.ReasonError && d.ErrorCode == engine.ErrorFlagNotFound) {
		return
	}
	var failed int64
	if d.Reason == engine.ReasonError {
		failed = 1 // an evaluation that failed: an error of the flag (variant "")
	}
	s.usage.AddWithErrors(environment, flag, d.Variant, minute, 1, failed)
}

// sampleContext offers the context of one request to the usage report's sample
// of seen contexts, without the manifest's private attributes. Once the
// environment's reservoir for the minute is full it costs two atomic loads.
func (s *Service) sampleContext(environment string, env *holder.Env, c *engine.Context, minute int64, now time.Time) {
	if !s.usage.WantContext(environment, minute) {
		return
	}
	s.usage.SampleContext(environment, minute, now, env.Compiled.PrivateAttributes(), c.Attributes())
}

// Evaluate decides one flag for one context.
func (s *Service) Evaluate(ctx context.Context, req *evaluationv1.EvaluateRequest) (*evaluationv1.EvaluateResponse, error) {
	key, _ := auth.BearerKey(ctx)
	return s.evaluate(key, req)
}

// evaluate is Evaluate for the caller's SDK key (shared by gRPC and the REST
// handler).
func (s *Service) evaluate(sdkKey string, req *evaluationv1.EvaluateRequest) (*evaluationv1.EvaluateResponse, error) {
	return s.evaluateWith(sdkKey, req, nil)
}

// evaluateWith is evaluate with the context c already decoded (package reqcodec;
// req.Context is then not read), or nil: decode req.Context.
func (s *Service) evaluateWith(sdkKey string, req *evaluationv1.EvaluateRequest, c *engine.Context) (*evaluationv1.EvaluateResponse, error) {
	start := s.now()
	g, env, err := s.authenticateKey(sdkKey, start)
	if err != nil {
		return nil, err
	}
	key := req.GetFlagKey()
	if key == "" {
		return nil, errs.Invalid("flagKey", "is required")
	}
	if _, known := manifestv1.FlagType_name[int32(req.GetType())]; !known {
		return nil, errs.Invalid("type", "unknown type %d; one of boolean, string, number, json", req.GetType())
	}
	if c == nil {
		if c, err = engine.NewContext(req.GetContext()); err != nil {
			return nil, err
		}
	}
	var d engine.Decision
	if g.Kind == auth.Client && !env.Compiled.ClientVisible(key) {
		d = env.Compiled.NotFound(key, req.GetDefaultValue())
	} else {
		d = env.Compiled.EvaluateAs(key, c, req.GetType(), req.GetDefaultValue())
	}
	s.metrics.count(d.Reason)
	s.countUsage(g.Environment, key, &d, usage.Minute(start))
	s.sampleContext(g.Environment, env, c, usage.Minute(start), start)
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
	keys := req.GetFlagKeys()
	flags := make(map[string]*evaluationv1.EvaluationResult, max(len(keys), len(env.Compiled.ClientKeys())))
	s.evaluateAll(g, env, c, keys, start, func(key string, d *engine.Decision) {
		flags[key] = &evaluationv1.EvaluationResult{
			Value: d.Value, Variant: d.Variant, Reason: d.Reason, RuleId: d.RuleID,
			ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage,
		}
	})
	return &evaluationv1.EvaluateAllResponse{Flags: flags, ManifestVersion: env.Version()}, nil
}

// evaluateAll decides, for EvaluateAll's callers (gRPC and the REST handler),
// every flag the grant may see, or (named not empty) the flags named, in order,
// calling emit for each (d is only valid during the call). A named flag the key
// may not see is FLAG_NOT_FOUND. It counts the metrics and usage.
func (s *Service) evaluateAll(g auth.Grant, env *holder.Env, c *engine.Context, named []string, start time.Time, emit func(key string, d *engine.Decision)) {
	keys := named
	if len(named) == 0 {
		keys = env.Compiled.Keys()
		if g.Kind == auth.Client {
			keys = env.Compiled.ClientKeys()
		}
	}
	minute := usage.Minute(start)
	var d engine.Decision // one for the call: emit's argument escapes
	for _, key := range keys {
		if len(named) > 0 && g.Kind == auth.Client && !env.Compiled.ClientVisible(key) {
			d = env.Compiled.NotFound(key, nil)
		} else {
			d = env.Compiled.Evaluate(key, c, nil)
		}
		s.metrics.count(d.Reason)
		s.countUsage(g.Environment, key, &d, minute)
		emit(key, &d)
	}
	s.sampleContext(g.Environment, env, c, minute, start)
	s.metrics.all.Observe(time.Since(start).Seconds())
}
