package server

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/strictjson"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
)

// ServeEvaluateAll is POST /v1/evaluate/all, written by hand like ServeEvaluate
// (the gateway's contract: strict JSON input, protojson's output, its errors): a
// browser's bulk evaluation answers hundreds of flags, which the gateway built as
// a map of messages before protojson wrote it. The body is decoded by
// reqcodec when it can (else strictjson), the answer written straight into a
// pooled buffer.
func (s *Service) ServeEvaluateAll(gateway http.Handler) http.Handler {
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
		var (
			fast  reqcodec.EvaluateAll
			attrs map[string]any
			req   evaluationv1.EvaluateAllRequest
		)
		general := !reqcodec.DecodeEvaluateAllJSON(buf.Bytes(), &fast)
		if general {
			if err := strictjson.Unmarshal(buf.Bytes(), &req); err != nil {
				writeError(w, err)
				return
			}
		} else {
			attrs, req.FlagKeys = fast.Attrs, fast.FlagKeys
		}
		start := s.now()
		g, env, err := s.authenticateKey(bearer(r), start)
		if err != nil {
			writeError(w, err)
			return
		}
		var c *engine.Context
		if general {
			c, err = engine.NewContext(req.GetContext())
		} else {
			c, err = engine.ContextFromAttrs(attrs) // the same limits and errors
		}
		if err != nil {
			writeError(w, err)
			return
		}
		out := outPool.Get().(*[]byte)
		defer outPool.Put(out)
		b, ok := s.appendAll((*out)[:0], g, env, c, req.GetFlagKeys(), start)
		*out = b[:0]
		if !ok {
			writeError(w, errs.E(errs.Internal, "an evaluation result cannot be written as JSON"))
			return
		}
		w.Header()["Content-Type"] = jsonContentType
		_, _ = w.Write(b)
	})
}

// appendAll appends the EvaluateAllResponse of the call as protojson writes it
// (flags in evaluation order: a JSON object's order carries no meaning; a flag
// named twice once). ok is false when a result cannot be written (invalid UTF-8,
// a non-finite number: protojson fails on them too), which compiled manifests
// and decoded requests do not hold.
func (s *Service) appendAll(b []byte, g auth.Grant, env *holder.Env, c *engine.Context, named []string, start time.Time) (_ []byte, ok bool) {
	var seen map[string]struct{}
	if len(named) > 1 {
		seen = make(map[string]struct{}, len(named))
	}
	n := 0
	ok = true
	b = append(b, '{')
	s.evaluateAll(g, env, c, named, start, func(key string, d *engine.Decision) {
		if seen != nil {
			if _, dup := seen[key]; dup {
				return
			}
			seen[key] = struct{}{}
		}
		if n == 0 {
			b = append(b, `"flags":{`...)
		} else {
			b = append(b, ',')
		}
		n++
		var good bool
		if b, good = reqcodec.AppendString(b, key); good {
			b = append(b, ':')
			b, good = reqcodec.AppendResult(b, reqcodec.Result{Value: d.Value, Variant: d.Variant, Reason: d.Reason,
				RuleID: d.RuleID, ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage})
		}
		ok = ok && good
	})
	if n > 0 {
		b = append(b, '}')
	}
	if v := env.Version(); v != 0 {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `"manifestVersion":"`...)
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '"')
	}
	return append(b, '}'), ok
}
