package eval

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/eval/internal/semver"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// BucketingMurmur3V1 is the only bucketing algorithm (design/EVALUATION.md); an empty
// Manifest.bucketing means the same.
const BucketingMurmur3V1 = "murmur3-v1"

// ErrInvalidManifest is returned (wrapped) by Compile when the manifest as a whole is
// unusable.
var ErrInvalidManifest = errors.New("eval: invalid manifest")

// Manifest is a compiled manifest: immutable and safe for concurrent use.
type Manifest struct {
	src      *manifestv1.Manifest
	version  uint64
	flags    table[*flag]
	keys     []string // flag keys in manifest order, without duplicates
	segments table[*segment]
}

// flag is a compiled flag. Prerequisites and segments are referred to by key and
// resolved in the evaluating manifest, so a compiled flag can be reused by a later
// manifest whatever happened to the flags and segments it references.
type flag struct {
	src           *manifestv1.Flag
	key           string
	typ           ValueType // Any when the type is unknown (then err is set)
	clientVisible bool
	// err is set when the flag could not be compiled: it evaluates to PARSE_ERROR.
	err      string
	variants []variant
	on       bool
	off      int32 // variant index, -1: the caller's default
	prereqs  []prereq
	targets  map[string]int32 // targetingKey -> variant index
	rules    []rule
	def      serve
	static   bool
}

type variant struct {
	key   string
	value any
	proto *structpb.Value
}

type prereq struct {
	key      string
	variants []string
	// failed is the errorMessage of PREREQUISITE_FAILED, prepared once.
	failed string
}

type rule struct {
	id      string
	clauses []clause
	serve   serve
	// disabled rules are compiled (and so validated) but skipped by evaluation.
	disabled bool
}

// serve is one variant (variant >= 0) or a rollout.
type serve struct {
	variant int32
	rollout *rollout
}

type rollout struct {
	bucketBy attrPath
	byKey    bool // bucketBy is targetingKey: use the context's prepared string
	seed     string
	total    uint32
	cum      []uint32 // cumulative weights
	variants []int32
}

type segment struct {
	src      *manifestv1.Segment
	key      string
	err      string
	included map[string]struct{}
	excluded map[string]struct{}
	rules    [][]clause
}

// clause is a compiled clause; only the fields its operator needs are set.
type clause struct {
	attr     attrPath
	op       manifestv1.Operator
	negate   bool
	ci       bool
	strs     []string            // in (few values), starts_with, ends_with, contains
	strSet   map[string]struct{} // in (many values); keys folded with ci
	nums     []float64           // in, lt, lte, gt, gte
	hasTrue  bool                // in
	hasFalse bool                // in
	res      []*regexp.Regexp    // matches
	vers     []semver.Version    // semver_*
	times    []instant           // before, after
	nets     []netip.Prefix      // ip_in_cidr
	segs     []string            // segment_match
}

// inSetThreshold is the number of string values above which `in` uses a set.
const inSetThreshold = 8

// Compile compiles m. It fails only when m as a whole is unusable (nil, unknown
// bucketing algorithm); a broken flag evaluates to PARSE_ERROR instead. The result
// keeps m (see Proto): the caller must not mutate m afterwards.
func Compile(m *manifestv1.Manifest) (*Manifest, error) {
	return compile(m, nil)
}

func checkManifest(m *manifestv1.Manifest) error {
	if m == nil {
		return fmt.Errorf("%w: nil manifest", ErrInvalidManifest)
	}
	if b := m.GetBucketing(); b != "" && b != BucketingMurmur3V1 {
		return fmt.Errorf("%w: unknown bucketing algorithm %q", ErrInvalidManifest, b)
	}
	return nil
}

