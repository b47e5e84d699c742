package app_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/eval"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestExplainMatchesTheEngineOnThePublishedManifest: the explain API decides as the
// engine does on the environment's published manifest (what every evaluator
// serves), over REST and gRPC, and explains the path: the clause that matched and
// the bucket of the rollout.
func TestExplainMatchesTheEngineOnThePublishedManifest(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const env = "/v1/orgs/acme/projects/web/environments/production"
	c.call("PUT", env+"/flags/new-ui", c.owner, map[string]any{"revision": 1, "config": map[string]any{
		"on": true, "offVariant": "off",
		"targets": []any{map[string]any{"variant": "on", "values": []any{"qa-1"}}},
		"rules": []any{map[string]any{"id": "us-10", "clauses": []any{map[string]any{"attribute": "country", "operator": "OPERATOR_IN", "values": []any{"US"}}},
			"serve": map[string]any{"rollout": map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 10}, map[string]any{"variant": "off", "weight": 90}}}}}},
		"defaultServe": map[string]any{"variant": "off"},
	}}).want(t, 200)

	// Wait for the publisher to publish the rule, then compile what it published.
	var m *eval.Manifest
	for deadline := time.Now().Add(10 * time.Second); m == nil; {
		r := c.call("GET", env+"/manifest", c.owner, nil)
		if r.status == 200 {
			payload, _ := r.get("manifest", "payload").(string)
			var pm manifestv1.Manifest
			raw, err := decodeB64(payload)
			if err == nil && proto.Unmarshal(raw, &pm) == nil {
				for _, f := range pm.GetFlags() {
					if f.GetKey() == "new-ui" && len(f.GetConfig().GetRules()) == 1 {
						if m, err = eval.Compile(&pm); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
		if m == nil && time.Now().After(deadline) {
			t.Fatal("the rule was not published within 10 s")
		}
		if m == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}

	contexts := []map[string]any{
		{"targetingKey": "qa-1", "country": "FR"},
		{"targetingKey": "user-1", "country": "DE"},
		{"country": "US"}, // rollout without a targetingKey: the rule is skipped
	}
	for i := range 40 {
		contexts = append(contexts, map[string]any{"targetingKey": "user-" + strconv.Itoa(i), "country": "US"})
	}
	for _, ctx := range contexts {
		ectx, err := eval.NewContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := m.Evaluate("new-ui", ectx, eval.Any, nil)
		r := c.call("POST", env+"/flags/new-ui:explain", c.owner, map[string]any{"context": ctx}).want(t, 200)
		if r.get("variant") != want.Variant || r.get("reason") != string(want.Reason) || r.get("value") != want.Value {
			t.Fatalf("context %v: explain %s, engine %+v", ctx, r.raw, want)
		}
		if got, _ := r.get("ruleId").(string); got != want.RuleID {
			t.Fatalf("context %v: ruleId %q, engine %q", ctx, got, want.RuleID)
		}
		if want.Reason == eval.ReasonSplit {
			key, _ := ctx["targetingKey"].(string)
			bucket := eval.Bucket("new-ui", key, 100)
			if got := r.get("explanation", "rules", 0, "rollout", "bucket"); got != float64(bucket) && (bucket != 0 || got != nil) {
				t.Fatalf("context %v: bucket %v, want %d", ctx, got, bucket)
			}
			if r.get("explanation", "rules", 0, "clauses", 0, "matched") != true {
				t.Fatalf("context %v: the country clause is not reported matched: %s", ctx, r.raw)
			}
		}
	}

	// gRPC answers the same.
	ex := adminv1.NewExplainServiceClient(c.conn)
	sctx, _ := structpb.NewStruct(map[string]any{"targetingKey": "qa-1"})
	g, err := ex.ExplainFlag(as(c.owner), &adminv1.ExplainFlagRequest{Org: "acme", Project: "web", Environment: "production", Flag: "new-ui", Context: sctx})
	if err != nil {
		t.Fatal(err)
	}
	if g.GetReason() != "TARGETING_MATCH" || g.GetExplanation().GetTargetVariant() != "on" {
		t.Fatalf("gRPC: %v", g)
	}

	// An unknown flag is a decision, as on the evaluation API; the default is served.
	r := c.call("POST", env+"/flags/nope:explain", c.owner, map[string]any{"context": map[string]any{}, "defaultValue": "dflt"}).want(t, 200)
	if r.get("errorCode") != "FLAG_NOT_FOUND" || r.get("value") != "dflt" {
		t.Fatalf("unknown flag: %s", r.raw)
	}
}

// TestExplainErrors: bad input names the field; no token is refused.
func TestExplainErrors(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	const env = "/v1/orgs/acme/projects/web/environments/production"
	deep := map[string]any{"k": 1}
	for range 40 {
		deep = map[string]any{"n": deep}
	}
	r := c.call("POST", env+"/flags/new-ui:explain", c.owner, map[string]any{"context": map[string]any{"nested": deep}}).want(t, 400)
	if f := r.fieldViolation(); len(f) < len("context.") || f[:len("context")] != "context" {
		t.Fatalf("too deep a context: field %q, body %s", f, r.raw)
	}
	c.call("POST", env+"/flags/new-ui:explain", "", map[string]any{}).want(t, 401)
	r = c.call("POST", "/v1/orgs/acme/projects/web/environments/nowhere/flags/new-ui:explain", c.owner, map[string]any{}).want(t, 404)
	_ = r
	ex := adminv1.NewExplainServiceClient(c.conn)
	if _, err := ex.ExplainFlag(as(c.owner), &adminv1.ExplainFlagRequest{Org: "acme", Project: "web", Environment: "production"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("missing flag: %v", err)
	}
}

func decodeB64(s string) ([]byte, error) {
	var b []byte
	err := json.Unmarshal([]byte(`"`+s+`"`), &b)
	return b, err
}
