// Package errs is FlagForge's one error vocabulary. Every layer returns these kinds
// (wrapping causes with %w); exactly one place turns them into gRPC status codes
// (GRPCStatus, used by the servers' interceptors) and grpc-gateway turns those into
// HTTP statuses. Callers match kinds with errors.Is(err, errs.NotFound) or read
// details with errors.As(err, &*errs.Error); never by comparing err.Error().
package errs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Kind classifies an error. A Kind is itself an error, so errors.Is(err, errs.NotFound)
// works for any *Error of that kind.
type Kind int

// The kinds, with their gRPC code and HTTP status.
const (
	// Internal: a bug or an unexpected failure (INTERNAL / 500). The message is not
	// shown to callers.
	Internal Kind = iota
	// InvalidArgument: the request is malformed; Field names the offending field
	// (INVALID_ARGUMENT / 400).
	InvalidArgument
	// NotFound: the resource does not exist, or the caller may not know it exists
	// (NOT_FOUND / 404).
	NotFound
	// AlreadyExists: a create collided with an existing key (ALREADY_EXISTS / 409).
	AlreadyExists
	// Aborted: the revision an update was based on is stale (ABORTED / 409).
	Aborted
	// FailedPrecondition: the system is not in a state that allows the operation,
	// e.g. deleting a flag another flag requires (FAILED_PRECONDITION / 400).
	FailedPrecondition
	// PermissionDenied: authenticated, but not allowed (PERMISSION_DENIED / 403).
	PermissionDenied
	// Unauthenticated: missing, invalid, expired or revoked credentials
	// (UNAUTHENTICATED / 401).
	Unauthenticated
	// ResourceExhausted: a rate or size limit was hit; RetryAfter says when to come
	// back (RESOURCE_EXHAUSTED / 429).
	ResourceExhausted
	// Unavailable: a dependency is down or the service is not ready; retry later,
	// after RetryAfter when set (UNAVAILABLE / 503).
	Unavailable
)

var kindNames = map[Kind]string{
	Internal: "internal", InvalidArgument: "invalid argument", NotFound: "not found",
	AlreadyExists: "already exists", Aborted: "aborted", FailedPrecondition: "failed precondition",
	PermissionDenied: "permission denied", Unauthenticated: "unauthenticated",
	ResourceExhausted: "resource exhausted", Unavailable: "unavailable",
}

func (k Kind) Error() string { return kindNames[k] }

