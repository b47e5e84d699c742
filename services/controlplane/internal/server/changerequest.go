package server

import (
	"context"
	"google.golang.org/protobuf/proto"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/governance"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// changeRequests is the storage change requests need.
type changeRequests interface {
	GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
	GetFlagConfig(ctx context.Context, ref store.EnvRef, flag string) (*adminv1.FlagEnvironmentConfig, error)
	GetSegment(ctx context.Context, ref store.EnvRef, key string) (*manifestv1.Segment, error)
	CreateChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, cr *adminv1.ChangeRequest) (*adminv1.ChangeRequest, error)
	GetChangeRequest(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ChangeRequest, error)
	ListChangeRequests(ctx context.Context, ref store.EnvRef, f store.ChangeRequestFilter, p store.Page) ([]*adminv1.ChangeRequest, string, error)
	EditChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id, action string, edit func(cr *adminv1.ChangeRequest) error) (*adminv1.ChangeRequest, error)
	ApplyChangeRequest(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, ready func(cr *adminv1.ChangeRequest) error, check func(c *adminv1.ProposedChange) store.Check) (*adminv1.ChangeRequest, error)
}

// ChangeRequestService implements adminv1.ChangeRequestServiceServer: four-eyes
// approval of flag configuration and segment changes. The rules (never the author
// approving, approvals bound to the content digest, edits revoking approvals) are
// package governance's; they run inside the store's transaction.
type ChangeRequestService struct {
	adminv1.UnimplementedChangeRequestServiceServer
	store changeRequests
	now   func() time.Time
}

// requiredApprovals is the environment's setting (default 1).
func requiredApprovals(env *adminv1.Environment) int32 {
	return max(env.GetSettings().GetRequiredApprovals(), 1)
}

func (c *checks) proposedChange(field string, pc *adminv1.ProposedChange) {
	switch ch := pc.GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		c.key(field+".flag_config.flag", ch.FlagConfig.GetFlag())
		c.present(field+".flag_config.config", ch.FlagConfig.GetConfig() == nil)
	case *adminv1.ProposedChange_Segment:
		c.key(field+".segment.key", ch.Segment.GetKey())
		c.segment(field+".segment", ch.Segment)
	case *adminv1.ProposedChange_EnvironmentSettings:
		c.fail(field+".environment_settings", "propose settings changes with UpdateEnvironment")
	case *adminv1.ProposedChange_ReleasePlan:
		c.fail(field+".release_plan", "propose release plans with CreateReleasePlan or UpdateReleasePlan")
	case *adminv1.ProposedChange_EnvironmentRollback:
		c.fail(field+".environment_rollback", "propose a rollback with RollbackEnvironment")
	default:
		c.fail(field, "is required: flag_config or segment")
	}
}

// proposalCheck is the engine validation of a proposal, run when it is applied.
func proposalCheck(pc *adminv1.ProposedChange) store.Check {
	switch ch := pc.GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		return checkFlag(ch.FlagConfig.GetFlag(), under("change.flag_config"), false)
	case *adminv1.ProposedChange_Segment:
		return checkSegment(ch.Segment.GetKey(), under("change.segment"))
	case *adminv1.ProposedChange_EnvironmentRollback:
		return rollbackCheck(ch.EnvironmentRollback, "change.environment_rollback")
	}
	return nil
}

// currentRevision is the revision of the proposal's target (0: a new segment),
// and whether the proposal would change nothing.
func currentRevision(ctx context.Context, st changeRequests, ref store.EnvRef, pc *adminv1.ProposedChange) (rev int64, same bool, err error) {
	switch ch := pc.GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		fc, err := st.GetFlagConfig(ctx, ref, ch.FlagConfig.GetFlag())
		return fc.GetRevision(), err == nil && proto.Equal(fc.GetConfig(), ch.FlagConfig.GetConfig()), err
	case *adminv1.ProposedChange_Segment:
		sg, err := st.GetSegment(ctx, ref, ch.Segment.GetKey())
		if errs.KindOf(err) == errs.NotFound {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		cur, next := proto.CloneOf(sg), proto.CloneOf(ch.Segment)
		cur.Revision, next.Revision = 0, 0
		return sg.GetRevision(), proto.Equal(cur, next), nil
	case *adminv1.ProposedChange_EnvironmentSettings:
		e, err := st.GetEnvironment(ctx, ref)
		if err != nil {
			return 0, false, err
		}
		return e.GetRevision(), proto.Equal(governance.SettingsChange(e.GetSettings()), pc), nil
	case *adminv1.ProposedChange_EnvironmentRollback:
		// Each item carries its own base revision, checked when it is applied.
		return 0, len(ch.EnvironmentRollback.GetFlagConfigs())+len(ch.EnvironmentRollback.GetSegments()) == 0, nil
	}
	return 0, false, errs.Invalid("change", "is required")
}

