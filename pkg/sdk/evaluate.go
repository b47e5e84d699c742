package sdk

import (
	"fmt"
	"math"

	"github.com/flagforge/flagforge/pkg/eval"
)

// Context is an evaluation context (the engine's): immutable, safe for concurrent
// use, reusable across calls. A nil *Context is the empty context.
type Context = eval.Context

// NewContext builds a context from attributes ("targetingKey" is the subject's
// identity). Build it once per subject and reuse it: evaluations then do not
// allocate. See eval.NewContext for the accepted value types and limits.
func NewContext(attrs map[string]any) (*Context, error) { return eval.NewContext(attrs) }

// TargetingKey is the attribute naming the subject of an evaluation.
const TargetingKey = eval.TargetingKey

// Reason says why a detail has its value (OpenFeature's names).
type Reason = eval.Reason

// ErrorCode qualifies a detail with ReasonError (OpenFeature's names).
type ErrorCode = eval.ErrorCode

// Reasons and error codes: the engine's, plus PROVIDER_NOT_READY.
const (
	ReasonStatic             = eval.ReasonStatic
	ReasonDefault            = eval.ReasonDefault
	ReasonTargetingMatch     = eval.ReasonTargetingMatch
	ReasonSplit              = eval.ReasonSplit
	ReasonDisabled           = eval.ReasonDisabled
	ReasonPrerequisiteFailed = eval.ReasonPrerequisiteFailed
	ReasonError              = eval.ReasonError

	ErrorFlagNotFound        = eval.ErrorFlagNotFound
	ErrorTypeMismatch        = eval.ErrorTypeMismatch
	ErrorTargetingKeyMissing = eval.ErrorTargetingKeyMissing
	ErrorParse               = eval.ErrorParse
	ErrorGeneral             = eval.ErrorGeneral
	// ErrorProviderNotReady: no manifest is held yet; the caller's default is served.
	ErrorProviderNotReady ErrorCode = "PROVIDER_NOT_READY"
)

// ValueType is the type a caller asks for (eval.Any, eval.Bool, ...).
type ValueType = eval.ValueType

// Detail is the full outcome of an evaluation.
type Detail[T any] struct {
	// Value is the served value, or the caller's default when Variant is "".
	// JSON values are shared with the manifest: do not mutate them.
	Value T
	// Variant is the served variant's key ("" when the default was served).
	Variant string
	Reason  Reason
	// RuleID is the matching rule's id (TARGETING_MATCH or SPLIT from a rule).
	RuleID string
	// ErrorCode and ErrorMessage are set only with ReasonError.
	ErrorCode    ErrorCode
	ErrorMessage string
	FlagKey      string
	// ManifestVersion is the version that decided (0 before the first manifest).
	ManifestVersion uint64
}

// evaluate runs the engine on the manifest held and counts the evaluation. ok is
// false when no manifest is held. It never allocates for ordinary flags.
func (c *Client) evaluate(flagKey string, ctx *Context, want ValueType) (eval.Result, bool) {
	s := c.state.Load()
	if s == nil {
		return eval.Result{}, false
	}
	r := s.m.Evaluate(flagKey, ctx, want, nil)
	if c.usage != nil && r.ErrorCode != eval.ErrorFlagNotFound {
		c.usage.count(s.counters, flagKey, r.Variant)
		c.usage.sample(s.src, ctx, c.cfg.Now)
	}
	return r, true
}

func notReady[T any](flagKey string, def T) Detail[T] {
	return Detail[T]{Value: def, Reason: ReasonError, ErrorCode: ErrorProviderNotReady,
		ErrorMessage: "no manifest yet", FlagKey: flagKey}
}

// typed converts r to a Detail[T] (T bool, string or float64), serving def when the
// engine served no variant.
func typed[T any](r eval.Result, def T) Detail[T] {
	d := Detail[T]{Variant: r.Variant, Reason: r.Reason, RuleID: r.RuleID, ErrorCode: r.ErrorCode,
		ErrorMessage: r.ErrorMessage, FlagKey: r.FlagKey, ManifestVersion: r.ManifestVersion}
	if r.Variant == "" {
		d.Value = def
		return d
	}
	v, ok := r.Value.(T)
	if !ok { // cannot happen: the engine checked the flag's type
		return mismatch(d, def, fmt.Sprintf("value is %T", r.Value))
	}
	d.Value = v
	return d
}

