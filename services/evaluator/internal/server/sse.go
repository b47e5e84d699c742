package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/broadcast"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/usage"
)

// maxSSEContext bounds the ?context= parameter (before the engine's own limits).
const maxSSEContext = 16 << 10

// sseResult is one flag's evaluated result as sent to browsers.
type sseResult struct {
	Value     json.RawMessage `json:"value"`
	Variant   string          `json:"variant,omitempty"`
	Reason    string          `json:"reason"`
	ErrorCode string          `json:"errorCode,omitempty"`
}

func (a sseResult) same(b sseResult) bool {
	return a.Variant == b.Variant && a.ErrorCode == b.ErrorCode && bytes.Equal(a.Value, b.Value)
}

// ServeSSE is GET /v1/sse: evaluated client-visible flags for one context, as
// server-sent events. Client SDK keys only, from the Authorization header or the
// key query parameter (EventSource cannot set headers); the context is the
// url-encoded JSON object in the context query parameter. The first event
// ("flags") holds every client-visible flag; each later "changes" event holds only
// the flags whose value or variant changed with a new manifest (a flag that no
// longer exists or is no longer client-visible is sent as null). Comments are sent
// as heartbeats. The stream ends with a "closing" event when the server drops it
// (key_revoked, draining).
func (s *Service) ServeSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.hub == nil {
		writeError(w, errs.E(errs.FailedPrecondition, "streaming is not enabled on this evaluator"))
		return
	}
	key := bearer(r)
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	g, env, err := s.authenticateKey(key, s.now())
	if err != nil {
		writeError(w, err)
		return
	}
	if g.Kind != auth.Client {
		writeError(w, errs.E(errs.PermissionDenied, "/v1/sse takes a client SDK key (server keys must not reach browsers)"))
		return
	}
	c, err := sseContext(r.URL.Query().Get("context"))
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	sub, _, err := s.hub.Subscribe(broadcast.Request{Grant: g, SSE: true})
	if err != nil {
		writeError(w, err)
		return
	}
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Streams of the same environment and context share their evaluation and
	// encoded events (sseshare.go).
	aud := s.sse.join(g.Environment, r.URL.Query().Get("context"))
	defer s.sse.leave(aud)
	last, err := s.sseView(aud, env, c)
	if err != nil {
		return
	}
	if _, err := w.Write(last.flags); err != nil || rc.Flush() != nil {
		return
	}
	beat := s.hub.Beats() // the hub's shared heartbeat round, no timer per stream
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Done():
			_ = writeEvent(w, "closing", 0, map[string]string{"reason": sub.Reason(), "message": closingMessage(sub.Reason())})
			_ = rc.Flush()
			return
		case <-beat:
			beat = s.hub.Beats()
			if _, err := w.Write([]byte(": heartbeat\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case <-sub.Changed():
			env := s.manifests.State().Env(g.Environment)
			if env == nil {
				continue
			}
			next, err := s.sseView(aud, env, c)
			if err != nil || next == last {
				continue
			}
			ev, err := changesSince(last, next)
			last = next
			if err != nil || ev == nil {
				continue
			}
			if _, err := w.Write(ev); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// evaluateVisible evaluates every client-visible flag of env for c.
func (s *Service) evaluateVisible(target string, env *holder.Env, c *engine.Context) map[string]sseResult {
	out := map[string]sseResult{}
	now := s.now()
	minute := usage.Minute(now)
	s.sampleContext(target, env, c, minute, now)
	for _, k := range env.Compiled.FlagKeys() {
		if !env.Compiled.ClientVisible(k) {
			continue
		}
		d := env.Compiled.Evaluate(k, c, nil)
		s.metrics.count(d.Reason)
		s.countUsage(target, k, &d, minute)
		v := json.RawMessage("null")
		if d.Value != nil {
			if b, err := protojson.Marshal(d.Value); err == nil {
				v = b
			}
		}
		out[k] = sseResult{Value: v, Variant: d.Variant, Reason: d.Reason, ErrorCode: d.ErrorCode}
	}
	return out
}

func writeEvent(w http.ResponseWriter, event string, id uint64, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("event: ")
	buf.WriteString(event)
	buf.WriteByte('\n')
	if id > 0 {
		buf.WriteString("id: ")
		buf.WriteString(strconv.FormatUint(id, 10))
		buf.WriteByte('\n')
	}
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	_, err = w.Write(buf.Bytes())
	return err
}

// sseContext parses the context query parameter (a JSON object; empty: none).
func sseContext(raw string) (*engine.Context, error) {
	var st *structpb.Struct
	if raw != "" {
		if len(raw) > maxSSEContext {
			return nil, errs.Invalid("context", "is longer than %d bytes", maxSSEContext)
		}
		st = &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(raw), st); err != nil {
			return nil, errs.Invalid("context", "is not a JSON object")
		}
	}
	return engine.NewContext(st)
}

// bearer is the key of an "Authorization: Bearer <key>" header ("" when absent).
func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(v[len(prefix):])
}
