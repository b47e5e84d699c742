package server

import (
	"context"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// OrganizationService implements adminv1.OrganizationServiceServer.
type OrganizationService struct {
	adminv1.UnimplementedOrganizationServiceServer
	store interface {
		store.Orgs
		CreateMember(ctx context.Context, m store.WriteMeta, org string, mem *adminv1.Member, role adminv1.Role) (*adminv1.Member, error)
	}
}

// CreateOrganization creates an organization whose first owner is a member with
// the caller's identity (email, name, OIDC subject), so the caller can reach it
// with OIDC or with a token an owner creates there.
func (s *OrganizationService) CreateOrganization(ctx context.Context, req *adminv1.CreateOrganizationRequest) (*adminv1.CreateOrganizationResponse, error) {
	var c checks
	c.present("organization", req.GetOrganization() == nil)
	c.key("organization.key", req.GetOrganization().GetKey())
	c.text("organization.name", req.GetOrganization().GetName(), maxName, true)
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	in := &adminv1.Organization{Key: req.GetOrganization().GetKey(), Name: req.GetOrganization().GetName()}
	// The caller becomes the new organization's owner, in the same transaction, so
	// an organization never exists without one.
	var org *adminv1.Organization
	if p := actor.PrincipalFrom(ctx); p != nil && p.Member != nil {
		owner := &adminv1.Member{Kind: p.Member.GetKind(), Email: p.Member.GetEmail(), Name: p.Member.GetName(), OidcSubject: p.Member.GetOidcSubject()}
		org, err = s.store.CreateOrgWithOwner(ctx, meta(ctx, idem, "", ""), in, owner)
	} else {
		org, err = s.store.CreateOrg(ctx, meta(ctx, idem, "", ""), in)
	}
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateOrganizationResponse{Organization: org}, nil
}

// GetOrganization reads an organization.
func (s *OrganizationService) GetOrganization(ctx context.Context, req *adminv1.GetOrganizationRequest) (*adminv1.GetOrganizationResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	if c.err != nil {
		return nil, c.err
	}
	org, err := s.store.GetOrg(ctx, req.GetOrg())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetOrganizationResponse{Organization: org}, nil
}

// ListOrganizations lists the organizations the caller belongs to (one).
func (s *OrganizationService) ListOrganizations(ctx context.Context, req *adminv1.ListOrganizationsRequest) (*adminv1.ListOrganizationsResponse, error) {
	var c checks
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	p := actor.PrincipalFrom(ctx)
	if p == nil {
		return nil, errs.E(errs.Unauthenticated, "credentials required")
	}
	orgs, next, err := s.store.ListOrgs(ctx, []string{p.Org}, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListOrganizationsResponse{Organizations: orgs, NextPageToken: next}, nil
}

// UpdateOrganization renames an organization.
func (s *OrganizationService) UpdateOrganization(ctx context.Context, req *adminv1.UpdateOrganizationRequest) (*adminv1.UpdateOrganizationResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("name", req.GetName(), maxName, true)
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	org, err := s.store.UpdateOrg(ctx, meta(ctx, "", "", ""), &adminv1.Organization{Key: req.GetOrg(), Name: req.GetName()}, req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateOrganizationResponse{Organization: org}, nil
}

// DeleteOrganization deletes an organization and everything in it.
func (s *OrganizationService) DeleteOrganization(ctx context.Context, req *adminv1.DeleteOrganizationRequest) (*adminv1.DeleteOrganizationResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	if err := s.store.DeleteOrg(ctx, meta(ctx, "", "", ""), req.GetOrg(), req.GetRevision()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteOrganizationResponse{}, nil
}

func firstErr(es ...error) error {
	for _, e := range es {
		if e != nil {
			return e
		}
	}
	return nil
}
