package strictjson

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
)

// Marshaler is grpc-gateway's JSON marshaler with strict request decoding
// (Unmarshal). Responses are written as runtime.JSONPb writes them.
type Marshaler struct {
	runtime.JSONPb
}

// NewDecoder decodes one request body strictly. grpc-gateway turns a decoder's
// error into a bare status message; to keep every field violation, the error is
// also left on the request body when the body was wrapped by Capture, where
// ErrorOf finds it.
func (m *Marshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		pm, ok := v.(proto.Message)
		if !ok {
			return m.JSONPb.NewDecoder(r).Decode(v)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return errs.Wrap(errs.InvalidArgument, err, "reading the request body")
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF // the gateway treats an empty body as an empty message
		}
		if err := Unmarshal(data, pm); err != nil {
			if b, ok := r.(*body); ok {
				b.err = err
			}
			return err
		}
		return nil
	})
}

// body is a request body that remembers why it could not be decoded.
type body struct {
	io.ReadCloser
	err error
}

// Capture wraps each request's body so that ErrorOf can return the structured
// decoding error (with all its violations) to the gateway's error handler.
func Capture(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &body{ReadCloser: r.Body}
		}
		next.ServeHTTP(w, r)
	})
}

// ErrorOf returns the decoding error of r's body when it was wrapped by Capture
// and could not be decoded; otherwise fallback.
func ErrorOf(r *http.Request, fallback error) error {
	if b, ok := r.Body.(*body); ok && b.err != nil {
		return b.err
	}
	return fallback
}

// MethodNotAllowed is a grpc-gateway routing error handler that answers a known
// path called with the wrong method with 405 (the gateway's default is 501), and
// other routing errors as the default does.
func MethodNotAllowed(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	if code != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
		return
	}
	WriteMethodNotAllowed(w, r, "")
}

// WriteMethodNotAllowed answers 405 with a JSON status body; allow, when known, is
// the Allow header ("POST").
func WriteMethodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	msg := "method " + r.Method + " is not allowed on " + r.URL.Path
	if allow != "" {
		msg += "; use " + allow
	}
	b, _ := json.Marshal(map[string]any{"code": 12, "message": msg, "details": []any{}})
	_, _ = w.Write(b)
}