// Code is the gRPC code of the kind.
func (k Kind) Code() codes.Code {
	switch k {
	case InvalidArgument:
		return codes.InvalidArgument
	case NotFound:
		return codes.NotFound
	case AlreadyExists:
		return codes.AlreadyExists
	case Aborted:
		return codes.Aborted
	case FailedPrecondition:
		return codes.FailedPrecondition
	case PermissionDenied:
		return codes.PermissionDenied
	case Unauthenticated:
		return codes.Unauthenticated
	case ResourceExhausted:
		return codes.ResourceExhausted
	case Unavailable:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// Error is a classified error.
type Error struct {
	Kind Kind
	// Field is the request field at fault (InvalidArgument), as a JSON path such as
	// "config.rules[2].clauses[0].values[1]".
	Field string
	// Message is safe to show to the caller.
	Message string
	// RetryAfter is set on ResourceExhausted, and on Unavailable when the caller
	// should come back after a while (e.g. an evaluator still loading).
	RetryAfter time.Duration
	// Err is the cause (not shown to callers).
	Err error
	// Violations, when set, lists every invalid field of the request (Field and
	// Message then repeat the first), so a caller fixes them all in one go.
	Violations []Violation
}

// Violation is one invalid field of a request: Field is its path as the request
// spells it ("flag.variants[1].key"), Description what is wrong with it.
type Violation struct {
	Field       string
	Description string
}

// InvalidAll reports every violation at once (nil when vs is empty).
func InvalidAll(vs []Violation) *Error {
	if len(vs) == 0 {
		return nil
	}
	return &Error{Kind: InvalidArgument, Field: vs[0].Field, Message: vs[0].Description, Violations: vs}
}

// ViolationsOf returns the invalid fields err names: its Violations, else its one
// Field (nil when err is not an InvalidArgument naming a field).
func ViolationsOf(err error) []Violation {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	if len(e.Violations) > 0 {
		return e.Violations
	}
	if e.Field != "" {
		return []Violation{{Field: e.Field, Description: e.Message}}
	}
	return nil
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		if msg == "" {
			return e.Err.Error()
		}
		return msg + ": " + e.Err.Error()
	}
	if msg == "" {
		return e.Kind.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, kind) true for an *Error of that kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// E builds an error of kind with a message (fmt.Sprintf semantics).
func E(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies cause with kind and a message.
func Wrap(kind Kind, cause error, message string) *Error {
	return &Error{Kind: kind, Message: message, Err: cause}
}

// Invalid reports an invalid field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err: the kind of the first *Error in its chain, the
// kind err is, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var k Kind
	if errors.As(err, &k) {
		return k
	}
	return Internal
}

// GRPCStatus converts any error into the gRPC status callers see. This is the one
// mapping from the vocabulary to gRPC; the servers' interceptors call it. Errors that
// already carry a status (from a gRPC client) pass through; context cancellation and
// deadlines map to CANCELED and DEADLINE_EXCEEDED; anything unclassified is INTERNAL
// with a generic message (the cause is for logs only).
func GRPCStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var e *Error
	if !errors.As(err, &e) {
		if s, ok := status.FromError(err); ok {
			return s
		}
		switch {
		case errors.Is(err, context.Canceled):
			return status.New(codes.Canceled, "request canceled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.New(codes.DeadlineExceeded, "deadline exceeded")
		}
		var k Kind
		if errors.As(err, &k) {
			return status.New(k.Code(), k.Error())
		}
		return status.New(codes.Internal, "internal error")
	}
	if e.Kind == Internal {
		return status.New(codes.Internal, "internal error")
	}
	msg := e.Message
	if msg == "" {
		msg = e.Kind.Error()
	}
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if n := len(e.Violations); n > 1 {
		msg += fmt.Sprintf(" (and %d more invalid field%s, see details)", n-1, map[bool]string{true: "", false: "s"}[n == 2])
	}
	st := status.New(e.Kind.Code(), msg)
	switch {
	case e.Field != "" || len(e.Violations) > 0:
		br := &errdetails.BadRequest{}
		for _, v := range ViolationsOf(e) {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		if d, err := st.WithDetails(br); err == nil {
			st = d
		}
	case (e.Kind == ResourceExhausted || e.Kind == Unavailable) && e.RetryAfter > 0:
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)}); err == nil {
			st = d
		}
	}
	return st
}

// JSONFields returns err with every field path spelled with JSON (lowerCamelCase)
// names, "config.default_serve.bucket_by" -> "config.defaultServe.bucketBy", the
// way REST callers and protojson spell them. Map keys and indexes in brackets are
// kept as they are. Errors without fields are returned unchanged; err itself is
// not modified.
func JSONFields(err error) error {
	var e *Error
	if !errors.As(err, &e) || (e.Field == "" && len(e.Violations) == 0) {
		return err
	}
	c := *e
	c.Field = JSONPath(e.Field)
	c.Violations = make([]Violation, len(e.Violations))
	for i, v := range e.Violations {
		c.Violations[i] = Violation{Field: JSONPath(v.Field), Description: v.Description}
	}
	if len(e.Violations) == 0 {
		c.Violations = nil
	}
	return &c
}

// JSONPath turns the snake_case segments of a field path into lowerCamelCase,
// leaving bracketed parts ("[2]", "[\"my_key\"]") alone.
func JSONPath(p string) string {
	var b []byte
	depth, upper := 0, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case depth == 0 && c == '_' && i > 0 && i+1 < len(p) && p[i-1] != '.' && p[i+1] != '.':
			upper = true
			continue
		case upper && c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		upper = false
		b = append(b, c)
	}
	return string(b)
}

// RetryAfterSeconds renders d as an HTTP Retry-After value (whole seconds, at least 1).
func RetryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
