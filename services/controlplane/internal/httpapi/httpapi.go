// Package httpapi is the control plane's HTTP surface: the REST/JSON gateway to the
// admin gRPC API (grpc-gateway, proxying to the gRPC server so every call passes
// the same interceptors), /healthz, /readyz, /metrics, /openapi.json, and the
// embedded web console at / (package console).
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/openapi"
	"github.com/flagforge/flagforge/pkg/strictjson"
	"github.com/flagforge/flagforge/services/controlplane/internal/console"
	"github.com/flagforge/flagforge/services/controlplane/internal/events"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
)

// Config configures the HTTP server.
type Config struct {
	// Addr is the listen address.
	Addr string `env:"HTTP_ADDR, default=127.0.0.1:8080"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration `env:"HTTP_SHUTDOWN_TIMEOUT, default=15s"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return errors.New("httpapi: address must be host:port: " + err.Error())
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("httpapi: shutdown timeout must be > 0")
	}
	return nil
}

// Pinger checks the database (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}

// forwarded maps the HTTP headers the admin API reads to gRPC metadata.
var forwarded = map[string]string{
	"authorization":   "authorization",
	"idempotency-key": "idempotency-key",
	"x-request-id":    "x-request-id",
}

func incomingHeader(key string) (string, bool) {
	if md, ok := forwarded[strings.ToLower(key)]; ok {
		return md, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func outgoingHeader(key string) (string, bool) {
	if strings.EqualFold(key, "x-request-id") {
		return "X-Request-Id", true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// errorHandler is grpc-gateway's default (status -> HTTP code, the status with its
// details as the JSON body: field violations name the field) plus a Retry-After
// header on RESOURCE_EXHAUSTED carrying RetryInfo.
//
// A request body that could not be decoded answers its strictjson error (every
// unknown field, wrong shape and unknown enum value at once) rather than the
// gateway's one-line message.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := errs.GRPCStatus(strictjson.ErrorOf(r, err))
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			w.Header().Set("Retry-After", errs.RetryAfterSeconds(ri.GetRetryDelay().AsDuration()))
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, st.Err())
}

// Routes registers extra handlers (e.g. package oidclogin's) on the mux: more
// specific patterns than the gateway's catch-all /v1/ win.
type Routes func(mux *http.ServeMux)

// NewHandler returns the HTTP handler. conn is a client connection to the admin
// gRPC server; gatherer is exposed at /metrics; lim bounds each write of the live
// events stream (a client that stopped reading is cut) and, over HTTP/1.x, its
// lifetime (a frozen client is dropped); extra adds handlers.
func NewHandler(ctx context.Context, conn *grpc.ClientConn, db Pinger, gatherer prometheus.Gatherer, log *slog.Logger, lim limits.Config, extra ...Routes) (http.Handler, error) {
	lim = lim.WithDefaults()
	gw := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithMetadata(dryRunMetadata),
		runtime.WithRoutingErrorHandler(strictjson.MethodNotAllowed),
		// Strict input: unknown fields, wrong shapes and unknown enum values are
		// 400s naming the field; enums accept their short names ("boolean").
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &strictjson.Marshaler{JSONPb: runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true}, // as the gateway default
		}}),
	)
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		adminv1.RegisterOrganizationServiceHandler,
		adminv1.RegisterProjectServiceHandler,
		adminv1.RegisterEnvironmentServiceHandler,
		adminv1.RegisterFlagServiceHandler,
		adminv1.RegisterSegmentServiceHandler,
		adminv1.RegisterMemberServiceHandler,
		adminv1.RegisterApiTokenServiceHandler,
		adminv1.RegisterSdkKeyServiceHandler,
		adminv1.RegisterAuditServiceHandler,
		adminv1.RegisterUsageServiceHandler,
		adminv1.RegisterSeenContextServiceHandler,
		adminv1.RegisterImpactServiceHandler,
		adminv1.RegisterHistoryServiceHandler,
		adminv1.RegisterChangeRequestServiceHandler,
		adminv1.RegisterScheduleServiceHandler,
		adminv1.RegisterReleasePlanServiceHandler,
		adminv1.RegisterWebhookServiceHandler,
		adminv1.RegisterManifestServiceHandler,
		adminv1.RegisterExplainServiceHandler,
		adminv1.RegisterPermissionServiceHandler,
	} {
		if err := register(ctx, gw, conn); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", dryRunGuard(gw, strictjson.Capture(gw)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := db.Ping(ctx); err != nil {
			log.WarnContext(ctx, "not ready", slog.Any("error", err))
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("database unavailable\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Admin)
	})
	// Live changes for the console, as server-sent events (package events).
	// Over HTTP/1.1 (no pings) the stream ends after FLAGFORGE_HTTP1_STREAM_MAX_AGE;
	// the console resumes with Last-Event-ID.
	mux.Handle("GET /v1/orgs/{org}/events", limits.MaxAge(lim.HTTP1StreamMaxAge,
		limits.Stream(lim.StreamWriteTimeout, events.New(adminv1.NewAuditServiceClient(conn), events.Config{}, log))))
	for _, r := range extra {
		r(mux)
	}
	// The web console answers every other path (its client-side routes).
	mux.Handle("/", console.Handler())
	return mux, nil
}
