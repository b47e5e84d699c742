package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

var _ store.Governance = (*Store)(nil)

func changeRequestPath(ref store.EnvRef, id string) string {
	return envPath(ref.Project, ref.Environment) + "/change-requests/" + id
}

func schedulePath(ref store.EnvRef, id string) string {
	return envPath(ref.Project, ref.Environment) + "/scheduled-changes/" + id
}

func webhookPath(project, id string) string { return projectPath(project) + "/webhooks/" + id }

// jsonTree renders a message as a generic JSON tree (for diffs).
func jsonTree(m proto.Message) any {
	s, err := canonicalJSON(m)
	if err != nil {
		return nil
	}
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil
	}
	return v
}

// --- change requests ---

func scanChangeRequest(sc interface{ Scan(...any) error }) (*adminv1.ChangeRequest, error) {
	var body []byte
	var state int32
	var rev, c, u int64
	if err := sc.Scan(&body, &state, &rev, &c, &u); err != nil {
		return nil, err
	}
	cr := &adminv1.ChangeRequest{}
	if err := proto.Unmarshal(body, cr); err != nil {
		return nil, err
	}
	cr.State, cr.Revision = adminv1.ChangeRequestState(state), rev
	cr.CreateTime, cr.UpdateTime = ts(c), ts(u)
	return cr, nil
}

const crColumns = `body, state, revision, created_at, updated_at`

func (s *Store) loadChangeRequest(ctx context.Context, x q, ref store.EnvRef, id string, lock bool) (*adminv1.ChangeRequest, error) {
	query := `SELECT ` + crColumns + ` FROM change_requests WHERE org = ? AND project = ? AND environment = ? AND id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	cr, err := scanChangeRequest(x.row(ctx, query, ref.Org, ref.Project, ref.Environment, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("change request", id)
	}
	return cr, err
}

// currentTarget returns the target's current state as JSON tree (nil: absent).
func (t *Tx) currentTarget(ctx context.Context, ref store.EnvRef, c *adminv1.ProposedChange) (any, error) {
	switch ch := c.GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		fc, err := t.s.loadFlagConfig(ctx, t.q(), ref, ch.FlagConfig.GetFlag(), false)
		if err != nil {
			return nil, err
		}
		return jsonTree(fc.GetConfig()), nil
	case *adminv1.ProposedChange_Segment:
		sg, err := t.s.loadSegment(ctx, t.q(), ref, ch.Segment.GetKey(), false)
		if errs.KindOf(err) == errs.NotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		sg = proto.CloneOf(sg)
		sg.Revision = 0
		return jsonTree(sg), nil
	default:
		return nil, errs.Invalid("change", "is required: flag_config or segment")
	}
}

// proposedTree is the proposal as JSON tree, shaped like currentTarget.
func proposedTree(c *adminv1.ProposedChange) any {
	switch ch := c.GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		return jsonTree(ch.FlagConfig.GetConfig())
	case *adminv1.ProposedChange_Segment:
		sg := proto.CloneOf(ch.Segment)
		sg.Revision = 0
		return jsonTree(sg)
	}
	return nil
}

func (t *Tx) refreshDiff(ctx context.Context, ref store.EnvRef, cr *adminv1.ChangeRequest) error {
	cur, err := t.currentTarget(ctx, ref, cr.GetChange())
	if err != nil {
		return err
	}
	cr.Diff = diffJSON(cur, proposedTree(cr.GetChange()))
	return nil
}

func (t *Tx) insertChangeRequest(ctx context.Context, ref store.EnvRef, cr *adminv1.ChangeRequest, scheduleID string) (*adminv1.ChangeRequest, error) {
	if _, err := t.s.loadEnv(ctx, t.q(), ref, false); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	out := proto.CloneOf(cr)
	out.Id, out.Environment, out.State, out.Revision = id, ref.Environment, adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN, 1
	out.CreateTime, out.UpdateTime = timestamppb.New(t.now), timestamppb.New(t.now)
	if err := t.refreshDiff(ctx, ref, out); err != nil {
		return nil, err
	}
	body, err := deterministic.Marshal(out)
	if err != nil {
		return nil, err
	}
	now := micros(t.now)
	_, err = t.q().exec(ctx, `INSERT INTO change_requests (org, project, environment, id, state, author_id, schedule_id,
		body, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		ref.Org, ref.Project, ref.Environment, id, int32(out.State), out.AuthorId, scheduleID, body, now, now)
	return out, err
}

