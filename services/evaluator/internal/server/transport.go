package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/openapi"
	"github.com/flagforge/flagforge/pkg/strictjson"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// UnaryErrors is the gRPC interceptor that turns handler errors into statuses with
// errs.GRPCStatus (the one mapping).
func UnaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, errs.GRPCStatus(err).Err()
	}
	return resp, nil
}

// StreamErrors is UnaryErrors for streaming calls.
func StreamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := handler(srv, ss); err != nil {
		return errs.GRPCStatus(err).Err()
	}
	return nil
}

// connReadBuffer is the read buffer of each gRPC connection.
const connReadBuffer = 8 << 10

// NewGRPC returns a gRPC server with the evaluation service, the health service
// (hs) and reflection, and the codec that sends stream frames pre-serialized and
// decodes Evaluate requests straight into engine contexts (unary.go).
// extra options (the limits: message size, keepalive pings and enforcement; a
// tracing stats handler) are appended.
func NewGRPC(svc evaluationv1.EvaluationServiceServer, hs *health.Server, extra ...grpc.ServerOption) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryErrors),
		grpc.ChainStreamInterceptor(StreamErrors),
		grpc.ForceServerCodecV2(newUnaryCodec()),
		// By default every connection holds a 32 KiB read buffer for its whole
		// life (its write buffer is pooled already): most of the heap of a
		// connection that carries idle streams. Reads go through 8 KiB
		// (docs/evaluator.md).
		grpc.ReadBufferSize(connReadBuffer),
	}
	opts = append(opts, unaryOptions()...)
	gs := grpc.NewServer(append(opts, extra...)...)
	gs.RegisterService(serviceDesc(svc), svc)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs
}

func gatewayMux() *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &strictjson.Marshaler{JSONPb: runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{},
		}}),
		runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			err = strictjson.ErrorOf(r, err)
			setRetryAfter(w, err)
			runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, errs.GRPCStatus(err).Err())
		}),
		runtime.WithRoutingErrorHandler(strictjson.MethodNotAllowed),
	)
}

// NewGateway returns the REST mapping of svc, called in process (no gRPC hop):
// protojson with lowerCamelCase names, empty fields omitted, unknown request
// fields ignored, errors mapped by errs.GRPCStatus (with Retry-After on 429).
// The in-process transport cannot stream: /v1/stream is NewStreamGateway's.
func NewGateway(ctx context.Context, svc evaluationv1.EvaluationServiceServer) (*runtime.ServeMux, error) {
	mux := gatewayMux()
	if err := evaluationv1.RegisterEvaluationServiceHandlerServer(ctx, mux, svc); err != nil {
		return nil, err
	}
	return mux, nil
}

// NewStreamGateway returns the REST mapping over a gRPC client connection (to this
// evaluator's own gRPC listener): grpc-gateway streams StreamManifest as NDJSON
// only through a client. Only GET /v1/stream should be routed to it.
func NewStreamGateway(ctx context.Context, conn *grpc.ClientConn) (*runtime.ServeMux, error) {
	mux := gatewayMux()
	if err := evaluationv1.RegisterEvaluationServiceHandlerClient(ctx, mux, evaluationv1.NewEvaluationServiceClient(conn)); err != nil {
		return nil, err
	}
	return mux, nil
}

// HTTPConfig assembles the HTTP handler.
type HTTPConfig struct {
	// Gateway serves the REST mapping (NewGateway).
	Gateway http.Handler
	// Stream serves GET /v1/stream (NewStreamGateway) when Service is nil;
	// with a Service, Service.ServeStream serves it without the gRPC hop.
	Stream http.Handler
	// Service serves /v1/sse and /v1/manifest; nil: not served.
	Service *Service
	// Ready reports readiness for /readyz.
	Ready func() bool
	// Freshness, when set, is the readiness detail /readyz answers as JSON (the
	// status code still follows Ready).
	Freshness func() holder.Freshness
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// CORSOrigins may call /v1/evaluate, /v1/evaluate/all and /v1/sse from a
	// browser ("*": any origin; empty: no cross-origin access).
	CORSOrigins []string
	// StreamWriteTimeout bounds each write of /v1/stream, /v1/sse and the
	// /v1/manifest long poll (0: 10 s); a write that cannot complete ends the
	// stream and frees its subscription.
	StreamWriteTimeout time.Duration
	// HTTP1StreamMaxAge bounds /v1/stream, /v1/sse and /ofrep/v1/events served
	// over HTTP/1.x (0: 30 s; limits.MaxAge): HTTP/1.1 has no ping, so a
	// frozen client is dropped when its stream ends.
	HTTP1StreamMaxAge time.Duration
}

