package server

import (
	"context"
	"encoding/json"
	"math"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/strictjson"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// rolloutPercentage is the patch member of the boolean rollout shorthand.
const rolloutPercentage = "rolloutPercentage"

// PatchFlagConfig applies a JSON merge patch (RFC 7396) to a flag's configuration
// in one environment, then saves it exactly as UpdateFlagConfig does (validation,
// audit, a change request where approvals are required). The merged configuration
// is decoded strictly: an unknown field or value is refused naming its path.
func (s *FlagService) PatchFlagConfig(ctx context.Context, req *adminv1.PatchFlagConfigRequest) (*adminv1.PatchFlagConfigResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.present("patch", req.GetPatch() == nil)
	if req.GetRevision() < 0 {
		c.fail("revision", "must be >= 0")
	}
	if c.err != nil {
		return nil, c.err
	}
	cur, err := s.store.GetFlagConfig(ctx, ref, req.GetFlag())
	if err != nil {
		return nil, err
	}
	b, err := protojson.Marshal(cur.GetConfig())
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	patch := req.GetPatch().AsMap()
	pct, hasPct := patch[rolloutPercentage]
	delete(patch, rolloutPercentage)
	// defaultServe is one of a variant or a rollout: a patch of it replaces it
	// whole (merging {"rollout": ...} into {"variant": ...} would set both).
	if ds, ok := patch["defaultServe"]; ok && ds != nil {
		delete(doc, "defaultServe")
	}
	doc = mergePatch(doc, patch).(map[string]any)
	if hasPct {
		f, err := s.store.GetFlag(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag())
		if err != nil {
			return nil, err
		}
		serve, err := percentageRollout(f, pct)
		if err != nil {
			return nil, err
		}
		doc["defaultServe"] = serve
	}
	merged, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	cfg := &manifestv1.FlagConfig{}
	if err := strictjson.Unmarshal(merged, cfg); err != nil {
		return nil, err
	}
	rev := req.GetRevision()
	if rev == 0 {
		rev = cur.GetRevision()
	}
	out, err := s.UpdateFlagConfig(ctx, &adminv1.UpdateFlagConfigRequest{Org: ref.Org, Project: ref.Project, Environment: ref.Environment,
		Flag: req.GetFlag(), Config: cfg, Revision: rev, Comment: req.GetComment(), DryRun: req.GetDryRun()})
	if err != nil {
		return nil, err
	}
	return &adminv1.PatchFlagConfigResponse{Config: out.GetConfig(), ChangeRequest: out.GetChangeRequest(),
		Impact: out.GetImpact(), WouldOpenChangeRequest: out.GetWouldOpenChangeRequest()}, nil
}

// mergePatch applies an RFC 7396 merge patch to target.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// percentageRollout is the defaultServe of the shorthand: the boolean flag's true
// variant for pct percent of contexts (weights out of 100,000, so 12.5 works), the
// false variant for the rest.
func percentageRollout(f *adminv1.Flag, pct any) (map[string]any, error) {
	p, ok := pct.(float64)
	if !ok || p < 0 || p > 100 || math.IsNaN(p) {
		return nil, errs.Invalid(rolloutPercentage, "must be a number from 0 to 100")
	}
	if f.GetType() != manifestv1.FlagType_FLAG_TYPE_BOOLEAN {
		return nil, errs.Invalid(rolloutPercentage, "is for boolean flags; %q is %s: set defaultServe.rollout.weights", f.GetKey(), f.GetType())
	}
	var on, off string
	for _, v := range f.GetVariants() {
		if v.GetValue().GetBoolValue() {
			on = v.GetKey()
		} else {
			off = v.GetKey()
		}
	}
	w := int64(math.Round(p * 1000))
	return map[string]any{"rollout": map[string]any{"weights": []any{
		map[string]any{"variant": on, "weight": w},
		map[string]any{"variant": off, "weight": 100000 - w},
	}}}, nil
}
