// Package telemetry sets up OpenTelemetry tracing and the admin (pprof) listener.
//
// Tracing is off unless an OTLP endpoint is configured: then spans of every gRPC
// call (otelgrpc, W3C trace-context propagation) are exported over OTLP/gRPC in
// batches. No global provider is installed; the provider is handed to the gRPC
// server's stats handler explicitly.
package telemetry

import (
	"context"
	"net/http"
	"net/http/pprof"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
)

// Tracing returns the gRPC server options that trace calls and the function that
// flushes and stops the exporter. With endpoint "" it returns no option and a
// no-op shutdown.
func Tracing(ctx context.Context, endpoint, service string) ([]grpc.ServerOption, func(context.Context) error, error) {
	if endpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	var opt otlptracegrpc.Option
	if strings.Contains(endpoint, "://") {
		opt = otlptracegrpc.WithEndpointURL(endpoint)
	} else {
		opt = otlptracegrpc.WithEndpoint(endpoint)
	}
	opts := []otlptracegrpc.Option{opt}
	if !strings.HasPrefix(endpoint, "https://") {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	h := otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.TraceContext{}))
	return []grpc.ServerOption{grpc.StatsHandler(h)}, tp.Shutdown, nil
}

// AdminHandler serves net/http/pprof under /debug/pprof/.
func AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