// NewHTTP returns the HTTP handler: the REST gateway, GET /v1/stream (NDJSON),
// GET /v1/sse, GET /v1/manifest, GET /openapi.json (this API's OpenAPI document),
// plus /healthz (the process is up), /readyz (ready
// reports every environment loaded; 503 otherwise) and /metrics.
func NewHTTP(cfg HTTPConfig) http.Handler {
	ready, g, gateway := cfg.Ready, cfg.Gatherer, cfg.Gateway
	cors := newCORS(cfg.CORSOrigins)
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = 10 * time.Second
	}
	// Streams and long polls outlive the server's read timeout and must not block
	// on a peer that stopped reading.
	long := func(h http.Handler) http.Handler { return limits.Stream(cfg.StreamWriteTimeout, h) }
	stream := func(h http.Handler) http.Handler { return limits.MaxAge(cfg.HTTP1StreamMaxAge, long(h)) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok := ready()
		if cfg.Freshness != nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if !ok {
				w.Header().Set("Retry-After", errs.RetryAfterSeconds(NotReadyRetryAfter))
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(cfg.Freshness())
			return
		}
		if !ok {
			http.Error(w, "not ready: not every environment holds a verified manifest of its source's head version", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Evaluation)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	gateway = strictjson.Capture(gateway)
	mux.Handle("/v1/", gateway)
	evaluate := gateway
	if cfg.Service != nil {
		evaluate = cfg.Service.ServeEvaluate(gateway)
	}
	mux.Handle("/v1/evaluate", cors.wrap(evaluate))
	evaluateAll := gateway
	if cfg.Service != nil {
		evaluateAll = cfg.Service.ServeEvaluateAll(gateway)
	}
	mux.Handle("/v1/evaluate/all", cors.wrap(evaluateAll))
	switch {
	case cfg.Service != nil: // served from the hub directly (ndjson.go)
		mux.Handle("GET /v1/stream", stream(http.HandlerFunc(cfg.Service.ServeStream)))
	case cfg.Stream != nil:
		mux.Handle("GET /v1/stream", stream(cfg.Stream))
	}
	if cfg.Service != nil {
		mux.Handle("/v1/sse", cors.wrap(stream(http.HandlerFunc(cfg.Service.ServeSSE))))
		mux.Handle("GET /v1/manifest", long(http.HandlerFunc(cfg.Service.ServeManifest)))
		ofrep := func(h http.HandlerFunc) http.Handler { return cors.wrap(h) }
		mux.Handle("POST /ofrep/v1/evaluate/flags/{key}", ofrep(cfg.Service.ServeOFREPFlag))
		mux.Handle("POST /ofrep/v1/evaluate/flags", ofrep(cfg.Service.ServeOFREPBulk))
		mux.Handle("OPTIONS /ofrep/v1/evaluate/flags/{key}", cors.wrap(http.NotFoundHandler()))
		mux.Handle("OPTIONS /ofrep/v1/evaluate/flags", cors.wrap(http.NotFoundHandler()))
		mux.Handle("/ofrep/v1/events", cors.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", "GET, OPTIONS")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			stream(http.HandlerFunc(cfg.Service.ServeOFREPEvents)).ServeHTTP(w, r)
		})))
	}
	return mux
}

// WatchReadiness keeps the gRPC health status of the whole server and of the
// evaluation service in line with ready until ctx ends, then reports NOT_SERVING.
func WatchReadiness(ctx context.Context, hs *health.Server, ready func() bool, every time.Duration) {
	set := func(ok bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ok {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(evaluationv1.EvaluationService_ServiceDesc.ServiceName, st)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := ready()
	set(last)
	for {
		select {
		case <-ctx.Done():
			hs.Shutdown()
			return
		case <-t.C:
			if now := ready(); now != last {
				last = now
				set(now)
			}
		}
	}
}
