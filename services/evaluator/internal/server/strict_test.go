package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/server"
)

// restAnswer is one REST call's status and decoded JSON body.
type restAnswer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (a restAnswer) violations() map[string]string {
	out := map[string]string{}
	details, _ := a.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		fvs, _ := m["fieldViolations"].([]any)
		for _, fv := range fvs {
			f, _ := fv.(map[string]any)
			field, _ := f["field"].(string)
			desc, _ := f["description"].(string)
			out[field] = desc
		}
	}
	return out
}

func restCall(t *testing.T, method, path, body string) restAnswer {
	t.Helper()
	svc := newService(t)
	gw, err := server.NewGateway(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	h := server.NewHTTP(server.HTTPConfig{Gateway: gw, Service: svc, Ready: func() bool { return true }, Gatherer: prometheus.NewRegistry()})
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	a := restAnswer{code: w.Code, header: w.Header(), raw: w.Body.String()}
	_ = json.Unmarshal(w.Body.Bytes(), &a.body)
	return a
}

// TestEvaluationInputIsStrict: a misspelt field is refused naming it (it used to
// evaluate with an empty context), enum values take their short names, shapes are
// checked, and every problem is reported at once.
func TestEvaluationInputIsStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, body string
		want             map[string]string // field -> part of the description
	}{
		{"a misspelt context", "/v1/evaluate", `{"flagKey":"new-ui","contxt":{"targetingKey":"1"}}`,
			map[string]string{"contxt": `did you mean "context"?`}},
		{"an unknown type echoes what was sent", "/v1/evaluate", `{"flagKey":"new-ui","type":"bool"}`,
			map[string]string{"type": `unknown value "bool"`}},
		{"a context that is not an object", "/v1/evaluate", `{"flagKey":"new-ui","context":[1]}`,
			map[string]string{"context": "must be an object, got an array"}},
		{"every problem at once", "/v1/evaluate", `{"flagKey":7,"contxt":{},"defaultValu":1}`,
			map[string]string{"flagKey": "must be a string", "contxt": "did you mean", "defaultValu": `did you mean "defaultValue"?`}},
		{"the gateway endpoints are strict as well", "/v1/evaluate/all", `{"flagKyes":["new-ui"]}`,
			map[string]string{"flagKyes": `did you mean "flagKeys"?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := restCall(t, http.MethodPost, tt.path, tt.body)
			got := a.violations()
			if a.code != http.StatusBadRequest || len(got) != len(tt.want) {
				t.Fatalf("got %d %s; want 400 with %v", a.code, a.raw, tt.want)
			}
			for f, d := range tt.want {
				if !strings.Contains(got[f], d) {
					t.Errorf("field %q: %q, want it to say %q (%s)", f, got[f], d, a.raw)
				}
			}
		})
	}
}

// TestWrongMethodIs405: GET /v1/evaluate answered 501.
func TestWrongMethodIs405(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/v1/evaluate"},
		{http.MethodDelete, "/v1/evaluate"},
		{http.MethodGet, "/v1/evaluate/all"},
		{http.MethodPut, "/v1/evaluations"},
	} {
		a := restCall(t, tt.method, tt.path, "")
		if a.code != http.StatusMethodNotAllowed || !strings.Contains(a.raw, "not allowed") {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, a.code, a.raw)
		}
	}
	if a := restCall(t, http.MethodGet, "/v1/evaluate", ""); a.header.Get("Allow") != http.MethodPost {
		t.Errorf("Allow: %q", a.header.Get("Allow"))
	}
}

// TestRequestedTypeMismatchAnswersTheDefault: asking for another type than the
// flag's answers the caller's default with ERROR / TYPE_MISMATCH, as the SDKs do;
// short and full type names are accepted.
func TestRequestedTypeMismatchAnswersTheDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, body, reason, code, value string
	}{
		{"short name, mismatch", `{"flagKey":"new-ui","type":"number","defaultValue":42}`, "ERROR", "TYPE_MISMATCH", "42"},
		{"full name, mismatch", `{"flagKey":"new-ui","type":"FLAG_TYPE_STRING","defaultValue":"x"}`, "ERROR", "TYPE_MISMATCH", `"x"`},
		{"matching type", `{"flagKey":"new-ui","type":"boolean","defaultValue":false,"context":{"targetingKey":"1","region":"us-east-1"}}`, "TARGETING_MATCH", "", "true"},
		{"no type asked", `{"flagKey":"new-ui","defaultValue":42,"context":{"targetingKey":"1","region":"us-east-1"}}`, "TARGETING_MATCH", "", "true"},
	} {
		a := restCall(t, http.MethodPost, "/v1/evaluate", tt.body)
		v, _ := json.Marshal(a.body["value"])
		if a.code != 200 || a.body["reason"] != tt.reason || (a.body["errorCode"] != nil) != (tt.code != "") || string(v) != tt.value {
			t.Errorf("%s: %d %s", tt.name, a.code, a.raw)
		}
		if tt.code != "" && a.body["errorCode"] != tt.code {
			t.Errorf("%s: %s", tt.name, a.raw)
		}
	}
	// gRPC honours the type as well.
	svc := newService(t)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+fixture.ServerKey(env)))
	res, err := svc.Evaluate(ctx, &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Type: manifestv1.FlagType_FLAG_TYPE_STRING, DefaultValue: structpb.NewStringValue("d")})
	if err != nil || res.GetErrorCode() != "TYPE_MISMATCH" || res.GetValue().GetStringValue() != "d" {
		t.Fatalf("gRPC: %v %v", res, err)
	}
}

// TestEvaluatorServesItsOpenAPIDocument with a real title, version, the bearer
// scheme and examples.
func TestEvaluatorServesItsOpenAPIDocument(t *testing.T) {
	t.Parallel()
	a := restCall(t, http.MethodGet, "/openapi.json", "")
	info, _ := a.body["info"].(map[string]any)
	sec, _ := a.body["securityDefinitions"].(map[string]any)
	if a.code != 200 || info["title"] != "FlagForge evaluation API" || info["version"] != "1.0.0" || sec["bearer"] == nil {
		t.Fatalf("%d %v %v", a.code, info, sec)
	}
	if !strings.Contains(a.raw, `"example"`) || !strings.Contains(a.raw, `"/v1/evaluate"`) {
		t.Fatal("the document lacks examples or /v1/evaluate")
	}
}
