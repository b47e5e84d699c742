package server

import (
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/broadcast"
)

// ServeStream is GET /v1/stream: StreamManifest as NDJSON, byte for byte what
// grpc-gateway streams ({"result":<StreamManifestResponse>} per line, then
// {"error":<status>} when the server ends the stream with an error), served
// from the hub in the request's own goroutine: no gRPC hop, and every frame's
// JSON is encoded once and shared by every stream (broadcast.Frame.NDJSON).
// Server SDK keys only, from the Authorization header; ?fromVersion= (or
// from_version) is the version the caller holds. A stream served over
// HTTP/1.x ends at the age limits.MaxAge announces, with closing max_age.
func (s *Service) ServeStream(w http.ResponseWriter, r *http.Request) {
	if s.hub == nil {
		writeError(w, errs.E(errs.FailedPrecondition, "streaming is not enabled on this evaluator"))
		return
	}
	g, _, err := s.authenticateKey(bearer(r), s.now())
	if err != nil {
		writeError(w, err)
		return
	}
	if g.Kind != auth.Server {
		writeError(w, errs.E(errs.PermissionDenied, "StreamManifest needs a server SDK key"))
		return
	}
	var from uint64
	q := r.URL.Query()
	for _, name := range []string{"fromVersion", "from_version"} {
		if v := q.Get(name); v != "" {
			if from, err = strconv.ParseUint(v, 10, 64); err != nil {
				writeError(w, errs.Invalid(name, "is not an unsigned integer: %q", v))
				return
			}
		}
	}
	sub, initial, err := s.hub.Subscribe(broadcast.Request{Grant: g, FromVersion: from})
	if err != nil {
		writeError(w, err)
		return
	}
	defer sub.Close()
	var expire <-chan time.Time
	if ms, err := strconv.ParseInt(r.Header.Get(limits.MaxAgeHeader), 10, 64); err == nil && ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		expire = t.C
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	send := func(f *broadcast.Frame) bool {
		b, err := f.NDJSON()
		if err != nil {
			return false
		}
		_, err = w.Write(b)
		return err == nil
	}
	for _, f := range initial {
		if !send(f) {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	frames, done := sub.Frames(), sub.Done()
	for {
		select {
		case f := <-frames:
			if !send(f) {
				return
			}
			// Send what is queued together, then flush once.
			for more := true; more; {
				select {
				case f := <-frames:
					if !send(f) {
						return
					}
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		case <-done:
			reason := sub.Reason()
			if send(broadcast.Closing(reason, closingMessage(reason))) {
				if err := sub.Err(); err != nil {
					writeStreamError(w, err)
				}
				_ = rc.Flush()
			}
			return
		case <-expire:
			if send(broadcast.Closing(broadcast.ReasonMaxAge, closingMessage(broadcast.ReasonMaxAge))) {
				_ = rc.Flush()
			}
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeStreamError is grpc-gateway's last line of a stream that failed:
// {"error":{"code","message","details"}}.
func writeStreamError(w http.ResponseWriter, err error) {
	b, merr := protojson.Marshal(errs.GRPCStatus(err).Proto())
	if merr != nil {
		b = []byte(`{"code":13,"message":"internal error"}`)
	}
	_, _ = w.Write(append(append([]byte(`{"error":`), b...), "}\n"...))
}