func (t *Tx) saveChangeRequest(ctx context.Context, ref store.EnvRef, cr *adminv1.ChangeRequest) error {
	body, err := deterministic.Marshal(cr)
	if err != nil {
		return err
	}
	_, err = t.q().exec(ctx, `UPDATE change_requests SET state = ?, body = ?, revision = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND id = ?`, int32(cr.State), body, cr.Revision,
		micros(t.now), ref.Org, ref.Project, ref.Environment, cr.Id)
	return err
}

func crChange(ref store.EnvRef, action string, before, after *adminv1.ChangeRequest) change {
	id := after.GetId()
	if id == "" {
		id = before.GetId()
	}
	return change{org: ref.Org, project: ref.Project, env: ref.Environment, action: action,
		resourceType: "change_request", resource: changeRequestPath(ref, id), before: before, after: after}
}

// CreateChangeRequest stores a new open change request.
func (s *Store) CreateChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, cr *adminv1.ChangeRequest) (*adminv1.ChangeRequest, error) {
	return create(ctx, s, m, ref.Org, "change_request.create", requestHash(ref.Project, ref.Environment, cr),
		func() *adminv1.ChangeRequest { return &adminv1.ChangeRequest{} },
		func(t *Tx) (*adminv1.ChangeRequest, error) {
			out, err := t.insertChangeRequest(ctx, ref, cr, "")
			if err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, crChange(ref, "change_request.create", nil, out))
		})
}

// GetChangeRequest returns one change request.
func (s *Store) GetChangeRequest(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ChangeRequest, error) {
	cr, err := s.loadChangeRequest(ctx, s.r(), ref, id, false)
	return cr, s.translate(err)
}

// ListChangeRequests lists an environment's change requests oldest first (ids are
// UUIDv7, so id order is creation order).
func (s *Store) ListChangeRequests(ctx context.Context, ref store.EnvRef, state adminv1.ChangeRequestState, p store.Page) ([]*adminv1.ChangeRequest, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT ` + crColumns + ` FROM change_requests WHERE org = ? AND project = ? AND environment = ? AND id > ?`
	args := []any{ref.Org, ref.Project, ref.Environment, after}
	if state != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_UNSPECIFIED {
		query += ` AND state = ?`
		args = append(args, int32(state))
	}
	rows, err := s.r().query(ctx, query+` ORDER BY id LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanChangeRequest)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.ChangeRequest).GetId)
	return out, next, nil
}

// EditChangeRequest changes a locked change request through edit.
func (s *Store) EditChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id, action string, edit func(cr *adminv1.ChangeRequest) error) (*adminv1.ChangeRequest, error) {
	var out *adminv1.ChangeRequest
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadChangeRequest(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		if action == "change_request.update" {
			var sid string
			if err := t.q().row(ctx, `SELECT schedule_id FROM change_requests WHERE org = ? AND project = ? AND environment = ? AND id = ?`,
				ref.Org, ref.Project, ref.Environment, id).Scan(&sid); err != nil {
				return err
			}
			if sid != "" {
				return errs.E(errs.FailedPrecondition, "change request %q approves scheduled change %q: cancel the schedule and create a new one instead of editing", id, sid)
			}
		}
		after := proto.CloneOf(before)
		if err := edit(after); err != nil {
			return checkError{err}
		}
		after.Id, after.Environment, after.AuthorId = before.Id, before.Environment, before.AuthorId
		after.Revision, after.CreateTime, after.UpdateTime = before.Revision+1, before.CreateTime, timestamppb.New(t.now)
		if after.State == adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN {
			if err := t.refreshDiff(ctx, ref, after); err != nil {
				return err
			}
		}
		if err := t.saveChangeRequest(ctx, ref, after); err != nil {
			return err
		}
		if after.State == adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_WITHDRAWN ||
			after.State == adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_REJECTED {
			if err := t.closeLinkedSchedule(ctx, m, ref, id, "change request "+strings.ToLower(strings.TrimPrefix(after.State.String(), "CHANGE_REQUEST_STATE_"))); err != nil {
				return err
			}
		}
		out = after
		return t.record(ctx, m, crChange(ref, action, before, after))
	})
	return out, err
}

