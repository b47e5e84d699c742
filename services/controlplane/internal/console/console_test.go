package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestHandler: pages answer the console (or, unbuilt, the page saying how to build
// it); unknown files are 404; writes are refused.
func TestHandler(t *testing.T) {
	t.Parallel()
	h := Handler()
	page := http.StatusOK
	if !Built() {
		page = http.StatusServiceUnavailable
	}
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"the root is the console", "GET", "/", page},
		{"a client-side route is the console", "GET", "/o/acme/p/web/flags", page},
		{"a missing asset is not found", "GET", "/assets/nope.js", http.StatusNotFound},
		{"writes are refused", "POST", "/", http.StatusMethodNotAllowed},
	}
	if !Built() {
		tests[2].want = page
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.want {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, rec.Code, tt.want)
			}
			if tt.want != http.StatusMethodNotAllowed && rec.Header().Get("Content-Security-Policy") == "" {
				t.Fatal("no Content-Security-Policy")
			}
		})
	}
}
