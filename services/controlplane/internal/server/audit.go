package server

import (
	"context"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// AuditService implements adminv1.AuditServiceServer.
type AuditService struct {
	adminv1.UnimplementedAuditServiceServer
	store store.Audit
}

// ListAuditEntries lists an organization's audit entries, newest first.
func (s *AuditService) ListAuditEntries(ctx context.Context, req *adminv1.ListAuditEntriesRequest) (*adminv1.ListAuditEntriesResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("resource_type", req.GetResourceType(), 64, false)
	c.text("resource", req.GetResource(), 500, false)
	c.text("actor_id", req.GetActorId(), 100, false)
	c.text("action", req.GetAction(), 100, false)
	page := c.page(req.GetPageSize(), req.GetPageToken())
	var start, end time.Time
	if req.GetStartTime() != nil {
		start = req.GetStartTime().AsTime()
	}
	if req.GetEndTime() != nil {
		end = req.GetEndTime().AsTime()
		if !start.IsZero() && !end.After(start) {
			c.fail("end_time", "must be after start_time")
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	es, next, err := s.store.ListAudit(ctx, req.GetOrg(), store.AuditFilter{
		ResourceType: req.GetResourceType(), Resource: req.GetResource(), ActorID: req.GetActorId(),
		Action: req.GetAction(), Start: start, End: end,
	}, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListAuditEntriesResponse{Entries: es, NextPageToken: next}, nil
}

// GetAuditEntry reads one entry.
func (s *AuditService) GetAuditEntry(ctx context.Context, req *adminv1.GetAuditEntryRequest) (*adminv1.GetAuditEntryResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("id", req.GetId(), 100, true)
	if c.err != nil {
		return nil, c.err
	}
	e, err := s.store.GetAudit(ctx, req.GetOrg(), req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetAuditEntryResponse{Entry: e}, nil
}

// VerifyAuditChain checks the organization's hash chain.
func (s *AuditService) VerifyAuditChain(ctx context.Context, req *adminv1.VerifyAuditChainRequest) (*adminv1.VerifyAuditChainResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	if c.err != nil {
		return nil, c.err
	}
	v, err := s.store.VerifyAudit(ctx, req.GetOrg())
	if err != nil {
		return nil, err
	}
	return &adminv1.VerifyAuditChainResponse{Ok: v.OK, EntriesChecked: v.Checked, FirstBroken: v.FirstBroken, Problem: v.Problem}, nil
}
