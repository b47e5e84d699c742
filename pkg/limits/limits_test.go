package limits_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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

func TestAStreamWriteToAClientThatStoppedReadingFailsWithinTheDeadline(t *testing.T) {
	t.Parallel()
	failed := make(chan time.Duration, 1)
	srv := httptest.NewServer(limits.Stream(300*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for {
			start := time.Now()
			if _, err := w.Write(chunk); err != nil {
				failed <- time.Since(start)
				return
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				failed <- time.Since(start)
				return
			}
		}
	})))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	// A client that sends its request and never reads the answer.
	if _, err := io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-failed:
		if d > 2*time.Second {
			t.Errorf("the blocked write failed after %s, want about 300ms", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream kept writing to a client that does not read")
	}
}

func TestHTTP1StreamsEndAtTheirMaxAgeAndHTTP2StreamsDoNot(t *testing.T) {
	t.Parallel()
	const maxAge = 2 * time.Second
	type seen struct {
		announced string
		lasted    time.Duration
	}
	got := make(chan seen, 2)
	h := limits.MaxAge(maxAge, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
		case <-time.After(3 * maxAge):
		}
		got <- seen{r.Header.Get(limits.MaxAgeHeader), time.Since(start)}
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, h2 := range []bool{false, true} {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = h2
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		req.Header.Set(limits.MaxAgeHeader, "999999") // a client's own value is dropped
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		s := <-got
		switch {
		case !h2 && (resp.ProtoMajor != 1 || !resp.Close):
			t.Errorf("HTTP/1.1: %s, close %v; want the connection closed after the stream", resp.Proto, resp.Close)
		case !h2:
			ms, err := strconv.Atoi(s.announced)
			if err != nil || ms < int(maxAge.Milliseconds())*3/4 || ms > int(maxAge.Milliseconds()) {
				t.Errorf("HTTP/1.1: announced age %q, want 3/4 to all of %s", s.announced, maxAge)
			}
			if s.lasted > maxAge+3*time.Second {
				t.Errorf("HTTP/1.1: the stream lasted %s, want at most %s plus the 2 s backstop", s.lasted, maxAge)
			}
		case resp.ProtoMajor != 2 || s.announced != "" || s.lasted < 3*maxAge:
			t.Errorf("HTTP/2: %s, announced %q, lasted %s; want no age", resp.Proto, s.announced, s.lasted)
		}
	}
}
