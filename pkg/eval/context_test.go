package eval

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
)

// nest returns v wrapped in n single-key objects.
func nest(n int, v any) any {
	for range n {
		v = map[string]any{"k": v}
	}
	return v
}

func manyAttrs(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m["a"+itoa(i)] = i
	}
	return m
}

func TestContextLimits(t *testing.T) {
	t.Parallel()
	list := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = "x"
		}
		return l
	}
	tests := []struct {
		name    string
		attrs   map[string]any
		problem string // "" means accepted
	}{
		{"256 attributes are allowed", manyAttrs(256), ""},
		{"257 attributes are refused", manyAttrs(257), "257 attributes"},
		{"1,024 values are allowed", map[string]any{"l": list(1023)}, ""},
		{"1,025 values are refused", map[string]any{"l": list(1024)}, "more than 1024 values"},
		{"depth 8 is allowed", map[string]any{"a": nest(7, "x")}, ""},
		{"depth 9 is refused", map[string]any{"a": nest(8, "x")}, "nested deeper than 8"},
		{"lists count as nesting", map[string]any{"a": []any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{1}}}}}}}}}, "nested deeper"},
		{"8 KiB strings are allowed", map[string]any{"s": strings.Repeat("x", 8192)}, ""},
		{"longer strings are refused", map[string]any{"s": strings.Repeat("x", 8193)}, "string longer than 8192"},
		{"nested long strings are refused", map[string]any{"o": map[string]any{"s": strings.Repeat("x", 8193)}}, "string longer"},
		{"256-byte names are allowed", map[string]any{strings.Repeat("n", 256): 1}, ""},
		{"longer names are refused", map[string]any{strings.Repeat("n", 257): 1}, "name longer than 256"},
		{"longer nested names are refused", map[string]any{"o": map[string]any{strings.Repeat("n", 257): 1}}, "name longer"},
		{"NaN is refused", map[string]any{"n": math.NaN()}, "not finite"},
		{"Inf is refused", map[string]any{"n": math.Inf(1)}, "not finite"},
		{"unsupported Go types are refused", map[string]any{"c": make(chan int)}, "unsupported value type"},
		{"integers are accepted", map[string]any{"i": int64(3), "u": uint8(1)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewContext(tt.attrs)
			check := func(api string, err error) {
				t.Helper()
				if tt.problem == "" {
					if err != nil {
						t.Errorf("%s: %v", api, err)
					}
					return
				}
				var ice *InvalidContextError
				if !errors.As(err, &ice) {
					t.Fatalf("%s: error %v is not an *InvalidContextError", api, err)
				}
				if !strings.Contains(err.Error(), tt.problem) {
					t.Errorf("%s: error %q does not mention %q", api, err, tt.problem)
				}
			}
			check("NewContext", err)
			if s, serr := structpb.NewStruct(tt.attrs); serr == nil {
				_, err = ContextFromStruct(s)
				check("ContextFromStruct", err)
			}
		})
	}
}

func TestContextFromStructNaN(t *testing.T) {
	t.Parallel()
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.NaN())}}
	var ice *InvalidContextError
	if _, err := ContextFromStruct(s); !errors.As(err, &ice) {
		t.Errorf("NaN accepted: %v", err)
	}
}

func TestNewContextKeepsNativeMaps(t *testing.T) {
	t.Parallel()
	attrs := map[string]any{"a": "x", "n": 1.5, "l": []any{true, nil}, "o": map[string]any{"k": "v"}}
	c := mustContext(t, attrs)
	attrs["marker"] = true // the same map: visible through the context
	if _, ok := c.Attributes()["marker"]; !ok {
		t.Error("NewContext copied a JSON-native map")
	}
}

func TestNewContextConvertsGoValues(t *testing.T) {
	t.Parallel()
	c := mustContext(t, map[string]any{"i": 3, "f": float32(1.5), "s": []string{"a"}, "o": map[string]any{"u": uint(7)}})
	want := map[string]any{"i": 3.0, "f": 1.5, "s": []any{"a"}, "o": map[string]any{"u": 7.0}}
	if diff := cmp.Diff(want, c.Attributes()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestContextFromStructMatchesNewContext(t *testing.T) {
	t.Parallel()
	attrs := map[string]any{"targetingKey": 42.0, "o": map[string]any{"l": []any{"x", 1.0, nil, false}}}
	s, err := structpb.NewStruct(attrs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ContextFromStruct(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(attrs, c.Attributes()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !c.hasKey || c.key != "42" {
		t.Errorf("targetingKey %q %v", c.key, c.hasKey)
	}
	empty, err := ContextFromStruct(nil)
	if err != nil || len(empty.Attributes()) != 0 {
		t.Errorf("nil struct: %v %v", empty, err)
	}
}

func TestTargetingKeyString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    any
		want string
		ok   bool
	}{
		{"u1", "u1", true},
		{42.0, "42", true},
		{-7.0, "-7", true},
		{1.5, "1.5", true},
		{1e21, "1000000000000000000000", true},
		{true, "true", true},
		{nil, "", false},
		{[]any{"x"}, "", false},
		{map[string]any{}, "", false},
	}
	for _, tt := range tests {
		c := mustContext(t, map[string]any{"targetingKey": tt.v})
		if c.key != tt.want || c.hasKey != tt.ok {
			t.Errorf("targetingKey %v: %q %v, want %q %v", tt.v, c.key, c.hasKey, tt.want, tt.ok)
		}
	}
}
