package eval

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"
)

// Reason says why a Result has its value. The names are OpenFeature's.
type Reason string

// Reasons, in docs/evaluation.md.
const (
	// ReasonStatic: the flag is on and serves one variant to everyone.
	ReasonStatic Reason = "STATIC"
	// ReasonDefault: no target or rule matched; defaultServe gave one variant.
	ReasonDefault Reason = "DEFAULT"
	// ReasonTargetingMatch: an individual target or a rule serving one variant matched.
	ReasonTargetingMatch Reason = "TARGETING_MATCH"
	// ReasonSplit: a percentage rollout chose the variant.
	ReasonSplit Reason = "SPLIT"
	// ReasonDisabled: the flag is off.
	ReasonDisabled Reason = "DISABLED"
	// ReasonPrerequisiteFailed: a prerequisite was not met.
	ReasonPrerequisiteFailed Reason = "PREREQUISITE_FAILED"
	// ReasonError: the caller's default was served because of ErrorCode.
	ReasonError Reason = "ERROR"
)

// ErrorCode qualifies a Result with ReasonError. The names are OpenFeature's.
type ErrorCode string

// Error codes, in docs/evaluation.md.
const (
	// ErrorFlagNotFound: the manifest holds no flag with this key.
	ErrorFlagNotFound ErrorCode = "FLAG_NOT_FOUND"
	// ErrorTypeMismatch: the caller asked for another type than the flag's.
	ErrorTypeMismatch ErrorCode = "TYPE_MISMATCH"
	// ErrorTargetingKeyMissing: the defaultServe rollout has no value to bucket by.
	ErrorTargetingKeyMissing ErrorCode = "TARGETING_KEY_MISSING"
	// ErrorParse: the flag's configuration (or a segment it met) is broken.
	ErrorParse ErrorCode = "PARSE_ERROR"
	// ErrorGeneral: any other failure, e.g. a prerequisite or segment cycle.
	ErrorGeneral ErrorCode = "GENERAL"
)

// ValueType is the type a caller asks for, or the type of a flag.
type ValueType uint8

// Value types. Any asks for no particular type and never mismatches.
const (
	Any ValueType = iota
	Bool
	String
	Number
	JSON
)

// String returns the name used in the test vectors and the REST API: "", "boolean",
// "string", "number" or "json".
func (t ValueType) String() string {
	switch t {
	case Bool:
		return "boolean"
	case String:
		return "string"
	case Number:
		return "number"
	case JSON:
		return "json"
	}
	return ""
}

// ParseValueType is the inverse of ValueType.String ("" is Any).
func ParseValueType(s string) (ValueType, error) {
	switch s {
	case "":
		return Any, nil
	case "boolean":
		return Bool, nil
	case "string":
		return String, nil
	case "number":
		return Number, nil
	case "json":
		return JSON, nil
	}
	return Any, fmt.Errorf("eval: unknown value type %q", s)
}

// Result is the outcome of one evaluation (design/EVALUATION.md, "Result").
type Result struct {
	// Value is the served value: the variant's value as a Go JSON-native value (nil,
	// bool, float64, string, []any, map[string]any), or the caller's default when
	// Variant is empty. Shared with the manifest: do not mutate.
	Value any
	// ProtoValue is the variant's value as stored in the manifest; nil when the
	// caller's default was served. Shared with the manifest: do not mutate.
	ProtoValue *structpb.Value
	// Variant is the served variant's key, "" when the caller's default was served.
	Variant string
	Reason  Reason
	// RuleID is the id of the matching rule (TARGETING_MATCH or SPLIT from a rule).
	RuleID string
	// ErrorCode is set only with ReasonError.
	ErrorCode    ErrorCode
	ErrorMessage string
	FlagKey      string
	// ManifestVersion is the version of the manifest that decided.
	ManifestVersion uint64
}
