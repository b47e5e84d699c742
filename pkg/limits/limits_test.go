package limits_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/limits"
)

// echo answers the length of the body it read.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.WriteString(w, strings.Repeat("x", len(b)))
})

// onlyReader hides the length of its reader (a chunked body).
type onlyReader struct{ io.Reader }

func TestBodiesOverTheLimitAre413BeforeTheHandlerSeesThem(t *testing.T) {
	t.Parallel()
	h := limits.Config{MaxBodyBytes: 1024}.Body(echo)
	tests := []struct {
		name   string
		body   io.Reader
		length int64
		code   int
	}{
		{"declared length at the limit passes", strings.NewReader(strings.Repeat("a", 1024)), 1024, 200},
		{"declared length over the limit is 413", strings.NewReader(strings.Repeat("a", 1025)), 1025, 413},
		{"chunked body at the limit passes", onlyReader{strings.NewReader(strings.Repeat("a", 1024))}, -1, 200},
		{"chunked body over the limit is 413", onlyReader{strings.NewReader(strings.Repeat("a", 5000))}, -1, 413},
		{"no body passes", nil, 0, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/x", tt.body)
			r.ContentLength = tt.length
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.code {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
			if tt.code == 413 && !strings.Contains(rec.Body.String(), `"message":"the request body is larger than 1024 bytes"`) {
				t.Errorf("413 body: %s", rec.Body.String())
			}
		})
	}
}

func TestValidateNamesEveryVariableOutOfRange(t *testing.T) {
	t.Parallel()
	if err := limits.Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	err := limits.Config{MaxBodyBytes: 10, PingInterval: time.Second}.Validate()
	for _, want := range []string{"FLAGFORGE_MAX_REQUEST_BYTES", "FLAGFORGE_READ_TIMEOUT", "FLAGFORGE_PING_INTERVAL", "FLAGFORGE_STREAM_WRITE_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s not reported: %v", want, err)
		}
	}
}
