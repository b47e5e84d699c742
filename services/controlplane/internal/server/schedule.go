package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/governance"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// schedules is the storage the schedule service needs.
type schedules interface {
	GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
	GetFlagConfig(ctx context.Context, ref store.EnvRef, flag string) (*adminv1.FlagEnvironmentConfig, error)
	CreateScheduledChange(ctx context.Context, m store.WriteMeta, ref store.EnvRef, sc *adminv1.ScheduledChange, cr *adminv1.ChangeRequest) (*adminv1.ScheduledChange, error)
	GetScheduledChange(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ScheduledChange, error)
	ListScheduledChanges(ctx context.Context, ref store.EnvRef, state adminv1.ScheduledChangeState, p store.Page) ([]*adminv1.ScheduledChange, string, error)
	CancelScheduledChange(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string) (*adminv1.ScheduledChange, error)
}

// ScheduleService implements adminv1.ScheduleServiceServer. Schedules are run by
// package schedule's Runner.
type ScheduleService struct {
	adminv1.UnimplementedScheduleServiceServer
	store schedules
	now   func() time.Time
}

// FlagConfigCheck is the engine validation a scheduled configuration passes when
// it runs, the same as a direct UpdateFlagConfig (for schedule.Runner).
func FlagConfigCheck(flag string) store.Check { return checkFlag(flag, configField, false) }

// CreateScheduledChange schedules a change of one flag at run_time (UTC). In an
// environment requiring approvals the schedule awaits the approval of a change
// request created with it, whose content is the configuration it will write.
func (s *ScheduleService) CreateScheduledChange(ctx context.Context, req *adminv1.CreateScheduledChangeRequest) (*adminv1.CreateScheduledChangeResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	switch req.GetAction() {
	case adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON, adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_OFF:
		if req.GetConfig() != nil {
			c.fail("config", "is only for SCHEDULED_ACTION_SET_CONFIG")
		}
	case adminv1.ScheduledAction_SCHEDULED_ACTION_SET_CONFIG:
		c.present("config", req.GetConfig() == nil)
		c.revision("base_revision", req.GetBaseRevision())
	default:
		c.fail("action", "is required")
	}
	if req.GetBaseRevision() < 0 {
		c.fail("base_revision", "must be >= 0")
	}
	c.present("run_time", req.GetRunTime() == nil)
	if req.GetRunTime() != nil && req.GetRunTime().CheckValid() != nil {
		c.fail("run_time", "is not a valid time")
	} else if rt := req.GetRunTime().AsTime(); req.GetRunTime() != nil && rt.Before(s.now()) {
		// A schedule that would run at once is a mistake more often than not;
		// a change meant for now is made directly (UpdateFlagConfig).
		c.fail("run_time", "%s is in the past (now %s): schedule a future time, or make the change directly to apply it now",
			rt.UTC().Format(time.RFC3339), s.now().UTC().Format(time.RFC3339))
	}
	c.text("comment", req.GetComment(), maxComment, false)
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	cur, err := s.store.GetFlagConfig(ctx, ref, req.GetFlag())
	if err != nil {
		return nil, err
	}
	if b := req.GetBaseRevision(); b > 0 && b != cur.GetRevision() {
		return nil, errs.E(errs.Aborted, "base revision %d is stale (current %d)", b, cur.GetRevision())
	}
	sc := &adminv1.ScheduledChange{
		Flag: req.GetFlag(), Action: req.GetAction(), Config: req.GetConfig(), BaseRevision: req.GetBaseRevision(),
		RunTime: req.GetRunTime(), AuthorId: actor.PrincipalFrom(ctx).ID(), Comment: req.GetComment(),
	}
	var cr *adminv1.ChangeRequest
	if env.GetSettings().GetApprovalsRequired() {
		pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{FlagConfig: &adminv1.FlagConfigChange{
			Flag: req.GetFlag(), Config: scheduledConfig(sc, cur.GetConfig())}}}
		desc := fmt.Sprintf("scheduled change: %s of flag %q at %s", req.GetAction(), req.GetFlag(), req.GetRunTime().AsTime().UTC().Format(time.RFC3339))
		if req.GetComment() != "" {
			desc += ": " + req.GetComment()
		}
		cr = &adminv1.ChangeRequest{Change: pc, BaseRevision: req.GetBaseRevision(), Description: desc,
			AuthorId: sc.AuthorId, RequiredApprovals: requiredApprovals(env), ContentDigest: governance.Digest(pc, req.GetBaseRevision())}
	}
	out, err := s.store.CreateScheduledChange(ctx, meta(ctx, idem, req.GetComment(), ""), ref, sc, cr)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateScheduledChangeResponse{ScheduledChange: out}, nil
}

// scheduledConfig is what sc will write over cur (for the approval's diff).
func scheduledConfig(sc *adminv1.ScheduledChange, cur *manifestv1.FlagConfig) *manifestv1.FlagConfig {
	switch sc.GetAction() {
	case adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON, adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_OFF:
		c := proto.CloneOf(cur)
		c.On = sc.GetAction() == adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON
		return c
	}
	return sc.GetConfig()
}

// GetScheduledChange reads a schedule.
func (s *ScheduleService) GetScheduledChange(ctx context.Context, req *adminv1.GetScheduledChangeRequest) (*adminv1.GetScheduledChangeResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	sc, err := s.store.GetScheduledChange(ctx, ref, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetScheduledChangeResponse{ScheduledChange: sc}, nil
}

// ListScheduledChanges lists an environment's schedules, optionally by state.
func (s *ScheduleService) ListScheduledChanges(ctx context.Context, req *adminv1.ListScheduledChangesRequest) (*adminv1.ListScheduledChangesResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if _, ok := adminv1.ScheduledChangeState_name[int32(req.GetState())]; !ok {
		c.fail("state", "unknown state")
	}
	if c.err != nil {
		return nil, c.err
	}
	out, next, err := s.store.ListScheduledChanges(ctx, ref, req.GetState(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListScheduledChangesResponse{ScheduledChanges: out, NextPageToken: next}, nil
}

// CancelScheduledChange cancels a schedule that has not run.
func (s *ScheduleService) CancelScheduledChange(ctx context.Context, req *adminv1.CancelScheduledChangeRequest) (*adminv1.CancelScheduledChangeResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	sc, err := s.store.CancelScheduledChange(ctx, meta(ctx, "", "", ""), ref, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.CancelScheduledChangeResponse{ScheduledChange: sc}, nil
}
