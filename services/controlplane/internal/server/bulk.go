package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/protobuf/proto"
)

// maxBulkItems bounds one bulk write (flags + segments + configurations).
const maxBulkItems = 20000

// flagWithConfigsCreator is the store CreateFlag with configs needs.
type flagWithConfigsCreator interface {
	CreateFlagWithConfigs(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, f *adminv1.Flag, initial *manifestv1.FlagConfig, configs []store.BulkConfig, check func(env string) store.Check) (*adminv1.Flag, error)
}

// bulkWriter is the store a bulk write needs.
type bulkWriter interface {
	BulkWrite(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, b *store.Bulk, check func(env string) store.Check) (*store.BulkResult, error)
}

// BulkWrite upserts many flags, segments and configurations of a project in one
// transaction (see the proto). It is refused as a whole when it would change what
// a protected environment serves; new flags are fine anywhere.
func (s *FlagService) BulkWrite(ctx context.Context, req *adminv1.BulkWriteRequest) (*adminv1.BulkWriteResponse, error) {
	bw, ok := s.store.(bulkWriter)
	if !ok {
		return nil, errs.E(errs.FailedPrecondition, "this store does not support bulk writes")
	}
	ref, b, check, err := s.prepareBulk(ctx, req, false)
	if err != nil {
		return nil, err
	}
	res, err := bw.BulkWrite(ctx, meta(ctx, "", req.GetComment(), ""), ref, b, check)
	if err != nil {
		return nil, err
	}
	return &adminv1.BulkWriteResponse{
		FlagsCreated: int32(res.FlagsCreated), FlagsUpdated: int32(res.FlagsUpdated), FlagsUnchanged: int32(res.FlagsUnchanged),
		SegmentsCreated: int32(res.SegmentsCreated), SegmentsUpdated: int32(res.SegmentsUpdated), SegmentsUnchanged: int32(res.SegmentsUnchanged),
		ConfigsUpdated: int32(res.ConfigsUpdated), ConfigsUnchanged: int32(res.ConfigsUnchanged),
	}, nil
}

