package eval

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/flagforge/flagforge/pkg/eval/internal/semver"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Bounds on one evaluation (docs/evaluation.md): prerequisites nested deeper than
// MaxPrerequisiteDepth (or in a cycle), segments nested deeper than MaxSegmentDepth
// (or in a cycle), or more than maxSteps flag and segment evaluations in all (a
// pathological manifest), end the evaluation with ERROR/GENERAL.
const (
	MaxPrerequisiteDepth = 32
	MaxSegmentDepth      = 32
	maxSteps             = 10000
)

// outcome is a decision before it is turned into a Result.
type outcome struct {
	variant int32 // -1: the caller's default
	reason  Reason
	ruleID  string
	code    ErrorCode
	msg     string
}

func errorOutcome(code ErrorCode, msg string) outcome {
	return outcome{variant: -1, reason: ReasonError, code: code, msg: msg}
}

// evalState is the state of one Evaluate call; it lives on the stack.
type evalState struct {
	m     *Manifest
	ctx   *Context
	steps int
	// flags and segs are the prerequisite and segment chains being evaluated.
	flags [MaxPrerequisiteDepth + 1]*flag
	nflag int
	segs  [MaxSegmentDepth + 1]*segment
	nseg  int
	// failure, when code is set, aborts the evaluation (segment errors, cycles).
	failure outcome
	// tr, when set (Explain), records the path of the top-level flag; nil on the
	// ordinary path, which stays allocation-free.
	tr *Explanation
}

// Evaluate evaluates the flag for ctx (nil: an empty context). want is the type the
// caller expects (Any: no check); defaultValue is served on errors, and when the flag
// is off or a prerequisite failed and it has no offVariant.
func (m *Manifest) Evaluate(flagKey string, ctx *Context, want ValueType, defaultValue any) Result {
	return m.evaluate(flagKey, ctx, want, defaultValue, nil)
}

// evaluate is Evaluate, recording the path into tr when it is not nil. With a
// tracer the static fast path is skipped: evalFlag decides the same outcome.
func (m *Manifest) evaluate(flagKey string, ctx *Context, want ValueType, defaultValue any, tr *Explanation) Result {
	if m == nil {
		return Result{Value: defaultValue, Reason: ReasonError, ErrorCode: ErrorGeneral, ErrorMessage: "no manifest", FlagKey: flagKey}
	}
	f, _ := m.flags.get(flagKey)
	if f == nil {
		return Result{
			Value: defaultValue, Reason: ReasonError, ErrorCode: ErrorFlagNotFound,
			ErrorMessage: fmt.Sprintf("flag %q not found", flagKey), FlagKey: flagKey, ManifestVersion: m.version,
		}
	}
	if want != Any && f.typ != Any && want != f.typ {
		return Result{
			Value: defaultValue, Reason: ReasonError, ErrorCode: ErrorTypeMismatch,
			ErrorMessage: fmt.Sprintf("flag %q is of type %s, not %s", flagKey, f.typ, want),
			FlagKey:      flagKey, ManifestVersion: m.version,
		}
	}
	if f.static && tr == nil {
		// Fast path: no context needed.
		v := &f.variants[f.def.variant]
		return Result{Value: v.value, ProtoValue: v.proto, Variant: v.key, Reason: ReasonStatic, FlagKey: f.key, ManifestVersion: m.version}
	}
	st := evalState{m: m, ctx: ctx, tr: tr}
	o := st.evalFlag(f)
	r := Result{Reason: o.reason, RuleID: o.ruleID, ErrorCode: o.code, ErrorMessage: o.msg, FlagKey: f.key, ManifestVersion: m.version}
	if o.variant >= 0 {
		v := &f.variants[o.variant]
		r.Value, r.ProtoValue, r.Variant = v.value, v.proto, v.key
	} else {
		r.Value = defaultValue
	}
	return r
}

// step counts one flag or segment evaluation against the budget.
func (st *evalState) step() bool {
	st.steps++
	if st.steps > maxSteps {
		st.fail(ErrorGeneral, fmt.Sprintf("evaluation exceeded %d flag and segment evaluations", maxSteps))
		return false
	}
	return true
}

