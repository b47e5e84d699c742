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
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
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
		c := decodeEvaluateJSON(buf.Bytes(), &req)
		if c == nil {
			if err := strictjson.Unmarshal(buf.Bytes(), &req); err != nil {
				writeError(w, err)
				return
			}
		}
		res, err := s.evaluateWith(bearer(r), &req, c)
		if err != nil {
			writeError(w, err)
			return
		}
		out := outPool.Get().(*[]byte)
		defer outPool.Put(out)
		b, ok := reqcodec.AppendEvaluateResponse((*out)[:0], res)
		if !ok {
			if b, err = protojson.Marshal(res); err != nil {
				writeError(w, err)
				return
			}
		} else {
			*out = b[:0] // keep a grown buffer for the next response
		}
		w.Header()["Content-Type"] = jsonContentType
		_, _ = w.Write(b)
	})
}

// outPool holds response buffers (net/http copies what is written).
var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// jsonContentType is the Content-Type header value, shared (never modified).
var jsonContentType = []string{"application/json"}

// decodeEvaluateJSON is the fast path of POST /v1/evaluate (package reqcodec):
// it fills req and returns the context, or returns nil when the body must take
// the general path (strictjson, then the context from its Struct), which gives
// the answer or the error.
func decodeEvaluateJSON(body []byte, req *evaluationv1.EvaluateRequest) *engine.Context {
	var fast reqcodec.Evaluate
	if !reqcodec.DecodeEvaluateJSON(body, &fast) {
		return nil
	}
	c, err := engine.ContextFromAttrs(fast.Attrs)
	if err != nil {
		return nil
	}
	req.FlagKey, req.Type, req.DefaultValue = fast.FlagKey, fast.Type, fast.Default
	return c
}
