// Package engine is the evaluator's only contact with the evaluation engine
// (pkg/eval): it compiles verified manifests, builds evaluation contexts from
// request Structs and turns engine results into the wire form. Keeping every use of
// pkg/eval in this one file means a change of the engine's API touches one file.
//
// The contract: Compile fails only when a manifest as a whole is unusable; a
// compiled *Manifest is immutable and safe for concurrent use; Evaluate never fails
// (errors are results with reason ERROR) and returns values shared with the
// compiled manifest, which callers must not mutate.
package engine

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/eval"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Manifest is a compiled manifest of one environment.
type Manifest struct {
	m *eval.Manifest
	// keys are computed once, on first use by a bulk evaluation.
	keysOnce     sync.Once
	keys, client []string
}

// Context is an evaluation context built once per request.
type Context = eval.Context

// Decision is one evaluation result in the shape the API returns. Value is nil
// when neither a variant nor a caller default was served.
type Decision struct {
	Value           *structpb.Value
	Variant         string
	Reason          string
	RuleID          string
	ErrorCode       string
	ErrorMessage    string
	ManifestVersion uint64
}

// ReasonError is the reason of every failed evaluation.
const ReasonError = string(eval.ReasonError)

// ErrorFlagNotFound is the error code of a flag the manifest does not hold.
const ErrorFlagNotFound = string(eval.ErrorFlagNotFound)

// Reasons lists every reason the engine gives (for pre-registering metrics).
var Reasons = []string{
	string(eval.ReasonStatic), string(eval.ReasonDefault), string(eval.ReasonTargetingMatch),
	string(eval.ReasonSplit), string(eval.ReasonDisabled), string(eval.ReasonPrerequisiteFailed),
	string(eval.ReasonError),
}

// Compile compiles a verified manifest. m must not be mutated afterwards.
func Compile(m *manifestv1.Manifest) (*Manifest, error) {
	c, err := eval.Compile(m)
	if err != nil {
		return nil, err
	}
	return &Manifest{m: c}, nil
}

// Update compiles next, which is m's manifest with d applied (d's upserted flags
// and segments being next's messages): only the flags and segments d changes are
// compiled, the rest is shared with m, which stays untouched.
func (m *Manifest) Update(next *manifestv1.Manifest, d *manifestv1.ManifestDelta) (*Manifest, error) {
	c, err := m.m.Update(next, d)
	if err != nil {
		return nil, err
	}
	return &Manifest{m: c}, nil
}

// NewContext builds the evaluation context of a request. A context over a limit
// or malformed is an errs.InvalidArgument naming the offending field ("context" or
// "context.<attribute>").
func NewContext(s *structpb.Struct) (*Context, error) {
	c, err := eval.ContextFromStruct(s)
	if err != nil {
		return nil, invalidContext(err)
	}
	return c, nil
}

// invalidContext names the offending field of a refused context.
func invalidContext(err error) error {
	var ice *eval.InvalidContextError
	if errors.As(err, &ice) {
		field := "context"
		if ice.Attribute != "" {
			field += "." + ice.Attribute
		}
		return errs.Invalid(field, "%s", ice.Problem)
	}
	return errs.Wrap(errs.InvalidArgument, err, "invalid context")
}

// ContextFromAttrs builds the evaluation context of a request whose context was
// decoded straight into Go values (package reqcodec: nil, bool, float64, string,
// []any, map[string]any); the map is kept, not copied. The limits are NewContext's,
// with the same errors.
func ContextFromAttrs(attrs map[string]any) (*Context, error) {
	c, err := eval.NewContext(attrs)
	if err != nil {
		return nil, invalidContext(err)
	}
	return c, nil
}

// Version is the manifest's version.
func (m *Manifest) Version() uint64 { return m.m.Version() }

// ClientVisible reports whether client SDK keys may evaluate the flag.
func (m *Manifest) ClientVisible(key string) bool { return m.m.ClientVisible(key) }

// FlagKeys returns the flag keys in manifest order (a fresh slice).
func (m *Manifest) FlagKeys() []string { return m.m.FlagKeys() }

// Keys returns the flag keys in manifest order (shared: do not modify).
func (m *Manifest) Keys() []string {
	m.keysOnce.Do(m.indexKeys)
	return m.keys
}

// ClientKeys returns the keys of the client-visible flags in manifest order
// (shared: do not modify): what a bulk evaluation for a client key walks.
func (m *Manifest) ClientKeys() []string {
	m.keysOnce.Do(m.indexKeys)
	return m.client
}

func (m *Manifest) indexKeys() {
	m.keys = m.m.FlagKeys()
	m.client = make([]string, 0, len(m.keys))
	for _, k := range m.keys {
		if m.m.ClientVisible(k) {
			m.client = append(m.client, k)
		}
	}
}

// PrivateAttributes are the project's private attributes: removed from every
// context sampled for the usage report (shared: do not modify).
func (m *Manifest) PrivateAttributes() []string { return m.m.Proto().GetPrivateAttributes() }

// Evaluate decides flagKey for ctx, asking for no particular type. def is served
// (as Value) whenever the engine serves the caller's default; it may be nil.
func (m *Manifest) Evaluate(flagKey string, ctx *Context, def *structpb.Value) Decision {
	return m.EvaluateAs(flagKey, ctx, manifestv1.FlagType_FLAG_TYPE_UNSPECIFIED, def)
}

// EvaluateAs is Evaluate for a caller that expects the type want (UNSPECIFIED:
// any): a flag of another type answers def with reason ERROR and TYPE_MISMATCH.
func (m *Manifest) EvaluateAs(flagKey string, ctx *Context, want manifestv1.FlagType, def *structpb.Value) Decision {
	r := m.m.Evaluate(flagKey, ctx, wantType(want), def)
	d := Decision{
		Value: r.ProtoValue, Variant: r.Variant, Reason: string(r.Reason), RuleID: r.RuleID,
		ErrorCode: string(r.ErrorCode), ErrorMessage: r.ErrorMessage, ManifestVersion: r.ManifestVersion,
	}
	if d.Value == nil {
		d.Value = def
	}
	return d
}

// wantType maps the API's FlagType to the engine's value type.
func wantType(t manifestv1.FlagType) eval.ValueType {
	switch t {
	case manifestv1.FlagType_FLAG_TYPE_BOOLEAN:
		return eval.Bool
	case manifestv1.FlagType_FLAG_TYPE_STRING:
		return eval.String
	case manifestv1.FlagType_FLAG_TYPE_NUMBER:
		return eval.Number
	case manifestv1.FlagType_FLAG_TYPE_JSON:
		return eval.JSON
	}
	return eval.Any
}

// NotFound is the decision the engine gives for a flag the manifest does not hold;
// the server answers it for flags a client key may not see, so they look absent.
func (m *Manifest) NotFound(flagKey string, def *structpb.Value) Decision {
	return Decision{
		Value: def, Reason: ReasonError, ErrorCode: string(eval.ErrorFlagNotFound),
		ErrorMessage: fmt.Sprintf("flag %q not found", flagKey), ManifestVersion: m.m.Version(),
	}
}
