package server

import (
	"context"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// MemberService implements adminv1.MemberServiceServer.
type MemberService struct {
	adminv1.UnimplementedMemberServiceServer
	store store.Members
}

func (c *checks) role(field string, r adminv1.Role, required bool) {
	if _, ok := adminv1.Role_name[int32(r)]; !ok {
		c.fail(field, "unknown role")
	} else if required && r == adminv1.Role_ROLE_UNSPECIFIED {
		c.fail(field, "is required")
	}
}

func (c *checks) scope(field string, s *adminv1.Scope) {
	c.optKey(field+".project", s.GetProject())
	c.optKey(field+".environment", s.GetEnvironment())
	if s.GetEnvironment() != "" && s.GetProject() == "" {
		c.fail(field+".project", "is required with an environment")
	}
}

// CreateMember adds a person (by email) or service account (by slug) and, when
// role is set, grants it organization-wide (owner only by owners).
func (s *MemberService) CreateMember(ctx context.Context, req *adminv1.CreateMemberRequest) (*adminv1.CreateMemberResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.present("member", req.GetMember() == nil)
	m := req.GetMember()
	kind := m.GetKind()
	switch kind {
	case adminv1.MemberKind_MEMBER_KIND_UNSPECIFIED, adminv1.MemberKind_MEMBER_KIND_USER:
		kind = adminv1.MemberKind_MEMBER_KIND_USER
		c.email("member.email", m.GetEmail())
	case adminv1.MemberKind_MEMBER_KIND_SERVICE:
		c.key("member.email", m.GetEmail())
	default:
		c.fail("member.kind", "unknown kind")
	}
	c.text("member.name", m.GetName(), maxName, false)
	c.text("member.oidc_subject", m.GetOidcSubject(), 500, false)
	c.role("role", req.GetRole(), false)
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	if req.GetRole() == adminv1.Role_ROLE_OWNER {
		if err := authz.Check(actor.PrincipalFrom(ctx), authz.Scope{Org: req.GetOrg()}, authz.Member, authz.ManageOwners); err != nil {
			return nil, err
		}
	}
	out, err := s.store.CreateMember(ctx, meta(ctx, idem, "", ""), req.GetOrg(),
		&adminv1.Member{Kind: kind, Email: m.GetEmail(), Name: m.GetName(), OidcSubject: m.GetOidcSubject()}, req.GetRole())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateMemberResponse{Member: out}, nil
}

// GetMember reads a member with its role bindings.
func (s *MemberService) GetMember(ctx context.Context, req *adminv1.GetMemberRequest) (*adminv1.GetMemberResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("member_id", req.GetMemberId(), 100, true)
	if c.err != nil {
		return nil, c.err
	}
	m, bs, err := s.store.GetMember(ctx, req.GetOrg(), req.GetMemberId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetMemberResponse{Member: m, Bindings: bs}, nil
}

// ListMembers lists an organization's members.
func (s *MemberService) ListMembers(ctx context.Context, req *adminv1.ListMembersRequest) (*adminv1.ListMembersResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ms, next, err := s.store.ListMembers(ctx, req.GetOrg(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListMembersResponse{Members: ms, NextPageToken: next}, nil
}

// UpdateMember changes a member's name and OIDC subject (empty keeps the name;
// the subject is replaced). Only owners change owners.
func (s *MemberService) UpdateMember(ctx context.Context, req *adminv1.UpdateMemberRequest) (*adminv1.UpdateMemberResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("member_id", req.GetMemberId(), 100, true)
	c.text("name", req.GetName(), maxName, false)
	c.text("oidc_subject", req.GetOidcSubject(), 500, false)
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	cur, bs, err := s.store.GetMember(ctx, req.GetOrg(), req.GetMemberId())
	if err != nil {
		return nil, err
	}
	if err := ownerGuard(ctx, req.GetOrg(), bs); err != nil {
		return nil, err
	}
	m := &adminv1.Member{Id: cur.GetId(), Kind: cur.GetKind(), Email: cur.GetEmail(), Name: cur.GetName(), OidcSubject: req.GetOidcSubject()}
	if req.GetName() != "" {
		m.Name = req.GetName()
	}
	out, err := s.store.UpdateMember(ctx, meta(ctx, "", "", ""), req.GetOrg(), m, req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateMemberResponse{Member: out}, nil
}

// DeleteMember removes a member (only owners remove owners).
func (s *MemberService) DeleteMember(ctx context.Context, req *adminv1.DeleteMemberRequest) (*adminv1.DeleteMemberResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("member_id", req.GetMemberId(), 100, true)
	if c.err != nil {
		return nil, c.err
	}
	_, bs, err := s.store.GetMember(ctx, req.GetOrg(), req.GetMemberId())
	if err != nil {
		return nil, err
	}
	if err := ownerGuard(ctx, req.GetOrg(), bs); err != nil {
		return nil, err
	}
	if err := s.store.DeleteMember(ctx, meta(ctx, "", "", ""), req.GetOrg(), req.GetMemberId()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteMemberResponse{}, nil
}

// GrantRole grants or replaces a member's role at a scope. Granting owner, or
// changing an owner's roles, takes an owner.
func (s *MemberService) GrantRole(ctx context.Context, req *adminv1.GrantRoleRequest) (*adminv1.GrantRoleResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.present("binding", req.GetBinding() == nil)
	c.text("binding.member_id", req.GetBinding().GetMemberId(), 100, true)
	c.role("binding.role", req.GetBinding().GetRole(), true)
	c.scope("binding.scope", req.GetBinding().GetScope())
	if c.err != nil {
		return nil, c.err
	}
	_, bs, err := s.store.GetMember(ctx, req.GetOrg(), req.GetBinding().GetMemberId())
	if err != nil {
		return nil, err
	}
	if err := ownerGuard(ctx, req.GetOrg(), bs); err != nil {
		return nil, err
	}
	b := &adminv1.RoleBinding{MemberId: req.GetBinding().GetMemberId(), Role: req.GetBinding().GetRole(), Scope: req.GetBinding().GetScope()}
	if b.Scope == nil {
		b.Scope = &adminv1.Scope{}
	}
	out, err := s.store.GrantRole(ctx, meta(ctx, "", "", ""), req.GetOrg(), b)
	if err != nil {
		return nil, err
	}
	return &adminv1.GrantRoleResponse{Binding: out}, nil
}

// RevokeRole removes a member's binding at a scope (an owner's only by owners).
func (s *MemberService) RevokeRole(ctx context.Context, req *adminv1.RevokeRoleRequest) (*adminv1.RevokeRoleResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("member_id", req.GetMemberId(), 100, true)
	c.scope("scope", req.GetScope())
	if c.err != nil {
		return nil, c.err
	}
	_, bs, err := s.store.GetMember(ctx, req.GetOrg(), req.GetMemberId())
	if err != nil {
		return nil, err
	}
	if err := ownerGuard(ctx, req.GetOrg(), bs); err != nil {
		return nil, err
	}
	scope := req.GetScope()
	if scope == nil {
		scope = &adminv1.Scope{}
	}
	if err := s.store.RevokeRole(ctx, meta(ctx, "", "", ""), req.GetOrg(), req.GetMemberId(), scope); err != nil {
		return nil, err
	}
	return &adminv1.RevokeRoleResponse{}, nil
}

// ListRoleBindings lists role bindings, optionally of one member.
func (s *MemberService) ListRoleBindings(ctx context.Context, req *adminv1.ListRoleBindingsRequest) (*adminv1.ListRoleBindingsResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("member_id", req.GetMemberId(), 100, false)
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	bs, next, err := s.store.ListRoleBindings(ctx, req.GetOrg(), req.GetMemberId(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListRoleBindingsResponse{Bindings: bs, NextPageToken: next}, nil
}
