package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/broadcast"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
	"github.com/flagforge/flagforge/services/evaluator/internal/usage"
)

// The OpenFeature Remote Evaluation Protocol (OFREP), served beside our own REST
// API so that OpenFeature's generic OFREP providers work against FlagForge with our
// SDK keys. The contract (docs/ofrep.md):
//
//   - POST /ofrep/v1/evaluate/flags/{key}: one flag for one context. 200 with
//     {key, value, reason, variant, metadata}; a flag that does not exist (or that a
//     client key may not see) is 404 {key, errorCode: FLAG_NOT_FOUND, errorDetails};
//     any other evaluation error (PARSE_ERROR, TARGETING_KEY_MISSING, GENERAL,
//     TYPE_MISMATCH) and a bad request body or context is 400 {key, errorCode,
//     errorDetails}.
//   - POST /ofrep/v1/evaluate/flags: every flag the key may see, {flags: [...],
//     metadata}, with a strong ETag over the body; If-None-Match naming it is 304.
//     A flag in error is an item {key, errorCode, errorDetails}; a bad body or
//     context is 400 {errorCode, errorDetails}. For a client key the answer also
//     lists eventStreams: GET /ofrep/v1/events, which tells the provider when to
//     re-fetch (OFREP's proposed SSE extension).
//   - Reasons and error codes are the engine's, unchanged. metadata carries
//     manifestVersion (a number) and ruleId (when a rule decided).
//   - When the engine serves the caller's default (a flag off or a prerequisite
//     unmet without an offVariant), value is omitted: OFREP has no default in the
//     request, and the provider then uses the default in code.
//   - The key comes from Authorization: Bearer, or X-API-Key. Missing, unknown or
//     expired: 401. A server key on a request a browser made (it carries Origin):
//     403, server keys must never reach a browser. Rate limited: 429 with
//     Retry-After (seconds). A key the evaluator does not know while it is not
//     ready (its environment may not be loaded yet): 503 with Retry-After, the
//     evaluator's rule for every call. Bodies of these are {errorDetails}.
//
// The spec's optional configuration endpoint (/ofrep/v1/configuration) was removed
// from OFREP before 1.0 and is not served.

// ofrepSuccess is one successful evaluation. Value is omitted when the engine
// served the caller's default (OFREP: "use the default in code").
type ofrepSuccess struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value,omitempty"`
	Reason   string          `json:"reason"`
	Variant  string          `json:"variant,omitempty"`
	Metadata ofrepMetadata   `json:"metadata"`
}

// ofrepFailure is one failed evaluation, or (Key empty) a failed bulk request.
type ofrepFailure struct {
	Key          string `json:"key,omitempty"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails,omitempty"`
}

// ofrepMetadata is the flag metadata OpenFeature providers pass to applications.
type ofrepMetadata struct {
	ManifestVersion uint64 `json:"manifestVersion"`
	RuleID          string `json:"ruleId,omitempty"`
}

// The bulk response is {"flags": [items], "metadata": {"manifestVersion": N},
// "eventStreams": [ofrepEventStream]} (eventStreams for client keys only: OFREP's
// proposed SSE extension, ADR 0008, as @openfeature/ofrep-web-provider reads it),
// written by hand in ServeOFREPBulk.

// ofrepEventStream is one change-notification endpoint, relative to the origin
// the provider called.
type ofrepEventStream struct {
	Type     string              `json:"type"`
	Endpoint ofrepStreamEndpoint `json:"endpoint"`
}

// ofrepStreamEndpoint is where an event stream is, relative to the origin.
type ofrepStreamEndpoint struct {
	RequestURI string `json:"requestUri"`
}

// ofrepGeneral is the body of 401, 403, 429, 500 and 503 answers.
type ofrepGeneral struct {
	ErrorDetails string `json:"errorDetails"`
}

// OFREP error codes beyond the engine's.
const (
	ofrepInvalidContext = "INVALID_CONTEXT"
	ofrepParseError     = "PARSE_ERROR"
)

// ServeOFREPFlag is POST /ofrep/v1/evaluate/flags/{key}.
func (s *Service) ServeOFREPFlag(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	flagKey := r.PathValue("key")
	g, env, err := s.ofrepAuthenticate(r, start)
	if err != nil {
		writeOFREPError(w, err)
		return
	}
	c, fail := s.ofrepContext(r)
	if fail != nil {
		fail.Key = flagKey
		writeOFREPJSON(w, http.StatusBadRequest, fail)
		return
	}
	var d engine.Decision
	if g.Kind == auth.Client && !env.Compiled.ClientVisible(flagKey) {
		d = env.Compiled.NotFound(flagKey, nil)
	} else {
		d = env.Compiled.Evaluate(flagKey, c, nil)
	}
	s.metrics.count(d.Reason)
	s.countUsage(g.Environment, flagKey, &d, usage.Minute(start))
	s.sampleContext(g.Environment, env, c, usage.Minute(start), start)
	status := ofrepStatus(&d)
	s.metrics.ofrep.Observe(time.Since(start).Seconds())
	out := outPool.Get().(*[]byte)
	defer outPool.Put(out)
	b := appendOFREPItem((*out)[:0], flagKey, &d)
	*out = b[:0]
	writeOFREPBytes(w, status, b)
}

