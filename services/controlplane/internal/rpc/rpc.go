// Package rpc assembles the admin gRPC server and its interceptors: the observe
// interceptor (request id, metrics, the one conversion of returned errors with
// errs.GRPCStatus, logging of internal errors) and the access interceptor
// (authentication, per-organization rate limit, and authorization against the
// authz table: a method missing from the table is denied).
package rpc

import (
	"context"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// RequestIDHeader is the metadata key (HTTP header X-Request-Id) of the request id.
const RequestIDHeader = "x-request-id"

// Authenticator resolves the authorization metadata of a request addressed to org.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization, org string) (*actor.Principal, error)
}

// Limiter rate-limits an organization.
type Limiter interface {
	Allow(org string) error
}

// Options are the server's collaborators.
type Options struct {
	Auth    Authenticator
	Limiter Limiter
	Logger  *slog.Logger
	// Registerer receives the request metrics (nil: none are exported).
	Registerer prometheus.Registerer
	// SelfAuthenticated names services (e.g. "flagforge.sync.v1.SyncService")
	// whose methods authenticate callers themselves (a service token, not a
	// member's credentials): the access interceptor lets their calls through; the
	// observer still applies. Only their unary methods and streams pass.
	SelfAuthenticated []string
}

// NewServer returns a gRPC server with the interceptors installed; register the
// services on it.
func NewServer(o Options, extra ...grpc.ServerOption) (*grpc.Server, error) {
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	obs := &observer{log: o.Logger, metrics: m}
	acc := &access{auth: o.Auth, limiter: o.Limiter, self: map[string]bool{}}
	for _, svc := range o.SelfAuthenticated {
		acc.self[svc] = true
	}
	opts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(obs.unary, acc.unary),
		grpc.ChainStreamInterceptor(obs.stream, acc.stream),
	}, extra...)
	return grpc.NewServer(opts...), nil
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flagforge", Subsystem: "controlplane", Name: "grpc_requests_total",
			Help: "Admin API requests handled, by gRPC method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flagforge", Subsystem: "controlplane", Name: "grpc_request_duration_seconds",
			Help:    "Admin API request latency, by gRPC method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "code"}),
	}
	if r != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// observer is the outermost interceptor.
type observer struct {
	log     *slog.Logger
	metrics *metrics
}

// requestID returns the caller's x-request-id when it is sane, else a new UUIDv7.
func requestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(RequestIDHeader); len(v) > 0 && validRequestID(v[0]) {
			return v[0]
		}
	}
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) < 0
}

func (o *observer) begin(ctx context.Context) (context.Context, string) {
	id := requestID(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id)) // fails only outside a server call
	return actor.WithRequestID(ctx, id), id
}

func (o *observer) end(ctx context.Context, p *actor.Principal, method, id string, start time.Time, err error) error {
	// Field paths are reported as JSON (lowerCamelCase) names, as REST callers
	// spell them and as the engine's validation paths already are.
	st := errs.GRPCStatus(errs.JSONFields(err))
	code := st.Code().String()
	elapsed := time.Since(start)
	o.metrics.requests.WithLabelValues(method, code).Inc()
	o.metrics.latency.WithLabelValues(method, code).Observe(elapsed.Seconds())
	attrs := []any{slog.String("method", method), slog.String("code", code), slog.String("request_id", id), slog.Duration("duration", elapsed)}
	if p != nil {
		attrs = append(attrs, slog.String("org", p.Org), slog.String("actor_id", p.ID()))
	}
	if st.Code() == codes.Internal {
		o.log.ErrorContext(ctx, "internal error", append(attrs, slog.Any("error", err))...)
	} else {
		o.log.InfoContext(ctx, "request", attrs...)
	}
	if err == nil {
		return nil
	}
	return st.Err()
}

func (o *observer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, id := o.begin(ctx)
	// The access interceptor leaves the principal in the slot for the log line.
	slot := &principalSlot{}
	resp, err := handler(context.WithValue(ctx, slotKey{}, slot), req)
	if err := o.end(ctx, slot.p, info.FullMethod, id, start, err); err != nil {
		return nil, err
	}
	return resp, nil
}

func (o *observer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, id := o.begin(ss.Context())
	err := handler(srv, &stream{ServerStream: ss, ctx: ctx})
	return o.end(ctx, nil, info.FullMethod, id, start, err)
}

type slotKey struct{}

// principalSlot lets the access interceptor hand the principal to the observer.
type principalSlot struct{ p *actor.Principal }

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream context with the request id.
func (s *stream) Context() context.Context { return s.ctx }

// access authenticates, rate-limits and authorizes.
type access struct {
	auth    Authenticator
	limiter Limiter
	// self holds the services that authenticate their callers themselves.
	self map[string]bool
}

// selfAuthenticated reports whether fullMethod ("/pkg.Service/Method") belongs to
// a self-authenticating service.
func (a *access) selfAuthenticated(fullMethod string) bool {
	svc, _, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return ok && a.self[svc]
}

func (a *access) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if a.selfAuthenticated(info.FullMethod) {
		return handler(ctx, req)
	}
	ctx, err := a.check(ctx, info.FullMethod, req)
	if slot, ok := ctx.Value(slotKey{}).(*principalSlot); ok {
		slot.p = actor.PrincipalFrom(ctx)
	}
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *access) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if a.selfAuthenticated(info.FullMethod) {
		return handler(srv, ss)
	}
	// No admin RPC streams yet; a stream would need its own table entry.
	return errs.E(errs.PermissionDenied, "method %s is not declared", info.FullMethod)
}

func (a *access) check(ctx context.Context, method string, req any) (context.Context, error) {
	rule, ok := authz.Lookup(method)
	if !ok {
		return ctx, errs.E(errs.PermissionDenied, "method %s is not declared", method)
	}
	var authorization string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authorization = v[0]
		}
	}
	p, err := a.auth.Authenticate(ctx, authorization, rule.Scope(req, "").Org)
	if err != nil {
		return ctx, err
	}
	ctx = actor.WithPrincipal(ctx, p)
	if a.limiter != nil {
		if err := a.limiter.Allow(p.Org); err != nil {
			return ctx, err
		}
	}
	if err := authz.Check(p, rule.Scope(req, p.Org), rule.Kind, rule.ActionFor(req)); err != nil {
		return ctx, err
	}
	return ctx, nil
}
