package reqcodec

import (
	"strconv"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/types/known/structpb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/strictjson"
)

// maxNesting bounds the nesting the decoders follow; deeper input takes the
// general path (the engine refuses a context deeper than eval.MaxDepth anyway).
const maxNesting = 64

// Evaluate is an EvaluateRequest decoded for the hot path.
type Evaluate struct {
	FlagKey string
	Type    manifestv1.FlagType
	// Default is default_value (nil: not sent).
	Default *structpb.Value
	// Attrs is the context's attributes as eval.NewContext takes them (nil: no
	// context sent, or null).
	Attrs map[string]any
}

// DecodeEvaluateJSON decodes the body of POST /v1/evaluate. ok is false when the
// body must take the general path (strictjson): see the package comment. The JSON
// names and the proto names of the fields are accepted, as strictjson does; type
// takes the names strictjson takes (not numbers: those take the general path).
func DecodeEvaluateJSON(b []byte, out *Evaluate) bool {
	*out = Evaluate{}
	d := jsonDec{b: b}
	d.ws()
	if !d.eat('{') {
		return false
	}
	var seen [4]bool
	d.ws()
	if !d.eat('}') {
		for {
			d.ws()
			name, ok := d.str()
			if !ok {
				return false
			}
			d.ws()
			if !d.eat(':') {
				return false
			}
			d.ws()
			if d.i >= len(d.b) || d.b[d.i] == 'n' { // null: the general path
				return false
			}
			switch name {
			case "flagKey", "flag_key":
				if seen[0] {
					return false
				}
				seen[0] = true
				if out.FlagKey, ok = d.str(); !ok {
					return false
				}
			case "context":
				if seen[1] {
					return false
				}
				seen[1] = true
				if d.b[d.i] != '{' {
					return false
				}
				if out.Attrs, ok = d.object(1); !ok {
					return false
				}
			case "defaultValue", "default_value":
				if seen[2] {
					return false
				}
				seen[2] = true
				v, ok := d.value(1)
				if !ok {
					return false
				}
				if out.Default, ok = protoValue(v); !ok {
					return false
				}
			case "type":
				if seen[3] {
					return false
				}
				seen[3] = true
				s, ok := d.str()
				if !ok {
					return false
				}
				full, ok := strictjson.EnumValue(manifestv1.FlagType(0).Descriptor(), s)
				if !ok {
					return false
				}
				out.Type = manifestv1.FlagType(manifestv1.FlagType_value[full])
			default:
				return false
			}
			d.ws()
			if d.eat('}') {
				break
			}
			if !d.eat(',') {
				return false
			}
		}
	}
	d.ws()
	return d.i == len(d.b)
}

// DecodeOFREPJSON decodes an OFREP evaluation body, {"context": {...}}: attrs is
// nil when the body is empty or its context absent or null. ok is false when the
// body must take the general path (any other member included: encoding/json
// matches member names without regard to case).
func DecodeOFREPJSON(b []byte) (attrs map[string]any, ok bool) {
	d := jsonDec{b: b}
	d.ws()
	if d.i == len(d.b) {
		return nil, true
	}
	if !d.eat('{') {
		return nil, false
	}
	d.ws()
	if !d.eat('}') {
		d.ws()
		name, ok := d.str()
		if !ok || name != "context" {
			return nil, false
		}
		d.ws()
		if !d.eat(':') {
			return nil, false
		}
		d.ws()
		switch {
		case d.lit("null"):
		case d.i < len(d.b) && d.b[d.i] == '{':
			if attrs, ok = d.object(1); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
		d.ws()
		if !d.eat('}') {
			return nil, false
		}
	}
	d.ws()
	return attrs, d.i == len(d.b)
}

// protoValue converts a decoded JSON value to a structpb.Value as protojson would.
func protoValue(v any) (*structpb.Value, bool) {
	pv, err := structpb.NewValue(v)
	return pv, err == nil
}

// jsonDec reads JSON from b at i. Every method returns false on anything it does
// not accept; the decoder is then abandoned.
type jsonDec struct {
	b []byte
	i int
}

func (d *jsonDec) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDec) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *jsonDec) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// value reads any JSON value at nesting depth.
func (d *jsonDec) value(depth int) (any, bool) {
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; c {
	case '"':
		return d.str()
	case '{':
		m, ok := d.object(depth + 1)
		return m, ok
	case '[':
		a, ok := d.array(depth + 1)
		return a, ok
	case 't':
		return true, d.lit("true")
	case 'f':
		return false, d.lit("false")
	case 'n':
		return nil, d.lit("null")
	}
	return d.num()
}

