package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flagforge/flagforge/cli/remote"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// adminArgs are the flags of the administration commands.
type adminArgs struct {
	org, project, env, member, role, hook, delivery string
}

// admin runs permissions, roles and webhooks commands.
func admin(ctx context.Context, c *remote.Client, out io.Writer, cmd string, a adminArgs) error {
	switch cmd {
	case "permissions":
		r, err := c.Permissions(ctx, a.org, a.project, a.env)
		if err != nil {
			return err
		}
		where := "organization " + a.org
		if a.project != "" {
			where = remote.ScopeName(&adminv1.Scope{Project: a.project, Environment: a.env})
		}
		from := "no grant covers it"
		if r.GetRoleScope() != nil {
			from = "granted at " + remote.ScopeName(r.GetRoleScope())
		}
		_, _ = fmt.Fprintf(out, "%s (%s) in %s: role %s (%s)\n", r.GetEmail(), r.GetMethod(), where, remote.RoleName(r.GetRole()), from)
		for _, p := range r.GetPermissions() {
			if p.GetAllowed() {
				_, _ = fmt.Fprintf(out, "  allowed  %s %s\n", p.GetAction(), p.GetKind())
			} else {
				_, _ = fmt.Fprintf(out, "  refused  %s %s: needs %s; %s\n", p.GetAction(), p.GetKind(), remote.RoleName(p.GetMinRole()), p.GetReason())
			}
		}
		return nil
	case "roles list":
		id := ""
		if a.member != "" {
			var err error
			if id, err = c.MemberID(ctx, a.org, a.member); err != nil {
				return err
			}
		}
		bs, err := c.RoleBindings(ctx, a.org, id)
		if err != nil {
			return err
		}
		for _, b := range bs {
			_, _ = fmt.Fprintf(out, "%s  %-7s %s\n", b.GetMemberId(), remote.RoleName(b.GetRole()), remote.ScopeName(b.GetScope()))
		}
		return nil
	case "roles grant", "roles revoke":
		if a.member == "" {
			return errors.New("--member is required")
		}
		id, err := c.MemberID(ctx, a.org, a.member)
		if err != nil {
			return err
		}
		if cmd == "roles revoke" {
			if err := c.RevokeRole(ctx, a.org, id, a.project, a.env); err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "revoked %s's role at %s\n", a.member, remote.ScopeName(&adminv1.Scope{Project: a.project, Environment: a.env}))
			return err
		}
		r, err := remote.ParseRole(a.role)
		if err != nil {
			return err
		}
		b, err := c.GrantRole(ctx, a.org, id, r, a.project, a.env)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "granted %s the role %s at %s\n", a.member, remote.RoleName(b.GetRole()), remote.ScopeName(b.GetScope()))
		return err
	}
	if a.hook == "" {
		return errors.New("--id (the webhook's id) is required")
	}
	switch cmd {
	case "webhooks deliveries":
		ds, err := c.Deliveries(ctx, a.org, a.project, a.hook, 50)
		if err != nil {
			return err
		}
		for _, d := range ds {
			_, _ = fmt.Fprintln(out, remote.FormatDelivery(d))
		}
		return nil
	case "webhooks test":
		d, err := c.SendTestWebhook(ctx, a.org, a.project, a.hook)
		if err != nil {
			return err
		}
		return follow(ctx, c, out, a, d.GetId())
	default: // webhooks redeliver
		if a.delivery == "" {
			return errors.New("--delivery is required")
		}
		d, err := c.Redeliver(ctx, a.org, a.project, a.hook, a.delivery)
		if err != nil {
			return err
		}
		return follow(ctx, c, out, a, d.GetId())
	}
}

// follow prints a delivery's log line once it was attempted (or after 15 s).
func follow(ctx context.Context, c *remote.Client, out io.Writer, a adminArgs, id string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds, err := c.Deliveries(ctx, a.org, a.project, a.hook, 100)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.GetId() != id {
				continue
			}
			settled := d.GetState().String() != "WEBHOOK_DELIVERY_STATE_PENDING"
			if settled || time.Now().After(deadline) {
				_, err := fmt.Fprintln(out, remote.FormatDelivery(d))
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
