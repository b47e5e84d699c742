package eval

import (
	"fmt"
	"strings"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Lookup gives the validators the environment a flag or segment is saved into, with
// the proposed change in place. The caller implements it (or uses NewLookup).
type Lookup interface {
	// Flag returns the flag with this key in the environment.
	Flag(key string) (*manifestv1.Flag, bool)
	// Segment returns the segment with this key in the environment.
	Segment(key string) (*manifestv1.Segment, bool)
}

// NewLookup returns a Lookup over the given flags and segments (the first of
// duplicate keys wins).
func NewLookup(flags []*manifestv1.Flag, segments []*manifestv1.Segment) Lookup {
	l := mapLookup{flags: make(map[string]*manifestv1.Flag, len(flags)), segments: make(map[string]*manifestv1.Segment, len(segments))}
	for _, f := range flags {
		if _, dup := l.flags[f.GetKey()]; !dup && f != nil {
			l.flags[f.GetKey()] = f
		}
	}
	for _, s := range segments {
		if _, dup := l.segments[s.GetKey()]; !dup && s != nil {
			l.segments[s.GetKey()] = s
		}
	}
	return l
}

type mapLookup struct {
	flags    map[string]*manifestv1.Flag
	segments map[string]*manifestv1.Segment
}

func (l mapLookup) Flag(key string) (*manifestv1.Flag, bool) {
	f, ok := l.flags[key]
	return f, ok
}

func (l mapLookup) Segment(key string) (*manifestv1.Segment, bool) {
	s, ok := l.segments[key]
	return s, ok
}

// FieldError is one problem of a flag or segment. Path is relative to the validated
// message and uses proto JSON (lowerCamelCase) names, e.g.
// "config.rules[2].clauses[0].values[1]".
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ValidationError lists everything wrong with a flag, segment or manifest. Callers
// map it to INVALID_ARGUMENT.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

func (c *checker) result() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: c.errs}
}

// isSlug reports whether s matches ^[a-z0-9][a-z0-9_.-]{0,63}$.
func isSlug(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

const slugRule = "must be a lowercase slug (^[a-z0-9][a-z0-9_.-]{0,63}$)"

func (c *checker) checkSlug(s string, p *path) {
	if !isSlug(s) {
		c.errorf(p, "%q %s", s, slugRule)
	}
}

// ValidateFlag checks a flag before it is saved into the environment env (which
// holds the proposed flag in place of any previous version; nil: an empty
// environment). It returns nil or a *ValidationError.
func ValidateFlag(f *manifestv1.Flag, env Lookup) error {
	c := &checker{validate: true, env: env}
	c.validateFlag(f, nil)
	return c.result()
}

// ValidateSegment checks a segment before it is saved into the environment env (nil:
// an empty environment). It returns nil or a *ValidationError.
func ValidateSegment(s *manifestv1.Segment, env Lookup) error {
	c := &checker{validate: true, env: env}
	c.validateSegment(s, nil)
	return c.result()
}

// ValidateManifest checks every flag and segment of m against m itself, plus the
// manifest-level rules (known bucketing, unique keys). Paths start with
// "flags[i]." or "segments[i].".
func ValidateManifest(m *manifestv1.Manifest) error {
	c := &checker{validate: true}
	if m == nil {
		c.errorf(nil, "manifest required")
		return c.result()
	}
	if b := m.GetBucketing(); b != "" && b != BucketingMurmur3V1 {
		bp := (*path)(nil).field("bucketing")
		c.errorf(&bp, "unknown bucketing algorithm %q", b)
	}
	c.env = NewLookup(m.GetFlags(), m.GetSegments())
	seen := map[string]bool{}
	fp := (*path)(nil).field("flags")
	for i, f := range m.GetFlags() {
		ip := fp.index(i)
		if seen[f.GetKey()] {
			kp := ip.field("key")
			c.errorf(&kp, "duplicate flag key %q", f.GetKey())
		}
		seen[f.GetKey()] = true
		c.validateFlag(f, &ip)
	}
	seen = map[string]bool{}
	sp := (*path)(nil).field("segments")
	for i, s := range m.GetSegments() {
		ip := sp.index(i)
		if seen[s.GetKey()] {
			kp := ip.field("key")
			c.errorf(&kp, "duplicate segment key %q", s.GetKey())
		}
		seen[s.GetKey()] = true
		c.validateSegment(s, &ip)
	}
	return c.result()
}

func (c *checker) validateFlag(f *manifestv1.Flag, p *path) {
	if f == nil {
		c.errorf(p, "flag required")
		return
	}
	kp := p.field("key")
	c.checkSlug(f.GetKey(), &kp)
	vsp := p.field("variants")
	for i, v := range f.GetVariants() {
		ip := vsp.index(i)
		vkp := ip.field("key")
		c.checkSlug(v.GetKey(), &vkp)
	}
	c.compileFlag(f, p)
	cfg := f.GetConfig()
	if cfg == nil {
		return
	}
	cp := p.field("config")
	rp := cp.field("rules")
	ids := map[string]bool{}
	for i, r := range cfg.GetRules() {
		ip := rp.index(i)
		idp := ip.field("id")
		c.checkSlug(r.GetId(), &idp)
		if ids[r.GetId()] {
			c.errorf(&idp, "duplicate rule id %q", r.GetId())
		}
		ids[r.GetId()] = true
	}
	pp := cp.field("prerequisites")
	g := newRefGraph(f.GetKey(), MaxPrerequisiteDepth, func(key string) ([]string, bool) {
		t := f
		if key != f.GetKey() {
			if c.env == nil {
				return nil, false
			}
			var ok bool
			if t, ok = c.env.Flag(key); !ok {
				return nil, false
			}
		}
		var next []string
		for _, pr := range t.GetConfig().GetPrerequisites() {
			next = append(next, pr.GetFlagKey())
		}
		return next, true
	})
	for i, pr := range cfg.GetPrerequisites() {
		ip := pp.index(i)
		fkp := ip.field("flagKey")
		key := pr.GetFlagKey()
		var target *manifestv1.Flag
		if key == f.GetKey() {
			target = f
		} else if c.env != nil {
			target, _ = c.env.Flag(key)
		}
		if target == nil {
			c.errorf(&fkp, "unknown flag %q", key)
			continue
		}
		vp := ip.field("variants")
		for j, v := range pr.GetVariants() {
			if !hasVariant(target, v) {
				jp := vp.index(j)
				c.errorf(&jp, "unknown variant %q of flag %q", v, key)
			}
		}
		h, cycle := g.walk(key, []string{f.GetKey()})
		switch {
		case cycle != nil:
			c.errorf(&fkp, "prerequisite cycle: %s", strings.Join(cycle, " -> "))
		case h > MaxPrerequisiteDepth:
			c.errorf(&fkp, "prerequisites nested deeper than %d", MaxPrerequisiteDepth)
		}
	}
}

func hasVariant(f *manifestv1.Flag, key string) bool {
	for _, v := range f.GetVariants() {
		if v.GetKey() == key {
			return true
		}
	}
	return false
}

// checkSegmentRef says what is wrong with a reference to a segment.
func (c *checker) checkSegmentRef(key string) string {
	if c.self != nil && key == c.self.GetKey() {
		return ""
	}
	if c.env != nil {
		if _, ok := c.env.Segment(key); ok {
			return ""
		}
	}
	return fmt.Sprintf("unknown segment %q", key)
}

func (c *checker) validateSegment(s *manifestv1.Segment, p *path) {
	if s == nil {
		c.errorf(p, "segment required")
		return
	}
	kp := p.field("key")
	c.checkSlug(s.GetKey(), &kp)
	c.self = s
	defer func() { c.self = nil }()
	c.compileSegment(s, p)
	rp := p.field("rules")
	ids := map[string]bool{}
	g := newRefGraph(s.GetKey(), MaxSegmentDepth, func(key string) ([]string, bool) {
		t := s
		if key != s.GetKey() {
			if c.env == nil {
				return nil, false
			}
			var ok bool
			if t, ok = c.env.Segment(key); !ok {
				return nil, false
			}
		}
		return segmentRefs(t), true
	})
	for i, r := range s.GetRules() {
		ip := rp.index(i)
		if id := r.GetId(); id != "" {
			idp := ip.field("id")
			c.checkSlug(id, &idp)
			if ids[id] {
				c.errorf(&idp, "duplicate rule id %q", id)
			}
			ids[id] = true
		}
		cp := ip.field("clauses")
		for j, cl := range r.GetClauses() {
			if cl.GetOperator() != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
				continue
			}
			jp := cp.index(j)
			vp := jp.field("values")
			for k, v := range cl.GetValues() {
				key := v.GetStringValue()
				if !g.exists(key) {
					continue // unknown: reported by compileSegment
				}
				h, cycle := g.walk(key, []string{s.GetKey()})
				kp := vp.index(k)
				switch {
				case cycle != nil:
					c.errorf(&kp, "segment cycle: %s", strings.Join(cycle, " -> "))
				case h+1 > MaxSegmentDepth:
					c.errorf(&kp, "segments nested deeper than %d", MaxSegmentDepth)
				}
			}
		}
	}
}