// ServeOFREPBulk is POST /ofrep/v1/evaluate/flags.
func (s *Service) ServeOFREPBulk(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	g, env, err := s.ofrepAuthenticate(r, start)
	if err != nil {
		writeOFREPError(w, err)
		return
	}
	c, fail := s.ofrepContext(r)
	if fail != nil {
		writeOFREPJSON(w, http.StatusBadRequest, fail)
		return
	}
	// The body is ofrepBulk as encoding/json writes it, assembled by hand: one
	// buffer for every item (appendOFREPItem).
	out := outPool.Get().(*[]byte)
	defer outPool.Put(out)
	b := append((*out)[:0], `{"flags":[`...)
	minute := usage.Minute(start)
	n := 0
	keys := env.Compiled.Keys()
	if g.Kind == auth.Client {
		keys = env.Compiled.ClientKeys()
	}
	for _, key := range keys {
		d := env.Compiled.Evaluate(key, c, nil)
		s.metrics.count(d.Reason)
		s.countUsage(g.Environment, key, &d, minute)
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendOFREPItem(b, key, &d)
	}
	b = append(b, `],"metadata":{"manifestVersion":`...)
	b = strconv.AppendUint(b, env.Version(), 10)
	b = append(b, '}')
	s.sampleContext(g.Environment, env, c, minute, start)
	if g.Kind == auth.Client && s.hub != nil {
		// EventSource cannot send headers: the (public) client key goes in the URL.
		streams, err := json.Marshal([]ofrepEventStream{{Type: "sse", Endpoint: ofrepStreamEndpoint{RequestURI: "/ofrep/v1/events?key=" + url.QueryEscape(ofrepKey(r))}}})
		if err != nil {
			writeOFREPError(w, err)
			return
		}
		b = append(append(b, `,"eventStreams":`...), streams...)
	}
	b = append(b, '}')
	*out = b[:0]
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	s.metrics.ofrepBulk.Observe(time.Since(start).Seconds())
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// ofrepAuthenticate resolves the request's SDK key (Authorization: Bearer, else
// X-API-Key) and refuses a server key on a request made by a browser.
func (s *Service) ofrepAuthenticate(r *http.Request, now time.Time) (auth.Grant, *holder.Env, error) {
	g, env, err := s.authenticateKey(ofrepKey(r), now)
	if err != nil {
		return auth.Grant{}, nil, err
	}
	if g.Kind == auth.Server && r.Header.Get("Origin") != "" {
		return auth.Grant{}, nil, errs.E(errs.PermissionDenied, "a server SDK key must not be used from a browser: use a client SDK key")
	}
	return g, env, nil
}

// ofrepKey is the request's SDK key: Authorization: Bearer, else X-API-Key.
func ofrepKey(r *http.Request) string {
	if key := bearer(r); key != "" {
		return key
	}
	return r.Header.Get("X-API-Key")
}

// ServeOFREPEvents is GET /ofrep/v1/events?key=<client key>: server-sent events
// telling OFREP client providers to re-fetch the bulk evaluation. Each manifest
// the evaluator swaps in for the key's environment sends one message event
// {"type":"refetchEvaluation"} with id the manifest version (the provider's
// conditional re-fetch then gets 304 when nothing changed for its context).
// Comments are heartbeats. Client keys only (server keys: 403); counts against the
// stream caps like /v1/sse.
func (s *Service) ServeOFREPEvents(w http.ResponseWriter, r *http.Request) {
	if s.hub == nil {
		writeOFREPError(w, errs.E(errs.FailedPrecondition, "streaming is not enabled on this evaluator"))
		return
	}
	key := ofrepKey(r)
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	g, env, err := s.authenticateKey(key, s.now())
	if err != nil {
		writeOFREPError(w, err)
		return
	}
	if g.Kind != auth.Client {
		writeOFREPError(w, errs.E(errs.PermissionDenied, "/ofrep/v1/events takes a client SDK key (server keys must not reach browsers)"))
		return
	}
	rc := http.NewResponseController(w)
	sub, _, err := s.hub.Subscribe(broadcast.Request{Grant: g, SSE: true})
	if err != nil {
		writeOFREPError(w, err)
		return
	}
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	version := env.Version()
	if _, err := w.Write([]byte(": connected\n\n")); err != nil || rc.Flush() != nil {
		return
	}
	beat := s.hub.Beats() // the hub's shared heartbeat round, no timer per stream
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Done():
			return
		case <-beat:
			beat = s.hub.Beats()
			if _, err := w.Write([]byte(": heartbeat\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case <-sub.Changed():
			env := s.manifests.State().Env(g.Environment)
			if env == nil || env.Version() == version {
				continue
			}
			version = env.Version()
			msg := "id: " + strconv.FormatUint(version, 10) + "\ndata: {\"type\":\"refetchEvaluation\"}\n\n"
			if _, err := w.Write([]byte(msg)); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// ofrepContext reads the request body {"context": {...}} (an empty body is an
// empty context). A problem is the failure to answer with 400.
func (s *Service) ofrepContext(r *http.Request) (*engine.Context, *ofrepFailure) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, s.maxBody+1)); err != nil {
		return nil, &ofrepFailure{ErrorCode: ofrepParseError, ErrorDetails: "reading the request body: " + err.Error()}
	}
	if int64(buf.Len()) > s.maxBody {
		return nil, &ofrepFailure{ErrorCode: ofrepParseError, ErrorDetails: "the request body is larger than " + strconv.FormatInt(s.maxBody, 10) + " bytes"}
	}
	// The fast path (package reqcodec); anything else, errors included, takes the
	// general path below.
	if attrs, ok := reqcodec.DecodeOFREPJSON(buf.Bytes()); ok {
		if c, err := engine.ContextFromAttrs(attrs); err == nil {
			return c, nil
		}
	}
	var st *structpb.Struct
	if len(bytes.TrimSpace(buf.Bytes())) > 0 {
		var req struct {
			Context json.RawMessage `json:"context"`
		}
		if err := json.Unmarshal(buf.Bytes(), &req); err != nil {
			return nil, &ofrepFailure{ErrorCode: ofrepParseError, ErrorDetails: "the request body is not a JSON object: " + err.Error()}
		}
		if raw := bytes.TrimSpace(req.Context); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			st = &structpb.Struct{}
			if err := protojson.Unmarshal(raw, st); err != nil {
				return nil, &ofrepFailure{ErrorCode: ofrepInvalidContext, ErrorDetails: "context: is not a JSON object"}
			}
		}
	}
	c, err := engine.NewContext(st)
	if err != nil {
		var e *errs.Error
		details := err.Error()
		if errors.As(err, &e) && e.Field != "" {
			details = e.Field + ": " + e.Message
		}
		return nil, &ofrepFailure{ErrorCode: ofrepInvalidContext, ErrorDetails: details}
	}
	return c, nil
}

