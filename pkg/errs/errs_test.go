package errs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestGRPCStatusMapsEveryKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"nil is OK", nil, codes.OK, ""},
		{"invalid argument names the field", Invalid("config.rules[0].id", "not a slug"), codes.InvalidArgument, "config.rules[0].id: not a slug"},
		{"not found", E(NotFound, "flag %q not found", "x"), codes.NotFound, `flag "x" not found`},
		{"already exists", E(AlreadyExists, "exists"), codes.AlreadyExists, "exists"},
		{"stale revision is aborted", E(Aborted, "stale revision"), codes.Aborted, "stale revision"},
		{"failed precondition", E(FailedPrecondition, "in use"), codes.FailedPrecondition, "in use"},
		{"permission denied", E(PermissionDenied, "no"), codes.PermissionDenied, "no"},
		{"unauthenticated", E(Unauthenticated, "bad token"), codes.Unauthenticated, "bad token"},
		{"resource exhausted", &Error{Kind: ResourceExhausted, Message: "slow down", RetryAfter: time.Second}, codes.ResourceExhausted, "slow down"},
		{"unavailable", E(Unavailable, "db down"), codes.Unavailable, "db down"},
		{"internal hides its cause", Wrap(Internal, errors.New("secret dsn"), "boom"), codes.Internal, "internal error"},
		{"unclassified is internal", errors.New("secret"), codes.Internal, "internal error"},
		{"wrapped kind keeps its code", fmt.Errorf("saving: %w", E(Aborted, "stale")), codes.Aborted, "stale"},
		{"bare kind", fmt.Errorf("x: %w", NotFound), codes.NotFound, "not found"},
		{"context canceled", context.Canceled, codes.Canceled, "request canceled"},
		{"deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "deadline exceeded"},
		{"grpc status passes through", status.Error(codes.NotFound, "remote"), codes.NotFound, "remote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := GRPCStatus(tt.err)
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Fatalf("GRPCStatus(%v) = %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.code, tt.message)
			}
		})
	}
}

func TestInvalidArgumentCarriesFieldViolation(t *testing.T) {
	t.Parallel()
	st := GRPCStatus(Invalid("flag.key", "must be a lowercase slug"))
	var found bool
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == "flag.key" {
			found = true
		}
	}
	if !found {
		t.Fatalf("details %v lack a field violation for flag.key", st.Details())
	}
}

func TestRetryInfoOnResourceExhaustedAndUnavailable(t *testing.T) {
	t.Parallel()
	for _, k := range []Kind{ResourceExhausted, Unavailable} {
		st := GRPCStatus(&Error{Kind: k, Message: "come back later", RetryAfter: 1500 * time.Millisecond})
		found := false
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() == 1500*time.Millisecond {
				found = true
			}
		}
		if !found {
			t.Errorf("%v: details %v lack RetryInfo", k, st.Details())
		}
	}
}

func TestKindMatchesWithErrorsIs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("update: %w", E(Aborted, "stale"))
	if !errors.Is(err, Aborted) || errors.Is(err, NotFound) {
		t.Fatal("errors.Is does not match by kind")
	}
	if KindOf(err) != Aborted || KindOf(errors.New("x")) != Internal {
		t.Fatal("KindOf")
	}
}

func TestRetryAfterSecondsRoundsUp(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", 100 * time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2"} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestJSONPathAndAllViolations(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"config.default_serve.rollout.bucket_by": "config.defaultServe.rollout.bucketBy",
		"page_size":                              "pageSize",
		`flags["my_flag"].client_visible`:        `flags["my_flag"].clientVisible`,
		"rules[2].clauses[0]":                    "rules[2].clauses[0]",
	} {
		if got := JSONPath(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	err := JSONFields(InvalidAll([]Violation{{"flag.client_visible", "a"}, {"page_size", "b"}}))
	st := GRPCStatus(err)
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		br, _ = d.(*errdetails.BadRequest)
	}
	if br == nil || len(br.GetFieldViolations()) != 2 || br.GetFieldViolations()[1].GetField() != "pageSize" || !strings.Contains(st.Message(), "flag.clientVisible: a (and 1 more") {
		t.Fatalf("%v %v", st.Message(), br)
	}
}
