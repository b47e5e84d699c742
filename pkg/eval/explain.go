package eval

import (
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Explanation is the path one evaluation of a flag took, in the engine's order:
// on/off, prerequisites, individual targets, rules (each clause matched or not),
// then the default serve. Steps the engine never reached are marked so
// (Evaluated false), because the engine short-circuits: a rule's clauses after the
// first that fails, and the rules after the one that served, are not evaluated.
type Explanation struct {
	// On is the flag's on/off switch (false also when the flag could not be
	// evaluated at all: see the Result's reason).
	On bool
	// Prerequisites are the prerequisites checked, in order; evaluation stops at
	// the first one not met.
	Prerequisites []PrerequisiteStep
	// TargetsChecked is true when the individual targets were consulted.
	TargetsChecked bool
	// TargetingKey is the context's targetingKey ("" when absent).
	TargetingKey string
	// TargetVariant is the variant an individual target served ("" none matched).
	TargetVariant string
	// Rules holds one step per rule of the flag, in order.
	Rules []RuleStep
	// DefaultReached is true when no target or rule decided, so the default serve
	// (or, for a flag without targeting, its one variant) did.
	DefaultReached bool
	// DefaultRollout is the bucketing of a default serve that is a rollout.
	DefaultRollout *RolloutStep
}

// PrerequisiteStep is one prerequisite check.
type PrerequisiteStep struct {
	FlagKey string
	// Variants are the variants that satisfy the prerequisite.
	Variants []string
	// Missing is true when the manifest holds no such flag (never met).
	Missing bool
	// Variant and Reason are the prerequisite flag's decision for the same context.
	Variant string
	Reason  Reason
	Met     bool
}

// RuleStep is one rule of the flag.
type RuleStep struct {
	ID string
	// Disabled is true for a disabled rule: evaluation skipped it.
	Disabled bool
	// Evaluated is false for rules after the one that decided, and for disabled
	// rules.
	Evaluated bool
	// Matched is true when every clause matched.
	Matched bool
	Clauses []ClauseStep
	// Rollout is the bucketing of a matched rule that serves a rollout.
	Rollout *RolloutStep
}

// ClauseStep is one clause of a rule.
type ClauseStep struct {
	Attribute string
	Operator  manifestv1.Operator
	Negate    bool
	// Evaluated is false for clauses after the first that did not match.
	Evaluated bool
	// Present is true when the context holds the attribute (non-null).
	Present bool
	// Value is the attribute's value in the context (a Go JSON-native value) when
	// Present. Shared with the context: do not mutate.
	Value   any
	Matched bool
}

// RolloutStep is the bucketing of one rollout.
type RolloutStep struct {
	// BucketBy is the attribute hashed; Seed the hash seed (default: the flag key).
	BucketBy string
	Seed     string
	// Missing is true when the context has no usable BucketBy value: a rule's
	// rollout then does not serve and the next rule is tried.
	Missing bool
	// BucketValue is the attribute's value as hashed.
	BucketValue string
	// Bucket is in [0, TotalWeight): the first variant whose cumulative weight
	// exceeds it is served.
	Bucket      uint32
	TotalWeight uint32
	// Variant is the variant the bucket falls in.
	Variant string
	variant int32
}

// Explain evaluates the flag exactly as Evaluate does (the same code path) and
// also returns the path the evaluation took. It allocates; use Evaluate to serve.
// The explanation is empty when the flag is unknown, of the wrong type or broken
// (see the Result's error code).
func (m *Manifest) Explain(flagKey string, ctx *Context, want ValueType, defaultValue any) (Result, *Explanation) {
	tr := &Explanation{}
	if m == nil {
		return m.evaluate(flagKey, ctx, want, defaultValue, tr), tr
	}
	f, _ := m.flags.get(flagKey)
	if f != nil && f.err == "" {
		tr.Rules = make([]RuleStep, len(f.rules))
		for i := range f.rules {
			r := &f.rules[i]
			tr.Rules[i].ID = r.id
			tr.Rules[i].Disabled = r.disabled
			tr.Rules[i].Clauses = make([]ClauseStep, len(r.clauses))
			for j := range r.clauses {
				c := &r.clauses[j]
				tr.Rules[i].Clauses[j] = ClauseStep{Attribute: c.attr.name, Operator: c.op, Negate: c.negate}
			}
		}
	}
	r := m.evaluate(flagKey, ctx, want, defaultValue, tr)
	if f != nil {
		name := func(ro *RolloutStep) {
			if ro != nil && !ro.Missing && ro.variant >= 0 && int(ro.variant) < len(f.variants) {
				ro.Variant = f.variants[ro.variant].key
			}
		}
		for i := range tr.Rules {
			name(tr.Rules[i].Rollout)
		}
		name(tr.DefaultRollout)
	}
	return r, tr
}

// rule returns the step of rule i, marked evaluated.
func (tr *Explanation) rule(i int) *RuleStep {
	rs := &tr.Rules[i]
	rs.Evaluated = true
	return rs
}

// traceTargets records the targeting key and the target that matches it.
func (tr *Explanation) traceTargets(f *flag, ctx *Context) {
	tr.TargetsChecked = true
	if ctx == nil || !ctx.hasKey {
		return
	}
	tr.TargetingKey = ctx.key
	if idx, ok := f.targets[ctx.key]; ok && idx >= 0 && int(idx) < len(f.variants) {
		tr.TargetVariant = f.variants[idx].key
	}
}

// matchAllTraced is matchAll recording each clause: the same calls in the same
// order, stopping at the first clause that does not match.
func (st *evalState) matchAllTraced(cls []clause, rs *RuleStep) bool {
	for i := range cls {
		c := &cls[i]
		cs := &rs.Clauses[i]
		cs.Evaluated = true
		if c.op != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
			cs.Value, cs.Present = st.ctx.lookup(&c.attr)
		}
		if !st.match(c) {
			return false
		}
		cs.Matched = true
	}
	rs.Matched = true
	return true
}