// ofrepItem is the OFREP form of one decision and the status a single-flag call
// answers it with: 200 for a result, 404 for FLAG_NOT_FOUND, 400 for any other
// error.
func ofrepItem(key string, d *engine.Decision) (any, int) {
	if d.Reason == engine.ReasonError {
		return &ofrepFailure{Key: key, ErrorCode: d.ErrorCode, ErrorDetails: d.ErrorMessage}, ofrepStatus(d)
	}
	out := &ofrepSuccess{Key: key, Reason: d.Reason, Variant: d.Variant,
		Metadata: ofrepMetadata{ManifestVersion: d.ManifestVersion, RuleID: d.RuleID}}
	if d.Value != nil {
		if b, err := protojson.Marshal(d.Value); err == nil {
			out.Value = b
		}
	}
	return out, http.StatusOK
}

// ofrepStatus is the status a single-flag call answers d with (see ofrepItem).
func ofrepStatus(d *engine.Decision) int {
	switch {
	case d.Reason != engine.ReasonError:
		return http.StatusOK
	case d.ErrorCode == engine.ErrorFlagNotFound:
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// writeOFREPError answers a call error: the HTTP status of its kind (401, 403,
// 429 with Retry-After, 503 with Retry-After, 500) and {errorDetails}.
func writeOFREPError(w http.ResponseWriter, err error) {
	var status int
	switch errs.KindOf(err) {
	case errs.Unauthenticated:
		status = http.StatusUnauthorized
	case errs.PermissionDenied:
		status = http.StatusForbidden
	case errs.ResourceExhausted:
		status = http.StatusTooManyRequests
		setRetryAfter(w, err)
	case errs.Unavailable:
		status = http.StatusServiceUnavailable
		if _, ok := retryAfter(err); ok {
			setRetryAfter(w, err)
		} else {
			w.Header().Set("Retry-After", "1")
		}
	case errs.InvalidArgument:
		status = http.StatusBadRequest
	default:
		status = http.StatusInternalServerError
	}
	msg := "internal error"
	var e *errs.Error
	if errors.As(err, &e) && status != http.StatusInternalServerError {
		msg = e.Message
	}
	writeOFREPJSON(w, status, ofrepGeneral{ErrorDetails: msg})
}

func writeOFREPJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errorDetails":"internal error"}`)
	}
	writeOFREPBytes(w, status, b)
}

// writeOFREPBytes answers the JSON body b.
func writeOFREPBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