// foreignIssuer is the member who minted p's token when that is someone else
// ("" otherwise).
func foreignIssuer(p *actor.Principal) string {
	if p == nil || p.Issuer == p.ID() {
		return ""
	}
	return p.Issuer
}

// propose creates a change request by the caller (UpdateFlagConfig and
// UpdateSegment in an environment requiring approvals, and CreateChangeRequest).
// The base revision must be the target's current one.
func propose(ctx context.Context, st changeRequests, ref store.EnvRef, env *adminv1.Environment, pc *adminv1.ProposedChange, base int64, description, idem string) (*adminv1.ChangeRequest, error) {
	cur, same, err := currentRevision(ctx, st, ref, pc)
	if err != nil {
		return nil, err
	}
	if cur != base {
		return nil, errs.E(errs.Aborted, "base revision %d is stale (current %d): read the current state and propose again", base, cur)
	}
	if same {
		// An approval of nothing is noise in every reviewer's queue.
		return nil, errs.Invalid("change", "changes nothing: the proposed %s equals the current one", targetOf(pc))
	}
	p := actor.PrincipalFrom(ctx)
	cr := &adminv1.ChangeRequest{
		Change: pc, BaseRevision: base, Description: description, AuthorId: p.ID(), AuthorIssuerId: foreignIssuer(p),
		RequiredApprovals: requiredApprovals(env), ContentDigest: governance.Digest(pc, base),
	}
	return st.CreateChangeRequest(ctx, meta(ctx, idem, description, ""), ref, cr)
}

// CreateChangeRequest proposes a change.
func (s *ChangeRequestService) CreateChangeRequest(ctx context.Context, req *adminv1.CreateChangeRequestRequest) (*adminv1.CreateChangeRequestResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.proposedChange("change", req.GetChange())
	c.text("description", req.GetDescription(), maxDescription, false)
	if req.GetBaseRevision() < 0 {
		c.fail("base_revision", "must be >= 0")
	}
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	cr, err := propose(ctx, s.store, ref, env, req.GetChange(), req.GetBaseRevision(), req.GetDescription(), idem)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateChangeRequestResponse{ChangeRequest: cr}, nil
}

func crRef(c *checks, org, project, env, id string) store.EnvRef {
	ref := envRef(c, org, project, env)
	if id == "" {
		c.fail("id", "is required")
	}
	c.text("id", id, 100, true)
	return ref
}

