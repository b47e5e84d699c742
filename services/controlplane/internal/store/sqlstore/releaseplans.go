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
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// --- release plans ---

var _ store.ReleasePlans = (*Store)(nil)

// releasePlanPath is the plan's audit resource: under its flag, so webhook
// deliveries about a plan are ordered with the flag's other changes.
func releasePlanPath(ref store.EnvRef, flag, id string) string {
	return flagConfigPath(ref, flag) + "/release-plans/" + id
}

const planColumns = `body, state, revision, created_at, updated_at`

func scanPlan(sc interface{ Scan(...any) error }) (*adminv1.ReleasePlan, error) {
	var body []byte
	var state int32
	var rev, c, u int64
	if err := sc.Scan(&body, &state, &rev, &c, &u); err != nil {
		return nil, err
	}
	out := &adminv1.ReleasePlan{}
	if err := proto.Unmarshal(body, out); err != nil {
		return nil, err
	}
	out.State, out.Revision, out.CreateTime, out.UpdateTime = adminv1.ReleasePlanState(state), rev, ts(c), ts(u)
	return out, nil
}

func (s *Store) loadPlan(ctx context.Context, x q, ref store.EnvRef, id string, lock bool) (*adminv1.ReleasePlan, error) {
	query := `SELECT ` + planColumns + ` FROM release_plans WHERE org = ? AND project = ? AND environment = ? AND id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	p, err := scanPlan(x.row(ctx, query, ref.Org, ref.Project, ref.Environment, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("release plan", id)
	}
	return p, err
}

// planTimes are the runner's columns: when the next step and the next check are
// due (0 unless the plan runs).
func planTimes(p *adminv1.ReleasePlan, checkAt int64) (nextAt, check int64) {
	if p.GetState() != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING {
		return 0, 0
	}
	return micros(p.GetNextStepTime().AsTime()), checkAt
}

// savePlan writes p at revision p.Revision (the caller bumped it).
func (t *Tx) savePlan(ctx context.Context, ref store.EnvRef, p *adminv1.ReleasePlan, checkAt int64) error {
	body, err := planBody(p)
	if err != nil {
		return err
	}
	nextAt, check := planTimes(p, checkAt)
	_, err = t.q().exec(ctx, `UPDATE release_plans SET state = ?, body = ?, revision = ?, next_at = ?, check_at = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND id = ?`, int32(p.State), body, p.Revision, nextAt, check,
		micros(t.now), ref.Org, ref.Project, ref.Environment, p.Id)
	return err
}

// planBody is the stored form: the columns (state, revision, times) are not
// duplicated in it.
func planBody(p *adminv1.ReleasePlan) ([]byte, error) {
	b := proto.CloneOf(p)
	b.State, b.Revision, b.CreateTime, b.UpdateTime = 0, 0, nil, nil
	return deterministic.Marshal(b)
}

func planChange(ref store.EnvRef, action string, before, after *adminv1.ReleasePlan) change {
	p := after
	if p == nil {
		p = before
	}
	return change{org: ref.Org, project: ref.Project, env: ref.Environment, action: action,
		resourceType: "release_plan", resource: releasePlanPath(ref, p.GetFlag(), p.GetId()), before: before, after: after}
}

// CreateReleasePlan stores a plan (and its change request when approvals are
// required).
func (s *Store) CreateReleasePlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, p *adminv1.ReleasePlan, cr *adminv1.ChangeRequest) (*adminv1.ReleasePlan, error) {
	return create(ctx, s, m, ref.Org, "release_plan.create", requestHash(ref.Project, ref.Environment, p, cr),
		func() *adminv1.ReleasePlan { return &adminv1.ReleasePlan{} },
		func(t *Tx) (*adminv1.ReleasePlan, error) {
			if _, err := s.loadFlagConfig(ctx, t.q(), ref, p.GetFlag(), false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			out := proto.CloneOf(p)
			out.Id, out.Environment, out.Revision = id, ref.Environment, 1
			out.CreateTime, out.UpdateTime = timestamppb.New(t.now), timestamppb.New(t.now)
			out.State, out.LastSafeStep = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_READY, -1
			if cr != nil {
				out.State = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_AWAITING_APPROVAL
				c, err := t.insertPlanChangeRequest(ctx, m, ref, cr, id)
				if err != nil {
					return nil, err
				}
				out.ChangeRequestId = c.Id
			}
			body, err := planBody(out)
			if err != nil {
				return nil, err
			}
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO release_plans (org, project, environment, id, flag, state, next_at, check_at, body, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, 1, ?, ?)`, ref.Org, ref.Project, ref.Environment, id, out.Flag, int32(out.State),
				body, now, now); err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, planChange(ref, "release_plan.create", nil, out))
		})
}

