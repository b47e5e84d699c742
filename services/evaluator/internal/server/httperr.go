package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/pkg/errs"
)

// retryAfter is the RetryAfter of a ResourceExhausted or Unavailable error: from the *errs.Error
// itself (in-process handlers) or from the RetryInfo detail of a status (calls that
// went through a gRPC client).
func retryAfter(err error) (time.Duration, bool) {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.RetryAfter, (e.Kind == errs.ResourceExhausted || e.Kind == errs.Unavailable) && e.RetryAfter > 0
	}
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
				return ri.GetRetryDelay().AsDuration(), true
			}
		}
	}
	return 0, false
}

// setRetryAfter sets the Retry-After header of a 429 or 503.
func setRetryAfter(w http.ResponseWriter, err error) {
	if d, ok := retryAfter(err); ok {
		w.Header().Set("Retry-After", errs.RetryAfterSeconds(d))
	}
}

// writeError answers err the way the gateway does: the HTTP status of its gRPC
// code and the status as JSON ({"code","message","details"}).
func writeError(w http.ResponseWriter, err error) {
	st := errs.GRPCStatus(err)
	setRetryAfter(w, err)
	b, merr := protojson.Marshal(st.Proto())
	if merr != nil {
		b = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	_, _ = w.Write(b)
}