// compile compiles m, reusing the flags and segments of prev compiled from the very
// same messages.
func compile(m *manifestv1.Manifest, prev *Manifest) (*Manifest, error) {
	if err := checkManifest(m); err != nil {
		return nil, err
	}
	cm := &Manifest{
		src:      m,
		version:  m.GetVersion(),
		flags:    newTable[*flag](len(m.GetFlags())),
		keys:     make([]string, 0, len(m.GetFlags())),
		segments: newTable[*segment](len(m.GetSegments())),
	}
	c := &checker{regexps: map[string]*regexp.Regexp{}}
	for _, s := range m.GetSegments() {
		key := s.GetKey()
		if _, dup := cm.segments.get(key); dup {
			cm.segments.set(key, &segment{src: s, key: key, err: fmt.Sprintf("duplicate segment key %q", key)})
			continue
		}
		if prev != nil {
			if old, _ := prev.segments.get(key); old != nil && old.src == s && s != nil {
				cm.segments.set(key, old)
				continue
			}
		}
		cm.segments.set(key, c.compileSegment(s, nil))
	}
	for _, f := range m.GetFlags() {
		key := f.GetKey()
		if _, dup := cm.flags.get(key); dup {
			cm.flags.set(key, &flag{src: f, key: key, typ: flagType(f.GetType()), err: fmt.Sprintf("duplicate flag key %q", key)})
			continue
		}
		cm.keys = append(cm.keys, key)
		if prev != nil {
			if old, _ := prev.flags.get(key); old != nil && old.src == f && f != nil {
				cm.flags.set(key, old)
				continue
			}
		}
		cm.flags.set(key, c.compileFlag(f, nil))
	}
	return cm, nil
}

// Version is the manifest's version.
func (m *Manifest) Version() uint64 { return m.version }

// Proto returns the manifest compiled. Callers must not mutate it.
func (m *Manifest) Proto() *manifestv1.Manifest { return m.src }

// FlagKeys returns the flag keys in manifest order (a fresh slice).
func (m *Manifest) FlagKeys() []string { return append([]string(nil), m.keys...) }

// HasFlag reports whether the manifest holds a flag with this key.
func (m *Manifest) HasFlag(key string) bool { _, ok := m.flags.get(key); return ok }

// ClientVisible reports whether client SDK keys may evaluate the flag (false for an
// unknown flag).
func (m *Manifest) ClientVisible(key string) bool {
	f, _ := m.flags.get(key)
	return f != nil && f.clientVisible
}

// FlagType returns the flag's type; ok is false for an unknown flag. A flag whose
// type is unspecified or unknown has type Any (it evaluates to PARSE_ERROR).
func (m *Manifest) FlagType(key string) (t ValueType, ok bool) {
	f, _ := m.flags.get(key)
	if f == nil {
		return Any, false
	}
	return f.typ, true
}

// FlagError returns the reason the flag could not be compiled ("" when it is sound
// or unknown): the ErrorMessage of its PARSE_ERROR results.
func (m *Manifest) FlagError(key string) string {
	if f, _ := m.flags.get(key); f != nil {
		return f.err
	}
	return ""
}

func flagType(t manifestv1.FlagType) ValueType {
	switch t {
	case manifestv1.FlagType_FLAG_TYPE_BOOLEAN:
		return Bool
	case manifestv1.FlagType_FLAG_TYPE_STRING:
		return String
	case manifestv1.FlagType_FLAG_TYPE_NUMBER:
		return Number
	case manifestv1.FlagType_FLAG_TYPE_JSON:
		return JSON
	}
	return Any
}

// checker compiles flags and segments and collects what is wrong with them. Compile
// uses it alone; the validators add the checks that need the environment (env) and
// the ones that do not change evaluation (slugs, unique rule ids).
type checker struct {
	errs     []FieldError
	validate bool
	env      Lookup
	// self is the segment being validated (it may reference itself: a cycle).
	self    *manifestv1.Segment
	regexps map[string]*regexp.Regexp
}

func (c *checker) errorf(p *path, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Path: p.String(), Message: fmt.Sprintf(format, args...)})
}

func (f *flag) variantIndex(key string) int32 {
	for i := range f.variants {
		if f.variants[i].key == key {
			return int32(i)
		}
	}
	return -1
}