// refGraph walks references between flags (prerequisites) or between segments
// (segment_match), starting from a proposed flag or segment, to find cycles and
// the longest chain. refs returns a node's references, and false when the node
// does not exist (a missing node ends a chain; it is reported elsewhere).
type refGraph struct {
	refs   func(key string) ([]string, bool)
	limit  int
	height map[string]int // finished nodes: the longest chain starting there
	onPath map[string]bool
}

// newRefGraph starts a walk at self; chains longer than limit stop the walk early.
func newRefGraph(self string, limit int, refs func(string) ([]string, bool)) *refGraph {
	return &refGraph{refs: refs, limit: limit, height: map[string]int{}, onPath: map[string]bool{self: true}}
}

// exists says whether key names a node.
func (g *refGraph) exists(key string) bool {
	_, ok := g.refs(key)
	return ok
}

// walk returns the number of nodes in the longest chain starting at key, or the
// first cycle met (a path ending with a node already on the path).
func (g *refGraph) walk(key string, stack []string) (int, []string) {
	if g.onPath[key] {
		return 0, append(append([]string(nil), stack...), key)
	}
	if h, ok := g.height[key]; ok {
		return h, nil
	}
	next, ok := g.refs(key)
	if !ok {
		g.height[key] = 1
		return 1, nil
	}
	g.onPath[key] = true
	defer delete(g.onPath, key)
	stack = append(stack, key)
	best := 0
	for _, n := range next {
		h, cycle := g.walk(n, stack)
		if cycle != nil {
			return 0, cycle
		}
		best = max(best, h)
		if best > g.limit {
			break
		}
	}
	g.height[key] = best + 1
	return best + 1, nil
}

// segmentRefs lists the segments a segment's rules reference, in order.
func segmentRefs(s *manifestv1.Segment) []string {
	var out []string
	for _, r := range s.GetRules() {
		for _, cl := range r.GetClauses() {
			if cl.GetOperator() != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
				continue
			}
			for _, v := range cl.GetValues() {
				out = append(out, v.GetStringValue())
			}
		}
	}
	return out
}
