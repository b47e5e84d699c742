package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
)

// MaxWait bounds the long-poll of GET /v1/manifest.
const MaxWait = 60 * time.Second

// ServeManifest is GET /v1/manifest (server SDK keys, Authorization header): the
// latest signed manifest of the key's environment as received (protobuf binary,
// application/x-protobuf; protojson with Accept: application/json) with an ETag
// "<env>-<version>-<issuedAt unix nanos>". If-None-Match with the current ETag is
// answered 304; with ?wait=<duration> (at most 60s) the request is held until a
// newer manifest exists (200) or the wait ends (304).
func (s *Service) ServeManifest(w http.ResponseWriter, r *http.Request) {
	if s.hub == nil {
		writeError(w, errs.E(errs.FailedPrecondition, "manifest polling is not enabled on this evaluator"))
		return
	}
	g, _, err := s.authenticateKey(bearer(r), s.now())
	if err != nil {
		writeError(w, err)
		return
	}
	if g.Kind != auth.Server {
		writeError(w, errs.E(errs.PermissionDenied, "/v1/manifest needs a server SDK key"))
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			writeError(w, errs.Invalid("wait", "is not a duration such as 30s"))
			return
		}
		wait = min(wait, MaxWait)
	}
	inm := r.Header.Get("If-None-Match")
	var deadline <-chan time.Time
	if wait > 0 && inm != "" {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		sm, version, issued, changed, ok := s.hub.Signed(g.Environment)
		var etag string
		if ok {
			etag = `"` + g.Environment + "-" + strconv.FormatUint(version, 10) + "-" + strconv.FormatInt(issued.UnixNano(), 10) + `"`
			if !etagMatches(inm, etag) {
				s.writeManifest(w, r, etag, sm)
				return
			}
		}
		if deadline == nil || changed == nil {
			if !ok {
				writeError(w, &errs.Error{Kind: errs.Unavailable, Message: "no signed manifest of this environment is held yet", RetryAfter: time.Second})
				return
			}
			w.Header().Set("ETag", etag)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		select {
		case <-changed:
		case <-deadline:
			deadline = nil // answer now: 304 (or 503 when still nothing held)
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Service) writeManifest(w http.ResponseWriter, r *http.Request, etag string, sm proto.Message) {
	var (
		b   []byte
		err error
		ct  string
	)
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		b, err = protojson.Marshal(sm)
		ct = "application/json"
	} else {
		b, err = proto.Marshal(sm)
		ct = "application/x-protobuf"
	}
	if err != nil {
		writeError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept")
	_, _ = w.Write(b)
}

// etagMatches reports whether an If-None-Match header names etag (or is "*").
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