// compileFlag compiles f; errors are reported relative to p.
func (c *checker) compileFlag(f *manifestv1.Flag, p *path) *flag {
	start := len(c.errs)
	cf := &flag{src: f, key: f.GetKey(), typ: flagType(f.GetType()), clientVisible: f.GetClientVisible(), off: -1}
	if f == nil {
		cf.err = "nil flag"
		return cf
	}
	if cf.typ == Any {
		pp := p.field("type")
		c.errorf(&pp, "unknown or unspecified flag type %v", f.GetType())
	}
	c.compileVariants(cf, f.GetVariants(), p)
	cfgPath := p.field("config")
	cfg := f.GetConfig()
	if cfg == nil {
		c.errorf(&cfgPath, "required")
	} else {
		cf.on = cfg.GetOn()
		if off := cfg.GetOffVariant(); off != "" {
			if cf.off = cf.variantIndex(off); cf.off < 0 {
				pp := cfgPath.field("offVariant")
				c.errorf(&pp, "unknown variant %q", off)
			}
		}
		prereqsPath := cfgPath.field("prerequisites")
		for i, pr := range cfg.GetPrerequisites() {
			ip := prereqsPath.index(i)
			if len(pr.GetVariants()) == 0 {
				vp := ip.field("variants")
				c.errorf(&vp, "at least one variant required")
			}
			cf.prereqs = append(cf.prereqs, prereq{
				key:      pr.GetFlagKey(),
				variants: pr.GetVariants(),
				failed:   fmt.Sprintf("prerequisite %q not met", pr.GetFlagKey()),
			})
		}
		targetsPath := cfgPath.field("targets")
		for i, t := range cfg.GetTargets() {
			ip := targetsPath.index(i)
			idx := cf.variantIndex(t.GetVariant())
			if idx < 0 {
				vp := ip.field("variant")
				c.errorf(&vp, "unknown variant %q", t.GetVariant())
				continue
			}
			for _, v := range t.GetValues() {
				if cf.targets == nil {
					cf.targets = map[string]int32{}
				}
				if _, seen := cf.targets[v]; !seen {
					cf.targets[v] = idx
				}
			}
		}
		rulesPath := cfgPath.field("rules")
		for i, r := range cfg.GetRules() {
			ip := rulesPath.index(i)
			cr := rule{id: r.GetId(), clauses: c.compileClauses(r.GetClauses(), &ip), disabled: r.GetDisabled()}
			sp := ip.field("serve")
			cr.serve = c.compileServe(r.GetServe(), cf, &sp)
			cf.rules = append(cf.rules, cr)
		}
		dp := cfgPath.field("defaultServe")
		cf.def = c.compileServe(cfg.GetDefaultServe(), cf, &dp)
		cf.static = cf.on && len(cfg.GetPrerequisites()) == 0 && len(cfg.GetTargets()) == 0 &&
			len(cfg.GetRules()) == 0 && cf.def.rollout == nil
	}
	if len(c.errs) > start {
		cf.err = c.errs[start].Error()
		cf.static = false
	}
	return cf
}

func (c *checker) compileVariants(cf *flag, vs []*manifestv1.Variant, p *path) {
	vsPath := p.field("variants")
	var seenTrue, seenFalse bool
	for i, v := range vs {
		ip := vsPath.index(i)
		if cf.variantIndex(v.GetKey()) >= 0 {
			kp := ip.field("key")
			c.errorf(&kp, "duplicate variant key %q", v.GetKey())
		}
		vp := ip.field("value")
		val := v.GetValue()
		if msg := checkVariantValue(cf.typ, val); msg != "" {
			c.errorf(&vp, "%s", msg)
		}
		if b, ok := val.GetKind().(*structpb.Value_BoolValue); ok {
			if b.BoolValue {
				seenTrue = true
			} else {
				seenFalse = true
			}
		}
		cf.variants = append(cf.variants, variant{key: v.GetKey(), value: val.AsInterface(), proto: val})
	}
	switch {
	case cf.typ == Bool && (len(vs) != 2 || !seenTrue || !seenFalse):
		c.errorf(&vsPath, "a boolean flag has exactly two variants, with the values true and false")
	case len(vs) == 0 && cf.typ != Any:
		c.errorf(&vsPath, "at least one variant required")
	}
}

