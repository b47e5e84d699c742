package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"path"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

var _ store.History = (*Store)(nil)

// keepRevision stores, in the write's transaction, the state a write left of the
// flag configurations and segments it touched (store.History's contract). record
// calls it for every write, so no write path can forget it: c names the resource
// (its key is the last element of c.resource).
func (t *Tx) keepRevision(ctx context.Context, m store.WriteMeta, c change) error {
	ref := store.EnvRef{Org: c.org, Project: c.project, Environment: c.env}
	key := path.Base(c.resource)
	switch {
	case c.resourceType == store.KindFlagConfig:
		return t.keepFlagConfigs(ctx, m, c.action, `c.environment = ? AND c.flag = ?`, ref, ref.Environment, key)
	case c.resourceType == store.KindSegment:
		return t.keepSegment(ctx, m, c.action, ref, key)
	case c.resourceType == "flag" && c.action == "flag.create":
		// A new flag starts with a configuration in every environment.
		return t.keepFlagConfigs(ctx, m, c.action, `c.flag = ?`, ref, key)
	case c.resourceType == "flag" && c.after == nil:
		// A deleted flag is gone for good, and its history with it (a flag
		// re-created with the key starts again at revision 1).
		_, err := t.q().exec(ctx, `DELETE FROM revisions WHERE org = ? AND project = ? AND kind = ? AND key = ?`,
			c.org, c.project, store.KindFlagConfig, key)
		return err
	case c.resourceType == "environment" && c.action == "environment.create":
		// A new environment starts with every flag's configuration.
		return t.keepFlagConfigs(ctx, m, c.action, `c.environment = ?`, ref, ref.Environment)
	}
	return nil
}

// keepFlagConfigs stores the current state of the flag configurations of the
// project matching where (over flag_configs c) as revisions.
func (t *Tx) keepFlagConfigs(ctx context.Context, m store.WriteMeta, action, where string, ref store.EnvRef, args ...any) error {
	_, err := t.q().exec(ctx, `INSERT INTO revisions (org, project, environment, kind, key, revision, body, deleted,
		actor_id, actor_name, action, comment, change_request_id, request_id, created_at)
		SELECT c.org, c.project, c.environment, ?, c.flag, c.revision, c.config, ?, ?, ?, ?, ?, ?, ?, ?
		FROM flag_configs c WHERE c.org = ? AND c.project = ? AND `+where,
		append([]any{store.KindFlagConfig, false, m.ActorID, m.ActorName, action, m.Comment, m.ChangeRequestID,
			m.RequestID, micros(t.now), ref.Org, ref.Project}, args...)...)
	return err
}

// keepSegment stores the segment's current state (or its deletion) as the next
// revision of its history.
func (t *Tx) keepSegment(ctx context.Context, m store.WriteMeta, action string, ref store.EnvRef, key string) error {
	var body []byte
	deleted := false
	err := t.q().row(ctx, `SELECT body FROM segments WHERE org = ? AND project = ? AND environment = ? AND key = ?`,
		ref.Org, ref.Project, ref.Environment, key).Scan(&body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		body, deleted = []byte{}, true
	case err != nil:
		return err
	}
	_, err = t.q().exec(ctx, `INSERT INTO revisions (org, project, environment, kind, key, revision, body, deleted,
		actor_id, actor_name, action, comment, change_request_id, request_id, created_at)
		SELECT ?, ?, ?, ?, ?, COALESCE(MAX(revision), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?
		FROM revisions WHERE org = ? AND project = ? AND environment = ? AND kind = ? AND key = ?`,
		ref.Org, ref.Project, ref.Environment, store.KindSegment, key, body, deleted,
		m.ActorID, m.ActorName, action, m.Comment, m.ChangeRequestID, m.RequestID, micros(t.now),
		ref.Org, ref.Project, ref.Environment, store.KindSegment, key)
	return err
}

const revisionColumns = `key, revision, body, deleted, actor_id, actor_name, action, comment, change_request_id, request_id, created_at`

// keyedRevision is a revision with the key it belongs to.
type keyedRevision struct {
	key string
	rev *adminv1.Revision
}