// closeLinkedSchedule cancels the schedule awaiting change request id, if any.
func (t *Tx) closeLinkedSchedule(ctx context.Context, m store.WriteMeta, ref store.EnvRef, crID, reason string) error {
	var sid string
	err := t.q().row(ctx, `SELECT schedule_id FROM change_requests WHERE org = ? AND project = ? AND environment = ? AND id = ?`,
		ref.Org, ref.Project, ref.Environment, crID).Scan(&sid)
	if err != nil || sid == "" {
		return err
	}
	before, err := t.s.loadSchedule(ctx, t.q(), ref, sid, true)
	if err != nil {
		return err
	}
	if before.State != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL {
		return nil
	}
	after := proto.CloneOf(before)
	after.State, after.FailureReason = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_CANCELLED, reason
	if err := t.saveSchedule(ctx, ref, after); err != nil {
		return err
	}
	return t.record(ctx, withAction(m, "schedule.cancel"), schedChange(ref, "schedule.cancel", before, after))
}

func withAction(m store.WriteMeta, action string) store.WriteMeta {
	m.Action, m.IdempotencyKey = action, ""
	return m
}

// ApplyChangeRequest performs an approved change request.
func (s *Store) ApplyChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, ready func(cr *adminv1.ChangeRequest) error, check func(c *adminv1.ProposedChange) store.Check) (*adminv1.ChangeRequest, error) {
	var out *adminv1.ChangeRequest
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadChangeRequest(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		if err := ready(before); err != nil {
			return checkError{err}
		}
		var sid string
		if err := t.q().row(ctx, `SELECT schedule_id FROM change_requests WHERE org = ? AND project = ? AND environment = ? AND id = ?`,
			ref.Org, ref.Project, ref.Environment, id).Scan(&sid); err != nil {
			return err
		}
		cm := m
		cm.Action, cm.IdempotencyKey = "", ""
		if cm.Comment == "" {
			cm.Comment = "change request " + id
		}
		if sid != "" {
			if err := t.approveSchedule(ctx, cm, ref, sid); err != nil {
				return err
			}
		} else if err := t.applyChange(ctx, cm, ref, before, check); err != nil {
			return err
		}
		after := proto.CloneOf(before)
		after.State, after.Revision, after.UpdateTime = adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_APPLIED, before.Revision+1, timestamppb.New(t.now)
		if err := t.saveChangeRequest(ctx, ref, after); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, crChange(ref, "change_request.apply", before, after))
	})
	return out, err
}

func rebase(what, key string, have, want int64) error {
	return errs.E(errs.Aborted, "%s %q changed since the change request was made (base revision %d, current %d): rebase it (UpdateChangeRequest with base_revision %d) and have it approved again",
		what, key, want, have, have)
}

