package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func handler(t *testing.T, db Pinger) http.Handler {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h, err := NewHandler(context.Background(), conn, db, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), limits.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestReadinessFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	if rec := get(handler(t, pinger{}), "/readyz"); rec.Code != 200 {
		t.Fatalf("ready: %d", rec.Code)
	}
	if rec := get(handler(t, pinger{errors.New("down")}), "/readyz"); rec.Code != 503 {
		t.Fatalf("database down: %d", rec.Code)
	}
	if rec := get(handler(t, pinger{errors.New("down")}), "/healthz"); rec.Code != 200 {
		t.Fatalf("liveness must not depend on the database: %d", rec.Code)
	}
}

func TestErrorHandler(t *testing.T) {
	t.Parallel()
	mux := runtime.NewServeMux()
	tests := []struct {
		err        error
		code       int
		retryAfter string
		body       string
	}{
		{&errs.Error{Kind: errs.ResourceExhausted, Message: "slow down", RetryAfter: 1500 * time.Millisecond}, 429, "2", "slow down"},
		{errs.Invalid("flag.key", "must be a slug"), 400, "", `"field":"flag.key"`},
		{errs.E(errs.Aborted, "stale"), 409, "", "stale"},
		{errs.E(errs.PermissionDenied, "no"), 403, "", ""},
		{errors.New("secret cause"), 500, "", "internal error"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		errorHandler(context.Background(), mux, &runtime.JSONPb{}, rec, httptest.NewRequest("GET", "/v1/x", nil), tt.err)
		if rec.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%v: %d Retry-After=%q %s", tt.err, rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), "secret cause") {
			t.Errorf("internal cause leaked: %s", rec.Body.String())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (Config{Addr: "8080", ShutdownTimeout: time.Second}).Validate(); err == nil {
		t.Error("address without host accepted")
	}
	if err := (Config{Addr: ":8080"}).Validate(); err == nil {
		t.Error("zero shutdown timeout accepted")
	}
	if err := (Config{Addr: "127.0.0.1:8080", ShutdownTimeout: time.Second}).Validate(); err != nil {
		t.Error(err)
	}
}
