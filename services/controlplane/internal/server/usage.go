package server

import (
	"context"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// maxUsageWindow bounds one usage query.
const maxUsageWindow = 31 * 24 * time.Hour

// UsageService implements adminv1.UsageServiceServer.
type UsageService struct {
	adminv1.UnimplementedUsageServiceServer
	store interface {
		FlagUsage(ctx context.Context, ref store.EnvRef, flag string, start, end time.Time) ([]*adminv1.UsageBucket, error)
	}
	now func() time.Time
}

// GetFlagUsage returns per-minute evaluation counts of a flag (default: the last
// hour; at most 31 days).
func (s *UsageService) GetFlagUsage(ctx context.Context, req *adminv1.GetFlagUsageRequest) (*adminv1.GetFlagUsageResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	end := s.now().UTC()
	if req.GetEndTime() != nil {
		end = req.GetEndTime().AsTime()
	}
	start := end.Add(-time.Hour)
	if req.GetStartTime() != nil {
		start = req.GetStartTime().AsTime()
	}
	switch {
	case !end.After(start):
		c.fail("end_time", "must be after start_time")
	case end.Sub(start) > maxUsageWindow:
		c.fail("start_time", "the window is at most 31 days")
	}
	if c.err != nil {
		return nil, c.err
	}
	bs, err := s.store.FlagUsage(ctx, ref, req.GetFlag(), start, end)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, b := range bs {
		total += b.GetCount()
	}
	return &adminv1.GetFlagUsageResponse{Buckets: bs, Total: total}, nil
}