// prepareBulk validates a bulk write and applies its governance decision
// (refuseServingChanges); it returns what the store's write takes. With creating
// (CreateFlag with configs) the decision is left to the caller, to run inside the
// write: an idempotent retry replays before it.
func (s *FlagService) prepareBulk(ctx context.Context, req *adminv1.BulkWriteRequest, creating bool) (store.ProjectRef, *store.Bulk, func(env string) store.Check, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.text("comment", req.GetComment(), maxComment, false)
	if n := len(req.GetFlags()) + len(req.GetSegments()) + len(req.GetConfigs()); n > maxBulkItems {
		c.fail("flags", "a bulk write holds at most %d flags, segments and configurations in all (has %d): split it", maxBulkItems, n)
	}
	flagAt := map[string]int{}
	b := &store.Bulk{Initial: func(f *adminv1.Flag) *manifestv1.FlagConfig {
		off := offVariant(f)
		return &manifestv1.FlagConfig{OffVariant: off, DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: off}}}
	}}
	for i, in := range req.GetFlags() {
		p := idx("flags", i)
		c.key(p+".key", in.GetKey())
		if j, dup := flagAt[in.GetKey()]; dup {
			c.fail(p+".key", "flag %q is already at flags[%d]", in.GetKey(), j)
		}
		flagAt[in.GetKey()] = i
		f := &adminv1.Flag{
			Key: in.GetKey(), Name: in.GetName(), Description: in.GetDescription(), Type: in.GetType(),
			Variants: in.GetVariants(), Tags: in.GetTags(), Owner: in.GetOwner(), ClientVisible: in.GetClientVisible(),
			Temporary: in.GetTemporary(), ExpiresAt: in.GetExpiresAt(),
		}
		if f.Name == "" {
			f.Name = f.Key
		}
		if f.Type == manifestv1.FlagType_FLAG_TYPE_BOOLEAN && len(f.Variants) == 0 {
			f.Variants = booleanVariants()
		}
		if in.GetRevision() < 0 {
			c.fail(p+".revision", "must be 0 (any) or the revision the definition is based on")
		}
		f.Revision = in.GetRevision()
		c.flagDefinition(p, f)
		b.Flags = append(b.Flags, f)
	}
	segAt := map[string]int{}
	for i, sg := range req.GetSegments() {
		p := idx("segments", i)
		c.key(p+".environment", sg.GetEnvironment())
		c.present(p+".segment", sg.GetSegment() == nil)
		c.key(p+".segment.key", sg.GetSegment().GetKey())
		c.segment(p+".segment", sg.GetSegment())
		k := sg.GetEnvironment() + "/" + sg.GetSegment().GetKey()
		if j, dup := segAt[k]; dup {
			c.fail(p+".segment.key", "segment %q of %q is already at segments[%d]", sg.GetSegment().GetKey(), sg.GetEnvironment(), j)
		}
		segAt[k] = i
		b.Segments = append(b.Segments, store.BulkSegment{Environment: sg.GetEnvironment(), Segment: sg.GetSegment()})
	}
	cfgAt := map[string]int{}
	for i, fc := range req.GetConfigs() {
		p := idx("configs", i)
		c.key(p+".environment", fc.GetEnvironment())
		c.key(p+".flag", fc.GetFlag())
		c.present(p+".config", fc.GetConfig() == nil)
		k := fc.GetEnvironment() + "/" + fc.GetFlag()
		if j, dup := cfgAt[k]; dup {
			c.fail(p+".flag", "the configuration of %q in %q is already at configs[%d]", fc.GetFlag(), fc.GetEnvironment(), j)
		}
		cfgAt[k] = i
		if fc.GetBaseRevision() < 0 {
			c.fail(p+".base_revision", "must be 0 (any) or the revision the configuration is based on")
		}
		b.Configs = append(b.Configs, store.BulkConfig{Environment: fc.GetEnvironment(), Flag: fc.GetFlag(), Config: fc.GetConfig(), BaseRevision: fc.GetBaseRevision()})
	}
	ref := store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}
	if c.err != nil {
		return ref, nil, nil, c.err
	}
	if !creating {
		if err := s.refuseServingChanges(ctx, ref, b, false); err != nil {
			return ref, nil, nil, err
		}
	}
	// Validation per environment, with the whole bulk in place: engine paths are
	// mapped back to the request (a configuration's to configs[i], a
	// definition's to flags[i]).
	check := func(env string) store.Check {
		return func(view store.EnvView) error {
			var vs []errs.Violation
			seen := map[string]bool{}
			validate := func(key string) {
				if seen[key] {
					return
				}
				seen[key] = true
				f, ok := view.Flag(key)
				if !ok {
					return // archived: not in the environment
				}
				err := validationError(validateFlag(f, view), func(p string) string {
					if i, ok := cfgAt[env+"/"+key]; ok && (p == "config" || strings.HasPrefix(p, "config.")) {
						return idx("configs", i) + "." + p
					}
					if i, ok := flagAt[key]; ok {
						return under(idx("flags", i))(p)
					}
					return fmt.Sprintf("flag %q in %q: %s", key, env, p)
				})
				vs = append(vs, errs.ViolationsOf(err)...)
				if err != nil && len(errs.ViolationsOf(err)) == 0 {
					vs = append(vs, errs.Violation{Field: "flags", Description: err.Error()})
				}
			}
			for _, f := range b.Flags {
				validate(f.GetKey())
			}
			for _, fc := range b.Configs {
				if fc.Environment == env {
					validate(fc.Flag)
				}
			}
			for i, sg := range b.Segments {
				if sg.Environment != env {
					continue
				}
				cur, ok := view.Segment(sg.Segment.GetKey())
				if !ok {
					continue
				}
				vs = append(vs, errs.ViolationsOf(validationError(validateSegment(cur, view), under(idx("segments", i)+".segment")))...)
			}
			if len(vs) > 0 {
				return errs.InvalidAll(vs)
			}
			return nil
		}
	}
	return ref, b, check, nil
}

