// Package strictjson decodes JSON request bodies into protobuf messages the way a
// careful API should: an unknown field is an error naming it (with "did you mean"
// when a known field is close), enum values accept the short lowercase names the
// docs use ("in", "semver_gt", "boolean") as well as the full names, a value of the
// wrong JSON shape names its field path, and every problem of a body is reported at
// once as errs.Violations. Paths are spelled as the request spells them: the JSON
// (lowerCamelCase) names the caller sent, with list indexes and map keys.
//
// The contract: Unmarshal either fills m exactly as protojson.Unmarshal would with
// the normalized body, or returns an *errs.Error of kind InvalidArgument and leaves
// m in an unspecified state.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flagforge/flagforge/pkg/errs"
)

// maxViolations bounds the violations reported for one body.
const maxViolations = 50

// Unmarshal decodes the JSON body data into m strictly (see the package comment).
// An empty body (only whitespace) leaves m unchanged.
func Unmarshal(data []byte, m proto.Message) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return syntaxError(data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errs.Invalid("", "the request body must hold exactly one JSON value")
	}
	w := &walker{}
	tree = w.message(tree, m.ProtoReflect().Descriptor(), "")
	if len(w.violations) > 0 {
		return errs.InvalidAll(w.violations)
	}
	norm, err := json.Marshal(tree)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "the request body is not valid JSON")
	}
	if err := protojson.Unmarshal(norm, m); err != nil {
		// The walker checks shapes first, so this is rare (e.g. a malformed timestamp).
		return errs.E(errs.InvalidArgument, "%s", strings.TrimPrefix(err.Error(), "proto: "))
	}
	return nil
}

// syntaxError names where a body stops being JSON.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(data, se.Offset)
		return errs.E(errs.InvalidArgument, "the request body is not valid JSON: %s (line %d, column %d)", se.Error(), line, col)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errs.E(errs.InvalidArgument, "the request body is not valid JSON: it ends too early")
	}
	return errs.Wrap(errs.InvalidArgument, err, "the request body is not valid JSON")
}

func position(data []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

type walker struct {
	violations []Violation
}

// Violation is errs.Violation (re-exported for readers of this package).
type Violation = errs.Violation

func (w *walker) fail(path, format string, args ...any) {
	if len(w.violations) < maxViolations {
		w.violations = append(w.violations, Violation{Field: path, Description: fmt.Sprintf(format, args...)})
	}
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// kindOf names the JSON type of v for messages ("got an array").
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "an unknown value"
}

// wellKnown are the message types protojson spells as something else than an
// object; their checks are below.
func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.FullName().Parent() == "google.protobuf"
}

// message checks v against md and returns it with enum values normalized.
func (w *walker) message(v any, md protoreflect.MessageDescriptor, path string) any {
	if v == nil {
		return nil
	}
	if wellKnown(md) {
		return w.wellKnown(v, md, path)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		w.fail(path, "must be an object, got %s", kindOf(v))
		return v
	}
	fields := md.Fields()
	oneofs := map[protoreflect.FullName]string{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic violation order
	for _, k := range keys {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		fp := join(path, k)
		if fd == nil {
			if s := suggest(k, md); s != "" {
				w.fail(fp, "unknown field %q; did you mean %q?", k, s)
			} else {
				w.fail(fp, "unknown field %q; known fields: %s", k, strings.Join(jsonNames(md), ", "))
			}
			continue
		}
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() && obj[k] != nil {
			if other, dup := oneofs[o.FullName()]; dup {
				w.fail(fp, "only one of %q and %q may be set", other, k)
			}
			oneofs[o.FullName()] = k
		}
		obj[k] = w.field(obj[k], fd, fp)
	}
	return obj
}

// field checks the value of one field (a list, a map or a single value).
func (w *walker) field(v any, fd protoreflect.FieldDescriptor, path string) any {
	if v == nil {
		return nil
	}
	switch {
	case fd.IsList():
		arr, ok := v.([]any)
		if !ok {
			w.fail(path, "must be an array, got %s", kindOf(v))
			return v
		}
		for i := range arr {
			arr[i] = w.single(arr[i], fd, fmt.Sprintf("%s[%d]", path, i))
		}
		return arr
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			w.fail(path, "must be an object, got %s", kindOf(v))
			return v
		}
		for k, e := range obj {
			obj[k] = w.single(e, fd.MapValue(), fmt.Sprintf("%s[%q]", path, k))
		}
		return obj
	}
	return w.single(v, fd, path)
}

// single checks one value of fd's kind.
func (w *walker) single(v any, fd protoreflect.FieldDescriptor, path string) any {
	if v == nil {
		return nil
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.message(v, fd.Message(), path)
	case protoreflect.EnumKind:
		return w.enum(v, fd.Enum(), path)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			w.fail(path, "must be true or false, got %s", kindOf(v))
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			w.fail(path, "must be a string, got %s", kindOf(v))
		}
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			w.fail(path, "must be a base64 string, got %s", kindOf(v))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		switch x := v.(type) {
		case json.Number:
		case string:
			if _, err := strconv.ParseFloat(x, 64); err != nil && x != "NaN" && x != "Infinity" && x != "-Infinity" {
				w.fail(path, "must be a number, got %q", x)
			}
		default:
			w.fail(path, "must be a number, got %s", kindOf(v))
		}
	default: // the integer kinds
		w.integer(v, fd.Kind(), path)
	}
	return v
}

