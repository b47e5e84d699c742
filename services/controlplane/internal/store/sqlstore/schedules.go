package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// --- scheduled changes ---

func schedulePath(ref store.EnvRef, id string) string {
	return envPath(ref.Project, ref.Environment) + "/scheduled-changes/" + id
}

const schedColumns = `body, state, created_at`

func scanSchedule(sc interface{ Scan(...any) error }) (*adminv1.ScheduledChange, error) {
	var body []byte
	var state int32
	var c int64
	if err := sc.Scan(&body, &state, &c); err != nil {
		return nil, err
	}
	out := &adminv1.ScheduledChange{}
	if err := proto.Unmarshal(body, out); err != nil {
		return nil, err
	}
	out.State, out.CreateTime = adminv1.ScheduledChangeState(state), ts(c)
	return out, nil
}

func (s *Store) loadSchedule(ctx context.Context, x q, ref store.EnvRef, id string, lock bool) (*adminv1.ScheduledChange, error) {
	query := `SELECT ` + schedColumns + ` FROM scheduled_changes WHERE org = ? AND project = ? AND environment = ? AND id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	sc, err := scanSchedule(x.row(ctx, query, ref.Org, ref.Project, ref.Environment, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("scheduled change", id)
	}
	return sc, err
}

func (t *Tx) saveSchedule(ctx context.Context, ref store.EnvRef, sc *adminv1.ScheduledChange) error {
	body, err := deterministic.Marshal(sc)
	if err != nil {
		return err
	}
	_, err = t.q().exec(ctx, `UPDATE scheduled_changes SET state = ?, body = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND id = ?`, int32(sc.State), body, micros(t.now),
		ref.Org, ref.Project, ref.Environment, sc.Id)
	return err
}

func schedChange(ref store.EnvRef, action string, before, after *adminv1.ScheduledChange) change {
	id := after.GetId()
	if id == "" {
		id = before.GetId()
	}
	return change{org: ref.Org, project: ref.Project, env: ref.Environment, action: action,
		resourceType: "scheduled_change", resource: schedulePath(ref, id), before: before, after: after}
}

// CreateScheduledChange stores a schedule (and its change request when approvals
// are required).
func (s *Store) CreateScheduledChange(ctx context.Context, m store.WriteMeta, ref store.EnvRef, sc *adminv1.ScheduledChange, cr *adminv1.ChangeRequest) (*adminv1.ScheduledChange, error) {
	return create(ctx, s, m, ref.Org, "schedule.create", requestHash(ref.Project, ref.Environment, sc, cr),
		func() *adminv1.ScheduledChange { return &adminv1.ScheduledChange{} },
		func(t *Tx) (*adminv1.ScheduledChange, error) {
			if _, err := s.loadFlagConfig(ctx, t.q(), ref, sc.GetFlag(), false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			out := proto.CloneOf(sc)
			out.Id, out.Environment, out.CreateTime = id, ref.Environment, timestamppb.New(t.now)
			out.State = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING
			if cr != nil {
				out.State = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL
				c, err := t.insertChangeRequest(ctx, ref, cr, id)
				if err != nil {
					return nil, err
				}
				out.ChangeRequestId = c.Id
				if err := t.record(ctx, withAction(m, "change_request.create"), crChange(ref, "change_request.create", nil, c)); err != nil {
					return nil, err
				}
			}
			body, err := deterministic.Marshal(out)
			if err != nil {
				return nil, err
			}
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO scheduled_changes (org, project, environment, id, flag, state, run_at, body, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ref.Org, ref.Project, ref.Environment, id, out.Flag, int32(out.State),
				tsMicros(out.RunTime), body, now, now); err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, schedChange(ref, "schedule.create", nil, out))
		})
}

// GetScheduledChange returns one schedule.
func (s *Store) GetScheduledChange(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ScheduledChange, error) {
	sc, err := s.loadSchedule(ctx, s.r(), ref, id, false)
	return sc, s.translate(err)
}

// ListScheduledChanges lists an environment's schedules oldest first.
func (s *Store) ListScheduledChanges(ctx context.Context, ref store.EnvRef, state adminv1.ScheduledChangeState, p store.Page) ([]*adminv1.ScheduledChange, string, error) {
	return listByState(ctx, s, scheduleList, ref, stateFilter[*adminv1.ScheduledChange]{state: int32(state)}, p)
}

var scheduleList = stateList[*adminv1.ScheduledChange]{
	table: "scheduled_changes", columns: schedColumns, scan: scanSchedule, id: (*adminv1.ScheduledChange).GetId,
}

// CancelScheduledChange cancels a schedule that has not run.
func (s *Store) CancelScheduledChange(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string) (*adminv1.ScheduledChange, error) {
	var out *adminv1.ScheduledChange
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSchedule(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		switch before.State {
		case adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING, adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL:
		default:
			return errs.E(errs.FailedPrecondition, "scheduled change %q is %s: only a pending one can be cancelled", id, before.State)
		}
		after := proto.CloneOf(before)
		after.State = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_CANCELLED
		if err := t.saveSchedule(ctx, ref, after); err != nil {
			return err
		}
		if cid := before.GetChangeRequestId(); cid != "" {
			cb, err := s.loadChangeRequest(ctx, t.q(), ref, cid, true)
			if err != nil {
				return err
			}
			if cb.State == adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN {
				ca := proto.CloneOf(cb)
				ca.State, ca.Revision, ca.UpdateTime = adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_WITHDRAWN, cb.Revision+1, timestamppb.New(t.now)
				if err := t.saveChangeRequest(ctx, ref, ca); err != nil {
					return err
				}
				if err := t.record(ctx, withAction(m, "change_request.withdraw"), crChange(ref, "change_request.withdraw", cb, ca)); err != nil {
					return err
				}
			}
		}
		out = after
		return t.record(ctx, m, schedChange(ref, "schedule.cancel", before, after))
	})
	return out, err
}

// approveSchedule moves a schedule awaiting approval to PENDING.
func (t *Tx) approveSchedule(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string) error {
	before, err := t.s.loadSchedule(ctx, t.q(), ref, id, true)
	if err != nil {
		return err
	}
	if before.State != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL {
		return errs.E(errs.FailedPrecondition, "scheduled change %q is %s, not awaiting approval", id, before.State)
	}
	after := proto.CloneOf(before)
	after.State = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING
	if err := t.saveSchedule(ctx, ref, after); err != nil {
		return err
	}
	return t.record(ctx, withAction(m, "schedule.approve"), schedChange(ref, "schedule.approve", before, after))
}

// scheduledConfig is the configuration a schedule writes over cur.
func scheduledConfig(sc *adminv1.ScheduledChange, cur *manifestv1.FlagConfig) *manifestv1.FlagConfig {
	switch sc.GetAction() {
	case adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON:
		c := proto.CloneOf(cur)
		c.On = true
		return c
	case adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_OFF:
		c := proto.CloneOf(cur)
		c.On = false
		return c
	default:
		return proto.CloneOf(sc.GetConfig())
	}
}

type dueRow struct {
	ref store.EnvRef
	id  string
}

// RunDueScheduledChange applies (or fails) one due schedule.
func (s *Store) RunDueScheduledChange(ctx context.Context, m store.WriteMeta, now time.Time, check func(flag string) store.Check) (*adminv1.ScheduledChange, error) {
	var out *adminv1.ScheduledChange
	var failed error
	var due dueRow
	pending := int32(adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING)
	err := s.inTx(ctx, func(t *Tx) error {
		query := `SELECT org, project, environment, id FROM scheduled_changes WHERE state = ? AND run_at <= ?
			ORDER BY run_at, id LIMIT 1`
		if s.d.ForUpdate != "" {
			query += s.d.ForUpdate + ` SKIP LOCKED`
		}
		err := t.q().row(ctx, query, pending, micros(now)).Scan(&due.ref.Org, &due.ref.Project, &due.ref.Environment, &due.id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		before, err := s.loadSchedule(ctx, t.q(), due.ref, due.id, false)
		if err != nil {
			return err
		}
		after := proto.CloneOf(before)
		after.State, after.ExecutedTime = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_APPLIED, timestamppb.New(t.now)
		body, err := deterministic.Marshal(after)
		if err != nil {
			return err
		}
		// The claim: only one transaction can move the row out of PENDING.
		res, err := t.q().exec(ctx, `UPDATE scheduled_changes SET state = ?, body = ?, updated_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND id = ? AND state = ?`,
			int32(after.State), body, micros(t.now), due.ref.Org, due.ref.Project, due.ref.Environment, due.id, pending)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil || n != 1 {
			return err // another runner took it: nothing to do
		}
		cur, err := s.loadFlagConfig(ctx, t.q(), due.ref, before.Flag, true)
		if err != nil {
			failed = err
			return failed
		}
		// Checked again when due: approvals may have been turned on after scheduling.
		env, err := s.loadEnv(ctx, t.q(), due.ref, false)
		if err != nil {
			return err
		}
		if env.GetSettings().GetApprovalsRequired() && before.GetChangeRequestId() == "" {
			failed = errs.E(errs.FailedPrecondition, "%s", unapprovedReason)
			return failed
		}
		if b := before.GetBaseRevision(); b > 0 && cur.Revision != b {
			failed = errs.E(errs.Aborted, "flag configuration %q changed since the schedule was made (base revision %d, current %d)", before.Flag, b, cur.Revision)
			return failed
		}
		cm := m
		cm.Action, cm.IdempotencyKey, cm.Comment = "", "", "scheduled change "+due.id
		var chk store.Check
		if check != nil {
			chk = check(before.Flag)
		}
		if _, err := t.writeFlagConfig(ctx, cm, due.ref, cur, scheduledConfig(before, cur.GetConfig()), chk); err != nil {
			if k := errs.KindOf(err); k == errs.InvalidArgument || k == errs.FailedPrecondition || k == errs.NotFound {
				failed = err
			}
			return err
		}
		out = after
		return t.record(ctx, withAction(m, "schedule.run"), schedChange(due.ref, "schedule.run", before, after))
	})
	if failed != nil {
		return s.failSchedule(ctx, m, due.ref, due.id, failed.Error())
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// failSchedule marks a claimed-but-failed schedule FAILED (if still pending).
func (s *Store) failSchedule(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id, reason string) (*adminv1.ScheduledChange, error) {
	var out *adminv1.ScheduledChange
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSchedule(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		out, err = t.failPending(ctx, m, ref, before, reason)
		return err
	})
	return out, err
}

// failPending moves a PENDING schedule to FAILED with reason, audited as
// schedule.fail (nil, nil when it is no longer pending).
func (t *Tx) failPending(ctx context.Context, m store.WriteMeta, ref store.EnvRef, before *adminv1.ScheduledChange, reason string) (*adminv1.ScheduledChange, error) {
	pending := int32(adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING)
	after := proto.CloneOf(before)
	after.State, after.FailureReason, after.ExecutedTime = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_FAILED, reason, timestamppb.New(t.now)
	body, err := deterministic.Marshal(after)
	if err != nil {
		return nil, err
	}
	res, err := t.q().exec(ctx, `UPDATE scheduled_changes SET state = ?, body = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND id = ? AND state = ?`,
		int32(after.State), body, micros(t.now), ref.Org, ref.Project, ref.Environment, before.GetId(), pending)
	if err != nil {
		return nil, err
	}
	if n, err := affected(res); err != nil || n != 1 {
		return nil, err
	}
	fm := withAction(m, "schedule.fail")
	fm.Comment = reason
	return after, t.record(ctx, fm, schedChange(ref, "schedule.fail", before, after))
}

// unapprovedReason is why a schedule made without approval may not run once its
// environment requires approvals.
const unapprovedReason = "the environment requires approvals since this schedule was made without one: " +
	"schedule it again (it will wait for its change request to be approved)"

// failUnapprovedSchedules fails the PENDING schedules of an environment that were
// made without a change request (called when approvals turn on, in that write's
// transaction).
func (t *Tx) failUnapprovedSchedules(ctx context.Context, m store.WriteMeta, ref store.EnvRef) error {
	rows, err := t.q().query(ctx, `SELECT `+schedColumns+` FROM scheduled_changes
		WHERE org = ? AND project = ? AND environment = ? AND state = ? ORDER BY id`+t.s.d.ForUpdate,
		ref.Org, ref.Project, ref.Environment, int32(adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING))
	if err != nil {
		return err
	}
	scs, err := collect(rows, scanSchedule)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if sc.GetChangeRequestId() != "" {
			continue
		}
		if _, err := t.failPending(ctx, m, ref, sc, unapprovedReason); err != nil {
			return err
		}
	}
	return nil
}
