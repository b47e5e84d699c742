package remote

import (
	"context"
	"fmt"
	"strings"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Permissions asks what the caller may do in org (project and env optional).
func (c *Client) Permissions(ctx context.Context, org, project, env string) (*adminv1.GetMyPermissionsResponse, error) {
	return adminv1.NewPermissionServiceClient(c.conn).GetMyPermissions(c.ctx(ctx), &adminv1.GetMyPermissionsRequest{Org: org, Project: project, Environment: env})
}

// ParseRole reads "owner", "admin", "editor" or "viewer" (or ROLE_...).
func ParseRole(s string) (adminv1.Role, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "ROLE_") {
		name = "ROLE_" + name
	}
	if v, ok := adminv1.Role_value[name]; ok && v != 0 {
		return adminv1.Role(v), nil
	}
	return 0, fmt.Errorf("--role %q: want owner, admin, editor or viewer", s)
}

// MemberID resolves a member given by id or email.
func (c *Client) MemberID(ctx context.Context, org, member string) (string, error) {
	if !strings.Contains(member, "@") {
		return member, nil
	}
	ms := adminv1.NewMemberServiceClient(c.conn)
	token := ""
	for {
		r, err := ms.ListMembers(c.ctx(ctx), &adminv1.ListMembersRequest{Org: org, PageSize: 500, PageToken: token})
		if err != nil {
			return "", err
		}
		for _, m := range r.GetMembers() {
			if strings.EqualFold(m.GetEmail(), member) {
				return m.GetId(), nil
			}
		}
		if token = r.GetNextPageToken(); token == "" {
			return "", fmt.Errorf("--member: no member %q in %s", member, org)
		}
	}
}

// GrantRole grants (or replaces) member's role at project/env (both empty: the
// organization).
func (c *Client) GrantRole(ctx context.Context, org, memberID string, role adminv1.Role, project, env string) (*adminv1.RoleBinding, error) {
	r, err := adminv1.NewMemberServiceClient(c.conn).GrantRole(c.ctx(ctx), &adminv1.GrantRoleRequest{Org: org,
		Binding: &adminv1.RoleBinding{MemberId: memberID, Role: role, Scope: &adminv1.Scope{Project: project, Environment: env}}})
	return r.GetBinding(), err
}

// RevokeRole takes away member's role at project/env.
func (c *Client) RevokeRole(ctx context.Context, org, memberID, project, env string) error {
	_, err := adminv1.NewMemberServiceClient(c.conn).RevokeRole(c.ctx(ctx), &adminv1.RevokeRoleRequest{Org: org, MemberId: memberID,
		Scope: &adminv1.Scope{Project: project, Environment: env}})
	return err
}

// RoleBindings lists the organization's role bindings (memberID: only theirs).
func (c *Client) RoleBindings(ctx context.Context, org, memberID string) ([]*adminv1.RoleBinding, error) {
	var out []*adminv1.RoleBinding
	token := ""
	for {
		r, err := adminv1.NewMemberServiceClient(c.conn).ListRoleBindings(c.ctx(ctx), &adminv1.ListRoleBindingsRequest{Org: org, MemberId: memberID, PageSize: 500, PageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, r.GetBindings()...)
		if token = r.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// SendTestWebhook queues a test delivery to a webhook.
func (c *Client) SendTestWebhook(ctx context.Context, org, project, id string) (*adminv1.WebhookDelivery, error) {
	r, err := adminv1.NewWebhookServiceClient(c.conn).SendTestWebhook(c.ctx(ctx), &adminv1.SendTestWebhookRequest{Org: org, Project: project, Id: id})
	return r.GetDelivery(), err
}

// Redeliver sends a delivery again.
func (c *Client) Redeliver(ctx context.Context, org, project, id, deliveryID string) (*adminv1.WebhookDelivery, error) {
	r, err := adminv1.NewWebhookServiceClient(c.conn).RedeliverWebhookDelivery(c.ctx(ctx), &adminv1.RedeliverWebhookDeliveryRequest{Org: org, Project: project, Id: id, DeliveryId: deliveryID})
	return r.GetDelivery(), err
}

// Deliveries lists a webhook's most recent deliveries, newest first.
func (c *Client) Deliveries(ctx context.Context, org, project, id string, limit int32) ([]*adminv1.WebhookDelivery, error) {
	r, err := adminv1.NewWebhookServiceClient(c.conn).ListWebhookDeliveries(c.ctx(ctx), &adminv1.ListWebhookDeliveriesRequest{Org: org, Project: project, Id: id, PageSize: limit})
	return r.GetDeliveries(), err
}

// RoleName is a role as the CLI spells it ("editor").
func RoleName(r adminv1.Role) string {
	if r == adminv1.Role_ROLE_UNSPECIFIED {
		return "none"
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// ScopeName says where a binding applies ("organization", "project web",
// "environment web/staging").
func ScopeName(s *adminv1.Scope) string {
	switch {
	case s.GetEnvironment() != "":
		return "environment " + s.GetProject() + "/" + s.GetEnvironment()
	case s.GetProject() != "":
		return "project " + s.GetProject()
	default:
		return "organization"
	}
}

// FormatDelivery is one line of a delivery log.
func FormatDelivery(d *adminv1.WebhookDelivery) string {
	state := strings.ToLower(strings.TrimPrefix(d.GetState().String(), "WEBHOOK_DELIVERY_STATE_"))
	line := fmt.Sprintf("%s  %-22s %-10s attempts=%d", d.GetId(), d.GetEventType(), state, d.GetAttempts())
	if d.GetLastStatusCode() != 0 {
		line += fmt.Sprintf(" http=%d", d.GetLastStatusCode())
	}
	if d.GetLastError() != "" {
		line += " error=" + d.GetLastError()
	}
	return line
}