// insertPlanChangeRequest opens cr for plan id (linked by the plan_id column).
func (t *Tx) insertPlanChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, cr *adminv1.ChangeRequest, id string) (*adminv1.ChangeRequest, error) {
	c, err := t.insertChangeRequest(ctx, ref, cr, "")
	if err != nil {
		return nil, err
	}
	if _, err := t.q().exec(ctx, `UPDATE change_requests SET plan_id = ? WHERE org = ? AND project = ? AND environment = ? AND id = ?`,
		id, ref.Org, ref.Project, ref.Environment, c.Id); err != nil {
		return nil, err
	}
	return c, t.record(ctx, withAction(m, "change_request.create"), crChange(ref, "change_request.create", nil, c))
}

// GetReleasePlan returns one plan.
func (s *Store) GetReleasePlan(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ReleasePlan, error) {
	p, err := s.loadPlan(ctx, s.r(), ref, id, false)
	return p, s.translate(err)
}

// ListReleasePlans lists an environment's plans oldest first.
func (s *Store) ListReleasePlans(ctx context.Context, ref store.EnvRef, flag string, state adminv1.ReleasePlanState, p store.Page) ([]*adminv1.ReleasePlan, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT ` + planColumns + ` FROM release_plans WHERE org = ? AND project = ? AND environment = ? AND id > ?`
	args := []any{ref.Org, ref.Project, ref.Environment, after}
	if flag != "" {
		query += ` AND flag = ?`
		args = append(args, flag)
	}
	if state != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_UNSPECIFIED {
		query += ` AND state = ?`
		args = append(args, int32(state))
	}
	rows, err := s.r().query(ctx, query+` ORDER BY id LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanPlan)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.ReleasePlan).GetId)
	return out, next, nil
}

// ChangeReleasePlan runs one transition on the locked plan.
func (s *Store) ChangeReleasePlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, tr *store.PlanTransition, check store.Check) (*adminv1.ReleasePlan, error) {
	var out *adminv1.ReleasePlan
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadPlan(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		var checkAt int64
		if err := t.q().row(ctx, `SELECT check_at FROM release_plans WHERE org = ? AND project = ? AND environment = ? AND id = ?`,
			ref.Org, ref.Project, ref.Environment, id).Scan(&checkAt); err != nil {
			return err
		}
		cur, err := s.loadFlagConfig(ctx, t.q(), ref, before.GetFlag(), true)
		if errs.KindOf(err) == errs.NotFound {
			cur, err = nil, nil
		}
		if err != nil {
			return err
		}
		env, err := s.loadEnv(ctx, t.q(), ref, false)
		if err != nil {
			return err
		}
		after := proto.CloneOf(before)
		cfg, err := tr.Apply(after, cur, env)
		if errors.Is(err, store.ErrNoTransition) {
			return nil
		}
		if err != nil {
			return checkError{err}
		}
		if cfg != nil && cur != nil {
			cm := m
			cm.Action, cm.IdempotencyKey = "", ""
			if cm.Comment == "" {
				cm.Comment = "release plan " + id + ": " + tr.Action
			}
			if _, err := t.writeFlagConfig(ctx, cm, ref, cur, cfg, check); err != nil {
				return err
			}
		}
		after.Id, after.Flag, after.Environment = before.Id, before.Flag, before.Environment
		after.Revision, after.CreateTime, after.UpdateTime = before.Revision+1, before.CreateTime, timestamppb.New(t.now)
		if after.State == adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING && before.State != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING {
			checkAt = 0 // (re)started: check at once, whatever the clock
		}
		if err := t.savePlan(ctx, ref, after, checkAt); err != nil {
			return err
		}
		out = after
		return t.record(ctx, withAction(m, tr.Action), planChange(ref, tr.Action, before, after))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DueReleasePlans lists running plans whose step or check is due.
func (s *Store) DueReleasePlans(ctx context.Context, now time.Time, limit int) ([]store.DuePlan, error) {
	rows, err := s.r().query(ctx, `SELECT org, project, environment, next_at, `+planColumns+` FROM release_plans
		WHERE state = ? AND (next_at <= ? OR check_at <= ?) ORDER BY next_at, id LIMIT ?`,
		int32(adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING), micros(now), micros(now), limit)
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.DuePlan, error) {
		var d store.DuePlan
		var nextAt int64
		var body []byte
		var state int32
		var rev, c, u int64
		if err := sc.Scan(&d.Ref.Org, &d.Ref.Project, &d.Ref.Environment, &nextAt, &body, &state, &rev, &c, &u); err != nil {
			return d, err
		}
		d.Plan = &adminv1.ReleasePlan{}
		if err := proto.Unmarshal(body, d.Plan); err != nil {
			return d, err
		}
		d.Plan.State, d.Plan.Revision, d.Plan.CreateTime, d.Plan.UpdateTime = adminv1.ReleasePlanState(state), rev, ts(c), ts(u)
		d.StepDue = nextAt <= micros(now)
		return d, nil
	})
	return out, s.translate(err)
}

// ClaimGuardrailCheck takes the next guardrail check of a running plan.
func (s *Store) ClaimGuardrailCheck(ctx context.Context, ref store.EnvRef, id string, now, next time.Time) (bool, error) {
	var ok bool
	err := s.inTx(ctx, func(t *Tx) error {
		res, err := t.q().exec(ctx, `UPDATE release_plans SET check_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND id = ? AND state = ? AND check_at <= ?`,
			micros(next), ref.Org, ref.Project, ref.Environment, id, int32(adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING), micros(now))
		if err != nil {
			return err
		}
		n, err := affected(res)
		ok = n == 1
		return err
	})
	return ok, err
}

