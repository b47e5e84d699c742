// Package authz is the control plane's role-based access control: which role a
// member holds on a resource (the most specific grant that covers it wins), what
// each role may do, and the one table that declares, for every RPC, the resource
// kind and action it touches and where its organization, project and environment
// are read from the request.
package authz

import (
	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
)

// Kind is a kind of resource.
type Kind string

// The resource kinds of the admin API.
const (
	Organization Kind = "organization"
	Project      Kind = "project"
	Environment  Kind = "environment"
	Flag         Kind = "flag"
	FlagConfig   Kind = "flag_config"
	Segment      Kind = "segment"
	Member       Kind = "member"
	RoleBinding  Kind = "role_binding"
	APIToken     Kind = "api_token"
	SDKKey       Kind = "sdk_key"
	Audit        Kind = "audit"
	Usage        Kind = "usage"
	// ChangeRequest: proposals, approvals and their application (environment level).
	ChangeRequest Kind = "change_request"
	// Schedule: scheduled flag changes (environment level).
	Schedule Kind = "schedule"
	// Webhook: a project's webhook subscriptions and their delivery log.
	Webhook Kind = "webhook"
	// ReleasePlan: progressive rollouts of a flag (environment level).
	ReleasePlan Kind = "release_plan"
)

// Self is not a resource: the caller's own identity and permissions
// (PermissionService). Every member of the organization may read it, whatever
// their role, so a member with no role at a scope can still learn so.
const Self Kind = "self"

// Kinds lists every resource kind (for exhaustive tests and docs).
var Kinds = []Kind{Organization, Project, Environment, Flag, FlagConfig, Segment, Member, RoleBinding, APIToken, SDKKey, Audit, Usage, ChangeRequest, Schedule, Webhook, ReleasePlan}

// Action is what an RPC does to a resource.
type Action string

// The actions.
const (
	// Read lists or gets.
	Read Action = "read"
	// Write creates, updates or deletes.
	Write Action = "write"
	// ManageOwners grants or takes away the owner role (or acts as an owner).
	ManageOwners Action = "manage_owners"
)

// Actions lists every action.
var Actions = []Action{Read, Write, ManageOwners}

// Scope locates a resource: its organization, and project and environment when it
// lives in one.
type Scope struct {
	Org, Project, Environment string
}

// rank orders roles by power; 0 is no role.
func rank(r adminv1.Role) int {
	switch r {
	case adminv1.Role_ROLE_OWNER:
		return 4
	case adminv1.Role_ROLE_ADMIN:
		return 3
	case adminv1.Role_ROLE_EDITOR:
		return 2
	case adminv1.Role_ROLE_VIEWER:
		return 1
	default:
		return 0
	}
}

// AtLeast reports whether role r is at least as powerful as min.
func AtLeast(r, minRole adminv1.Role) bool { return rank(r) > 0 && rank(r) >= rank(minRole) }

// RoleAt returns the role bindings grant on a resource at scope: the most specific
// binding that covers it (environment over project over organization), even when a
// less specific one is more powerful. ROLE_UNSPECIFIED means no access.
func RoleAt(bindings []*adminv1.RoleBinding, s Scope) adminv1.Role {
	if b := BindingAt(bindings, s); b != nil {
		return b.GetRole()
	}
	return adminv1.Role_ROLE_UNSPECIFIED
}

// BindingAt returns the binding that decides the role at scope s (the most
// specific one covering it), or nil when none does.
func BindingAt(bindings []*adminv1.RoleBinding, s Scope) *adminv1.RoleBinding {
	var best *adminv1.RoleBinding
	bestSpec := -1
	for _, b := range bindings {
		bp, be := b.GetScope().GetProject(), b.GetScope().GetEnvironment()
		spec := -1
		switch {
		case bp == "" && be == "":
			spec = 0
		case bp == s.Project && be == "" && s.Project != "":
			spec = 1
		case bp == s.Project && be == s.Environment && s.Project != "" && s.Environment != "":
			spec = 2
		}
		if spec > bestSpec {
			best, bestSpec = b, spec
		}
	}
	return best
}