func (st *evalState) fail(code ErrorCode, msg string) {
	if st.failure.code == "" {
		st.failure = errorOutcome(code, msg)
	}
}

func (st *evalState) failed() bool { return st.failure.code != "" }

func (st *evalState) evalFlag(f *flag) outcome {
	// tr is the explanation of this flag: only the top-level one is traced.
	var tr *Explanation
	if st.nflag == 0 {
		tr = st.tr
	}
	if f.err != "" {
		return errorOutcome(ErrorParse, f.err)
	}
	if !st.step() {
		return st.failure
	}
	if tr != nil {
		tr.On = f.on
	}
	if !f.on {
		return outcome{variant: f.off, reason: ReasonDisabled}
	}
	if f.static {
		if tr != nil {
			tr.DefaultReached = true
		}
		return outcome{variant: f.def.variant, reason: ReasonStatic}
	}
	st.flags[st.nflag] = f
	st.nflag++
	defer func() { st.nflag-- }()
	for i := range f.prereqs {
		p := &f.prereqs[i]
		if !st.prereqMet(p, tr) {
			if st.failed() {
				return st.failure
			}
			return outcome{variant: f.off, reason: ReasonPrerequisiteFailed, msg: p.failed}
		}
	}
	if tr != nil {
		tr.traceTargets(f, st.ctx)
	}
	if len(f.targets) > 0 && st.ctx != nil && st.ctx.hasKey {
		if idx, ok := f.targets[st.ctx.key]; ok {
			return outcome{variant: idx, reason: ReasonTargetingMatch}
		}
	}
	for i := range f.rules {
		r := &f.rules[i]
		if r.disabled {
			continue
		}
		var rs *RuleStep
		var matched bool
		if tr != nil {
			rs = tr.rule(i)
			matched = st.matchAllTraced(r.clauses, rs)
		} else {
			matched = st.matchAll(r.clauses)
		}
		if st.failed() {
			return st.failure
		}
		if !matched {
			continue
		}
		if r.serve.rollout == nil {
			return outcome{variant: r.serve.variant, reason: ReasonTargetingMatch, ruleID: r.id}
		}
		var ro *RolloutStep
		if rs != nil {
			rs.Rollout = &RolloutStep{}
			ro = rs.Rollout
		}
		if idx, ok := st.bucket(r.serve.rollout, ro); ok {
			return outcome{variant: idx, reason: ReasonSplit, ruleID: r.id}
		}
	}
	if tr != nil {
		tr.DefaultReached = true
	}
	if f.def.rollout == nil {
		return outcome{variant: f.def.variant, reason: ReasonDefault}
	}
	var ro *RolloutStep
	if tr != nil {
		tr.DefaultRollout = &RolloutStep{}
		ro = tr.DefaultRollout
	}
	idx, ok := st.bucket(f.def.rollout, ro)
	if !ok {
		return errorOutcome(ErrorTargetingKeyMissing, fmt.Sprintf("rollout attribute %q missing", f.def.rollout.bucketBy.name))
	}
	return outcome{variant: idx, reason: ReasonSplit}
}

// prereqMet evaluates a prerequisite. A cycle, excessive depth or an exhausted budget
// set st.failure.
func (st *evalState) prereqMet(p *prereq, tr *Explanation) bool {
	var ps *PrerequisiteStep
	if tr != nil {
		tr.Prerequisites = append(tr.Prerequisites, PrerequisiteStep{FlagKey: p.key, Variants: p.variants})
		ps = &tr.Prerequisites[len(tr.Prerequisites)-1]
	}
	pf, _ := st.m.flags.get(p.key)
	if pf == nil {
		if ps != nil {
			ps.Missing = true
		}
		return false
	}
	for i := 0; i < st.nflag; i++ {
		if st.flags[i] == pf {
			st.fail(ErrorGeneral, "prerequisite cycle: "+st.flagChain(pf.key))
			return false
		}
	}
	if st.nflag > MaxPrerequisiteDepth {
		st.fail(ErrorGeneral, fmt.Sprintf("prerequisites nested deeper than %d", MaxPrerequisiteDepth))
		return false
	}
	o := st.evalFlag(pf)
	if st.failed() {
		return false
	}
	if ps != nil {
		ps.Reason = o.reason
		if o.variant >= 0 {
			ps.Variant = pf.variants[o.variant].key
		}
	}
	switch o.reason {
	case ReasonError, ReasonDisabled, ReasonPrerequisiteFailed:
		return false
	}
	if o.variant < 0 {
		return false
	}
	key := pf.variants[o.variant].key
	for _, v := range p.variants {
		if v == key {
			if ps != nil {
				ps.Met = true
			}
			return true
		}
	}
	return false
}