// object reads an object (d.b[d.i] is '{'). A duplicate member is refused:
// protojson refuses one in a Struct, encoding/json keeps the last.
func (d *jsonDec) object(depth int) (map[string]any, bool) {
	if depth > maxNesting || !d.eat('{') {
		return nil, false
	}
	m := make(map[string]any, 8)
	d.ws()
	if d.eat('}') {
		return m, true
	}
	for {
		d.ws()
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if !d.eat(':') {
			return nil, false
		}
		d.ws()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = v
		d.ws()
		if d.eat('}') {
			return m, true
		}
		if !d.eat(',') {
			return nil, false
		}
	}
}

func (d *jsonDec) array(depth int) ([]any, bool) {
	if depth > maxNesting || !d.eat('[') {
		return nil, false
	}
	a := make([]any, 0, 4)
	d.ws()
	if d.eat(']') {
		return a, true
	}
	for {
		d.ws()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.ws()
		if d.eat(']') {
			return a, true
		}
		if !d.eat(',') {
			return nil, false
		}
	}
}

// str reads a string (d.b[d.i] must be '"'). Invalid UTF-8 and escaped
// surrogates are refused (the general decoders disagree on them).
func (d *jsonDec) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			d.i = j + 1
			return string(s), true
		case c == '\\':
			return d.escaped(start, j)
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// escaped finishes a string holding an escape at j.
func (d *jsonDec) escaped(start, j int) (string, bool) {
	out := append(make([]byte, 0, j-start+16), d.b[start:j]...)
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", false
			}
			d.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", false
		}
		switch e := d.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if j+6 > len(d.b) {
				return "", false
			}
			r, err := strconv.ParseUint(unsafe.String(&d.b[j+2], 4), 16, 32)
			if err != nil || (r >= 0xD800 && r < 0xE000) || d.b[j+2] == '+' || d.b[j+2] == '-' {
				return "", false
			}
			out = utf8.AppendRune(out, rune(r))
			j += 6
			continue
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// num reads a number with JSON's grammar; one out of float64's range is refused.
func (d *jsonDec) num() (any, bool) {
	b, j := d.b, d.i
	digits := func() bool {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(unsafe.String(&b[d.i], j-d.i), 64)
	if err != nil {
		return nil, false
	}
	d.i = j
	return f, true
}

// EvaluateAll is an EvaluateAllRequest decoded for the hot path.
type EvaluateAll struct {
	// Attrs is the context (nil: none).
	Attrs map[string]any
	// FlagKeys are the flags asked for (nil: all).
	FlagKeys []string
}

// DecodeEvaluateAllJSON decodes the body of POST /v1/evaluate/all, as
// DecodeEvaluateJSON does /v1/evaluate's. An empty body takes the general path.
func DecodeEvaluateAllJSON(b []byte, out *EvaluateAll) bool {
	*out = EvaluateAll{}
	d := jsonDec{b: b}
	d.ws()
	if !d.eat('{') {
		return false
	}
	var seenCtx, seenKeys bool
	d.ws()
	if !d.eat('}') {
		for {
			d.ws()
			name, ok := d.str()
			if !ok {
				return false
			}
			d.ws()
			if !d.eat(':') {
				return false
			}
			d.ws()
			if d.i >= len(d.b) {
				return false
			}
			switch name {
			case "context":
				if seenCtx || d.b[d.i] != '{' {
					return false
				}
				seenCtx = true
				if out.Attrs, ok = d.object(1); !ok {
					return false
				}
			case "flagKeys", "flag_keys":
				if seenKeys || !d.eat('[') {
					return false
				}
				seenKeys = true
				if out.FlagKeys, ok = d.strings(); !ok {
					return false
				}
			default:
				return false
			}
			d.ws()
			if d.eat('}') {
				break
			}
			if !d.eat(',') {
				return false
			}
		}
	}
	d.ws()
	return d.i == len(d.b)
}

// strings reads the rest of an array of strings (after '[').
func (d *jsonDec) strings() ([]string, bool) {
	var out []string
	d.ws()
	if d.eat(']') {
		return out, true
	}
	for {
		d.ws()
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		d.ws()
		if d.eat(']') {
			return out, true
		}
		if !d.eat(',') {
			return nil, false
		}
	}
}
