package eval

import (
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"
)

// Limits on a context (docs/evaluation.md). A context over a limit is refused with an
// *InvalidContextError, never truncated.
const (
	// MaxAttributes is the number of top-level attributes.
	MaxAttributes = 256
	// MaxValues is the number of values in all: every attribute value, list element
	// and object member counts, containers included.
	MaxValues = 1024
	// MaxDepth is the nesting depth: a top-level attribute's value is at depth 1, the
	// elements of a list or object at depth d are at depth d+1.
	MaxDepth = 8
	// MaxStringBytes is the length of a string value.
	MaxStringBytes = 8 << 10
	// MaxNameBytes is the length of an attribute name (at any level).
	MaxNameBytes = 256
)

// TargetingKey is the attribute naming the subject of an evaluation.
const TargetingKey = "targetingKey"

// InvalidContextError says why a context was refused. Callers map it to
// INVALID_ARGUMENT.
type InvalidContextError struct {
	// Attribute is the dotted path of the offending value ("" for the whole context).
	Attribute string
	// Problem describes what is wrong.
	Problem string
}

func (e *InvalidContextError) Error() string {
	if e.Attribute == "" {
		return "invalid context: " + e.Problem
	}
	return fmt.Sprintf("invalid context: attribute %q: %s", e.Attribute, e.Problem)
}

// Context is an evaluation context: attribute name -> JSON value. It is immutable
// and safe for concurrent use. A nil *Context is an empty context.
type Context struct {
	attrs map[string]any
	// key is targetingKey as a string (numbers and booleans formatted as for
	// bucketing); hasKey is false when it is missing, null, a list or an object.
	key    string
	hasKey bool
}

// NewContext builds a context from Go values. Accepted: nil, bool, string, float64,
// float32, the integer types, []any, []string, map[string]any. Numbers must be
// finite. The map is kept as it is (not copied) when it holds only JSON-native values
// (nil, bool, float64, string, []any, map[string]any); the caller must not modify it
// afterwards. Otherwise a converted copy is made.
func NewContext(attrs map[string]any) (*Context, error) {
	if len(attrs) > MaxAttributes {
		return nil, &InvalidContextError{Problem: fmt.Sprintf("%d attributes, at most %d allowed", len(attrs), MaxAttributes)}
	}
	lim := limiter{}
	native := true
	for k, v := range attrs {
		n, err := lim.check(k, v, 1, "")
		if err != nil {
			return nil, err
		}
		native = native && n
	}
	if !native {
		conv := make(map[string]any, len(attrs))
		for k, v := range attrs {
			conv[k] = toNative(v)
		}
		attrs = conv
	}
	return newContext(attrs), nil
}

// ContextFromStruct builds a context from a protobuf Struct (as received over gRPC).
// A nil Struct is an empty context.
func ContextFromStruct(s *structpb.Struct) (*Context, error) {
	fields := s.GetFields()
	if len(fields) > MaxAttributes {
		return nil, &InvalidContextError{Problem: fmt.Sprintf("%d attributes, at most %d allowed", len(fields), MaxAttributes)}
	}
	lim := limiter{}
	attrs := make(map[string]any, len(fields))
	for k, v := range fields {
		n, err := lim.fromProto(k, v, 1, "")
		if err != nil {
			return nil, err
		}
		attrs[k] = n
	}
	return newContext(attrs), nil
}

func newContext(attrs map[string]any) *Context {
	c := &Context{attrs: attrs}
	if v, ok := attrs[TargetingKey]; ok {
		c.key, c.hasKey = valueString(v)
	}
	return c
}

// Attributes returns the context's attributes (shared: do not mutate).
func (c *Context) Attributes() map[string]any {
	if c == nil {
		return nil
	}
	return c.attrs
}

// limiter counts values while a context is checked.
type limiter struct{ values int }

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func (l *limiter) enter(name string, depth int, parent string) error {
	if len(name) > MaxNameBytes {
		return &InvalidContextError{Attribute: join(parent, name[:32]+"…"), Problem: fmt.Sprintf("name longer than %d bytes", MaxNameBytes)}
	}
	if depth > MaxDepth {
		return &InvalidContextError{Attribute: join(parent, name), Problem: fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
	}
	l.values++
	if l.values > MaxValues {
		return &InvalidContextError{Problem: fmt.Sprintf("more than %d values", MaxValues)}
	}
	return nil
}

func checkString(path, s string) error {
	if len(s) > MaxStringBytes {
		return &InvalidContextError{Attribute: path, Problem: fmt.Sprintf("string longer than %d bytes", MaxStringBytes)}
	}
	return nil
}

func checkNumber(path string, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return &InvalidContextError{Attribute: path, Problem: "number is not finite"}
	}
	return nil
}