func scanRevision(kind string) func(sc interface{ Scan(...any) error }) (keyedRevision, error) {
	return func(sc interface{ Scan(...any) error }) (keyedRevision, error) {
		var r adminv1.Revision
		var key string
		var body []byte
		var created int64
		if err := sc.Scan(&key, &r.Revision, &body, &r.Deleted, &r.ActorId, &r.ActorName, &r.Action, &r.Comment,
			&r.ChangeRequestId, &r.RequestId, &created); err != nil {
			return keyedRevision{}, err
		}
		r.CreateTime = ts(created)
		if !r.Deleted {
			sum := sha256.Sum256(body)
			r.ContentDigest = hex.EncodeToString(sum[:])
			switch kind {
			case store.KindFlagConfig:
				r.Config = &manifestv1.FlagConfig{}
				if err := proto.Unmarshal(body, r.Config); err != nil {
					return keyedRevision{}, err
				}
			case store.KindSegment:
				r.Segment = &manifestv1.Segment{}
				if err := proto.Unmarshal(body, r.Segment); err != nil {
					return keyedRevision{}, err
				}
				r.Segment.Key = key
			}
		}
		return keyedRevision{key: key, rev: &r}, nil
	}
}

func revisionKind(kind string) error {
	if kind != store.KindFlagConfig && kind != store.KindSegment {
		return errs.Invalid("kind", "must be %q or %q", store.KindFlagConfig, store.KindSegment)
	}
	return nil
}

