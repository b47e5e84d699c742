package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/server"
	"github.com/flagforge/flagforge/services/evaluator/internal/usage"
)

const env = "acme/web/production"

// newService returns the service over a holder holding one manifest of env.
func newService(tb testing.TB) *server.Service { return newCountingService(tb, nil) }

// newCountingService is newService counting usage with c (nil: none).
func newCountingService(tb testing.TB, c *usage.Counter) *server.Service {
	tb.Helper()
	s := fixture.NewSigner()
	v, err := manifest.NewVerifier(nil, s.PublicKey())
	if err != nil {
		tb.Fatal(err)
	}
	h, err := holder.New(holder.Config{Verifier: v, Environments: []string{env}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	sm, err := s.Manifest(fixture.Manifest(env, 1, time.Now(), fixture.BoolFlag("new-ui", true, true), fixture.BoolFlag("other", true, false)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.Offer(env, sm); err != nil {
		tb.Fatal(err)
	}
	svc, err := server.New(server.Config{Registerer: prometheus.NewRegistry(), Usage: c}, h)
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// bare answers a constant: the transport alone, for comparison.
type bare struct {
	evaluationv1.UnimplementedEvaluationServiceServer
	res *evaluationv1.EvaluateResponse
}

func (b bare) Evaluate(context.Context, *evaluationv1.EvaluateRequest) (*evaluationv1.EvaluateResponse, error) {
	return b.res, nil
}

// BenchmarkEvaluateGRPC is one Evaluate call through a real gRPC client and server
// over an in-memory connection (bufconn).
func BenchmarkEvaluateGRPC(b *testing.B) {
	benchGRPC(b, newService(b))
}

// BenchmarkBareGRPC is BenchmarkEvaluateGRPC with a handler that returns a
// constant response: the cost of the transport alone.
func BenchmarkBareGRPC(b *testing.B) {
	benchGRPC(b, bare{res: &evaluationv1.EvaluateResponse{Value: structpb.NewBoolValue(true), Variant: "on",
		Reason: "TARGETING_MATCH", RuleId: "east", FlagKey: "new-ui", ManifestVersion: 1}})
}

func benchGRPC(b *testing.B, svc evaluationv1.EvaluationServiceServer) {
	lis := bufconn.Listen(1 << 20)
	gs := server.NewGRPC(svc, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := evaluationv1.NewEvaluationServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+fixture.ServerKey(env))
	c, _ := structpb.NewStruct(map[string]any{"targetingKey": "123", "region": "us-east-1"})
	req := &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: c}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		res, err := client.Evaluate(ctx, req)
		if err != nil || res.GetReason() != "TARGETING_MATCH" {
			b.Fatalf("%v, %v", res, err)
		}
	}
	// Client and server share the process: this is both sides' CPU.
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// BenchmarkEvaluateHandler is the service method alone (authentication, context,
// evaluation, response), without a transport.
func BenchmarkEvaluateHandler(b *testing.B) { benchmarkHandler(b, newService(b)) }

// BenchmarkEvaluateHandlerCounted is BenchmarkEvaluateHandler with usage counting,
// as an evaluator with a control plane runs, without context sampling.
func BenchmarkEvaluateHandlerCounted(b *testing.B) {
	c, _ := usage.NewCounter(0, nil)
	benchmarkHandler(b, newCountingService(b, c))
}

// BenchmarkEvaluateHandlerSampled adds context sampling (the default 100 a
// minute): after the first request the minute's sample is closed (the same
// context repeats), which is the steady state of a busy environment.
func BenchmarkEvaluateHandlerSampled(b *testing.B) {
	c, _ := usage.NewCounter(0, nil)
	c.SampleContexts(100)
	benchmarkHandler(b, newCountingService(b, c))
}

func benchmarkHandler(b *testing.B, svc *server.Service) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+fixture.ServerKey(env)))
	c, _ := structpb.NewStruct(map[string]any{"targetingKey": "123", "region": "us-east-1"})
	req := &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: c}
	b.ReportAllocs()
	for b.Loop() {
		if res, err := svc.Evaluate(ctx, req); err != nil || res.GetReason() != "TARGETING_MATCH" {
			b.Fatalf("%v, %v", res, err)
		}
	}
}

// BenchmarkEvaluateREST is one POST /v1/evaluate through the HTTP handler (gateway,
// protojson) with an httptest recorder.
func BenchmarkEvaluateREST(b *testing.B) {
	svc := newService(b)
	gw, err := server.NewGateway(context.Background(), svc)
	if err != nil {
		b.Fatal(err)
	}
	h := server.NewHTTP(server.HTTPConfig{Gateway: gw, Ready: func() bool { return true }, Gatherer: prometheus.NewRegistry()})
	body := `{"flagKey":"new-ui","context":{"targetingKey":"123","region":"us-east-1"}}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/evaluate", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

func TestEvaluateOverTheRESTHandlerMatchesTheDocumentedShape(t *testing.T) {
	t.Parallel()
	gw, err := server.NewGateway(context.Background(), newService(t))
	if err != nil {
		t.Fatal(err)
	}
	h := server.NewHTTP(server.HTTPConfig{Gateway: gw, Ready: func() bool { return true }, Gatherer: prometheus.NewRegistry()})
	req := httptest.NewRequest(http.MethodPost, "/v1/evaluate", strings.NewReader(`{"flagKey":"new-ui","context":{"targetingKey":"123","region":"us-east-1"}}`))
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	want := `{"value":true,"variant":"on","reason":"TARGETING_MATCH","ruleId":"east","flagKey":"new-ui","manifestVersion":"1"}`
	if got := strings.Join(strings.Fields(w.Body.String()), ""); w.Code != http.StatusOK || got != want {
		t.Fatalf("got %d %s\nwant %s", w.Code, got, want)
	}
}
