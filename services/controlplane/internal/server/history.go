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
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// historyStorer is the storage instant rollback needs.
type historyStorer interface {
	store.History
	GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
	GetFlagConfig(ctx context.Context, ref store.EnvRef, flag string) (*adminv1.FlagEnvironmentConfig, error)
	UpdateFlagConfig(ctx context.Context, m store.WriteMeta, ref store.EnvRef, flag string, c *manifestv1.FlagConfig, revision int64, check store.Check) (*adminv1.FlagEnvironmentConfig, error)
	GetSegment(ctx context.Context, ref store.EnvRef, key string) (*manifestv1.Segment, error)
	CreateSegment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, s *manifestv1.Segment, check store.Check) (*manifestv1.Segment, error)
	UpdateSegment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, s *manifestv1.Segment, revision int64, check store.Check) (*manifestv1.Segment, error)
}

// HistoryService implements adminv1.HistoryServiceServer: revisions, diffs,
// reverts and environment rollback. Reverts and rollbacks are ordinary writes:
// the engine validates them in the write transaction, and in an environment that
// requires approvals they become change requests.
type HistoryService struct {
	adminv1.UnimplementedHistoryServiceServer
	store historyStorer
	// gov creates change requests (nil: writes to protected environments are
	// refused).
	gov changeRequests
	now func() time.Time
}