func (st *evalState) flagChain(last string) string {
	var b strings.Builder
	for i := 0; i < st.nflag; i++ {
		b.WriteString(st.flags[i].key)
		b.WriteString(" -> ")
	}
	b.WriteString(last)
	return b.String()
}

// bucket picks a rollout's variant; ok is false when the bucketBy attribute is
// missing (or not a string, number or boolean). out, when set, receives the
// bucketing inputs and outcome (Explain).
func (st *evalState) bucket(r *rollout, out *RolloutStep) (int32, bool) {
	if out != nil {
		out.BucketBy, out.Seed, out.TotalWeight, out.Missing = r.bucketBy.name, r.seed, r.total, true
	}
	var buf [128]byte
	b := append(buf[:0], r.seed...)
	if r.byKey {
		if st.ctx == nil || !st.ctx.hasKey {
			return -1, false
		}
		b = append(b, st.ctx.key...)
	} else {
		v, ok := st.ctx.lookup(&r.bucketBy)
		if !ok {
			return -1, false
		}
		if b, ok = appendValueString(b, v); !ok {
			return -1, false
		}
	}
	n := bucketOf(hashBytes(b), r.total)
	for i, c := range r.cum {
		if c > n {
			if out != nil {
				out.Missing, out.BucketValue, out.Bucket, out.variant = false, string(b[len(r.seed):]), n, r.variants[i]
			}
			return r.variants[i], true
		}
	}
	return -1, false // unreachable: the last cumulative weight is the total
}

// matchAll reports whether every clause matches.
func (st *evalState) matchAll(cls []clause) bool {
	for i := range cls {
		if !st.match(&cls[i]) {
			return false
		}
	}
	return true
}

func (st *evalState) match(c *clause) bool {
	switch c.op {
	case manifestv1.Operator_OPERATOR_SEGMENT_MATCH:
		in := false
		for _, key := range c.segs {
			s, _ := st.m.segments.get(key)
			if s == nil {
				continue
			}
			if st.inSegment(s) {
				in = true
				break
			}
			if st.failed() {
				return false
			}
		}
		return in != c.negate
	case manifestv1.Operator_OPERATOR_EXISTS:
		_, ok := st.ctx.lookup(&c.attr)
		return ok != c.negate
	}
	v, ok := st.ctx.lookup(&c.attr)
	if !ok {
		return false
	}
	var m bool
	if list, isList := v.([]any); isList {
		for _, e := range list {
			if c.matchValue(e) {
				m = true
				break
			}
		}
	} else {
		m = c.matchValue(v)
	}
	return m != c.negate
}

func (st *evalState) inSegment(s *segment) bool {
	if s.err != "" {
		st.fail(ErrorParse, s.err)
		return false
	}
	if !st.step() {
		return false
	}
	for i := 0; i < st.nseg; i++ {
		if st.segs[i] == s {
			var b strings.Builder
			for j := 0; j < st.nseg; j++ {
				b.WriteString(st.segs[j].key)
				b.WriteString(" -> ")
			}
			b.WriteString(s.key)
			st.fail(ErrorGeneral, "segment cycle: "+b.String())
			return false
		}
	}
	if st.nseg >= MaxSegmentDepth {
		st.fail(ErrorGeneral, fmt.Sprintf("segments nested deeper than %d", MaxSegmentDepth))
		return false
	}
	if st.ctx != nil && st.ctx.hasKey {
		if _, ok := s.included[st.ctx.key]; ok {
			return true
		}
		if _, ok := s.excluded[st.ctx.key]; ok {
			return false
		}
	}
	st.segs[st.nseg] = s
	st.nseg++
	defer func() { st.nseg-- }()
	for _, r := range s.rules {
		if st.matchAll(r) {
			return true
		}
		if st.failed() {
			return false
		}
	}
	return false
}

