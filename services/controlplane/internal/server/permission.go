package server

import (
	"context"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
)

// PermissionService implements adminv1.PermissionServiceServer: it answers from
// authz.Permissions, the same checks the access interceptor enforces.
type PermissionService struct {
	adminv1.UnimplementedPermissionServiceServer
}

// GetMyPermissions answers what the caller may do at the scope the request names.
func (s *PermissionService) GetMyPermissions(ctx context.Context, req *adminv1.GetMyPermissionsRequest) (*adminv1.GetMyPermissionsResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.optKey("project", req.GetProject())
	c.optKey("environment", req.GetEnvironment())
	if req.GetEnvironment() != "" && req.GetProject() == "" {
		c.fail("project", "is required with an environment")
	}
	if c.err != nil {
		return nil, c.err
	}
	p := actor.PrincipalFrom(ctx)
	scope := authz.Scope{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()}
	out := &adminv1.GetMyPermissionsResponse{
		MemberId: p.Member.GetId(), Email: p.Member.GetEmail(), Method: p.Method,
		Role: authz.RoleAt(p.Bindings, scope),
	}
	if b := authz.BindingAt(p.Bindings, scope); b != nil {
		out.RoleScope = &adminv1.Scope{Project: b.GetScope().GetProject(), Environment: b.GetScope().GetEnvironment()}
	}
	for _, perm := range authz.Permissions(p, scope) {
		out.Permissions = append(out.Permissions, &adminv1.Permission{
			Kind: string(perm.Kind), Action: string(perm.Action), Allowed: perm.Allowed, MinRole: perm.MinRole, Reason: perm.Reason,
		})
	}
	return out, nil
}
