package server

import (
	"errors"
	"strings"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/eval"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/protobuf/types/known/structpb"
)

// validateFlag is the engine's validation on save of a flag as env will carry it:
// nil or an *eval.ValidationError with paths relative to the flag.
func validateFlag(f *manifestv1.Flag, env store.EnvView) error { return eval.ValidateFlag(f, env) }

// validateSegment is the engine's validation on save of a segment.
func validateSegment(s *manifestv1.Segment, env store.EnvView) error {
	return eval.ValidateSegment(s, env)
}

func valueTypeProblem(t manifestv1.FlagType, v *structpb.Value) string {
	if v == nil {
		return "is required"
	}
	switch t {
	case manifestv1.FlagType_FLAG_TYPE_BOOLEAN:
		if _, ok := v.GetKind().(*structpb.Value_BoolValue); !ok {
			return "must be a boolean"
		}
	case manifestv1.FlagType_FLAG_TYPE_STRING:
		if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
			return "must be a string"
		}
	case manifestv1.FlagType_FLAG_TYPE_NUMBER:
		if _, ok := v.GetKind().(*structpb.Value_NumberValue); !ok {
			return "must be a number"
		}
	case manifestv1.FlagType_FLAG_TYPE_JSON:
		if _, ok := v.GetKind().(*structpb.Value_NullValue); ok {
			return "must not be null"
		}
	}
	return ""
}

// validationError turns a validator's error into errs.InvalidArgument naming the
// request field: field(path) maps a path relative to the validated value to the
// request's field path (e.g. "rules[2]" -> "segment.rules[2]").
func validationError(err error, field func(path string) string) error {
	if err == nil {
		return nil
	}
	var ve *eval.ValidationError
	if errors.As(err, &ve) && len(ve.Errors) > 0 {
		vs := make([]errs.Violation, len(ve.Errors))
		for i, fe := range ve.Errors {
			vs[i] = errs.Violation{Field: field(fe.Path), Description: fe.Message}
		}
		e := errs.InvalidAll(vs)
		e.Err = err
		return e
	}
	return err
}

// under returns a field mapper that puts paths under prefix.
func under(prefix string) func(string) string {
	return func(p string) string {
		if p == "" {
			return prefix
		}
		return prefix + "." + p
	}
}

// configField maps a flag-relative path for UpdateFlagConfig, whose request field
// "config" is the flag's config: "config.rules[2]" stays as it is.
func configField(p string) string {
	if p == "config" || strings.HasPrefix(p, "config.") {
		return p
	}
	return "flag." + p
}