func mismatch[T any](d Detail[T], def T, msg string) Detail[T] {
	d.Value, d.Variant, d.RuleID = def, "", ""
	d.Reason, d.ErrorCode, d.ErrorMessage = ReasonError, ErrorTypeMismatch, msg
	return d
}

func anyDetail(r eval.Result, def any) Detail[any] {
	d := Detail[any]{Value: r.Value, Variant: r.Variant, Reason: r.Reason, RuleID: r.RuleID, ErrorCode: r.ErrorCode,
		ErrorMessage: r.ErrorMessage, FlagKey: r.FlagKey, ManifestVersion: r.ManifestVersion}
	if r.Variant == "" {
		d.Value = def
	}
	return d
}

// Bool evaluates a boolean flag; def is served on any error.
func (c *Client) Bool(flagKey string, ctx *Context, def bool) bool {
	return c.BoolDetail(flagKey, ctx, def).Value
}

// BoolDetail evaluates a boolean flag with the full detail.
func (c *Client) BoolDetail(flagKey string, ctx *Context, def bool) Detail[bool] {
	r, ok := c.evaluate(flagKey, ctx, eval.Bool)
	if !ok {
		return notReady(flagKey, def)
	}
	return typed(r, def)
}

// String evaluates a string flag; def is served on any error.
func (c *Client) String(flagKey string, ctx *Context, def string) string {
	return c.StringDetail(flagKey, ctx, def).Value
}

// StringDetail evaluates a string flag with the full detail.
func (c *Client) StringDetail(flagKey string, ctx *Context, def string) Detail[string] {
	r, ok := c.evaluate(flagKey, ctx, eval.String)
	if !ok {
		return notReady(flagKey, def)
	}
	return typed(r, def)
}

// Float evaluates a number flag; def is served on any error.
func (c *Client) Float(flagKey string, ctx *Context, def float64) float64 {
	return c.FloatDetail(flagKey, ctx, def).Value
}

// FloatDetail evaluates a number flag with the full detail.
func (c *Client) FloatDetail(flagKey string, ctx *Context, def float64) Detail[float64] {
	r, ok := c.evaluate(flagKey, ctx, eval.Number)
	if !ok {
		return notReady(flagKey, def)
	}
	return typed(r, def)
}

// Int evaluates a number flag as an integer; def is served on any error.
func (c *Client) Int(flagKey string, ctx *Context, def int64) int64 {
	return c.IntDetail(flagKey, ctx, def).Value
}

// IntDetail evaluates a number flag as an integer. A served value that is not an
// integer in int64's range is a TYPE_MISMATCH (the default is served).
func (c *Client) IntDetail(flagKey string, ctx *Context, def int64) Detail[int64] {
	r, ok := c.evaluate(flagKey, ctx, eval.Number)
	if !ok {
		return notReady(flagKey, def)
	}
	f := typed(r, float64(def))
	d := Detail[int64]{Value: def, Variant: f.Variant, Reason: f.Reason, RuleID: f.RuleID, ErrorCode: f.ErrorCode,
		ErrorMessage: f.ErrorMessage, FlagKey: f.FlagKey, ManifestVersion: f.ManifestVersion}
	if f.Variant == "" {
		return d
	}
	if f.Value != math.Trunc(f.Value) || f.Value < math.MinInt64 || f.Value >= math.MaxInt64 {
		return mismatch(d, def, fmt.Sprintf("value %v is not an integer", f.Value))
	}
	d.Value = int64(f.Value)
	return d
}

// JSON evaluates a JSON flag (an object, list or any JSON value as Go values:
// map[string]any, []any, string, float64, bool, nil); def is served on any error.
// The value is shared with the manifest: do not mutate it.
func (c *Client) JSON(flagKey string, ctx *Context, def any) any {
	return c.JSONDetail(flagKey, ctx, def).Value
}

// JSONDetail evaluates a JSON flag with the full detail.
func (c *Client) JSONDetail(flagKey string, ctx *Context, def any) Detail[any] {
	return c.ValueDetail(flagKey, ctx, eval.JSON, def)
}

// ValueDetail evaluates a flag of any type asking for want (eval.Any: no
// particular type, never a TYPE_MISMATCH), as the evaluator's API does.
func (c *Client) ValueDetail(flagKey string, ctx *Context, want ValueType, def any) Detail[any] {
	r, ok := c.evaluate(flagKey, ctx, want)
	if !ok {
		return notReady(flagKey, def)
	}
	return anyDetail(r, def)
}
