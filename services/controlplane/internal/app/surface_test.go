package app_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// TestGRPCHealthAndReflection: grpcurl can list and describe the control plane's
// API without the protos, and load balancers can ask grpc.health.v1, without
// credentials (as on the evaluator).
func TestGRPCHealthAndReflection(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	ctx := context.Background()
	res, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", res, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"flagforge.admin.v1.FlagService", "flagforge.admin.v1.SegmentService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	_ = stream.CloseSend()
}

// TestOpenAPIDocument: the admin API's OpenAPI document has a real title and
// version, a bearer security scheme applied to every operation, and examples.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	r := c.call("GET", "/openapi.json", "", nil).want(t, 200)
	var doc struct {
		Info struct {
			Title, Version string
		}
		SecurityDefinitions map[string]struct{ Type, Name, In string }
		Security            []map[string][]string
		Paths               map[string]any
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Title != "FlagForge admin API" || doc.Info.Version == "" || doc.Info.Version == "version not set" {
		t.Errorf("info: %+v", doc.Info)
	}
	if b := doc.SecurityDefinitions["bearer"]; b.Type != "apiKey" || b.Name != "Authorization" || b.In != "header" || len(doc.Security) == 0 {
		t.Errorf("security: %+v %v", doc.SecurityDefinitions, doc.Security)
	}
	if len(doc.Paths) < 40 {
		t.Errorf("only %d paths", len(doc.Paths))
	}
	if !json.Valid([]byte(r.raw)) || !containsExample(r.raw) {
		t.Error("no examples in the document")
	}
}

func containsExample(doc string) bool {
	var v any
	_ = json.Unmarshal([]byte(doc), &v)
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "example" || walk(e) {
					return true
				}
			}
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
