package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/limit"
	"github.com/flagforge/flagforge/services/evaluator/internal/server"
)

func boolVariants() []*manifestv1.Variant {
	return []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}}
}

func serveVariant(v string) *manifestv1.Serve {
	return &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: v}}
}

// reasonFlags is one flag per reason the engine gives (all client-visible except
// "hidden").
func reasonFlags() []*manifestv1.Flag {
	boolFlag := func(key string, cfg *manifestv1.FlagConfig) *manifestv1.Flag {
		return &manifestv1.Flag{Key: key, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN, ClientVisible: true, Variants: boolVariants(), Config: cfg}
	}
	return []*manifestv1.Flag{
		boolFlag("static", &manifestv1.FlagConfig{On: true, OffVariant: "off", DefaultServe: serveVariant("on")}),
		fixture.BoolFlag("targeted", true, true), // rule "east" on region us-east-1, else DEFAULT off
		boolFlag("split", &manifestv1.FlagConfig{On: true, OffVariant: "off", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{
			Rollout: &manifestv1.Rollout{Weights: []*manifestv1.WeightedVariant{{Variant: "on", Weight: 50}, {Variant: "off", Weight: 50}}}}}}),
		boolFlag("disabled", &manifestv1.FlagConfig{On: false, OffVariant: "off", DefaultServe: serveVariant("on")}),
		boolFlag("disabled-code-default", &manifestv1.FlagConfig{On: false, DefaultServe: serveVariant("on")}),
		boolFlag("gated", &manifestv1.FlagConfig{On: true, OffVariant: "off", DefaultServe: serveVariant("on"),
			Prerequisites: []*manifestv1.Prerequisite{{FlagKey: "disabled", Variants: []string{"on"}}}}),
		{Key: "banner", Type: manifestv1.FlagType_FLAG_TYPE_STRING, ClientVisible: true,
			Variants: []*manifestv1.Variant{{Key: "spring", Value: structpb.NewStringValue("Spring sale")}},
			Config:   &manifestv1.FlagConfig{On: true, DefaultServe: serveVariant("spring")}},
		fixture.BoolFlag("hidden", true, false),
	}
}

// ofrepRig is an HTTP handler over one manifest holding reasonFlags.
type ofrepRig struct {
	h http.Handler
}

