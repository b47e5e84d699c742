package server

import (
	"context"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// SegmentService implements adminv1.SegmentServiceServer.
type SegmentService struct {
	adminv1.UnimplementedSegmentServiceServer
	// impact previews dry runs (nil: their impact is unset).
	impact Previewer
	store  interface {
		store.Segments
		GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
	}
	// gov creates change requests (nil: approval-protected updates are refused).
	gov changeRequests
}

func (c *checks) segment(field string, s *manifestv1.Segment) {
	c.text(field+".description", s.GetDescription(), maxDescription, false)
	if len(s.GetIncluded()) > maxListValues {
		c.fail(field+".included", "at most %d values", maxListValues)
	}
	if len(s.GetExcluded()) > maxListValues {
		c.fail(field+".excluded", "at most %d values", maxListValues)
	}
	for i, r := range s.GetRules() {
		c.optKey(idx(field+".rules", i)+".id", r.GetId())
	}
}

// checkSegment validates segment key as the environment will carry it.
func checkSegment(key string, field func(string) string) store.Check {
	return func(env store.EnvView) error {
		s, ok := env.Segment(key)
		if !ok {
			return errs.E(errs.Internal, "segment %q missing from its own write", key)
		}
		return validationError(validateSegment(s, env), field)
	}
}

// CreateSegment creates a segment in one environment.
func (s *SegmentService) CreateSegment(ctx context.Context, req *adminv1.CreateSegmentRequest) (*adminv1.CreateSegmentResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.present("segment", req.GetSegment() == nil)
	c.key("segment.key", req.GetSegment().GetKey())
	c.segment("segment", req.GetSegment())
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	out, err := s.store.CreateSegment(ctx, meta(ctx, idem, "", ""), ref, req.GetSegment(), checkSegment(req.GetSegment().GetKey(), under("segment")))
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateSegmentResponse{Segment: out}, nil
}

// GetSegment reads a segment.
func (s *SegmentService) GetSegment(ctx context.Context, req *adminv1.GetSegmentRequest) (*adminv1.GetSegmentResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("segment", req.GetSegment())
	if c.err != nil {
		return nil, c.err
	}
	out, err := s.store.GetSegment(ctx, ref, req.GetSegment())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetSegmentResponse{Segment: out}, nil
}

// ListSegments lists an environment's segments.
func (s *SegmentService) ListSegments(ctx context.Context, req *adminv1.ListSegmentsRequest) (*adminv1.ListSegmentsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	out, next, err := s.store.ListSegments(ctx, ref, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSegmentsResponse{Segments: out, NextPageToken: next}, nil
}

// UpdateSegment replaces a segment. In an environment that requires approvals it
// saves nothing and creates a change request instead (returned in the response).
func (s *SegmentService) UpdateSegment(ctx context.Context, req *adminv1.UpdateSegmentRequest) (*adminv1.UpdateSegmentResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("segment", req.GetSegment())
	c.present("definition", req.GetDefinition() == nil)
	if k := req.GetDefinition().GetKey(); k != "" && k != req.GetSegment() {
		c.fail("definition.key", "must equal segment %q", req.GetSegment())
	}
	c.segment("definition", req.GetDefinition())
	c.revision("revision", req.GetRevision())
	c.text("comment", req.GetComment(), maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	seg := &manifestv1.Segment{
		Key: req.GetSegment(), Included: req.GetDefinition().GetIncluded(), Excluded: req.GetDefinition().GetExcluded(),
		Rules: req.GetDefinition().GetRules(), Description: req.GetDefinition().GetDescription(),
	}
	if isDryRun(ctx, req.GetDryRun()) {
		return s.dryRunSegment(ctx, ref, env, seg, req)
	}
	if env.GetSettings().GetApprovalsRequired() {
		if s.gov == nil {
			return nil, errs.E(errs.FailedPrecondition, "environment %q requires approvals: changes go through change requests", ref.Environment)
		}
		cr, err := propose(ctx, s.gov, ref, env, &adminv1.ProposedChange{Change: &adminv1.ProposedChange_Segment{Segment: seg}},
			req.GetRevision(), req.GetComment(), "")
		if err != nil {
			return nil, err
		}
		return &adminv1.UpdateSegmentResponse{ChangeRequest: cr}, nil
	}
	out, err := s.store.UpdateSegment(ctx, meta(ctx, "", req.GetComment(), ""), ref, seg, req.GetRevision(), checkSegment(seg.Key, under("definition")))
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateSegmentResponse{Segment: out}, nil
}

// DeleteSegment deletes a segment no flag or segment references.
func (s *SegmentService) DeleteSegment(ctx context.Context, req *adminv1.DeleteSegmentRequest) (*adminv1.DeleteSegmentResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("segment", req.GetSegment())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	if err := s.store.DeleteSegment(ctx, meta(ctx, "", "", ""), ref, req.GetSegment(), req.GetRevision()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteSegmentResponse{}, nil
}