// applyChange writes the proposed change after the base-revision check.
func (t *Tx) applyChange(ctx context.Context, m store.WriteMeta, ref store.EnvRef, cr *adminv1.ChangeRequest, check func(c *adminv1.ProposedChange) store.Check) error {
	var chk store.Check
	if check != nil {
		chk = check(cr.GetChange())
	}
	switch ch := cr.GetChange().GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		flag := ch.FlagConfig.GetFlag()
		before, err := t.s.loadFlagConfig(ctx, t.q(), ref, flag, true)
		if err != nil {
			return err
		}
		if before.Revision != cr.GetBaseRevision() {
			return rebase("flag configuration", flag, before.Revision, cr.GetBaseRevision())
		}
		_, err = t.writeFlagConfig(ctx, m, ref, before, ch.FlagConfig.GetConfig(), chk)
		return err
	case *adminv1.ProposedChange_Segment:
		sg := proto.CloneOf(ch.Segment)
		before, err := t.s.loadSegment(ctx, t.q(), ref, sg.GetKey(), true)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			if cr.GetBaseRevision() != 0 {
				return rebase("segment", sg.GetKey(), 0, cr.GetBaseRevision())
			}
			id, err := newID()
			if err != nil {
				return err
			}
			sg.Revision = 1
			body, err := segmentBody(sg)
			if err != nil {
				return err
			}
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO segments (org, project, environment, key, id, body, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, ref.Environment, sg.Key, id, body, now, now); err != nil {
				return err
			}
			if err := t.runCheck(ctx, ref, chk); err != nil {
				return err
			}
			return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
				action: "segment.create", resourceType: "segment", resource: segmentPath(ref, sg.Key), after: sg})
		case err != nil:
			return err
		}
		if before.Revision != cr.GetBaseRevision() {
			return rebase("segment", sg.GetKey(), before.Revision, cr.GetBaseRevision())
		}
		sg.Revision = before.Revision + 1
		body, err := segmentBody(sg)
		if err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `UPDATE segments SET body = ?, revision = ?, updated_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND key = ?`, body, sg.Revision, micros(t.now),
			ref.Org, ref.Project, ref.Environment, sg.Key); err != nil {
			return err
		}
		if err := t.runCheck(ctx, ref, chk); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "segment.update", resourceType: "segment", resource: segmentPath(ref, sg.Key), before: before, after: sg})
	default:
		return errs.Invalid("change", "is required: flag_config or segment")
	}
}

// writeFlagConfig replaces a locked configuration (the caller checked the
// revision), runs check and records the write.
func (t *Tx) writeFlagConfig(ctx context.Context, m store.WriteMeta, ref store.EnvRef, before *adminv1.FlagEnvironmentConfig, c *manifestv1.FlagConfig, check store.Check) (*adminv1.FlagEnvironmentConfig, error) {
	if c == nil {
		c = &manifestv1.FlagConfig{}
	}
	b, err := deterministic.Marshal(c)
	if err != nil {
		return nil, err
	}
	after := &adminv1.FlagEnvironmentConfig{Flag: before.Flag, Environment: ref.Environment,
		Config: proto.CloneOf(c), Revision: before.Revision + 1,
		UpdateTime: timestamppb.New(t.now), LastEvaluated: before.LastEvaluated}
	if _, err := t.q().exec(ctx, `UPDATE flag_configs SET config = ?, revision = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND flag = ?`, b, after.Revision, micros(t.now),
		ref.Org, ref.Project, ref.Environment, before.Flag); err != nil {
		return nil, err
	}
	if err := t.runCheck(ctx, ref, check); err != nil {
		return nil, err
	}
	return after, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
		action: "flag_config.update", resourceType: "flag_config", resource: flagConfigPath(ref, before.Flag),
		before: before.Config, after: after.Config})
}

// --- scheduled changes ---

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
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT ` + schedColumns + ` FROM scheduled_changes WHERE org = ? AND project = ? AND environment = ? AND id > ?`
	args := []any{ref.Org, ref.Project, ref.Environment, after}
	if state != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_UNSPECIFIED {
		query += ` AND state = ?`
		args = append(args, int32(state))
	}
	rows, err := s.r().query(ctx, query+` ORDER BY id LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanSchedule)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.ScheduledChange).GetId)
	return out, next, nil
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
	pending := int32(adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_PENDING)
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSchedule(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		after := proto.CloneOf(before)
		after.State, after.FailureReason, after.ExecutedTime = adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_FAILED, reason, timestamppb.New(t.now)
		body, err := deterministic.Marshal(after)
		if err != nil {
			return err
		}
		res, err := t.q().exec(ctx, `UPDATE scheduled_changes SET state = ?, body = ?, updated_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND id = ? AND state = ?`,
			int32(after.State), body, micros(t.now), ref.Org, ref.Project, ref.Environment, id, pending)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil || n != 1 {
			return err
		}
		out = after
		fm := withAction(m, "schedule.fail")
		fm.Comment = reason
		return t.record(ctx, fm, schedChange(ref, "schedule.fail", before, after))
	})
	return out, err
}