func newOFREPRig(t *testing.T, limiter *limit.Limiter, alsoExpected ...string) *ofrepRig {
	t.Helper()
	s := fixture.NewSigner()
	v, err := manifest.NewVerifier(nil, s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	hd, err := holder.New(holder.Config{Verifier: v, Environments: append([]string{env}, alsoExpected...), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := s.Manifest(fixture.Manifest(env, 7, time.Now(), reasonFlags()...))
	if err != nil {
		t.Fatal(err)
	}
	if err := hd.Offer(env, sm); err != nil {
		t.Fatal(err)
	}
	svc, err := server.New(server.Config{Registerer: prometheus.NewRegistry(), Limiter: limiter}, hd)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := server.NewGateway(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	r := &ofrepRig{}
	r.h = server.NewHTTP(server.HTTPConfig{Gateway: gw, Service: svc, Ready: hd.Ready, Gatherer: prometheus.NewRegistry(), CORSOrigins: []string{"https://app.example"}})
	return r
}

// call makes one request; headers are name, value pairs.
func (r *ofrepRig) call(t *testing.T, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%d %q: %v", w.Code, w.Body, err)
	}
	return out
}

func bearerKey(key string) []string { return []string{"Authorization", "Bearer " + key} }

func TestOFREPSingleFlagAnswersEveryReasonWithTheSpecsStatusAndShape(t *testing.T) {
	t.Parallel()
	r := newOFREPRig(t, nil)
	meta := map[string]any{"manifestVersion": 7.0}
	east := `{"context":{"targetingKey":"user-1","region":"us-east-1"}}`
	tests := []struct {
		name, flag, body string
		key              string
		status           int
		want             map[string]any
	}{
		{"an on flag serving one variant is STATIC", "static", `{}`, fixture.ServerKey(env), 200,
			map[string]any{"key": "static", "value": true, "variant": "on", "reason": "STATIC", "metadata": meta}},
		{"a matching rule is TARGETING_MATCH with its ruleId", "targeted", east, fixture.ServerKey(env), 200,
			map[string]any{"key": "targeted", "value": true, "variant": "on", "reason": "TARGETING_MATCH", "metadata": map[string]any{"manifestVersion": 7.0, "ruleId": "east"}}},
		{"no rule matching is DEFAULT", "targeted", `{"context":{"region":"eu-west-1"}}`, fixture.ServerKey(env), 200,
			map[string]any{"key": "targeted", "value": false, "variant": "off", "reason": "DEFAULT", "metadata": meta}},
		{"a rollout is SPLIT", "split", east, fixture.ClientKey(env), 200,
			nil}, // value depends on the bucket: checked against /v1/evaluate below
		{"an off flag is DISABLED with its offVariant", "disabled", `{}`, fixture.ServerKey(env), 200,
			map[string]any{"key": "disabled", "value": false, "variant": "off", "reason": "DISABLED", "metadata": meta}},
		{"an off flag without offVariant omits value: the code default applies", "disabled-code-default", `{}`, fixture.ServerKey(env), 200,
			map[string]any{"key": "disabled-code-default", "reason": "DISABLED", "metadata": meta}},
		{"an unmet prerequisite is PREREQUISITE_FAILED", "gated", `{}`, fixture.ServerKey(env), 200,
			map[string]any{"key": "gated", "value": false, "variant": "off", "reason": "PREREQUISITE_FAILED", "metadata": meta}},
		{"a string flag", "banner", `{}`, fixture.ClientKey(env), 200,
			map[string]any{"key": "banner", "value": "Spring sale", "variant": "spring", "reason": "STATIC", "metadata": meta}},
		{"an empty body is an empty context", "static", ``, fixture.ServerKey(env), 200,
			map[string]any{"key": "static", "value": true, "variant": "on", "reason": "STATIC", "metadata": meta}},
		{"a missing flag is 404 FLAG_NOT_FOUND", "nope", `{}`, fixture.ServerKey(env), 404,
			map[string]any{"key": "nope", "errorCode": "FLAG_NOT_FOUND", "errorDetails": `flag "nope" not found`}},
		{"a flag a client key may not see is 404 as if absent", "hidden", `{}`, fixture.ClientKey(env), 404,
			map[string]any{"key": "hidden", "errorCode": "FLAG_NOT_FOUND", "errorDetails": `flag "hidden" not found`}},
		{"a rollout without its bucketing attribute is 400 TARGETING_KEY_MISSING", "split", `{}`, fixture.ServerKey(env), 400,
			map[string]any{"key": "split", "errorCode": "TARGETING_KEY_MISSING", "errorDetails": `rollout attribute "targetingKey" missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags/"+tt.flag, tt.body, bearerKey(tt.key)...)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			got := decode(t, w)
			if tt.want != nil {
				if d := cmp.Diff(tt.want, got); d != "" {
					t.Errorf("body (-want +got):\n%s", d)
				}
			}
			if tt.status == 200 {
				// The same decision as /v1/evaluate, field by field.
				var ctx map[string]any
				if tt.body != "" {
					_ = json.Unmarshal([]byte(tt.body), &ctx)
				}
				req, _ := json.Marshal(map[string]any{"flagKey": tt.flag, "context": ctx["context"]})
				v1 := decode(t, r.call(t, http.MethodPost, "/v1/evaluate", string(req), bearerKey(tt.key)...))
				md := got["metadata"].(map[string]any)
				for _, f := range [][2]any{{v1["value"], got["value"]}, {v1["variant"], got["variant"]}, {v1["reason"], got["reason"]}, {v1["ruleId"], md["ruleId"]}} {
					if !cmp.Equal(f[0], f[1]) {
						t.Errorf("/v1/evaluate says %v, OFREP %v (%v vs %v)", f[0], f[1], v1, got)
					}
				}
				if v1["manifestVersion"] != "7" {
					t.Errorf("manifestVersion %v", v1["manifestVersion"])
				}
			}
		})
	}
}

func TestOFREPRefusesBadCallsWithTheSpecsStatusCodes(t *testing.T) {
	t.Parallel()
	r := newOFREPRig(t, nil)
	const flag = "/ofrep/v1/evaluate/flags/static"
	const bulk = "/ofrep/v1/evaluate/flags"
	tests := []struct {
		name, path, body string
		headers          []string
		status           int
		want             map[string]any
	}{
		{"no key is 401", flag, `{}`, nil, 401, map[string]any{"errorDetails": "missing, unknown or expired SDK key"}},
		{"an unknown key is 401", bulk, `{}`, bearerKey("nope"), 401, map[string]any{"errorDetails": "missing, unknown or expired SDK key"}},
		{"the key in X-API-Key works", flag, `{}`, []string{"X-API-Key", fixture.ServerKey(env)}, 200, nil},
		{"a server key from a browser is 403", bulk, `{}`, append(bearerKey(fixture.ServerKey(env)), "Origin", "https://app.example"), 403,
			map[string]any{"errorDetails": "a server SDK key must not be used from a browser: use a client SDK key"}},
		{"a client key from a browser is fine", bulk, `{}`, append(bearerKey(fixture.ClientKey(env)), "Origin", "https://app.example"), 200, nil},
		{"malformed JSON is 400 PARSE_ERROR naming the flag", flag, `{"context":`, bearerKey(fixture.ServerKey(env)), 400,
			map[string]any{"key": "static", "errorCode": "PARSE_ERROR", "errorDetails": "the request body is not a JSON object: unexpected end of JSON input"}},
		{"a context that is not an object is 400 INVALID_CONTEXT", flag, `{"context":[1]}`, bearerKey(fixture.ServerKey(env)), 400,
			map[string]any{"key": "static", "errorCode": "INVALID_CONTEXT", "errorDetails": "context: is not a JSON object"}},
		{"a context over a limit is 400 INVALID_CONTEXT naming the attribute", flag, `{"context":{"big":"` + strings.Repeat("x", 9000) + `"}}`, bearerKey(fixture.ServerKey(env)), 400,
			map[string]any{"key": "static", "errorCode": "INVALID_CONTEXT"}},
		{"a bad bulk context is 400 without a key", bulk, `{"context":"x"}`, bearerKey(fixture.ClientKey(env)), 400,
			map[string]any{"errorCode": "INVALID_CONTEXT", "errorDetails": "context: is not a JSON object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := r.call(t, http.MethodPost, tt.path, tt.body, tt.headers...)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			got := decode(t, w)
			if tt.want == nil {
				return
			}
			if d := cmp.Diff(tt.want, got, cmp.FilterPath(func(p cmp.Path) bool {
				return tt.name == "a context over a limit is 400 INVALID_CONTEXT naming the attribute" && p.Last().String() == `["errorDetails"]`
			}, cmp.Ignore())); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
			if tt.want["errorCode"] == "INVALID_CONTEXT" && tt.want["errorDetails"] == nil && !strings.HasPrefix(got["errorDetails"].(string), "context.big: ") {
				t.Errorf("errorDetails %q does not name context.big", got["errorDetails"])
			}
		})
	}
	t.Run("GET is 405", func(t *testing.T) {
		if w := r.call(t, http.MethodGet, bulk, ""); w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("a browser preflight from an allowed origin may send If-None-Match and reads ETag", func(t *testing.T) {
		w := r.call(t, http.MethodOptions, bulk, "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
		if w.Code != http.StatusNoContent || !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "If-None-Match") {
			t.Fatalf("%d %v", w.Code, w.Header())
		}
		w = r.call(t, http.MethodPost, bulk, `{}`, append(bearerKey(fixture.ClientKey(env)), "Origin", "https://app.example")...)
		if !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "ETag") {
			t.Fatalf("ETag not exposed: %v", w.Header())
		}
	})
}

func TestOFREPRateLimitIs429WithRetryAfter(t *testing.T) {
	t.Parallel()
	r := newOFREPRig(t, limit.New(1, 1))
	key := bearerKey(fixture.ServerKey(env))
	if w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags/static", `{}`, key...); w.Code != 200 {
		t.Fatalf("first call: %d %s", w.Code, w.Body)
	}
	w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags/static", `{}`, key...)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("second call: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if got := decode(t, w); got["errorDetails"] == "" {
		t.Fatalf("no errorDetails: %v", got)
	}
}

func TestOFREPAnswersUnknownKeys503WhileNotReady(t *testing.T) {
	t.Parallel()
	// acme/web/staging is expected but not loaded: the evaluator is not ready.
	r := newOFREPRig(t, nil, "acme/web/staging")
	for _, path := range []string{"/ofrep/v1/evaluate/flags/static", "/ofrep/v1/evaluate/flags"} {
		w := r.call(t, http.MethodPost, path, `{}`, bearerKey(fixture.ServerKey("acme/web/staging"))...)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("%s, key of the missing environment: %d Retry-After %q %s", path, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if got := decode(t, w); got["errorDetails"] == "" {
			t.Fatalf("no errorDetails: %v", got)
		}
		// A key of a loaded environment is served meanwhile.
		if w := r.call(t, http.MethodPost, path, `{}`, bearerKey(fixture.ServerKey(env))...); w.Code != http.StatusOK {
			t.Fatalf("%s, key of the loaded environment: %d %s", path, w.Code, w.Body)
		}
	}
}

func TestOFREPBulkEvaluatesWhatTheKeySeesWithAnETag(t *testing.T) {
	t.Parallel()
	r := newOFREPRig(t, nil)
	body := `{"context":{"targetingKey":"user-1","region":"us-east-1"}}`
	w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags", body, bearerKey(fixture.ClientKey(env))...)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag %q", etag)
	}
	got := decode(t, w)
	if d := cmp.Diff(map[string]any{"manifestVersion": 7.0}, got["metadata"]); d != "" {
		t.Errorf("metadata: %s", d)
	}
	byKey := map[string]map[string]any{}
	for _, f := range got["flags"].([]any) {
		m := f.(map[string]any)
		byKey[m["key"].(string)] = m
	}
	if _, ok := byKey["hidden"]; ok {
		t.Error("a client key got a flag that is not client-visible")
	}
	for _, k := range []string{"static", "targeted", "split", "disabled", "disabled-code-default", "gated", "banner"} {
		if byKey[k] == nil {
			t.Errorf("flag %s missing from %v", k, got)
		}
	}
	if byKey["targeted"]["reason"] != "TARGETING_MATCH" || byKey["targeted"]["metadata"].(map[string]any)["ruleId"] != "east" {
		t.Errorf("targeted: %v", byKey["targeted"])
	}

	t.Run("If-None-Match with the ETag is 304 with no body", func(t *testing.T) {
		w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags", body, append(bearerKey(fixture.ClientKey(env)), "If-None-Match", etag)...)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
			t.Fatalf("%d %q ETag %q", w.Code, w.Body, w.Header().Get("ETag"))
		}
	})
	t.Run("another context has another ETag", func(t *testing.T) {
		w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags", `{"context":{"targetingKey":"user-1","region":"eu-west-1"}}`,
			append(bearerKey(fixture.ClientKey(env)), "If-None-Match", etag)...)
		if w.Code != 200 || w.Header().Get("ETag") == etag {
			t.Fatalf("%d ETag %q", w.Code, w.Header().Get("ETag"))
		}
	})
	t.Run("a server key sees every flag, errors as failure items", func(t *testing.T) {
		w := r.call(t, http.MethodPost, "/ofrep/v1/evaluate/flags", `{}`, bearerKey(fixture.ServerKey(env))...)
		got := decode(t, w)
		var keys []string
		var splitItem map[string]any
		for _, f := range got["flags"].([]any) {
			m := f.(map[string]any)
			keys = append(keys, m["key"].(string))
			if m["key"] == "split" {
				splitItem = m
			}
		}
		if !strings.Contains(strings.Join(keys, ","), "hidden") {
			t.Errorf("server key: %v", keys)
		}
		want := map[string]any{"key": "split", "errorCode": "TARGETING_KEY_MISSING", "errorDetails": `rollout attribute "targetingKey" missing`}
		if d := cmp.Diff(want, splitItem); d != "" {
			t.Errorf("split without targetingKey (-want +got):\n%s", d)
		}
	})
}

// benchHTTP measures one POST of body to path through the evaluator's HTTP handler
// (with the service's hand-written routes), server key, httptest recorder.
func benchHTTP(b *testing.B, path, body string) {
	svc := newService(b)
	gw, err := server.NewGateway(context.Background(), svc)
	if err != nil {
		b.Fatal(err)
	}
	h := server.NewHTTP(server.HTTPConfig{Gateway: gw, Service: svc, Ready: func() bool { return true }, Gatherer: prometheus.NewRegistry()})
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// BenchmarkOFREPFlag is POST /ofrep/v1/evaluate/flags/{key}, to compare with
// BenchmarkEvaluateHTTP (same flag, same context).
func BenchmarkOFREPFlag(b *testing.B) {
	benchHTTP(b, "/ofrep/v1/evaluate/flags/new-ui", `{"context":{"targetingKey":"123","region":"us-east-1"}}`)
}

// BenchmarkEvaluateHTTP is POST /v1/evaluate through the hand-written handler.
func BenchmarkEvaluateHTTP(b *testing.B) {
	benchHTTP(b, "/v1/evaluate", `{"flagKey":"new-ui","context":{"targetingKey":"123","region":"us-east-1"}}`)
}