// ListFlagConfigRevisions lists a flag configuration's revisions, newest first.
func (s *HistoryService) ListFlagConfigRevisions(ctx context.Context, req *adminv1.ListFlagConfigRevisionsRequest) (*adminv1.ListFlagConfigRevisionsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	if _, err := s.store.GetFlagConfig(ctx, ref, req.GetFlag()); err != nil {
		return nil, err
	}
	revs, next, err := s.store.ListRevisions(ctx, ref, store.KindFlagConfig, req.GetFlag(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListFlagConfigRevisionsResponse{Revisions: revs, NextPageToken: next}, nil
}

// ListSegmentRevisions lists a segment's revisions, newest first; a deleted
// segment's history stays listable.
func (s *HistoryService) ListSegmentRevisions(ctx context.Context, req *adminv1.ListSegmentRevisionsRequest) (*adminv1.ListSegmentRevisionsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("segment", req.GetSegment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	if _, err := s.store.GetEnvironment(ctx, ref); err != nil {
		return nil, err
	}
	revs, next, err := s.store.ListRevisions(ctx, ref, store.KindSegment, req.GetSegment(), page)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 && req.GetPageToken() == "" {
		return nil, errs.E(errs.NotFound, "segment %q has no history in environment %q", req.GetSegment(), ref.Environment)
	}
	return &adminv1.ListSegmentRevisionsResponse{Revisions: revs, NextPageToken: next}, nil
}

func (c *checks) diffRange(from, to int64) {
	if from <= 0 {
		c.fail("from", "is required: a revision number (> 0)")
	}
	if to < 0 {
		c.fail("to", "must be a revision number, or 0 for the latest")
	}
}

// DiffFlagConfigRevisions diffs two revisions of a flag configuration.
func (s *HistoryService) DiffFlagConfigRevisions(ctx context.Context, req *adminv1.DiffFlagConfigRevisionsRequest) (*adminv1.DiffFlagConfigRevisionsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.diffRange(req.GetFrom(), req.GetTo())
	if c.err != nil {
		return nil, c.err
	}
	ops, from, to, err := s.store.DiffRevisions(ctx, ref, store.KindFlagConfig, req.GetFlag(), req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	return &adminv1.DiffFlagConfigRevisionsResponse{Diff: ops, From: from, To: to}, nil
}

// DiffSegmentRevisions diffs two revisions of a segment.
func (s *HistoryService) DiffSegmentRevisions(ctx context.Context, req *adminv1.DiffSegmentRevisionsRequest) (*adminv1.DiffSegmentRevisionsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("segment", req.GetSegment())
	c.diffRange(req.GetFrom(), req.GetTo())
	if c.err != nil {
		return nil, c.err
	}
	ops, from, to, err := s.store.DiffRevisions(ctx, ref, store.KindSegment, req.GetSegment(), req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	return &adminv1.DiffSegmentRevisionsResponse{Diff: ops, From: from, To: to}, nil
}

// revertComment is what a revert records: the caller's why, and what it restored.
func revertComment(rev int64, comment string) string {
	if comment == "" {
		return fmt.Sprintf("revert to revision %d", rev)
	}
	return fmt.Sprintf("revert to revision %d: %s", rev, comment)
}

// revisionToRestore reads the revision a revert names (field "revision").
func (s *HistoryService) revisionToRestore(ctx context.Context, ref store.EnvRef, kind, key string, rev int64) (*adminv1.Revision, error) {
	r, err := s.store.GetRevision(ctx, ref, kind, key, rev)
	if errs.KindOf(err) == errs.NotFound {
		return nil, errs.E(errs.NotFound, "revision: %s", err.Error())
	}
	return r, err
}

// protected reports whether writes to the environment become change requests.
func (s *HistoryService) protected(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, bool, error) {
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, false, err
	}
	if !env.GetSettings().GetApprovalsRequired() {
		return env, false, nil
	}
	if s.gov == nil {
		return nil, false, errs.E(errs.FailedPrecondition, "environment %q requires approvals: changes go through change requests", ref.Environment)
	}
	return env, true, nil
}

// RevertFlagConfig restores a revision's configuration.
func (s *HistoryService) RevertFlagConfig(ctx context.Context, req *adminv1.RevertFlagConfigRequest) (*adminv1.RevertFlagConfigResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.revision("revision", req.GetRevision())
	if req.GetBaseRevision() < 0 {
		c.fail("base_revision", "must be the current revision, or 0 for whatever is current")
	}
	c.text("comment", req.GetComment(), maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	rev, err := s.revisionToRestore(ctx, ref, store.KindFlagConfig, req.GetFlag(), req.GetRevision())
	if err != nil {
		return nil, err
	}
	cur, err := s.store.GetFlagConfig(ctx, ref, req.GetFlag())
	if err != nil {
		return nil, err
	}
	base := req.GetBaseRevision()
	if base == 0 {
		base = cur.GetRevision()
	}
	if base != cur.GetRevision() {
		return nil, errs.E(errs.Aborted, "base_revision %d is stale (current %d): read the current configuration and revert again", base, cur.GetRevision())
	}
	if proto.Equal(cur.GetConfig(), rev.GetConfig()) {
		// Already that content: a retried revert writes nothing.
		return &adminv1.RevertFlagConfigResponse{Config: cur}, nil
	}
	comment := revertComment(req.GetRevision(), req.GetComment())
	env, prot, err := s.protected(ctx, ref)
	if err != nil {
		return nil, err
	}
	if prot {
		pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{FlagConfig: &adminv1.FlagConfigChange{
			Flag: req.GetFlag(), Config: rev.GetConfig()}}}
		cr, err := propose(ctx, s.gov, ref, env, pc, base, comment, "")
		if err != nil {
			return nil, err
		}
		return &adminv1.RevertFlagConfigResponse{ChangeRequest: cr}, nil
	}
	fc, err := s.store.UpdateFlagConfig(ctx, meta(ctx, "", comment, ""), ref, req.GetFlag(), rev.GetConfig(), base,
		checkFlag(req.GetFlag(), under("revision"), false))
	if err != nil {
		return nil, err
	}
	return &adminv1.RevertFlagConfigResponse{Config: fc}, nil
}

// RevertSegment restores (or re-creates) a revision's segment.
func (s *HistoryService) RevertSegment(ctx context.Context, req *adminv1.RevertSegmentRequest) (*adminv1.RevertSegmentResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("segment", req.GetSegment())
	c.revision("revision", req.GetRevision())
	if req.GetBaseRevision() < 0 {
		c.fail("base_revision", "must be the segment's current revision, or 0 for whatever is current")
	}
	c.text("comment", req.GetComment(), maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	rev, err := s.revisionToRestore(ctx, ref, store.KindSegment, req.GetSegment(), req.GetRevision())
	if err != nil {
		return nil, err
	}
	if rev.GetDeleted() {
		return nil, errs.Invalid("revision", "revision %d deleted segment %q: there is nothing to restore (DeleteSegment deletes it)",
			req.GetRevision(), req.GetSegment())
	}
	var curRev int64
	cur, err := s.store.GetSegment(ctx, ref, req.GetSegment())
	switch {
	case errs.KindOf(err) == errs.NotFound:
		cur = nil
	case err != nil:
		return nil, err
	default:
		curRev = cur.GetRevision()
	}
	base := req.GetBaseRevision()
	if base == 0 {
		base = curRev
	}
	if base != curRev {
		return nil, errs.E(errs.Aborted, "base_revision %d is stale (current %d): read the current segment and revert again", base, curRev)
	}
	restored := proto.CloneOf(rev.GetSegment())
	restored.Key, restored.Revision = req.GetSegment(), 0
	if cur != nil {
		now := proto.CloneOf(cur)
		now.Revision = 0
		if proto.Equal(now, restored) {
			return &adminv1.RevertSegmentResponse{Segment: cur}, nil
		}
	}
	comment := revertComment(req.GetRevision(), req.GetComment())
	env, prot, err := s.protected(ctx, ref)
	if err != nil {
		return nil, err
	}
	if prot {
		cr, err := propose(ctx, s.gov, ref, env, &adminv1.ProposedChange{Change: &adminv1.ProposedChange_Segment{Segment: restored}},
			base, comment, "")
		if err != nil {
			return nil, err
		}
		return &adminv1.RevertSegmentResponse{ChangeRequest: cr}, nil
	}
	m := meta(ctx, "", comment, "")
	var out *manifestv1.Segment
	if cur == nil {
		out, err = s.store.CreateSegment(ctx, m, ref, restored, checkSegment(restored.Key, under("revision.segment")))
	} else {
		out, err = s.store.UpdateSegment(ctx, m, ref, restored, base, checkSegment(restored.Key, under("revision.segment")))
	}
	if err != nil {
		return nil, err
	}
	return &adminv1.RevertSegmentResponse{Segment: out}, nil
}

// rollbackCheck validates every flag and segment a rollback restores, naming
// them under field (the request's target field, or the change request's).
func rollbackCheck(ch *adminv1.EnvironmentRollbackChange, field string) store.Check {
	return func(env store.EnvView) error {
		for _, fc := range ch.GetFlagConfigs() {
			if err := checkFlag(fc.GetFlag(), under(field+".flags["+fc.GetFlag()+"]"), false)(env); err != nil {
				return err
			}
		}
		for _, rs := range ch.GetSegments() {
			if rs.GetSegment() == nil {
				continue
			}
			if err := checkSegment(rs.GetKey(), under(field+".segments["+rs.GetKey()+"]"))(env); err != nil {
				return err
			}
		}
		return nil
	}
}

// RollbackEnvironment restores an environment to a manifest version or a time.
func (s *HistoryService) RollbackEnvironment(ctx context.Context, req *adminv1.RollbackEnvironmentRequest) (*adminv1.RollbackEnvironmentResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.text("comment", req.GetComment(), maxComment, false)
	var target store.RollbackTarget
	field := ""
	switch t := req.GetTarget().(type) {
	case *adminv1.RollbackEnvironmentRequest_ManifestVersion:
		field = "manifest_version"
		if t.ManifestVersion == 0 {
			c.fail(field, "must be a published manifest version (> 0)")
		}
		target.ManifestVersion = t.ManifestVersion
	case *adminv1.RollbackEnvironmentRequest_Time:
		field = "time"
		switch {
		case t.Time.CheckValid() != nil:
			c.fail(field, "must be a valid timestamp")
		case t.Time.AsTime().After(s.now()):
			c.fail(field, "must not be in the future")
		}
		target.Time = t.Time.AsTime()
	default:
		c.fail("target", "is required: manifest_version or time")
	}
	if c.err != nil {
		return nil, c.err
	}
	// Rollback writes segments as well as flag configurations.
	if err := authz.Check(actor.PrincipalFrom(ctx), authz.Scope{Org: ref.Org, Project: ref.Project, Environment: ref.Environment},
		authz.Segment, authz.Write); err != nil {
		return nil, err
	}
	plan, err := s.store.PlanRollback(ctx, ref, target)
	if errs.KindOf(err) == errs.NotFound && target.ManifestVersion > 0 {
		if _, envErr := s.store.GetEnvironment(ctx, ref); envErr != nil {
			return nil, envErr
		}
		return nil, errs.Invalid(field, "manifest version %d of environment %q is not stored (never published, or pruned): roll back to a time instead",
			target.ManifestVersion, ref.Environment)
	}
	if err != nil {
		return nil, err
	}
	out := &adminv1.RollbackEnvironmentResponse{Target: plan.Change.GetTarget(), Changes: plan.Changes, Skipped: plan.Skipped}
	if req.GetDryRun() || len(plan.Changes) == 0 {
		return out, nil
	}
	comment := "rollback to " + plan.Change.GetTarget()
	if req.GetComment() != "" {
		comment += ": " + req.GetComment()
	}
	env, prot, err := s.protected(ctx, ref)
	if err != nil {
		return nil, err
	}
	if prot {
		pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_EnvironmentRollback{EnvironmentRollback: plan.Change}}
		cr, err := propose(ctx, s.gov, ref, env, pc, 0, comment, "")
		if err != nil {
			return nil, err
		}
		out.ChangeRequest = cr
		return out, nil
	}
	if err := s.store.RollbackEnvironment(ctx, meta(ctx, "", comment, ""), ref, plan.Change, rollbackCheck(plan.Change, field)); err != nil {
		return nil, err
	}
	out.Applied = true
	return out, nil
}
