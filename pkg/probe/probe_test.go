package probe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/probe"
)

func TestTargetDialsLoopbackForWildcardListeners(t *testing.T) {
	for in, want := range map[string]string{
		":8081": "127.0.0.1:8081", "0.0.0.0:8081": "127.0.0.1:8081", "[::]:8081": "[::1]:8081",
		"10.1.2.3:80": "10.1.2.3:80",
	} {
		got, err := probe.Target(in)
		if err != nil || got != want {
			t.Errorf("Target(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := probe.Target("8081"); err == nil {
		t.Error("Target accepted an address without a port")
	}
}

func TestCheckPassesOn2xxAndFailsOtherwise(t *testing.T) {
	healthy := true
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	for _, useTLS := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(h)
		if useTLS {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		addr := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
		healthy = true
		if err := probe.Check(context.Background(), addr, "/healthz", useTLS, time.Second); err != nil {
			t.Errorf("tls=%v healthy: %v", useTLS, err)
		}
		healthy = false
		if err := probe.Check(context.Background(), addr, "/healthz", useTLS, time.Second); err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("tls=%v unhealthy: %v", useTLS, err)
		}
		srv.Close()
		if err := probe.Check(context.Background(), addr, "/healthz", useTLS, time.Second); err == nil {
			t.Errorf("tls=%v closed server passed", useTLS)
		}
	}
}