// checkVariantValue says what is wrong with a variant value of a flag of type t.
func checkVariantValue(t ValueType, v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return "value required (null is not a value of any flag type)"
	case *structpb.Value_BoolValue:
		if t == Bool || t == JSON {
			return ""
		}
	case *structpb.Value_StringValue:
		if t == String || t == JSON {
			return ""
		}
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return "number is not finite"
		}
		if t == Number || t == JSON {
			return ""
		}
	case *structpb.Value_ListValue, *structpb.Value_StructValue:
		if t == JSON {
			if !finiteJSON(v) {
				return "JSON value holds a number that is not finite"
			}
			return ""
		}
	}
	if t == Any {
		return ""
	}
	return fmt.Sprintf("%s value for a %s flag", kindName(v), t)
}

// finiteJSON reports whether every number inside v is finite.
func finiteJSON(v *structpb.Value) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return !math.IsNaN(k.NumberValue) && !math.IsInf(k.NumberValue, 0)
	case *structpb.Value_ListValue:
		for _, e := range k.ListValue.GetValues() {
			if !finiteJSON(e) {
				return false
			}
		}
	case *structpb.Value_StructValue:
		for _, e := range k.StructValue.GetFields() {
			if !finiteJSON(e) {
				return false
			}
		}
	}
	return true
}

func kindName(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_BoolValue:
		return "boolean"
	case *structpb.Value_StringValue:
		return "string"
	case *structpb.Value_NumberValue:
		return "number"
	case *structpb.Value_ListValue:
		return "list"
	case *structpb.Value_StructValue:
		return "object"
	}
	return "null"
}

func (c *checker) compileServe(s *manifestv1.Serve, cf *flag, p *path) serve {
	switch k := s.GetKind().(type) {
	case *manifestv1.Serve_Variant:
		idx := cf.variantIndex(k.Variant)
		if idx < 0 {
			vp := p.field("variant")
			c.errorf(&vp, "unknown variant %q", k.Variant)
		}
		return serve{variant: idx}
	case *manifestv1.Serve_Rollout:
		rp := p.field("rollout")
		if k.Rollout == nil {
			c.errorf(&rp, "required")
			return serve{variant: -1}
		}
		r := &rollout{seed: k.Rollout.GetSeed(), bucketBy: newAttrPath(k.Rollout.GetBucketBy())}
		if r.seed == "" {
			r.seed = cf.key
		}
		if r.bucketBy.name == "" || r.bucketBy.name == TargetingKey {
			r.bucketBy, r.byKey = newAttrPath(TargetingKey), true
		}
		wp := rp.field("weights")
		var total int64
		seen := make(map[string]int, len(k.Rollout.GetWeights()))
		for i, w := range k.Rollout.GetWeights() {
			ip := wp.index(i)
			idx := cf.variantIndex(w.GetVariant())
			if idx < 0 {
				vp := ip.field("variant")
				c.errorf(&vp, "unknown variant %q", w.GetVariant())
			}
			if first, dup := seen[w.GetVariant()]; dup && c.validate {
				// Refused on save only: manifests already stored keep compiling.
				vp := ip.field("variant")
				c.errorf(&vp, "variant %q is already listed at weights[%d]: list each variant once (weights are relative shares)", w.GetVariant(), first)
			} else if !dup {
				seen[w.GetVariant()] = i
			}
			if w.GetWeight() < 0 {
				vp := ip.field("weight")
				c.errorf(&vp, "weight must be >= 0, is %d", w.GetWeight())
				continue
			}
			total += int64(w.GetWeight())
			r.cum = append(r.cum, uint32(min(total, math.MaxInt32)))
			r.variants = append(r.variants, idx)
		}
		if total < 1 || total > math.MaxInt32 {
			c.errorf(&wp, "total weight must be between 1 and %d, is %d", math.MaxInt32, total)
		}
		r.total = uint32(min(total, math.MaxInt32))
		return serve{variant: -1, rollout: r}
	}
	c.errorf(p, "required: a serve sets a variant or a rollout")
	return serve{variant: -1}
}