// --- kill ---

// KillFlag turns a flag off in every environment of its project at once.
func (s *Store) KillFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, flag string) ([]*adminv1.FlagEnvironmentConfig, error) {
	var out []*adminv1.FlagEnvironmentConfig
	err := s.inTx(ctx, func(t *Tx) error {
		out = nil
		if _, err := s.loadFlag(ctx, t.q(), ref, flag, false); err != nil {
			return err
		}
		envs, err := envKeys(ctx, t.q(), ref)
		if err != nil {
			return err
		}
		for _, env := range envs {
			eref := store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: env}
			cur, err := s.loadFlagConfig(ctx, t.q(), eref, flag, true)
			if err != nil {
				return err
			}
			if !cur.GetConfig().GetOn() {
				out = append(out, cur)
				continue
			}
			cfg := proto.CloneOf(cur.GetConfig())
			cfg.On = false
			// Turning off cannot make a valid configuration invalid: no check.
			fc, err := t.writeFlagConfig(ctx, m, eref, cur, cfg, nil)
			if err != nil {
				return err
			}
			out = append(out, fc)
		}
		return nil
	})
	return out, err
}

// --- webhooks ---

const webhookColumns = `id, url, event_types, enabled, failure_count, max_failures, disabled_reason, revision, created_at`

func scanWebhook(sc interface{ Scan(...any) error }) (*adminv1.Webhook, error) {
	var w adminv1.Webhook
	var types string
	var c int64
	if err := sc.Scan(&w.Id, &w.Url, &types, &w.Enabled, &w.FailureCount, &w.MaxFailures, &w.DisabledReason, &w.Revision, &c); err != nil {
		return nil, err
	}
	if types != "" {
		w.EventTypes = strings.Split(strings.Trim(types, ","), ",")
	}
	w.CreateTime = ts(c)
	return &w, nil
}

func (s *Store) loadWebhook(ctx context.Context, x q, ref store.ProjectRef, id string, lock bool) (*adminv1.Webhook, error) {
	query := `SELECT ` + webhookColumns + ` FROM webhooks WHERE org = ? AND project = ? AND id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	w, err := scanWebhook(x.row(ctx, query, ref.Org, ref.Project, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook", id)
	}
	return w, err
}

func whChange(ref store.ProjectRef, action string, before, after *adminv1.Webhook) change {
	id := after.GetId()
	if id == "" {
		id = before.GetId()
	}
	return change{org: ref.Org, project: ref.Project, action: action, resourceType: "webhook",
		resource: webhookPath(ref.Project, id), before: before, after: after}
}

// CreateWebhook stores a webhook and its secret. It only receives changes
// committed after it. An idempotent retry returns the first webhook and secret.
func (s *Store) CreateWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, w *adminv1.Webhook, secret string) (*adminv1.Webhook, string, error) {
	res, err := create(ctx, s, m, ref.Org, "webhook.create", requestHash(ref.Project, w),
		func() *adminv1.CreateWebhookResponse { return &adminv1.CreateWebhookResponse{} },
		func(t *Tx) (*adminv1.CreateWebhookResponse, error) {
			if _, err := s.loadProject(ctx, t.q(), ref, false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			var head int64
			if err := t.q().row(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_entries WHERE org = ?`, ref.Org).Scan(&head); err != nil {
				return nil, err
			}
			if _, err := t.q().exec(ctx, `INSERT INTO webhook_cursors (org, seq) VALUES (?, ?) ON CONFLICT (org) DO NOTHING`, ref.Org, head); err != nil {
				return nil, err
			}
			out := proto.CloneOf(w)
			out.Id, out.Enabled, out.FailureCount, out.DisabledReason, out.Revision = id, true, 0, "", 1
			out.CreateTime = timestamppb.New(t.now)
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO webhooks (org, project, id, url, secret, event_types, enabled, failure_count,
				max_failures, disabled_reason, start_seq, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, '', ?, 1, ?, ?)`, ref.Org, ref.Project, id, out.Url, secret,
				tagsColumn(out.EventTypes), true, out.MaxFailures, head, now, now); err != nil {
				return nil, err
			}
			return &adminv1.CreateWebhookResponse{Webhook: out, Secret: secret}, t.record(ctx, m, whChange(ref, "webhook.create", nil, out))
		})
	if err != nil {
		return nil, "", err
	}
	return res.GetWebhook(), res.GetSecret(), nil
}

// GetWebhook returns a webhook (never its secret).
func (s *Store) GetWebhook(ctx context.Context, ref store.ProjectRef, id string) (*adminv1.Webhook, error) {
	w, err := s.loadWebhook(ctx, s.r(), ref, id, false)
	return w, s.translate(err)
}

// ListWebhooks lists a project's webhooks oldest first.
func (s *Store) ListWebhooks(ctx context.Context, ref store.ProjectRef, p store.Page) ([]*adminv1.Webhook, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE org = ? AND project = ? AND id > ?
		ORDER BY id LIMIT ?`, ref.Org, ref.Project, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanWebhook)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Webhook).GetId)
	return out, next, nil
}

