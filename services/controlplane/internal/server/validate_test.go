package server

import (
	"errors"
	"testing"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/eval"
)

// TestValidationErrorsNameTheRequestField: the engine's paths (relative to the
// flag or segment, proto JSON names) become request field paths, spelled as a
// JSON request spells them, and every violation is reported.
func TestValidationErrorsNameTheRequestField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		field      func(string) string
		want       string
	}{
		{"flag config update keeps config paths", "config.rules[2].clauses[0].values[1]", configField, "config.rules[2].clauses[0].values[1]"},
		{"camelCase stays as the request spells it", "config.defaultServe.rollout.bucketBy", configField, "config.defaultServe.rollout.bucketBy"},
		{"definition paths of a flag config update", "variants[1].value", configField, "flag.variants[1].value"},
		{"create flag", "variants[0].key", under("flag"), "flag.variants[0].key"},
		{"update flag", "clientVisible", under("definition"), "definition.clientVisible"},
		{"segment", "rules[0].clauses[1].operator", under("segment"), "segment.rules[0].clauses[1].operator"},
		{"whole value", "", under("segment"), "segment"},
	}
	for _, tt := range tests {
		err := validationError(&eval.ValidationError{Errors: []eval.FieldError{{Path: tt.path, Message: "bad"}, {Path: "other", Message: "x"}}}, tt.field)
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.InvalidArgument || e.Field != tt.want || e.Message != "bad" {
			t.Errorf("%s: got %#v, want field %q", tt.name, err, tt.want)
		}
		if vs := errs.ViolationsOf(err); len(vs) != 2 || vs[1].Description != "x" {
			t.Errorf("%s: every violation must be reported, got %v", tt.name, vs)
		}
	}
	if err := validationError(nil, configField); err != nil {
		t.Errorf("nil: %v", err)
	}
	other := errs.E(errs.NotFound, "x")
	if err := validationError(other, configField); !errors.Is(err, errs.NotFound) {
		t.Errorf("other errors pass through: %v", err)
	}
}

func TestKeyChecks(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"a", "new-ui", "v1.2_x", "0abc", "a" + string(make([]byte, 0))} {
		var c checks
		if c.key("k", good); c.err != nil {
			t.Errorf("%q refused: %v", good, c.err)
		}
	}
	long := make([]byte, 65)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "A", "-a", "a b", "é", string(long)} {
		var c checks
		if c.key("k", bad); errs.KindOf(c.err) != errs.InvalidArgument {
			t.Errorf("%q accepted", bad)
		}
	}
	var c checks
	c.page(1001, "")
	var e *errs.Error
	if !errors.As(c.err, &e) || e.Field != "page_size" {
		t.Errorf("page_size 1001: %v", c.err)
	}
}
