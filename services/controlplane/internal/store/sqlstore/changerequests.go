package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// --- change requests ---

func changeRequestPath(ref store.EnvRef, id string) string {
	return envPath(ref.Project, ref.Environment) + "/change-requests/" + id
}

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
	case *adminv1.ProposedChange_EnvironmentSettings:
		e, err := t.s.loadEnv(ctx, t.q(), ref, false)
		if err != nil {
			return nil, err
		}
		return jsonTree(settingsChange(e.GetSettings())), nil
	case *adminv1.ProposedChange_ReleasePlan:
		// The reviewer approves the whole plan: it is shown as added, every time.
		return nil, nil
	case *adminv1.ProposedChange_EnvironmentRollback:
		return t.rollbackTargets(ctx, ref, ch.EnvironmentRollback)
	default:
		return nil, errs.Invalid("change", "is required: flag_config, segment or environment_settings")
	}
}

// settingsChange is an environment's governance settings as a change request
// carries them (every field set, defaults applied).
func settingsChange(s *adminv1.EnvironmentSettings) *adminv1.EnvironmentSettingsChange {
	d := defaultSettings(s)
	return &adminv1.EnvironmentSettingsChange{ApprovalsRequired: d.GetApprovalsRequired(),
		RequiredApprovals: d.GetRequiredApprovals(), EmergencyOffAllowed: d.GetEmergencyOffAllowed()}
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
	case *adminv1.ProposedChange_EnvironmentSettings:
		return jsonTree(ch.EnvironmentSettings)
	case *adminv1.ProposedChange_ReleasePlan:
		return jsonTree(ch.ReleasePlan)
	case *adminv1.ProposedChange_EnvironmentRollback:
		return rollbackTree(ch.EnvironmentRollback)
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
func (s *Store) ListChangeRequests(ctx context.Context, ref store.EnvRef, f store.ChangeRequestFilter, p store.Page) ([]*adminv1.ChangeRequest, string, error) {
	sf := stateFilter[*adminv1.ChangeRequest]{state: int32(f.State), keep: f.Keep}
	if f.Author != "" {
		sf.where, sf.args = append(sf.where, "author_id = ?"), append(sf.args, f.Author)
	}
	if f.NotAuthor != "" {
		sf.where, sf.args = append(sf.where, "author_id <> ?"), append(sf.args, f.NotAuthor)
	}
	return listByState(ctx, s, changeRequestList, ref, sf, p)
}

var changeRequestList = stateList[*adminv1.ChangeRequest]{
	table: "change_requests", columns: crColumns, scan: scanChangeRequest, id: (*adminv1.ChangeRequest).GetId,
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
			pid, err := t.planOfChangeRequest(ctx, ref, id)
			if err != nil {
				return err
			}
			if pid != "" {
				return errs.E(errs.FailedPrecondition, "change request %q approves release plan %q: edit the plan (UpdateReleasePlan), which opens a new change request", id, pid)
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
			reason := "change request " + strings.ToLower(strings.TrimPrefix(after.State.String(), "CHANGE_REQUEST_STATE_"))
			if err := t.closeLinkedSchedule(ctx, m, ref, id, reason); err != nil {
				return err
			}
			if err := t.closeLinkedPlan(ctx, m, ref, id, reason); err != nil {
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
		cm.Action, cm.IdempotencyKey, cm.ChangeRequestID = "", "", id
		if cm.Comment == "" {
			cm.Comment = "change request " + id
		}
		pid, err := t.planOfChangeRequest(ctx, ref, id)
		if err != nil {
			return err
		}
		if sid != "" {
			if err := t.approveSchedule(ctx, cm, ref, sid); err != nil {
				return err
			}
		} else if pid != "" {
			if err := t.approvePlan(ctx, cm, ref, pid, id); err != nil {
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
	case *adminv1.ProposedChange_EnvironmentSettings:
		before, err := t.s.loadEnv(ctx, t.q(), ref, true)
		if err != nil {
			return err
		}
		if before.Revision != cr.GetBaseRevision() {
			return rebase("environment", ref.Environment, before.Revision, cr.GetBaseRevision())
		}
		after := proto.CloneOf(before)
		s := ch.EnvironmentSettings
		after.Settings = &adminv1.EnvironmentSettings{ApprovalsRequired: proto.Bool(s.GetApprovalsRequired()),
			RequiredApprovals: proto.Int32(s.GetRequiredApprovals()), EmergencyOffAllowed: proto.Bool(s.GetEmergencyOffAllowed())}
		_, err = t.writeEnvironment(ctx, m, ref, before, after)
		return err
	case *adminv1.ProposedChange_EnvironmentRollback:
		return t.rollback(ctx, m, ref, ch.EnvironmentRollback, chk)
	default:
		return errs.Invalid("change", "is required: flag_config, segment or environment_settings")
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
