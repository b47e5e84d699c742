package server

import (
	"context"
	"errors"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// liveView is a store.EnvView over the environment as it is now, read through the
// flag service's store as the engine asks (flags for prerequisites, segments for
// rules), with one flag's configuration replaced by the proposal. It lives for
// one validation; the first read error is kept in err.
type liveView struct {
	ctx      context.Context //nolint:containedctx // scoped to one validation
	s        *FlagService
	ref      store.EnvRef
	flag     string
	proposed *manifestv1.FlagConfig
	err      error
}

func (v *liveView) Flag(key string) (*manifestv1.Flag, bool) {
	if v.err != nil {
		return nil, false
	}
	pref := store.ProjectRef{Org: v.ref.Org, Project: v.ref.Project}
	f, err := v.s.store.GetFlag(v.ctx, pref, key)
	if errs.KindOf(err) == errs.NotFound || (err == nil && f.GetArchived()) {
		return nil, false
	}
	if err != nil {
		v.err = err
		return nil, false
	}
	mf := &manifestv1.Flag{Key: f.GetKey(), Type: f.GetType(), Variants: f.GetVariants(), ClientVisible: f.GetClientVisible()}
	if key == v.flag {
		mf.Config = v.proposed
		return mf, true
	}
	fc, err := v.s.store.GetFlagConfig(v.ctx, v.ref, key)
	if err != nil {
		if errs.KindOf(err) != errs.NotFound {
			v.err = err
		}
		return nil, false
	}
	mf.Config, mf.Revision = fc.GetConfig(), fc.GetRevision()
	return mf, true
}

func (v *liveView) Segment(key string) (*manifestv1.Segment, bool) {
	if v.err != nil {
		return nil, false
	}
	sg, err := v.s.store.GetSegment(v.ctx, v.ref, key)
	if err != nil {
		if errs.KindOf(err) != errs.NotFound {
			v.err = err
		}
		return nil, false
	}
	return sg, true
}

// ValidateFlagConfig runs UpdateFlagConfig's validation (the engine's, against
// the environment's current flags and segments) and answers every violation by
// the field UpdateFlagConfig would name; it saves nothing. Request errors (a
// missing config, an unknown flag or environment, an archived flag) are refused
// as UpdateFlagConfig refuses them.
func (s *FlagService) ValidateFlagConfig(ctx context.Context, req *adminv1.ValidateFlagConfigRequest) (*adminv1.ValidateFlagConfigResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.present("config", req.GetConfig() == nil)
	if c.err != nil {
		return nil, c.err
	}
	if _, err := s.store.GetEnvironment(ctx, ref); err != nil {
		return nil, err
	}
	if _, err := s.store.GetFlag(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag()); err != nil {
		return nil, err
	}
	v := &liveView{ctx: ctx, s: s, ref: ref, flag: req.GetFlag(), proposed: req.GetConfig()}
	err := checkFlag(req.GetFlag(), configField, false)(v)
	if v.err != nil {
		return nil, v.err
	}
	var e *errs.Error
	if err == nil || !errors.As(err, &e) || e.Kind != errs.InvalidArgument {
		return &adminv1.ValidateFlagConfigResponse{}, err
	}
	out := &adminv1.ValidateFlagConfigResponse{}
	if len(e.Violations) == 0 {
		out.Violations = append(out.Violations, &adminv1.FieldViolation{Field: e.Field, Description: e.Message})
	}
	for _, vi := range e.Violations {
		out.Violations = append(out.Violations, &adminv1.FieldViolation{Field: vi.Field, Description: vi.Description})
	}
	return out, nil
}