func (c *checker) compileSegment(s *manifestv1.Segment, p *path) *segment {
	start := len(c.errs)
	cs := &segment{src: s, key: s.GetKey()}
	if s == nil {
		cs.err = "nil segment"
		return cs
	}
	cs.included = stringSet(s.GetIncluded())
	cs.excluded = stringSet(s.GetExcluded())
	rp := p.field("rules")
	for i, r := range s.GetRules() {
		ip := rp.index(i)
		cs.rules = append(cs.rules, c.compileClauses(r.GetClauses(), &ip))
	}
	if len(c.errs) > start {
		cs.err = fmt.Sprintf("segment %q: %s", cs.key, c.errs[start].Error())
	}
	return cs
}

func stringSet(vs []string) map[string]struct{} {
	if len(vs) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(vs))
	for _, v := range vs {
		m[v] = struct{}{}
	}
	return m
}

func (c *checker) compileClauses(cls []*manifestv1.Clause, p *path) []clause {
	if len(cls) == 0 {
		return nil
	}
	cp := p.field("clauses")
	out := make([]clause, len(cls))
	for i, cl := range cls {
		ip := cp.index(i)
		c.compileClause(&out[i], cl, &ip)
	}
	return out
}

// compileClause prepares cl's values for its operator.
func (c *checker) compileClause(out *clause, cl *manifestv1.Clause, p *path) {
	*out = clause{
		attr:   newAttrPath(cl.GetAttribute()),
		op:     cl.GetOperator(),
		negate: cl.GetNegate(),
		ci:     cl.GetCaseInsensitive(),
	}
	op := out.op
	if op == manifestv1.Operator_OPERATOR_UNSPECIFIED || manifestv1.Operator_name[int32(op)] == "" {
		pp := p.field("operator")
		c.errorf(&pp, "unknown operator %v", op)
		return
	}
	if c.validate && cl.GetAttribute() == "" && op != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
		pp := p.field("attribute")
		c.errorf(&pp, "required")
	}
	if op == manifestv1.Operator_OPERATOR_EXISTS {
		return
	}
	vp := p.field("values")
	vals := cl.GetValues()
	if len(vals) == 0 {
		c.errorf(&vp, "at least one value required")
		return
	}
	for i, v := range vals {
		ip := vp.index(i)
		if msg := c.addValue(out, v, len(vals)); msg != "" {
			c.errorf(&ip, "%s", msg)
		}
	}
}

