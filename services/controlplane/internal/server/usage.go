package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

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
		ProjectUsage(ctx context.Context, ref store.EnvRef, start, end time.Time, bucket time.Duration) ([]*adminv1.FlagUsageSeries, error)
		GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
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

// maxUsageBuckets bounds one series of GetProjectUsage.
const maxUsageBuckets = 500

// GetProjectUsage returns every flag's evaluation counts in an environment as
// equal buckets (default: the last 7 days by day), for the flags list's
// sparklines. The window is aligned down to whole minutes (counts are per minute).
func (s *UsageService) GetProjectUsage(ctx context.Context, req *adminv1.GetProjectUsageRequest) (*adminv1.GetProjectUsageResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	// By default the window ends after the current minute (counts are per minute,
	// stamped with the minute's start), so it holds whole buckets.
	end := s.now().UTC().Truncate(time.Minute).Add(time.Minute)
	if req.GetEndTime() != nil {
		end = req.GetEndTime().AsTime()
	}
	start := end.Add(-7 * 24 * time.Hour)
	if req.GetStartTime() != nil {
		start = req.GetStartTime().AsTime()
	}
	start = start.Truncate(time.Minute)
	bucket := 24 * time.Hour
	if b := req.GetBucketSeconds(); b != 0 {
		bucket = time.Duration(b) * time.Second
		if b < 0 || b%60 != 0 {
			c.fail("bucket_seconds", "must be a positive multiple of 60")
		}
	}
	switch {
	case !end.After(start):
		c.fail("end_time", "must be after start_time")
	case end.Sub(start) > maxUsageWindow:
		c.fail("start_time", "the window is at most 31 days")
	case bucket > 0 && end.Sub(start)/bucket >= maxUsageBuckets:
		c.fail("bucket_seconds", "at most %d buckets per series: widen the buckets or narrow the window", maxUsageBuckets)
	}
	if c.err != nil {
		return nil, c.err
	}
	if _, err := s.store.GetEnvironment(ctx, ref); err != nil {
		return nil, err
	}
	series, err := s.store.ProjectUsage(ctx, ref, start, end, bucket)
	if err != nil {
		return nil, err
	}
	return &adminv1.GetProjectUsageResponse{Series: series, StartTime: timestamppb.New(start), BucketSeconds: int64(bucket / time.Second)}, nil
}
