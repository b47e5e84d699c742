package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// A dry run (UpdateFlagConfig, PatchFlagConfig and UpdateSegment with dry_run)
// runs the real write, in its own transaction, up to and including the checks
// that run after the state change (the engine's validation against the
// environment as it would be), then ends the transaction with errDryRun: the
// store rolls everything back, so no revision, audit entry or outbox row is
// written, and every refusal is the real write's, naming the same fields.

// errDryRun ends a dry run's transaction once the write and its checks passed.
var errDryRun = errors.New("dry run: rolled back")

// DryRunHeader is the gRPC metadata key the REST gateway sets from ?dryRun= on
// PUT routes, whose body is the whole request message (so the query string
// cannot reach the request's dry_run field).
const DryRunHeader = "x-flagforge-dry-run"

// dryRunCheck wraps chk so the write's transaction rolls back after chk passes.
func dryRunCheck(chk store.Check) store.Check {
	return func(v store.EnvView) error {
		if chk != nil {
			if err := chk(v); err != nil {
				return err
			}
		}
		return errDryRun
	}
}

// dryRunDone turns the result of a dry-run write into the caller's error: nil
// when the write would have succeeded.
func dryRunDone(err error) error {
	switch {
	case errors.Is(err, errDryRun):
		return nil
	case err == nil:
		return errors.New("dry run: the store committed a write it should have rolled back")
	}
	return err
}

// isDryRun is the request's dry_run, or the gateway's DryRunHeader.
func isDryRun(ctx context.Context, field bool) bool {
	if field {
		return true
	}
	for _, v := range metadata.ValueFromIncomingContext(ctx, DryRunHeader) {
		if b, err := strconv.ParseBool(v); err == nil && b {
			return true
		}
	}
	return false
}

// Previewer previews the impact of proposed changes over an environment's seen
// contexts (impact.Service).
type Previewer interface {
	PreviewImpact(ctx context.Context, req *adminv1.PreviewImpactRequest) (*adminv1.PreviewImpactResponse, error)
}

// WithImpact makes dry runs answer the impact preview of the change (without
// it their impact is unset).
func WithImpact(p Previewer) Option { return func(o *options) { o.impact = p } }

// previewOne is the impact of one proposed change (nil without a Previewer).
func previewOne(ctx context.Context, p Previewer, ref store.EnvRef, pc *adminv1.ProposedChange) (*adminv1.Impact, error) {
	if p == nil {
		return nil, nil
	}
	out, err := p.PreviewImpact(ctx, &adminv1.PreviewImpactRequest{Org: ref.Org, Project: ref.Project, Environment: ref.Environment,
		Changes: []*adminv1.ProposedChange{pc}})
	if err != nil {
		return nil, fmt.Errorf("impact preview: %w", err)
	}
	return out.GetImpact(), nil
}

// checkProposal runs propose's checks (the base revision is current, the change
// changes something) without creating the change request.
func checkProposal(ctx context.Context, st changeRequests, ref store.EnvRef, pc *adminv1.ProposedChange, base int64) error {
	cur, same, err := currentRevision(ctx, st, ref, pc)
	if err != nil {
		return err
	}
	if cur != base {
		return errs.E(errs.Aborted, "base revision %d is stale (current %d): read the current state and propose again", base, cur)
	}
	if same {
		return errs.Invalid("change", "changes nothing: the proposed %s equals the current one", targetOf(pc))
	}
	return nil
}

// dryRunFlagConfig answers UpdateFlagConfig with dry_run: the configuration as
// it would be saved, whether a change request would be opened instead, and the
// impact preview. env is the environment read by the caller.
func (s *FlagService) dryRunFlagConfig(ctx context.Context, ref store.EnvRef, env *adminv1.Environment, req *adminv1.UpdateFlagConfigRequest) (*adminv1.UpdateFlagConfigResponse, error) {
	pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{FlagConfig: &adminv1.FlagConfigChange{
		Flag: req.GetFlag(), Config: req.GetConfig()}}}
	out := &adminv1.UpdateFlagConfigResponse{}
	if env.GetSettings().GetApprovalsRequired() {
		if s.gov == nil {
			return nil, errs.E(errs.FailedPrecondition, "environment %q requires approvals: changes go through change requests", ref.Environment)
		}
		if err := checkProposal(ctx, s.gov, ref, pc, req.GetRevision()); err != nil {
			return nil, err
		}
		out.WouldOpenChangeRequest = true
	}
	cur, err := s.store.GetFlagConfig(ctx, ref, req.GetFlag())
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateFlagConfig(ctx, meta(ctx, "", req.GetComment(), ""), ref, req.GetFlag(), req.GetConfig(), req.GetRevision(),
		dryRunCheck(checkFlag(req.GetFlag(), configField, false)))
	if err := dryRunDone(err); err != nil {
		return nil, err
	}
	fc := proto.CloneOf(cur)
	fc.Config, fc.Revision, fc.UpdateTime = proto.CloneOf(req.GetConfig()), cur.GetRevision()+1, timestamppb.New(s.now())
	s.fillStatus(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag(), fc)
	out.Config = fc
	if out.Impact, err = previewOne(ctx, s.impact, ref, pc); err != nil {
		return nil, err
	}
	return out, nil
}

// dryRunSegment answers UpdateSegment with dry_run (see dryRunFlagConfig).
func (s *SegmentService) dryRunSegment(ctx context.Context, ref store.EnvRef, env *adminv1.Environment, seg *manifestv1.Segment, req *adminv1.UpdateSegmentRequest) (*adminv1.UpdateSegmentResponse, error) {
	pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_Segment{Segment: seg}}
	out := &adminv1.UpdateSegmentResponse{}
	if env.GetSettings().GetApprovalsRequired() {
		if s.gov == nil {
			return nil, errs.E(errs.FailedPrecondition, "environment %q requires approvals: changes go through change requests", ref.Environment)
		}
		if err := checkProposal(ctx, s.gov, ref, pc, req.GetRevision()); err != nil {
			return nil, err
		}
		out.WouldOpenChangeRequest = true
	}
	_, err := s.store.UpdateSegment(ctx, meta(ctx, "", req.GetComment(), ""), ref, seg, req.GetRevision(),
		dryRunCheck(checkSegment(seg.GetKey(), under("definition"))))
	if err := dryRunDone(err); err != nil {
		return nil, err
	}
	after := proto.CloneOf(seg)
	after.Revision = req.GetRevision() + 1
	out.Segment = after
	if out.Impact, err = previewOne(ctx, s.impact, ref, pc); err != nil {
		return nil, err
	}
	return out, nil
}