// check validates v (named name, at depth) and reports whether it is JSON-native.
func (l *limiter) check(name string, v any, depth int, parent string) (bool, error) {
	if err := l.enter(name, depth, parent); err != nil {
		return false, err
	}
	path := join(parent, name)
	switch v := v.(type) {
	case nil, bool:
		return true, nil
	case string:
		return true, checkString(path, v)
	case float64:
		return true, checkNumber(path, v)
	case float32:
		return false, checkNumber(path, float64(v))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return false, nil
	case []string:
		for i, s := range v {
			if _, err := l.check(strconv.Itoa(i), s, depth+1, path); err != nil {
				return false, err
			}
		}
		return false, nil
	case []any:
		native := true
		for i, e := range v {
			n, err := l.check(strconv.Itoa(i), e, depth+1, path)
			if err != nil {
				return false, err
			}
			native = native && n
		}
		return native, nil
	case map[string]any:
		native := true
		for k, e := range v {
			n, err := l.check(k, e, depth+1, path)
			if err != nil {
				return false, err
			}
			native = native && n
		}
		return native, nil
	}
	return false, &InvalidContextError{Attribute: path, Problem: fmt.Sprintf("unsupported value type %T", v)}
}

// toNative converts a value accepted by limiter.check to a JSON-native one.
func toNative(v any) any {
	switch v := v.(type) {
	case float32:
		return float64(v)
	case int:
		return float64(v)
	case int8:
		return float64(v)
	case int16:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint:
		return float64(v)
	case uint8:
		return float64(v)
	case uint16:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = toNative(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = toNative(e)
		}
		return out
	}
	return v
}

// fromProto checks and converts a structpb value. A nil value or kind is null.
func (l *limiter) fromProto(name string, v *structpb.Value, depth int, parent string) (any, error) {
	if err := l.enter(name, depth, parent); err != nil {
		return nil, err
	}
	path := join(parent, name)
	switch k := v.GetKind().(type) {
	case *structpb.Value_BoolValue:
		return k.BoolValue, nil
	case *structpb.Value_StringValue:
		return k.StringValue, checkString(path, k.StringValue)
	case *structpb.Value_NumberValue:
		return k.NumberValue, checkNumber(path, k.NumberValue)
	case *structpb.Value_ListValue:
		vals := k.ListValue.GetValues()
		out := make([]any, len(vals))
		for i, e := range vals {
			n, err := l.fromProto(strconv.Itoa(i), e, depth+1, path)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case *structpb.Value_StructValue:
		fields := k.StructValue.GetFields()
		out := make(map[string]any, len(fields))
		for key, e := range fields {
			n, err := l.fromProto(key, e, depth+1, path)
			if err != nil {
				return nil, err
			}
			out[key] = n
		}
		return out, nil
	}
	return nil, nil
}

// valueString is the string form of a value for individual targeting, segment
// inclusion and bucketing: strings as they are, numbers in shortest decimal form
// without exponent, booleans "true"/"false"; anything else is missing.
func valueString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// appendValueString appends the valueString form of v to b without allocating for
// strings and booleans.
func appendValueString(b []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case string:
		return append(b, v...), true
	case float64:
		return strconv.AppendFloat(b, v, 'f', -1, 64), true
	case bool:
		return strconv.AppendBool(b, v), true
	}
	return b, false
}

// attrPath is a clause attribute resolved at compile time.
type attrPath struct {
	name string
	// dotted is true when name contains a dot, so nested lookups are tried after
	// the exact key.
	dotted bool
}

func newAttrPath(name string) attrPath {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return attrPath{name: name, dotted: true}
		}
	}
	return attrPath{name: name}
}

// lookup returns the attribute's value; ok is false when it is absent or null.
func (c *Context) lookup(p *attrPath) (any, bool) {
	if c == nil {
		return nil, false
	}
	if !p.dotted {
		v := c.attrs[p.name]
		return v, v != nil
	}
	v, ok := find(c.attrs, p.name, 0)
	return v, ok && v != nil
}

// find looks s up in m: the exact key first, then every split at a dot from the
// left, descending into objects. depth bounds the recursion by the context limits.
func find(m map[string]any, s string, depth int) (any, bool) {
	if v, ok := m[s]; ok {
		return v, true
	}
	if depth >= MaxDepth {
		return nil, false
	}
	// A context key is at most MaxNameBytes long: no longer prefix can be one.
	for i := 0; i < len(s) && i <= MaxNameBytes; i++ {
		if s[i] != '.' {
			continue
		}
		sub, ok := m[s[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := find(sub, s[i+1:], depth+1); ok {
			return v, true
		}
	}
	return nil, false
}