// minRole is the least role allowed each action on each kind; a missing entry
// means nobody.
var minRole = map[Kind]map[Action]adminv1.Role{
	Organization: {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_OWNER, ManageOwners: adminv1.Role_ROLE_OWNER},
	Project:      {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_ADMIN},
	Environment:  {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_ADMIN},
	Flag:         {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_EDITOR},
	FlagConfig:   {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_EDITOR},
	Segment:      {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_EDITOR},
	Member:       {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_ADMIN, ManageOwners: adminv1.Role_ROLE_OWNER},
	RoleBinding:  {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_ADMIN, ManageOwners: adminv1.Role_ROLE_OWNER},
	APIToken:     {Read: adminv1.Role_ROLE_ADMIN, Write: adminv1.Role_ROLE_ADMIN, ManageOwners: adminv1.Role_ROLE_OWNER},
	SDKKey:       {Read: adminv1.Role_ROLE_ADMIN, Write: adminv1.Role_ROLE_ADMIN},
	Audit:        {Read: adminv1.Role_ROLE_ADMIN},
	Usage:        {Read: adminv1.Role_ROLE_VIEWER},
	// Approving, rejecting and applying are writes: editor rights on the
	// environment. Who among the writers may do what (never the author approving)
	// is the change request service's rule.
	ChangeRequest: {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_EDITOR},
	Schedule:      {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_EDITOR},
	ReleasePlan:   {Read: adminv1.Role_ROLE_VIEWER, Write: adminv1.Role_ROLE_EDITOR},
	// Webhooks send the project's changes to an outside URL: admins only.
	Webhook: {Read: adminv1.Role_ROLE_ADMIN, Write: adminv1.Role_ROLE_ADMIN},
}

// Allows reports whether role r may perform action on kind.
func Allows(r adminv1.Role, kind Kind, action Action) bool {
	m, ok := minRole[kind][action]
	return ok && AtLeast(r, m)
}

// Check decides whether p may perform action on a resource of kind at scope. A
// resource of another organization is NotFound (its existence is not revealed); a
// role that does not allow the action is PermissionDenied.
func Check(p *actor.Principal, s Scope, kind Kind, action Action) error {
	if p == nil {
		return errs.E(errs.Unauthenticated, "credentials required")
	}
	if s.Org != p.Org {
		return errs.E(errs.NotFound, "organization %q not found", s.Org)
	}
	if kind == Self && action == Read {
		return nil
	}
	role := RoleAt(p.Bindings, s)
	if !Allows(role, kind, action) {
		return errs.E(errs.PermissionDenied, "%s on %s is not allowed for role %s", action, kind, roleName(role))
	}
	return nil
}

func roleName(r adminv1.Role) string {
	if r == adminv1.Role_ROLE_UNSPECIFIED {
		return "none"
	}
	return r.String()
}

// MinRole returns the least role allowed action on kind; ok is false when no
// role is.
func MinRole(kind Kind, action Action) (adminv1.Role, bool) {
	r, ok := minRole[kind][action]
	return r, ok
}

// Permission is what Permissions answers for one kind and action.
type Permission struct {
	Kind    Kind
	Action  Action
	Allowed bool
	// MinRole is the least role allowed (ROLE_UNSPECIFIED: none is).
	MinRole adminv1.Role
	// Reason is Check's refusal message (empty when allowed).
	Reason string
}

// Permissions answers, for every kind and every action some role may perform on
// it, what Check decides for p at scope s: the same function the access
// interceptor calls, so the answer cannot drift from what the server enforces.
// Kinds that live deeper than s (a flag configuration asked about at a project)
// are answered with the role at s. Per-request refinements (granting the owner
// role, a change request's author approving it, an environment's approval
// settings) are not answered here; the server still applies them.
func Permissions(p *actor.Principal, s Scope) []Permission {
	var out []Permission
	for _, kind := range Kinds {
		for _, action := range Actions {
			min, ok := minRole[kind][action]
			if !ok {
				continue
			}
			perm := Permission{Kind: kind, Action: action, MinRole: min, Allowed: true}
			if err := Check(p, s, kind, action); err != nil {
				perm.Allowed, perm.Reason = false, errs.GRPCStatus(err).Message()
			}
			out = append(out, perm)
		}
	}
	return out
}