func (s *Store) writeWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id, action string, edit func(before, after *adminv1.Webhook) error) (*adminv1.Webhook, error) {
	var out *adminv1.Webhook
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadWebhook(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		after := proto.CloneOf(before)
		if err := edit(before, after); err != nil {
			return err
		}
		after.Revision = before.Revision + 1
		if _, err := t.q().exec(ctx, `UPDATE webhooks SET url = ?, event_types = ?, enabled = ?, failure_count = ?,
			max_failures = ?, disabled_reason = ?, revision = ?, updated_at = ? WHERE id = ?`,
			after.Url, tagsColumn(after.EventTypes), after.Enabled, after.FailureCount, after.MaxFailures,
			after.DisabledReason, after.Revision, micros(t.now), id); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, whChange(ref, action, before, after))
	})
	return out, err
}

// UpdateWebhook replaces a webhook's url, event types and failure limit.
func (s *Store) UpdateWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, w *adminv1.Webhook, revision int64) (*adminv1.Webhook, error) {
	return s.writeWebhook(ctx, m, ref, w.GetId(), "webhook.update", func(before, after *adminv1.Webhook) error {
		if err := checkRevision("webhook", before.Id, before.Revision, revision); err != nil {
			return err
		}
		after.Url, after.EventTypes, after.MaxFailures = w.GetUrl(), w.GetEventTypes(), w.GetMaxFailures()
		return nil
	})
}

// EnableWebhook re-enables a webhook.
func (s *Store) EnableWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id string) (*adminv1.Webhook, error) {
	return s.writeWebhook(ctx, m, ref, id, "webhook.enable", func(_, after *adminv1.Webhook) error {
		after.Enabled, after.FailureCount, after.DisabledReason = true, 0, ""
		return nil
	})
}

// DeleteWebhook deletes a webhook with its deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id string) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadWebhook(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = ?`, id); err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `DELETE FROM webhooks WHERE id = ?`, id); err != nil {
			return err
		}
		return t.record(ctx, m, whChange(ref, "webhook.delete", before, nil))
	})
}

const deliveryColumns = `id, webhook_id, event_type, event_id, state, attempts, last_status_code, last_error,
	created_at, next_attempt_at, delivered_at`

func scanDelivery(sc interface{ Scan(...any) error }) (*adminv1.WebhookDelivery, error) {
	var d adminv1.WebhookDelivery
	var state int32
	var c, n, dl int64
	if err := sc.Scan(&d.Id, &d.WebhookId, &d.EventType, &d.EventId, &state, &d.Attempts, &d.LastStatusCode,
		&d.LastError, &c, &n, &dl); err != nil {
		return nil, err
	}
	d.State, d.CreateTime, d.DeliveredTime = adminv1.WebhookDeliveryState(state), ts(c), ts(dl)
	if d.State == adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING || d.State == adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING {
		d.NextAttemptTime = ts(n)
	}
	return &d, nil
}

