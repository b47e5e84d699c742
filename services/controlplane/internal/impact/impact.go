// Package impact previews what a proposed configuration does to real traffic: it
// evaluates the environment's seen contexts with the current and the proposed
// manifest, using the same engine the evaluators use (pkg/eval), and counts the
// decisions that change, from which variant to which, with examples and the rule
// responsible (docs/release-safety.md, "Impact preview").
//
// The contract:
//   - Apply builds the proposed manifest from the current one and proposed
//     changes (flag configurations and segments; environment settings change no
//     decision). It never modifies its inputs.
//   - Preview evaluates only the flags a proposal can affect: the flags it
//     changes, the flags whose rules use a changed segment (directly or through
//     nested segments), and, transitively, the flags that have one of those as a
//     prerequisite. A decision changes when the served variant differs.
//   - Its numbers are exactly those of evaluating each context with
//     eval.Manifest.Evaluate on both manifests (a test checks it by brute force).
package impact

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/eval"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// DefaultExamples is the number of example contexts per flag when none is asked.
const DefaultExamples = 3

// UnknownFlagError says a proposed change names a flag the environment does not
// have; Index is the change's position.
type UnknownFlagError struct {
	Index int
	Flag  string
}

func (e *UnknownFlagError) Error() string {
	return fmt.Sprintf("change %d: no flag %q in the environment", e.Index, e.Flag)
}

// Apply returns current with changes applied in order, and the keys of the
// flags and segments they change.
func Apply(current *manifestv1.Manifest, changes []*adminv1.ProposedChange) (out *manifestv1.Manifest, flags, segments map[string]bool, err error) {
	out = proto.CloneOf(current)
	flags, segments = map[string]bool{}, map[string]bool{}
	for i, c := range changes {
		switch ch := c.GetChange().(type) {
		case *adminv1.ProposedChange_FlagConfig:
			key := ch.FlagConfig.GetFlag()
			j := slices.IndexFunc(out.Flags, func(f *manifestv1.Flag) bool { return f.GetKey() == key })
			if j < 0 {
				return nil, nil, nil, &UnknownFlagError{Index: i, Flag: key}
			}
			out.Flags[j].Config = proto.CloneOf(ch.FlagConfig.GetConfig())
			flags[key] = true
		case *adminv1.ProposedChange_Segment:
			sg := proto.CloneOf(ch.Segment)
			j := slices.IndexFunc(out.Segments, func(s *manifestv1.Segment) bool { return s.GetKey() == sg.GetKey() })
			if j < 0 {
				out.Segments = append(out.Segments, sg)
			} else {
				sg.Revision = out.Segments[j].GetRevision()
				out.Segments[j] = sg
			}
			segments[sg.GetKey()] = true
		}
	}
	return out, flags, segments, nil
}

// Affected returns the flags of m whose decisions the changed flags and
// segments can move, sorted, and whether each is changed directly.
func Affected(m *manifestv1.Manifest, flags, segments map[string]bool) (keys []string, direct map[string]bool) {
	// Segments that use a changed segment are changed too.
	changedSeg := map[string]bool{}
	for k := range segments {
		changedSeg[k] = true
	}
	for grew := true; grew; {
		grew = false
		for _, s := range m.GetSegments() {
			if changedSeg[s.GetKey()] {
				continue
			}
			for _, r := range s.GetRules() {
				if usesSegment(r.GetClauses(), changedSeg) {
					changedSeg[s.GetKey()], grew = true, true
					break
				}
			}
		}
	}
	affected := map[string]bool{}
	for k := range flags {
		affected[k] = true
	}
	for _, f := range m.GetFlags() {
		for _, r := range f.GetConfig().GetRules() {
			if usesSegment(r.GetClauses(), changedSeg) {
				affected[f.GetKey()] = true
			}
		}
	}
	for grew := true; grew; {
		grew = false
		for _, f := range m.GetFlags() {
			if affected[f.GetKey()] {
				continue
			}
			for _, p := range f.GetConfig().GetPrerequisites() {
				if affected[p.GetFlagKey()] {
					affected[f.GetKey()], grew = true, true
					break
				}
			}
		}
	}
	for k := range affected {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, flags
}

func usesSegment(cls []*manifestv1.Clause, changed map[string]bool) bool {
	for _, c := range cls {
		if c.GetOperator() != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
			continue
		}
		for _, v := range c.GetValues() {
			if changed[v.GetStringValue()] {
				return true
			}
		}
	}
	return false
}

// Preview evaluates every context on current and on current with changes
// applied, and returns the impact with at most maxExamples examples per flag
// (<= 0: DefaultExamples). Contexts the engine refuses are skipped (they cannot
// be evaluated either way); Impact.contexts counts those evaluated.
func Preview(current *manifestv1.Manifest, changes []*adminv1.ProposedChange, contexts []*structpb.Struct, maxExamples int) (*adminv1.Impact, error) {
	if maxExamples <= 0 {
		maxExamples = DefaultExamples
	}
	proposed, flags, segments, err := Apply(current, changes)
	if err != nil {
		return nil, err
	}
	before, err := eval.Compile(current)
	if err != nil {
		return nil, err
	}
	after, err := eval.Compile(proposed)
	if err != nil {
		return nil, err
	}
	keys, direct := Affected(proposed, flags, segments)
	type ctxPair struct {
		src *structpb.Struct
		c   *eval.Context
	}
	cs := make([]ctxPair, 0, len(contexts))
	for _, s := range contexts {
		c, err := eval.ContextFromStruct(s)
		if err != nil {
			continue
		}
		cs = append(cs, ctxPair{s, c})
	}
	out := &adminv1.Impact{Contexts: int64(len(cs))}
	type pair struct{ from, to string }
	for _, key := range keys {
		fi := &adminv1.FlagImpact{Flag: key, Direct: direct[key]}
		matrix := map[pair]int64{}
		for _, c := range cs {
			r0 := before.Evaluate(key, c.c, eval.Any, nil)
			r1 := after.Evaluate(key, c.c, eval.Any, nil)
			matrix[pair{r0.Variant, r1.Variant}]++
			if r0.Variant == r1.Variant {
				continue
			}
			fi.Changed++
			if len(fi.Examples) < maxExamples {
				fi.Examples = append(fi.Examples, &adminv1.ImpactExample{
					Context: c.src, FromVariant: r0.Variant, ToVariant: r1.Variant,
					FromReason: string(r0.Reason), ToReason: string(r1.Reason), FromRuleId: r0.RuleID, ToRuleId: r1.RuleID,
				})
			}
		}
		if fi.Changed == 0 && !fi.Direct {
			continue
		}
		for p, n := range matrix {
			fi.Transitions = append(fi.Transitions, &adminv1.VariantTransition{FromVariant: p.from, ToVariant: p.to, Count: n})
		}
		slices.SortFunc(fi.Transitions, func(a, b *adminv1.VariantTransition) int {
			if a.GetFromVariant() != b.GetFromVariant() {
				return compare(a.GetFromVariant(), b.GetFromVariant())
			}
			return compare(a.GetToVariant(), b.GetToVariant())
		})
		out.Changed += fi.Changed
		out.Flags = append(out.Flags, fi)
	}
	return out, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