// GetChangeRequest reads a change request.
func (s *ChangeRequestService) GetChangeRequest(ctx context.Context, req *adminv1.GetChangeRequestRequest) (*adminv1.GetChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	cr, err := s.store.GetChangeRequest(ctx, ref, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetChangeRequestResponse{ChangeRequest: cr}, nil
}

// ListChangeRequests lists an environment's change requests, optionally by state
// and by the caller's part in them (inbox): "needs my review" is what the caller
// could approve now (governance.Approve would accept it and their role may write
// change requests there), "mine" what they authored.
func (s *ChangeRequestService) ListChangeRequests(ctx context.Context, req *adminv1.ListChangeRequestsRequest) (*adminv1.ListChangeRequestsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if _, ok := adminv1.ChangeRequestState_name[int32(req.GetState())]; !ok {
		c.fail("state", "unknown state")
	}
	if _, ok := adminv1.ChangeRequestInbox_name[int32(req.GetInbox())]; !ok {
		c.fail("inbox", "unknown inbox: NEEDS_MY_REVIEW, MINE or unset")
	}
	if c.err != nil {
		return nil, c.err
	}
	f := store.ChangeRequestFilter{State: req.GetState()}
	me := actor.PrincipalFrom(ctx)
	switch req.GetInbox() {
	case adminv1.ChangeRequestInbox_CHANGE_REQUEST_INBOX_MINE:
		f.Author = me.ID()
	case adminv1.ChangeRequestInbox_CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW:
		if req.GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_UNSPECIFIED &&
			req.GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN {
			return nil, errs.Invalid("state", "inbox NEEDS_MY_REVIEW lists open requests only")
		}
		scope := authz.Scope{Org: ref.Org, Project: ref.Project, Environment: ref.Environment}
		if authz.Check(me, scope, authz.ChangeRequest, authz.Write) != nil {
			return &adminv1.ListChangeRequestsResponse{}, nil //nolint:nilerr // a role that may not approve has nothing to review: an empty inbox, not an error
		}
		a := approver(ctx, ref)
		now := timestamppb.New(s.now().UTC())
		f.State, f.NotAuthor = adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN, me.ID()
		f.Keep = func(cr *adminv1.ChangeRequest) bool {
			return governance.Approve(proto.CloneOf(cr), a, cr.GetContentDigest(), "", now) == nil
		}
	}
	crs, next, err := s.store.ListChangeRequests(ctx, ref, f, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListChangeRequestsResponse{ChangeRequests: crs, NextPageToken: next}, nil
}

func (s *ChangeRequestService) edit(ctx context.Context, ref store.EnvRef, id, action, comment string, f func(cr *adminv1.ChangeRequest, member string, now *timestamppb.Timestamp) error) (*adminv1.ChangeRequest, error) {
	member := actor.PrincipalFrom(ctx).ID()
	now := timestamppb.New(s.now().UTC())
	return s.store.EditChangeRequest(ctx, meta(ctx, "", comment, ""), ref, id, action, func(cr *adminv1.ChangeRequest) error {
		return f(cr, member, now)
	})
}

// UpdateChangeRequest edits or rebases a proposal (author only); every approval is
// revoked because the content digest changes.
func (s *ChangeRequestService) UpdateChangeRequest(ctx context.Context, req *adminv1.UpdateChangeRequestRequest) (*adminv1.UpdateChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if req.GetChange() != nil {
		c.proposedChange("change", req.GetChange())
	}
	c.text("description", req.GetDescription(), maxDescription, false)
	c.revision("revision", req.GetRevision())
	if req.GetBaseRevision() < 0 {
		c.fail("base_revision", "must be >= 0")
	}
	if c.err != nil {
		return nil, c.err
	}
	cr, err := s.edit(ctx, ref, req.GetId(), "change_request.update", req.GetDescription(), func(cr *adminv1.ChangeRequest, member string, _ *timestamppb.Timestamp) error {
		if req.GetChange() != nil && targetOf(req.GetChange()) != targetOf(cr.GetChange()) {
			return errs.Invalid("change", "must change the same %s", targetOf(cr.GetChange()))
		}
		return governance.Revise(cr, member, req.GetRevision(), req.GetChange(), req.GetBaseRevision(), req.GetDescription())
	})
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateChangeRequestResponse{ChangeRequest: cr}, nil
}

// targetOf names what a proposal changes.
func targetOf(pc *adminv1.ProposedChange) string {
	switch ch := pc.GetChange().(type) {
	case *adminv1.ProposedChange_FlagConfig:
		return "flag configuration " + ch.FlagConfig.GetFlag()
	case *adminv1.ProposedChange_Segment:
		return "segment " + ch.Segment.GetKey()
	case *adminv1.ProposedChange_EnvironmentSettings:
		return "environment settings"
	case *adminv1.ProposedChange_ReleasePlan:
		return "release plan of flag " + ch.ReleasePlan.GetFlag()
	case *adminv1.ProposedChange_EnvironmentRollback:
		return "rollback to " + ch.EnvironmentRollback.GetTarget()
	}
	return ""
}

// approver describes the caller as governance.Approve sees it: who they are, who
// minted their credential, whether they are an admin of the environment, and since
// when they hold the rights they act with there (the newer of their membership
// and the role binding that decides their role at the environment).
func approver(ctx context.Context, ref store.EnvRef) governance.Approver {
	p := actor.PrincipalFrom(ctx)
	scope := authz.Scope{Org: ref.Org, Project: ref.Project, Environment: ref.Environment}
	a := governance.Approver{Member: p.ID(), Issuer: p.Issuer,
		Admin: authz.Check(p, scope, authz.Environment, authz.Write) == nil}
	if p != nil && p.Member != nil && p.Member.GetCreateTime() != nil {
		a.Since = p.Member.GetCreateTime().AsTime()
	}
	if b := authz.BindingAt(p.GetBindings(), scope); b != nil && b.GetGrantTime() != nil && b.GetGrantTime().AsTime().After(a.Since) {
		a.Since = b.GetGrantTime().AsTime()
	}
	return a
}

// ApproveChangeRequest approves the current content (content_digest) of another
// member's request. The author can never approve their own request.
func (s *ChangeRequestService) ApproveChangeRequest(ctx context.Context, req *adminv1.ApproveChangeRequestRequest) (*adminv1.ApproveChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	c.text("content_digest", req.GetContentDigest(), 64, true)
	c.text("comment", req.GetComment(), maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	a := approver(ctx, ref)
	cr, err := s.edit(ctx, ref, req.GetId(), "change_request.approve", req.GetComment(), func(cr *adminv1.ChangeRequest, _ string, now *timestamppb.Timestamp) error {
		return governance.Approve(cr, a, req.GetContentDigest(), req.GetComment(), now)
	})
	if err != nil {
		return nil, err
	}
	return &adminv1.ApproveChangeRequestResponse{ChangeRequest: cr}, nil
}

// RejectChangeRequest closes another member's request as rejected.
func (s *ChangeRequestService) RejectChangeRequest(ctx context.Context, req *adminv1.RejectChangeRequestRequest) (*adminv1.RejectChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	c.text("comment", req.GetComment(), maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	cr, err := s.edit(ctx, ref, req.GetId(), "change_request.reject", req.GetComment(), func(cr *adminv1.ChangeRequest, member string, now *timestamppb.Timestamp) error {
		return governance.Reject(cr, member, req.GetComment(), now)
	})
	if err != nil {
		return nil, err
	}
	return &adminv1.RejectChangeRequestResponse{ChangeRequest: cr}, nil
}

// ApplyChangeRequest performs an approved request: the author or any editor may,
// once it has the required approvals bound to its current content. A target
// changed since the base revision is refused (ABORTED): rebase first.
func (s *ChangeRequestService) ApplyChangeRequest(ctx context.Context, req *adminv1.ApplyChangeRequestRequest) (*adminv1.ApplyChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	a := approver(ctx, ref)
	ready := func(cr *adminv1.ChangeRequest) error {
		if err := governance.MayApply(cr, a); err != nil {
			return err
		}
		return governance.Ready(cr)
	}
	cr, err := s.store.ApplyChangeRequest(ctx, meta(ctx, "", "", ""), ref, req.GetId(), ready, proposalCheck)
	if err != nil {
		return nil, err
	}
	return &adminv1.ApplyChangeRequestResponse{ChangeRequest: cr}, nil
}

// WithdrawChangeRequest closes the caller's own request.
func (s *ChangeRequestService) WithdrawChangeRequest(ctx context.Context, req *adminv1.WithdrawChangeRequestRequest) (*adminv1.WithdrawChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	cr, err := s.edit(ctx, ref, req.GetId(), "change_request.withdraw", "", func(cr *adminv1.ChangeRequest, member string, _ *timestamppb.Timestamp) error {
		return governance.Withdraw(cr, member)
	})
	if err != nil {
		return nil, err
	}
	return &adminv1.WithdrawChangeRequestResponse{ChangeRequest: cr}, nil
}

// CommentChangeRequest adds a comment to the discussion, on the whole request or
// on one line of its diff (path).
func (s *ChangeRequestService) CommentChangeRequest(ctx context.Context, req *adminv1.CommentChangeRequestRequest) (*adminv1.CommentChangeRequestResponse, error) {
	var c checks
	ref := crRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	c.text("text", req.GetText(), maxComment, true)
	if c.err != nil {
		return nil, c.err
	}
	cr, err := s.edit(ctx, ref, req.GetId(), "change_request.comment", req.GetText(), func(cr *adminv1.ChangeRequest, member string, now *timestamppb.Timestamp) error {
		return governance.Comment(cr, member, req.GetText(), req.GetPath(), now)
	})
	if err != nil {
		return nil, err
	}
	return &adminv1.CommentChangeRequestResponse{ChangeRequest: cr}, nil
}