// matchValue matches one non-list attribute value against the clause's values.
func (c *clause) matchValue(v any) bool {
	switch c.op {
	case manifestv1.Operator_OPERATOR_IN:
		switch v := v.(type) {
		case string:
			return c.inString(v)
		case float64:
			for _, n := range c.nums {
				if v == n {
					return true
				}
			}
		case bool:
			return (v && c.hasTrue) || (!v && c.hasFalse)
		}
		return false
	case manifestv1.Operator_OPERATOR_STARTS_WITH:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, x := range c.strs {
			if (c.ci && hasPrefixFold(s, x)) || (!c.ci && strings.HasPrefix(s, x)) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_ENDS_WITH:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, x := range c.strs {
			if (c.ci && hasSuffixFold(s, x)) || (!c.ci && strings.HasSuffix(s, x)) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_CONTAINS:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, x := range c.strs {
			if (c.ci && containsFold(s, x)) || (!c.ci && strings.Contains(s, x)) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_MATCHES:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, re := range c.res {
			if re.MatchString(s) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_LT, manifestv1.Operator_OPERATOR_LTE, manifestv1.Operator_OPERATOR_GT, manifestv1.Operator_OPERATOR_GTE:
		x, ok := numberOf(v)
		if !ok {
			return false
		}
		for _, n := range c.nums {
			if compareOp(c.op, x, n) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_SEMVER_EQ, manifestv1.Operator_OPERATOR_SEMVER_LT, manifestv1.Operator_OPERATOR_SEMVER_GT:
		s, ok := v.(string)
		if !ok {
			return false
		}
		ver, ok := semver.Parse(s)
		if !ok {
			return false
		}
		for _, w := range c.vers {
			cmp := semver.Compare(ver, w)
			if (c.op == manifestv1.Operator_OPERATOR_SEMVER_EQ && cmp == 0) ||
				(c.op == manifestv1.Operator_OPERATOR_SEMVER_LT && cmp < 0) ||
				(c.op == manifestv1.Operator_OPERATOR_SEMVER_GT && cmp > 0) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_BEFORE, manifestv1.Operator_OPERATOR_AFTER:
		var t instant
		switch v := v.(type) {
		case string:
			var ok bool
			if t, ok = parseInstant(v); !ok {
				return false
			}
		case float64:
			t = instantFromMillis(v)
		default:
			return false
		}
		for _, w := range c.times {
			cmp := t.compare(w)
			if (c.op == manifestv1.Operator_OPERATOR_BEFORE && cmp < 0) || (c.op == manifestv1.Operator_OPERATOR_AFTER && cmp > 0) {
				return true
			}
		}
	case manifestv1.Operator_OPERATOR_IP_IN_CIDR:
		s, ok := v.(string)
		if !ok {
			return false
		}
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return false
		}
		addr = addr.WithZone("").Unmap()
		for _, p := range c.nets {
			if p.Contains(addr) {
				return true
			}
		}
	}
	return false
}

func (c *clause) inString(s string) bool {
	if c.strSet != nil {
		key := s
		if c.ci {
			key = foldKey(s)
		}
		_, ok := c.strSet[key]
		return ok
	}
	for _, x := range c.strs {
		if (c.ci && strings.EqualFold(s, x)) || (!c.ci && s == x) {
			return true
		}
	}
	return false
}

// numberOf converts an attribute for the numeric operators: numbers, and strings
// that parse as a decimal number.
func numberOf(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case string:
		return parseDecimal(v)
	}
	return 0, false
}

func compareOp(op manifestv1.Operator, a, b float64) bool {
	switch op {
	case manifestv1.Operator_OPERATOR_LT:
		return a < b
	case manifestv1.Operator_OPERATOR_LTE:
		return a <= b
	case manifestv1.Operator_OPERATOR_GT:
		return a > b
	case manifestv1.Operator_OPERATOR_GTE:
		return a >= b
	}
	return false
}