// RecordGuardrailStates saves guardrail evaluations (telemetry: no audit).
func (s *Store) RecordGuardrailStates(ctx context.Context, ref store.EnvRef, id string, revision int64, states []*adminv1.GuardrailState) error {
	return s.inTx(ctx, func(t *Tx) error {
		p, err := s.loadPlan(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		if p.Revision != revision {
			return nil
		}
		p.GuardrailStates = states
		body, err := planBody(p)
		if err != nil {
			return err
		}
		_, err = t.q().exec(ctx, `UPDATE release_plans SET body = ? WHERE org = ? AND project = ? AND environment = ? AND id = ? AND revision = ?`,
			body, ref.Org, ref.Project, ref.Environment, id, revision)
		return err
	})
}

// planOfChangeRequest is the plan a change request approves ("" for none).
func (t *Tx) planOfChangeRequest(ctx context.Context, ref store.EnvRef, crID string) (string, error) {
	var pid string
	err := t.q().row(ctx, `SELECT plan_id FROM change_requests WHERE org = ? AND project = ? AND environment = ? AND id = ?`,
		ref.Org, ref.Project, ref.Environment, crID).Scan(&pid)
	return pid, err
}

// approvePlan moves a plan awaiting the approval of change request crID on:
// READY, or PAUSED when it had started before the edit that needed approval.
func (t *Tx) approvePlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id, crID string) error {
	before, err := t.s.loadPlan(ctx, t.q(), ref, id, true)
	if err != nil {
		return err
	}
	if before.State != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_AWAITING_APPROVAL || before.ChangeRequestId != crID {
		return errs.E(errs.FailedPrecondition, "release plan %q is %s, not awaiting the approval of change request %q", id, before.State, crID)
	}
	after := proto.CloneOf(before)
	after.State = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_READY
	if before.AppliedSteps > 0 {
		after.State = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_PAUSED
		after.PauseReason = "edited plan approved: resume to continue"
	}
	after.Revision, after.UpdateTime = before.Revision+1, timestamppb.New(t.now)
	if err := t.savePlan(ctx, ref, after, 0); err != nil {
		return err
	}
	return t.record(ctx, withAction(m, "release_plan.approve"), planChange(ref, "release_plan.approve", before, after))
}

// closeLinkedPlan cancels a plan whose change request was withdrawn or rejected
// while it waited for it (a plan that had started is paused instead).
func (t *Tx) closeLinkedPlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, crID, reason string) error {
	pid, err := t.planOfChangeRequest(ctx, ref, crID)
	if err != nil || pid == "" {
		return err
	}
	before, err := t.s.loadPlan(ctx, t.q(), ref, pid, true)
	if err != nil {
		return err
	}
	if before.State != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_AWAITING_APPROVAL || before.ChangeRequestId != crID {
		return nil
	}
	after := proto.CloneOf(before)
	after.State, after.PauseReason = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_CANCELLED, reason
	after.Revision, after.UpdateTime = before.Revision+1, timestamppb.New(t.now)
	if err := t.savePlan(ctx, ref, after, 0); err != nil {
		return err
	}
	return t.record(ctx, withAction(m, "release_plan.cancel"), planChange(ref, "release_plan.cancel", before, after))
}

// ReplaceReleasePlanContent replaces a plan's content through edit on the locked
// plan; with cr non-nil (approvals required) the plan waits for cr, opened in
// the same transaction, and the plan's previous open request is withdrawn.
func (s *Store) ReplaceReleasePlanContent(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, revision int64,
	edit func(p *adminv1.ReleasePlan) error, cr *adminv1.ChangeRequest) (*adminv1.ReleasePlan, error) {
	var out *adminv1.ReleasePlan
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadPlan(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		if err := checkRevision("release plan", id, before.Revision, revision); err != nil {
			return err
		}
		after := proto.CloneOf(before)
		if err := edit(after); err != nil {
			return checkError{err}
		}
		if old := before.GetChangeRequestId(); old != "" && cr != nil {
			cb, err := s.loadChangeRequest(ctx, t.q(), ref, old, true)
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
		if cr != nil {
			c, err := t.insertPlanChangeRequest(ctx, m, ref, cr, id)
			if err != nil {
				return err
			}
			after.ChangeRequestId, after.State = c.Id, adminv1.ReleasePlanState_RELEASE_PLAN_STATE_AWAITING_APPROVAL
		}
		after.Id, after.Flag, after.Environment = before.Id, before.Flag, before.Environment
		after.Revision, after.CreateTime, after.UpdateTime = before.Revision+1, before.CreateTime, timestamppb.New(t.now)
		if err := t.savePlan(ctx, ref, after, 0); err != nil {
			return err
		}
		out = after
		return t.record(ctx, withAction(m, "release_plan.update"), planChange(ref, "release_plan.update", before, after))
	})
	return out, err
}