// ListRevisions lists a history newest first; the page token is the last
// revision number listed.
func (s *Store) ListRevisions(ctx context.Context, ref store.EnvRef, kind, key string, p store.Page) ([]*adminv1.Revision, string, error) {
	if err := revisionKind(kind); err != nil {
		return nil, "", err
	}
	size := p.Size
	if size <= 0 {
		size = 50
	}
	size = min(size, 1000)
	before := int64(1) << 62
	if p.Token != "" {
		n, err := strconv.ParseInt(p.Token, 10, 64)
		if err != nil || n <= 0 {
			return nil, "", errs.Invalid("page_token", "is not a token this list returned")
		}
		before = n
	}
	rows, err := s.r().query(ctx, `SELECT `+revisionColumns+` FROM revisions
		WHERE org = ? AND project = ? AND environment = ? AND kind = ? AND key = ? AND revision < ?
		ORDER BY revision DESC LIMIT ?`, ref.Org, ref.Project, ref.Environment, kind, key, before, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	krs, err := collect(rows, scanRevision(kind))
	if err != nil {
		return nil, "", s.translate(err)
	}
	next := ""
	if len(krs) > size {
		krs = krs[:size]
		next = strconv.FormatInt(krs[size-1].rev.Revision, 10)
	}
	out := make([]*adminv1.Revision, len(krs))
	for i, kr := range krs {
		out[i] = kr.rev
	}
	return out, next, nil
}

// GetRevision returns one revision (0: the latest).
func (s *Store) GetRevision(ctx context.Context, ref store.EnvRef, kind, key string, revision int64) (*adminv1.Revision, error) {
	if err := revisionKind(kind); err != nil {
		return nil, err
	}
	query := `SELECT ` + revisionColumns + ` FROM revisions
		WHERE org = ? AND project = ? AND environment = ? AND kind = ? AND key = ?`
	args := []any{ref.Org, ref.Project, ref.Environment, kind, key}
	if revision > 0 {
		query += ` AND revision = ?`
		args = append(args, revision)
	} else {
		query += ` ORDER BY revision DESC LIMIT 1`
	}
	kr, err := scanRevision(kind)(s.r().row(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		what := "flag configuration"
		if kind == store.KindSegment {
			what = "segment"
		}
		if revision > 0 {
			return nil, errs.E(errs.NotFound, "%s %q has no revision %d", what, key, revision)
		}
		return nil, errs.E(errs.NotFound, "%s %q has no history in environment %q", what, key, ref.Environment)
	}
	return kr.rev, s.translate(err)
}

// revisionTree is a revision's content as JSON tree (nil: deleted).
func revisionTree(r *adminv1.Revision) any {
	switch {
	case r.GetConfig() != nil:
		return jsonTree(r.GetConfig())
	case r.GetSegment() != nil:
		return jsonTree(r.GetSegment())
	}
	return nil
}

// DiffRevisions diffs two revisions' contents.
func (s *Store) DiffRevisions(ctx context.Context, ref store.EnvRef, kind, key string, from, to int64) ([]*adminv1.DiffOperation, *adminv1.Revision, *adminv1.Revision, error) {
	a, err := s.GetRevision(ctx, ref, kind, key, from)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := s.GetRevision(ctx, ref, kind, key, to)
	if err != nil {
		return nil, nil, nil, err
	}
	return diffJSON(revisionTree(a), revisionTree(b)), a, b, nil
}

// currentFlag is a flag configuration as it is now.
type currentFlag struct {
	config   *manifestv1.FlagConfig
	revision int64
	archived bool
}

// PlanRollback compares the environment now with target.
func (s *Store) PlanRollback(ctx context.Context, ref store.EnvRef, target store.RollbackTarget) (*store.RollbackPlan, error) {
	if _, err := s.loadEnv(ctx, s.r(), ref, false); err != nil {
		return nil, s.translate(err)
	}
	flags := map[string]*manifestv1.FlagConfig{}
	segs := map[string]*manifestv1.Segment{}
	label := ""
	if target.ManifestVersion > 0 {
		sm, err := s.GetManifest(ctx, ref, target.ManifestVersion)
		if err != nil {
			return nil, err
		}
		var m manifestv1.Manifest
		if err := proto.Unmarshal(sm.Signed.GetPayload(), &m); err != nil {
			return nil, err
		}
		for _, f := range m.GetFlags() {
			flags[f.GetKey()] = f.GetConfig()
		}
		for _, sg := range m.GetSegments() {
			segs[sg.GetKey()] = sg
		}
		label = "manifest version " + strconv.FormatUint(target.ManifestVersion, 10)
	} else {
		var err error
		if flags, segs, err = s.stateAt(ctx, ref, target.Time); err != nil {
			return nil, err
		}
		label = target.Time.UTC().Format(time.RFC3339Nano)
	}
	cur, curSegs, err := s.currentState(ctx, ref)
	if err != nil {
		return nil, err
	}
	plan := &store.RollbackPlan{Change: &adminv1.EnvironmentRollbackChange{Target: label}}
	for _, key := range sortedKeys(cur, flags) {
		now, then := cur[key], flags[key]
		switch {
		case now == nil:
			plan.Skipped = append(plan.Skipped, skip(store.KindFlagConfig, key, "the flag was deleted since: a deleted flag cannot be restored"))
		case then == nil:
			if !now.archived {
				plan.Skipped = append(plan.Skipped, skip(store.KindFlagConfig, key,
					"the flag was not served then (created later, or archived): archive it to take it out"))
			}
		case proto.Equal(now.config, then):
		case now.archived:
			plan.Skipped = append(plan.Skipped, skip(store.KindFlagConfig, key, "the flag is archived: restore it first"))
		default:
			plan.Change.FlagConfigs = append(plan.Change.FlagConfigs, &adminv1.RollbackFlagConfig{
				Flag: key, Config: then, BaseRevision: now.revision})
			plan.Changes = append(plan.Changes, &adminv1.RollbackItem{Kind: store.KindFlagConfig, Key: key, Action: "update",
				Diff: diffJSON(jsonTree(now.config), jsonTree(then))})
		}
	}
	for _, key := range sortedKeys(curSegs, segs) {
		now, then := curSegs[key], segs[key]
		var nowBody, thenBody *manifestv1.Segment
		if now != nil {
			nowBody = proto.CloneOf(now)
			nowBody.Revision = 0
		}
		if then != nil {
			thenBody = proto.CloneOf(then)
			thenBody.Revision = 0
		}
		if proto.Equal(nowBody, thenBody) {
			continue
		}
		item := &adminv1.RollbackItem{Kind: store.KindSegment, Key: key, Action: "update"}
		rs := &adminv1.RollbackSegment{Key: key, Segment: thenBody, BaseRevision: now.GetRevision()}
		switch {
		case now == nil:
			item.Action = "create"
			item.Diff = diffJSON(nil, jsonTree(thenBody))
		case then == nil:
			item.Action = "delete"
			item.Diff = diffJSON(jsonTree(nowBody), nil)
		default:
			item.Diff = diffJSON(jsonTree(nowBody), jsonTree(thenBody))
		}
		plan.Change.Segments = append(plan.Change.Segments, rs)
		plan.Changes = append(plan.Changes, item)
	}
	return plan, nil
}

func skip(kind, key, reason string) *adminv1.RollbackItem {
	return &adminv1.RollbackItem{Kind: kind, Key: key, Action: "skip", Reason: reason}
}

func sortedKeys[A, B any](a map[string]A, b map[string]B) []string {
	seen := map[string]bool{}
	var out []string
	for k := range a {
		seen[k] = true
		out = append(out, k)
	}
	for k := range b {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// currentState reads every flag configuration and segment of the environment.
func (s *Store) currentState(ctx context.Context, ref store.EnvRef) (map[string]*currentFlag, map[string]*manifestv1.Segment, error) {
	flags := map[string]*currentFlag{}
	segs := map[string]*manifestv1.Segment{}
	err := s.readTx(ctx, func(x q) error {
		rows, err := x.query(ctx, `SELECT c.flag, c.config, c.revision, f.archived FROM flag_configs c
			JOIN flags f ON f.org = c.org AND f.project = c.project AND f.key = c.flag
			WHERE c.org = ? AND c.project = ? AND c.environment = ?`, ref.Org, ref.Project, ref.Environment)
		if err != nil {
			return err
		}
		type row struct {
			key string
			f   *currentFlag
		}
		fs, err := collect(rows, func(sc interface{ Scan(...any) error }) (row, error) {
			r := row{f: &currentFlag{config: &manifestv1.FlagConfig{}}}
			var b []byte
			if err := sc.Scan(&r.key, &b, &r.f.revision, &r.f.archived); err != nil {
				return r, err
			}
			return r, proto.Unmarshal(b, r.f.config)
		})
		if err != nil {
			return err
		}
		for _, r := range fs {
			flags[r.key] = r.f
		}
		rows, err = x.query(ctx, `SELECT key, body, revision FROM segments WHERE org = ? AND project = ? AND environment = ?`,
			ref.Org, ref.Project, ref.Environment)
		if err != nil {
			return err
		}
		ss, err := collect(rows, scanSegment)
		if err != nil {
			return err
		}
		for _, sg := range ss {
			segs[sg.GetKey()] = sg
		}
		return nil
	})
	return flags, segs, s.translate(err)
}

// stateAt is the environment's flag configurations and segments as committed at
// at: the latest revision of each at or before it (a deleted segment is absent).
func (s *Store) stateAt(ctx context.Context, ref store.EnvRef, at time.Time) (map[string]*manifestv1.FlagConfig, map[string]*manifestv1.Segment, error) {
	flags := map[string]*manifestv1.FlagConfig{}
	segs := map[string]*manifestv1.Segment{}
	for _, kind := range []string{store.KindFlagConfig, store.KindSegment} {
		rows, err := s.r().query(ctx, `SELECT `+revisionColumns+` FROM revisions
			WHERE org = ? AND project = ? AND environment = ? AND kind = ? AND created_at <= ?
			ORDER BY key, revision DESC`, ref.Org, ref.Project, ref.Environment, kind, micros(at))
		if err != nil {
			return nil, nil, s.translate(err)
		}
		krs, err := collect(rows, scanRevision(kind))
		if err != nil {
			return nil, nil, s.translate(err)
		}
		seen := map[string]bool{}
		for _, kr := range krs {
			if seen[kr.key] {
				continue
			}
			seen[kr.key] = true
			switch {
			case kr.rev.GetDeleted():
			case kind == store.KindFlagConfig:
				flags[kr.key] = kr.rev.GetConfig()
			default:
				segs[kr.key] = kr.rev.GetSegment()
			}
		}
	}
	return flags, segs, nil
}

// RollbackEnvironment applies a planned rollback in one transaction.
func (s *Store) RollbackEnvironment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, ch *adminv1.EnvironmentRollbackChange, check store.Check) error {
	return s.inTx(ctx, func(t *Tx) error {
		if _, err := t.s.loadEnv(ctx, t.q(), ref, false); err != nil {
			return err
		}
		return t.rollback(ctx, m, ref, ch, check)
	})
}

func replanned(what, key string, have, want int64) error {
	return errs.E(errs.Aborted, "%s %q changed since the rollback was planned (revision %d, planned from %d): plan the rollback again",
		what, key, have, want)
}

// rollback writes every item of ch after its base-revision check, then
// validates the result.
func (t *Tx) rollback(ctx context.Context, m store.WriteMeta, ref store.EnvRef, ch *adminv1.EnvironmentRollbackChange, check store.Check) error {
	wm := m
	wm.Action, wm.IdempotencyKey = "", ""
	for _, fc := range ch.GetFlagConfigs() {
		before, err := t.s.loadFlagConfig(ctx, t.q(), ref, fc.GetFlag(), true)
		if err != nil {
			return err
		}
		if before.Revision != fc.GetBaseRevision() {
			return replanned("flag configuration", fc.GetFlag(), before.Revision, fc.GetBaseRevision())
		}
		if _, err := t.writeFlagConfig(ctx, wm, ref, before, fc.GetConfig(), nil); err != nil {
			return err
		}
	}
	var deleted []string
	for _, rs := range ch.GetSegments() {
		key := rs.GetKey()
		before, err := t.s.loadSegment(ctx, t.q(), ref, key, true)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			before = nil
		case err != nil:
			return err
		}
		if have := before.GetRevision(); have != rs.GetBaseRevision() {
			return replanned("segment", key, have, rs.GetBaseRevision())
		}
		now := micros(t.now)
		switch {
		case rs.GetSegment() == nil && before == nil:
		case rs.GetSegment() == nil:
			if _, err := t.q().exec(ctx, `DELETE FROM segments WHERE org = ? AND project = ? AND environment = ? AND key = ?`,
				ref.Org, ref.Project, ref.Environment, key); err != nil {
				return err
			}
			deleted = append(deleted, key)
			if err := t.record(ctx, wm, change{org: ref.Org, project: ref.Project, env: ref.Environment,
				action: "segment.delete", resourceType: "segment", resource: segmentPath(ref, key), before: before}); err != nil {
				return err
			}
		case before == nil:
			sg := proto.CloneOf(rs.GetSegment())
			sg.Key, sg.Revision = key, 1
			body, err := segmentBody(sg)
			if err != nil {
				return err
			}
			id, err := newID()
			if err != nil {
				return err
			}
			if _, err := t.q().exec(ctx, `INSERT INTO segments (org, project, environment, key, id, body, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, ref.Environment, key, id, body, now, now); err != nil {
				return err
			}
			if err := t.record(ctx, wm, change{org: ref.Org, project: ref.Project, env: ref.Environment,
				action: "segment.create", resourceType: "segment", resource: segmentPath(ref, key), after: sg}); err != nil {
				return err
			}
		default:
			sg := proto.CloneOf(rs.GetSegment())
			sg.Key, sg.Revision = key, before.Revision+1
			body, err := segmentBody(sg)
			if err != nil {
				return err
			}
			if _, err := t.q().exec(ctx, `UPDATE segments SET body = ?, revision = ?, updated_at = ?
				WHERE org = ? AND project = ? AND environment = ? AND key = ?`, body, sg.Revision, now,
				ref.Org, ref.Project, ref.Environment, key); err != nil {
				return err
			}
			if err := t.record(ctx, wm, change{org: ref.Org, project: ref.Project, env: ref.Environment,
				action: "segment.update", resourceType: "segment", resource: segmentPath(ref, key), before: before, after: sg}); err != nil {
				return err
			}
		}
	}
	if err := t.runCheck(ctx, ref, check); err != nil {
		return err
	}
	for _, key := range deleted {
		if by, err := t.segmentUsers(ctx, ref, key); err != nil {
			return err
		} else if by != "" {
			return errs.E(errs.FailedPrecondition, "the rollback deletes segment %q, which %s still references after it", key, by)
		}
	}
	return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
		action: "environment.rollback", resourceType: "environment", resource: envPath(ref.Project, ref.Environment), after: ch})
}

// rollbackTargets is the current state of what a rollback change touches, as
// JSON tree shaped like rollbackTree (a change request's diff).
func (t *Tx) rollbackTargets(ctx context.Context, ref store.EnvRef, ch *adminv1.EnvironmentRollbackChange) (any, error) {
	flags := map[string]any{}
	for _, fc := range ch.GetFlagConfigs() {
		c, err := t.s.loadFlagConfig(ctx, t.q(), ref, fc.GetFlag(), false)
		if err != nil {
			return nil, err
		}
		flags[fc.GetFlag()] = jsonTree(c.GetConfig())
	}
	segs := map[string]any{}
	for _, rs := range ch.GetSegments() {
		sg, err := t.s.loadSegment(ctx, t.q(), ref, rs.GetKey(), false)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			segs[rs.GetKey()] = nil
		case err != nil:
			return nil, err
		default:
			sg = proto.CloneOf(sg)
			sg.Revision = 0
			segs[rs.GetKey()] = jsonTree(sg)
		}
	}
	return map[string]any{"flagConfigs": flags, "segments": segs}, nil
}

// rollbackTree is a rollback change's restored state as JSON tree.
func rollbackTree(ch *adminv1.EnvironmentRollbackChange) any {
	flags := map[string]any{}
	for _, fc := range ch.GetFlagConfigs() {
		flags[fc.GetFlag()] = jsonTree(fc.GetConfig())
	}
	segs := map[string]any{}
	for _, rs := range ch.GetSegments() {
		if rs.GetSegment() == nil {
			segs[rs.GetKey()] = nil
			continue
		}
		sg := proto.CloneOf(rs.GetSegment())
		sg.Revision = 0
		segs[rs.GetKey()] = jsonTree(sg)
	}
	return map[string]any{"flagConfigs": flags, "segments": segs}
}