// refuseServingChanges applies BulkWrite's governance decision (refused when
// serving): a configuration or segment of a protected environment, or a changed
// definition of an existing flag while any environment is protected, refuses the
// write. Identical content passes (an apply that changes nothing there). With
// creating (CreateFlag with configs: b's flags are new, the store refuses existing
// ones or replays an idempotent retry) the decision ignores the stored state: a
// protected environment's configuration must be the one a new flag starts with.
func (s *FlagService) refuseServingChanges(ctx context.Context, ref store.ProjectRef, b *store.Bulk, creating bool) error {
	envs, _, err := s.store.ListEnvironments(ctx, ref, store.Page{Size: maxPageSize})
	if err != nil {
		return err
	}
	protected := map[string]bool{}
	for _, e := range envs {
		if e.GetSettings().GetApprovalsRequired() {
			protected[e.GetKey()] = true
		}
	}
	if len(protected) == 0 {
		return nil
	}
	const how = "requires approvals: propose this change with a change request (flagforge apply does) instead of a bulk write"
	for i, fc := range b.Configs {
		if !protected[fc.Environment] {
			continue
		}
		var want *manifestv1.FlagConfig
		var cur *adminv1.FlagEnvironmentConfig
		var err error = errs.E(errs.NotFound, "a created flag")
		if !creating {
			cur, err = s.store.GetFlagConfig(ctx, store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: fc.Environment}, fc.Flag)
		}
		switch {
		case errs.KindOf(err) == errs.NotFound:
			// A new flag: only the configuration creating it gives passes.
			for _, f := range b.Flags {
				if f.GetKey() == fc.Flag {
					want = b.Initial(f)
				}
			}
		case err != nil:
			return err
		default:
			want = cur.GetConfig()
		}
		if !proto.Equal(want, fc.Config) {
			return &errs.Error{Kind: errs.FailedPrecondition, Field: idx("configs", i), Message: fmt.Sprintf("environment %q %s", fc.Environment, how)}
		}
	}
	for i, sg := range b.Segments {
		if !protected[sg.Environment] {
			continue
		}
		cur, err := s.store.GetSegment(ctx, store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: sg.Environment}, sg.Segment.GetKey())
		if err != nil && errs.KindOf(err) != errs.NotFound {
			return err
		}
		next := proto.CloneOf(sg.Segment)
		next.Revision = cur.GetRevision()
		if err != nil || !proto.Equal(cur, next) {
			return &errs.Error{Kind: errs.FailedPrecondition, Field: idx("segments", i), Message: fmt.Sprintf("environment %q %s", sg.Environment, how)}
		}
	}
	// A changed definition of an existing flag is guarded by the store, inside the
	// write, against what the protected environments serve (as UpdateFlag is).
	return nil
}

// createWithConfigs is CreateFlag with configurations: BulkWrite's checks, one
// transaction of the new flag and its configurations that honours the idempotency
// key idem as a plain create does, with error paths spelled as CreateFlag's
// request ("flag.variants[0]", `configs["production"].rules[0]`).
func (s *FlagService) createWithConfigs(ctx context.Context, req *adminv1.CreateFlagRequest, f *adminv1.Flag, idem string) (*adminv1.CreateFlagResponse, error) {
	fw, ok := s.store.(flagWithConfigsCreator)
	if !ok {
		return nil, errs.E(errs.FailedPrecondition, "this store does not support creating a flag with configs")
	}
	envs := make([]string, 0, len(req.GetConfigs()))
	for e := range req.GetConfigs() {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	bulk := &adminv1.BulkWriteRequest{Org: req.GetOrg(), Project: req.GetProject(), Flags: []*adminv1.Flag{f}}
	for _, e := range envs {
		bulk.Configs = append(bulk.Configs, &adminv1.BulkFlagConfig{Environment: e, Flag: f.GetKey(), Config: req.GetConfigs()[e]})
	}
	var out *adminv1.Flag
	ref, b, check, err := s.prepareBulk(ctx, bulk, true)
	if err == nil {
		// The governance decision runs with the checks, inside the write, so that a
		// retry replays the first create even if approvals were required since.
		var decided bool
		var refused error
		governed := func(env string) store.Check {
			inner := check(env)
			return func(v store.EnvView) error {
				if !decided {
					decided, refused = true, s.refuseServingChanges(ctx, ref, b, true)
				}
				if refused != nil {
					return refused
				}
				return inner(v)
			}
		}
		out, err = fw.CreateFlagWithConfigs(ctx, meta(ctx, idem, "", ""), ref, f, b.Initial(f), b.Configs, governed)
	}
	if err != nil {
		return nil, renameFields(err, func(p string) string {
			if rest, ok := strings.CutPrefix(p, "flags[0]"); ok {
				return "flag" + rest
			}
			var i int
			if _, err := fmt.Sscanf(p, "configs[%d]", &i); err == nil && i < len(envs) {
				rest := p[strings.Index(p, "]")+1:]
				rest = strings.TrimPrefix(rest, ".config")
				return fmt.Sprintf("configs[%q]", envs[i]) + rest
			}
			return p
		})
	}
	return &adminv1.CreateFlagResponse{Flag: out}, nil
}

// renameFields returns err with its field paths mapped by rename.
func renameFields(err error, rename func(string) string) error {
	var e *errs.Error
	if !errors.As(err, &e) || (e.Field == "" && len(e.Violations) == 0) {
		return err
	}
	c := *e
	c.Field = rename(e.Field)
	c.Violations = nil
	for _, v := range e.Violations {
		c.Violations = append(c.Violations, errs.Violation{Field: rename(v.Field), Description: v.Description})
	}
	return &c
}