func (w *walker) integer(v any, k protoreflect.Kind, path string) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string: // protojson accepts quoted integers (64-bit ones are written so)
		s = x
	default:
		w.fail(path, "must be an integer, got %s", kindOf(v))
		return
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) {
		w.fail(path, "must be an integer, got %s", s)
		return
	}
	lo, hi := float64(math.MinInt32), float64(math.MaxInt32)
	switch k {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		lo, hi = math.MinInt64, math.MaxInt64
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		lo, hi = 0, math.MaxUint32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		lo, hi = 0, math.MaxUint64
	}
	if f < lo || f > hi {
		w.fail(path, "must be an integer between %.0f and %.0f, got %s", lo, hi, s)
	}
}

// wellKnown checks the google.protobuf types protojson writes specially.
func (w *walker) wellKnown(v any, md protoreflect.MessageDescriptor, path string) any {
	switch md.Name() {
	case "Value":
		return v
	case "Struct":
		if _, ok := v.(map[string]any); !ok {
			w.fail(path, "must be an object, got %s", kindOf(v))
		}
	case "ListValue":
		if _, ok := v.([]any); !ok {
			w.fail(path, "must be an array, got %s", kindOf(v))
		}
	case "Timestamp":
		if _, ok := v.(string); !ok {
			w.fail(path, "must be an RFC 3339 time such as \"2030-01-02T15:04:05Z\", got %s", kindOf(v))
		}
	case "Duration":
		if _, ok := v.(string); !ok {
			w.fail(path, "must be a duration in seconds such as \"1.5s\", got %s", kindOf(v))
		}
	case "FieldMask":
		if _, ok := v.(string); !ok {
			w.fail(path, "must be a comma-separated list of field paths, got %s", kindOf(v))
		}
	}
	return v
}

// enum normalizes an enum value: the full name in any case, the short name (the
// value without the enum's prefix, e.g. "semver_gt" for OPERATOR_SEMVER_GT) in any
// case, or its number.
func (w *walker) enum(v any, ed protoreflect.EnumDescriptor, path string) any {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 32)
		if err != nil || ed.Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			w.fail(path, "unknown value %s; one of: %s", x, strings.Join(EnumNames(ed), ", "))
		}
		return v
	case string:
		if full, ok := EnumValue(ed, x); ok {
			return full
		}
		names := EnumNames(ed)
		if s := closest(strings.ToLower(x), names); s != "" {
			w.fail(path, "unknown value %q; did you mean %q? One of: %s", x, s, strings.Join(names, ", "))
		} else {
			w.fail(path, "unknown value %q; one of: %s", x, strings.Join(names, ", "))
		}
		return v
	}
	w.fail(path, "must be a string naming one of: %s; got %s", strings.Join(EnumNames(ed), ", "), kindOf(v))
	return v
}

// EnumPrefix is the prefix buf's lint rules put on every value of ed: its name in
// upper snake case plus "_" ("FlagType" -> "FLAG_TYPE_").
func EnumPrefix(ed protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(ed.Name()) {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String() + "_"
}

// ShortName is the short lowercase name of an enum value ("semver_gt").
func ShortName(v protoreflect.EnumValueDescriptor) string {
	ed := v.Parent().(protoreflect.EnumDescriptor)
	return strings.ToLower(strings.TrimPrefix(string(v.Name()), EnumPrefix(ed)))
}

// EnumNames lists the short names of ed's values, without the zero value when it
// is the UNSPECIFIED placeholder.
func EnumNames(ed protoreflect.EnumDescriptor) []string {
	vals := ed.Values()
	out := make([]string, 0, vals.Len())
	for i := range vals.Len() {
		v := vals.Get(i)
		if v.Number() == 0 && strings.HasSuffix(string(v.Name()), "_UNSPECIFIED") {
			continue
		}
		out = append(out, ShortName(v))
	}
	return out
}

// EnumValue resolves s (a full or short name, any case) to the value's full name.
func EnumValue(ed protoreflect.EnumDescriptor, s string) (string, bool) {
	up := strings.ToUpper(strings.TrimSpace(s))
	if up == "" {
		return "", false
	}
	vals := ed.Values()
	if v := vals.ByName(protoreflect.Name(up)); v != nil {
		return string(v.Name()), true
	}
	if v := vals.ByName(protoreflect.Name(EnumPrefix(ed) + up)); v != nil {
		return string(v.Name()), true
	}
	return "", false
}

func jsonNames(md protoreflect.MessageDescriptor) []string {
	fs := md.Fields()
	out := make([]string, 0, fs.Len())
	for i := range fs.Len() {
		out = append(out, fs.Get(i).JSONName())
	}
	return out
}

// suggest returns the JSON name of md's field closest to k, or "".
func suggest(k string, md protoreflect.MessageDescriptor) string {
	return closest(k, jsonNames(md))
}

// closest returns the candidate nearest to s: equal ignoring case, "_" and "-"; a
// prefix of it or it a prefix (3 characters at least: "bool" for "boolean"); or
// within an edit distance (with transpositions) of a third of its length (at least
// 1, at most 3).
func closest(s string, candidates []string) string {
	fold := func(x string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(x))
	}
	fs := fold(s)
	best, bestD := "", 0
	for _, c := range candidates {
		fc := fold(c)
		if fc == fs {
			return c
		}
		if len(fs) >= 3 && (strings.HasPrefix(fc, fs) || strings.HasPrefix(fs, fc)) && best == "" {
			best, bestD = c, 1
			continue
		}
		limit := min(max(len(fc)/3, 1), 3)
		if d := distance(fs, fc); d <= limit && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance of a and b: Levenshtein
// plus transpositions of adjacent characters ("tgas" is 1 from "tags").
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