// addValue adds one clause value, or says what is wrong with it.
func (c *checker) addValue(out *clause, v *structpb.Value, n int) string {
	str, isStr := v.GetKind().(*structpb.Value_StringValue)
	num, isNum := v.GetKind().(*structpb.Value_NumberValue)
	if isNum && (math.IsNaN(num.NumberValue) || math.IsInf(num.NumberValue, 0)) {
		return "number is not finite"
	}
	switch out.op {
	case manifestv1.Operator_OPERATOR_IN:
		switch k := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			if n > inSetThreshold {
				if out.strSet == nil {
					out.strSet = make(map[string]struct{}, n)
				}
				key := k.StringValue
				if out.ci {
					key = foldKey(key)
				}
				out.strSet[key] = struct{}{}
			} else {
				out.strs = append(out.strs, k.StringValue)
			}
		case *structpb.Value_NumberValue:
			out.nums = append(out.nums, k.NumberValue)
		case *structpb.Value_BoolValue:
			if k.BoolValue {
				out.hasTrue = true
			} else {
				out.hasFalse = true
			}
		default:
			return fmt.Sprintf("must be a string, number or boolean, is %s", kindName(v))
		}
	case manifestv1.Operator_OPERATOR_STARTS_WITH, manifestv1.Operator_OPERATOR_ENDS_WITH, manifestv1.Operator_OPERATOR_CONTAINS:
		if !isStr {
			return fmt.Sprintf("must be a string, is %s", kindName(v))
		}
		out.strs = append(out.strs, str.StringValue)
	case manifestv1.Operator_OPERATOR_MATCHES:
		if !isStr {
			return fmt.Sprintf("must be a string, is %s", kindName(v))
		}
		pattern := str.StringValue
		if out.ci {
			pattern = "(?i)" + pattern
		}
		re, ok := c.regexps[pattern]
		if !ok {
			var err error
			if re, err = regexp.Compile(pattern); err != nil {
				return "invalid regexp: " + err.Error()
			}
			if c.regexps != nil {
				c.regexps[pattern] = re
			}
		}
		out.res = append(out.res, re)
	case manifestv1.Operator_OPERATOR_LT, manifestv1.Operator_OPERATOR_LTE, manifestv1.Operator_OPERATOR_GT, manifestv1.Operator_OPERATOR_GTE:
		switch {
		case isNum:
			out.nums = append(out.nums, num.NumberValue)
		case isStr:
			f, ok := parseDecimal(str.StringValue)
			if !ok {
				return fmt.Sprintf("invalid number %q", str.StringValue)
			}
			out.nums = append(out.nums, f)
		default:
			return fmt.Sprintf("must be a number, is %s", kindName(v))
		}
	case manifestv1.Operator_OPERATOR_SEMVER_EQ, manifestv1.Operator_OPERATOR_SEMVER_LT, manifestv1.Operator_OPERATOR_SEMVER_GT:
		if !isStr {
			return fmt.Sprintf("must be a string, is %s", kindName(v))
		}
		ver, ok := semver.Parse(str.StringValue)
		if !ok {
			return fmt.Sprintf("invalid semver %q", str.StringValue)
		}
		out.vers = append(out.vers, ver)
	case manifestv1.Operator_OPERATOR_BEFORE, manifestv1.Operator_OPERATOR_AFTER:
		var t instant
		switch {
		case isNum:
			t = instantFromMillis(num.NumberValue)
		case isStr:
			var ok bool
			if t, ok = parseInstant(str.StringValue); !ok {
				return fmt.Sprintf("invalid RFC 3339 timestamp %q", str.StringValue)
			}
		default:
			return fmt.Sprintf("must be an RFC 3339 timestamp or a number of Unix milliseconds, is %s", kindName(v))
		}
		out.times = append(out.times, t)
	case manifestv1.Operator_OPERATOR_IP_IN_CIDR:
		if !isStr {
			return fmt.Sprintf("must be a string, is %s", kindName(v))
		}
		pfx, err := netip.ParsePrefix(str.StringValue)
		if err != nil {
			return fmt.Sprintf("invalid CIDR %q", str.StringValue)
		}
		pfx = pfx.Masked()
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		out.nets = append(out.nets, pfx)
	case manifestv1.Operator_OPERATOR_SEGMENT_MATCH:
		if !isStr {
			return fmt.Sprintf("must be a segment key, is %s", kindName(v))
		}
		if c.validate {
			if msg := c.checkSegmentRef(str.StringValue); msg != "" {
				return msg
			}
		}
		out.segs = append(out.segs, str.StringValue)
	}
	return ""
}

// instant is a point in time comparable without overflow: inf is -1 or +1 for
// numbers of milliseconds beyond any representable time.
type instant struct {
	inf  int8
	sec  int64
	nsec int64
}

func (a instant) compare(b instant) int {
	switch {
	case a.inf != b.inf:
		if a.inf < b.inf {
			return -1
		}
		return 1
	case a.inf != 0:
		return 0
	case a.sec != b.sec:
		if a.sec < b.sec {
			return -1
		}
		return 1
	case a.nsec != b.nsec:
		if a.nsec < b.nsec {
			return -1
		}
		return 1
	}
	return 0
}

func instantFromMillis(ms float64) instant {
	s := math.Floor(ms / 1000)
	switch {
	case s >= 1<<62:
		return instant{inf: 1}
	case s <= -(1 << 62):
		return instant{inf: -1}
	}
	ns := math.Round((ms - s*1000) * 1e6)
	return instant{sec: int64(s), nsec: int64(ns)}
}

func parseInstant(s string) (instant, bool) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return instant{}, false
	}
	return instant{sec: t.Unix(), nsec: int64(t.Nanosecond())}, true
}

// parseDecimal parses a decimal number: optional sign, digits with an optional
// fraction, an optional exponent. No hex, no NaN/Inf, no spaces, no overflow.
func parseDecimal(s string) (float64, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