// ListWebhookDeliveries lists a webhook's deliveries, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, ref store.ProjectRef, id string, p store.Page) ([]*adminv1.WebhookDelivery, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.loadWebhook(ctx, s.r(), ref, id, false); err != nil {
		return nil, "", s.translate(err)
	}
	query := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE webhook_id = ?`
	args := []any{id}
	if after != "" {
		query += ` AND id < ?`
		args = append(args, after)
	}
	rows, err := s.r().query(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.WebhookDelivery).GetId)
	return out, next, nil
}

type hookRow struct {
	id, project string
	types       []string
	startSeq    int64
}

// EnqueueWebhookDeliveries advances every organization's cursor over its audit
// chain, creating the deliveries of the entries it passes, in one transaction per
// organization. The cursor row is locked, so concurrent dispatchers take turns.
func (s *Store) EnqueueWebhookDeliveries(ctx context.Context, limit int, render func(e *adminv1.AuditEntry, org string) (string, string, []byte, bool)) (int, error) {
	rows, err := s.r().query(ctx, `SELECT org FROM webhook_cursors ORDER BY org`)
	if err != nil {
		return 0, s.translate(err)
	}
	orgs, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var o string
		return o, sc.Scan(&o)
	})
	if err != nil {
		return 0, s.translate(err)
	}
	total := 0
	for _, org := range orgs {
		n := 0
		err := s.inTx(ctx, func(t *Tx) error {
			n = 0
			var cursor int64
			if err := t.q().row(ctx, `SELECT seq FROM webhook_cursors WHERE org = ?`+s.d.ForUpdate, org).Scan(&cursor); err != nil {
				return err
			}
			rows, err := t.q().query(ctx, `SELECT `+auditColumns+` FROM audit_entries WHERE org = ? AND seq > ? ORDER BY seq LIMIT ?`,
				org, cursor, limit)
			if err != nil {
				return err
			}
			entries, err := collect(rows, scanAudit)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				return nil
			}
			hrows, err := t.q().query(ctx, `SELECT id, project, event_types, start_seq FROM webhooks WHERE org = ?`, org)
			if err != nil {
				return err
			}
			hooks, err := collect(hrows, func(sc interface{ Scan(...any) error }) (hookRow, error) {
				var h hookRow
				var types string
				err := sc.Scan(&h.id, &h.project, &types, &h.startSeq)
				if types != "" {
					h.types = strings.Split(strings.Trim(types, ","), ",")
				}
				return h, err
			})
			if err != nil {
				return err
			}
			for _, e := range entries {
				entry := e.proto()
				typ, orderKey, payload, ok := render(entry, org)
				if !ok {
					continue
				}
				for _, h := range hooks {
					if e.Seq <= h.startSeq || !strings.HasPrefix(e.Resource, projectPath(h.project)+"/") || !subscribed(h.types, typ) {
						continue
					}
					id, err := newID()
					if err != nil {
						return err
					}
					if _, err := t.q().exec(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, org, seq, order_key, event_type,
						event_id, payload, state, attempts, last_status_code, last_error, next_attempt_at, lease_until,
						delivered_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0, 0, 0, ?)`,
						id, h.id, org, e.Seq, orderKey, typ, e.ID, string(payload),
						int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING), micros(t.now)); err != nil {
						return err
					}
				}
			}
			n = len(entries)
			_, err = t.q().exec(ctx, `UPDATE webhook_cursors SET seq = ? WHERE org = ?`, entries[len(entries)-1].Seq, org)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func subscribed(types []string, typ string) bool {
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if t == typ {
			return true
		}
	}
	return false
}

