package reqcodec

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
)

// AppendEvaluateResponse appends r as protojson writes it (lowerCamelCase names,
// fields in number order, empty ones omitted, manifestVersion as a quoted
// integer), without spaces. ok is false when protojson would fail (a Value with
// no kind, a non-finite number, invalid UTF-8): the caller then uses protojson.
func AppendEvaluateResponse(b []byte, r *evaluationv1.EvaluateResponse) ([]byte, bool) {
	b, ok := appendResult(append(b, '{'), Result{Value: r.Value, Variant: r.Variant, Reason: r.Reason,
		RuleID: r.RuleId, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage})
	if !ok {
		return b, false
	}
	first := len(b) > 0 && b[len(b)-1] == '{'
	if r.FlagKey != "" {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `"flagKey":`...)
		if b, ok = AppendString(b, r.FlagKey); !ok {
			return b, false
		}
	}
	if r.ManifestVersion != 0 {
		if !first {
			b = append(b, ',')
		}
		b = append(b, `"manifestVersion":"`...)
		b = strconv.AppendUint(b, r.ManifestVersion, 10)
		b = append(b, '"')
	}
	return append(b, '}'), true
}

// Result is one decision: the fields EvaluateResponse and EvaluationResult share.
type Result struct {
	Value                                            *structpb.Value
	Variant, Reason, RuleID, ErrorCode, ErrorMessage string
}

// AppendResult appends r as protojson writes a flagforge.evaluation.v1
// EvaluationResult; ok as for AppendEvaluateResponse.
func AppendResult(b []byte, r Result) ([]byte, bool) {
	b, ok := appendResult(append(b, '{'), r)
	return append(b, '}'), ok
}

// appendResult appends r's members (after the opening brace) in field order.
func appendResult(b []byte, r Result) ([]byte, bool) {
	var ok bool
	first := true
	if r.Value != nil {
		first = false
		b = append(b, `"value":`...)
		if b, ok = AppendValue(b, r.Value); !ok {
			return b, false
		}
	}
	for _, f := range [...]struct{ name, v string }{
		{`"variant":`, r.Variant}, {`"reason":`, r.Reason}, {`"ruleId":`, r.RuleID},
		{`"errorCode":`, r.ErrorCode}, {`"errorMessage":`, r.ErrorMessage},
	} {
		if f.v == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.name...)
		if b, ok = AppendString(b, f.v); !ok {
			return b, false
		}
	}
	return b, true
}

// AppendValue appends v as protojson writes a google.protobuf.Value (object
// members sorted by name, as protojson orders them).
func AppendValue(b []byte, v *structpb.Value) ([]byte, bool) {
	return appendValue(b, v, 0)
}

func appendValue(b []byte, v *structpb.Value, depth int) ([]byte, bool) {
	if depth > maxNesting {
		return b, false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return append(b, "null"...), true
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(b, k.BoolValue), true
	case *structpb.Value_NumberValue:
		return AppendNumber(b, k.NumberValue)
	case *structpb.Value_StringValue:
		return AppendString(b, k.StringValue)
	case *structpb.Value_ListValue:
		if k.ListValue == nil {
			return b, false
		}
		b = append(b, '[')
		for i, e := range k.ListValue.Values {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case *structpb.Value_StructValue:
		if k.StructValue == nil {
			return b, false
		}
		fields := k.StructValue.Fields
		keys := make([]string, 0, len(fields))
		for key := range fields {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, key := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = AppendString(b, key); !ok {
				return b, false
			}
			b = append(b, ':')
			if b, ok = appendValue(b, fields[key], depth+1); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	}
	return b, false
}

// AppendNumber appends a finite number as protojson (and encoding/json) write it;
// ok is false for NaN and infinities.
func AppendNumber(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// AppendString appends s quoted as protojson writes it; ok is false when s is not
// valid UTF-8.
func AppendString(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return b, false
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}
