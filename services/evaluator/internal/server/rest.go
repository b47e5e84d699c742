package server

import (
	"bytes"
	"io"
	"net/http"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/strictjson"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeEvaluate is POST /v1/evaluate, written by hand for the hot path with the
// gateway's exact contract (strict JSON input as strictjson decodes it: unknown
// fields and unknown enum values are 400s naming the field; lowerCamelCase, empty
// fields omitted; errors as the gateway writes them): the generated gateway
// costs ~2x the CPU per call (context annotation, metadata, marshaler plumbing).
// OPTIONS falls through to the gateway (CORS preflight is answered before);
// every other method but POST is a 405.
func (s *Service) ServeEvaluate(gateway http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			gateway.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodPost {
			strictjson.WriteMethodNotAllowed(w, r, http.MethodPost)
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		defer bufPool.Put(buf)
		if _, err := buf.ReadFrom(io.LimitReader(r.Body, s.maxBody+1)); err != nil {
			writeError(w, errs.Wrap(errs.InvalidArgument, err, "reading the request body"))
			return
		}
		if int64(buf.Len()) > s.maxBody {
			limits.TooLarge(w, s.maxBody)
			return
		}
		var req evaluationv1.EvaluateRequest
		if err := strictjson.Unmarshal(buf.Bytes(), &req); err != nil {
			writeError(w, err)
			return
		}
		res, err := s.evaluate(bearer(r), &req)
		if err != nil {
			writeError(w, err)
			return
		}
		b, err := protojson.Marshal(res)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}