// ClaimWebhookDeliveries leases due deliveries, at most one per (webhook, order
// key) and only the earliest unfinished one of each, so deliveries for a flag are
// attempted in order.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.PendingDelivery, error) {
	var out []store.PendingDelivery
	pending := int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING)
	retrying := int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING)
	err := s.inTx(ctx, func(t *Tx) error {
		out = nil
		// The head of each (webhook, order key) queue: no earlier unfinished delivery.
		rows, err := t.q().query(ctx, `SELECT d.id, d.webhook_id, w.org, w.project, w.url, w.secret, d.event_type, d.event_id,
			d.payload, d.attempts FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.state IN (?, ?) AND d.next_attempt_at <= ? AND d.lease_until <= ? AND w.enabled = ?
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id
				AND e.order_key = d.order_key AND e.seq < d.seq AND e.state IN (?, ?))
			ORDER BY d.seq LIMIT ?`, pending, retrying, micros(now), micros(now), true, pending, retrying, limit)
		if err != nil {
			return err
		}
		cands, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.PendingDelivery, error) {
			var d store.PendingDelivery
			var payload string
			err := sc.Scan(&d.ID, &d.WebhookID, &d.Org, &d.Project, &d.URL, &d.Secret, &d.EventType, &d.EventID, &payload, &d.Attempts)
			d.Payload = []byte(payload)
			return d, err
		})
		if err != nil {
			return err
		}
		for _, d := range cands {
			res, err := t.q().exec(ctx, `UPDATE webhook_deliveries SET lease_until = ? WHERE id = ? AND lease_until <= ?`,
				micros(now.Add(lease)), d.ID, micros(now))
			if err != nil {
				return err
			}
			if n, err := affected(res); err != nil {
				return err
			} else if n == 1 {
				out = append(out, d)
			}
		}
		return nil
	})
	return out, err
}

// CompleteWebhookDelivery records an attempt: success resets the webhook's failure
// count; a failure counts, and at max_failures disables the webhook (audited as
// webhook.disable); its deliveries then wait, pending, for EnableWebhook.
func (s *Store) CompleteWebhookDelivery(ctx context.Context, r store.DeliveryResult) error {
	return s.inTx(ctx, func(t *Tx) error {
		state := adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_SUCCEEDED
		next, delivered := int64(0), micros(r.Now)
		if !r.OK {
			delivered = 0
			state = adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING
			next = micros(r.NextAttempt)
			if r.NextAttempt.IsZero() {
				state = adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_FAILED
			}
		}
		if _, err := t.q().exec(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_status_code = ?,
			last_error = ?, next_attempt_at = ?, lease_until = 0, delivered_at = ? WHERE id = ?`,
			int32(state), r.StatusCode, r.Error, next, delivered, r.ID); err != nil {
			return err
		}
		var org, project string
		err := t.q().row(ctx, `SELECT org, project FROM webhooks WHERE id = ?`, r.WebhookID).Scan(&org, &project)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		ref := store.ProjectRef{Org: org, Project: project}
		before, err := s.loadWebhook(ctx, t.q(), ref, r.WebhookID, true)
		if err != nil {
			return err
		}
		if r.OK {
			if before.FailureCount != 0 {
				_, err = t.q().exec(ctx, `UPDATE webhooks SET failure_count = 0 WHERE id = ?`, r.WebhookID)
			}
			return err
		}
		after := proto.CloneOf(before)
		after.FailureCount++
		if !after.Enabled || after.FailureCount < max(after.MaxFailures, 1) {
			_, err = t.q().exec(ctx, `UPDATE webhooks SET failure_count = ? WHERE id = ?`, after.FailureCount, r.WebhookID)
			return err
		}
		after.Enabled, after.Revision = false, before.Revision+1
		after.DisabledReason = "disabled after " + strconv.Itoa(int(after.FailureCount)) + " consecutive failed deliveries; last: " + r.Error
		if _, err := t.q().exec(ctx, `UPDATE webhooks SET enabled = ?, failure_count = ?, disabled_reason = ?, revision = ?,
			updated_at = ? WHERE id = ?`, false, after.FailureCount, after.DisabledReason, after.Revision, micros(t.now), r.WebhookID); err != nil {
			return err
		}
		m := store.WriteMeta{ActorID: "system:webhooks", ActorName: "webhook dispatcher", Comment: after.DisabledReason}
		return t.record(ctx, m, whChange(ref, "webhook.disable", before, after))
	})
}
