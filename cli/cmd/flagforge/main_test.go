package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = "../../flagsfile/testdata/every-feature.yaml"

// TestOfflineCommands: validate and evaluate work on a file without a server, and
// an invalid file is refused naming the problem.
func TestOfflineCommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"validate", "-f", example}, &out); err != nil || !strings.Contains(out.String(), "is valid: 4 flags") {
		t.Fatalf("validate: %v %s", err, out.String())
	}
	out.Reset()
	err := run(context.Background(), []string{"evaluate", "-f", example, "--env", "production", "--flag", "checkout", "--context", `{"targetingKey":"vip-1"}`}, &out)
	if err != nil || !strings.Contains(out.String(), "listed in the flag's targets") {
		t.Fatalf("evaluate: %v %s", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nflags: [{key: a, type: boolean, colour: red}]\nenvironments: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"validate", "-f", bad}, &out); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("an unknown field: %v", err)
	}
	if err := run(context.Background(), []string{"apply", "-f", example}, &out); err == nil || !strings.Contains(err.Error(), "--org") {
		t.Fatalf("apply without a project: %v", err)
	}
}

// TestEvaluateOnEvaluator: evaluate --evaluator posts the flag and context with
// the SDK key to /v1/evaluate and explains the answer in the key's environment.
func TestEvaluateOnEvaluator(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			FlagKey string         `json:"flagKey"`
			Context map[string]any `json:"context"`
		}
		if r.URL.Path != "/v1/evaluate" || r.Header.Get("Authorization") != "Bearer ffsk_test" ||
			json.NewDecoder(r.Body).Decode(&req) != nil || req.FlagKey != "new-ui" || req.Context["targetingKey"] != "user-1" {
			http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		// The evaluator's answer, as the README shows it.
		_, _ = w.Write([]byte(`{"value":true, "variant":"on", "reason":"STATIC", "flagKey":"new-ui", "manifestVersion":"5"}`))
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	err := run(context.Background(), []string{"evaluate", "--evaluator", srv.URL, "--sdk-key", "ffsk_test", "--flag", "new-ui", "--context", `{"targetingKey":"user-1"}`}, &out)
	want := "flag new-ui in the SDK key's environment: value true (variant \"on\")\nreason: STATIC: the flag serves one variant to everyone\n"
	if err != nil || out.String() != want {
		t.Fatalf("evaluate --evaluator: %v\n%q\nwant\n%q", err, out.String(), want)
	}
}
