package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func memberPath(id string) string { return "members/" + id }

const memberColumns = `id, kind, email, name, oidc_subject, revision, created_at`

func scanMember(sc interface{ Scan(...any) error }) (*adminv1.Member, error) {
	var m adminv1.Member
	var kind int32
	var c int64
	if err := sc.Scan(&m.Id, &kind, &m.Email, &m.Name, &m.OidcSubject, &m.Revision, &c); err != nil {
		return nil, err
	}
	m.Kind, m.CreateTime = adminv1.MemberKind(kind), ts(c)
	return &m, nil
}

func (s *Store) loadMember(ctx context.Context, x q, org, id string, lock bool) (*adminv1.Member, error) {
	query := `SELECT ` + memberColumns + ` FROM members WHERE org = ? AND id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	m, err := scanMember(x.row(ctx, query, org, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("member", id)
	}
	return m, err
}

func scanBinding(sc interface{ Scan(...any) error }) (*adminv1.RoleBinding, error) {
	var b adminv1.RoleBinding
	var project, env string
	var role int32
	var granted int64
	if err := sc.Scan(&b.MemberId, &project, &env, &role, &granted); err != nil {
		return nil, err
	}
	b.Role, b.GrantTime = adminv1.Role(role), ts(granted)
	b.Scope = &adminv1.Scope{Project: project, Environment: env}
	return &b, nil
}

func (s *Store) bindings(ctx context.Context, x q, org, memberID string) ([]*adminv1.RoleBinding, error) {
	rows, err := x.query(ctx, `SELECT member_id, project, environment, role, granted_at FROM role_bindings
		WHERE org = ? AND member_id = ? ORDER BY project, environment`, org, memberID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBinding)
}

// CreateMember creates a member and, when role is set, an organization-wide binding.
func (s *Store) CreateMember(ctx context.Context, m store.WriteMeta, org string, mem *adminv1.Member, role adminv1.Role) (*adminv1.Member, error) {
	return create(ctx, s, m, org, "member.create", requestHash(mem, role.String()),
		func() *adminv1.Member { return &adminv1.Member{} },
		func(t *Tx) (*adminv1.Member, error) {
			if _, err := s.loadOrg(ctx, t.q(), org, false); err != nil {
				return nil, err
			}
			return t.insertMember(ctx, m, org, mem, role)
		})
}

// insertMember creates a member with an optional organization-wide role and
// records it.
func (t *Tx) insertMember(ctx context.Context, m store.WriteMeta, org string, mem *adminv1.Member, role adminv1.Role) (*adminv1.Member, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	out := proto.Clone(mem).(*adminv1.Member)
	out.Id, out.Revision, out.CreateTime = id, 1, timestamppb.New(t.now)
	now := micros(t.now)
	if _, err := t.q().exec(ctx, `INSERT INTO members (id, org, kind, email, name, oidc_subject, revision, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, id, org, int32(out.Kind), out.Email, out.Name, out.OidcSubject, now, now); err != nil {
		return nil, err
	}
	if role != adminv1.Role_ROLE_UNSPECIFIED {
		if _, err := t.q().exec(ctx, `INSERT INTO role_bindings (org, member_id, project, environment, role, granted_at)
			VALUES (?, ?, '', '', ?, ?)`, org, id, int32(role), now); err != nil {
			return nil, err
		}
	}
	return out, t.record(ctx, m, change{org: org, action: "member.create", resourceType: "member",
		resource: memberPath(id), after: out})
}

// GetMember returns a member and its bindings.
func (s *Store) GetMember(ctx context.Context, org, id string) (*adminv1.Member, []*adminv1.RoleBinding, error) {
	mem, err := s.loadMember(ctx, s.r(), org, id, false)
	if err != nil {
		return nil, nil, s.translate(err)
	}
	b, err := s.bindings(ctx, s.r(), org, id)
	if err != nil {
		return nil, nil, s.translate(err)
	}
	return mem, b, nil
}

// ListMembers lists an organization's members by id (creation order).
func (s *Store) ListMembers(ctx context.Context, org string, p store.Page) ([]*adminv1.Member, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+memberColumns+` FROM members WHERE org = ? AND id > ? ORDER BY id LIMIT ?`,
		org, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanMember)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Member).GetId)
	return out, next, nil
}

// UpdateMember changes a member's name and OIDC subject.
func (s *Store) UpdateMember(ctx context.Context, m store.WriteMeta, org string, mem *adminv1.Member, revision int64) (*adminv1.Member, error) {
	var out *adminv1.Member
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadMember(ctx, t.q(), org, mem.GetId(), true)
		if err != nil {
			return err
		}
		if err := checkRevision("member", mem.GetId(), before.Revision, revision); err != nil {
			return err
		}
		after := proto.Clone(before).(*adminv1.Member)
		after.Name, after.OidcSubject, after.Revision = mem.GetName(), mem.GetOidcSubject(), before.Revision+1
		if _, err := t.q().exec(ctx, `UPDATE members SET name = ?, oidc_subject = ?, revision = ?, updated_at = ?
			WHERE org = ? AND id = ?`, after.Name, after.OidcSubject, after.Revision, micros(t.now), org, after.Id); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, change{org: org, action: "member.update", resourceType: "member",
			resource: memberPath(after.Id), before: before, after: after})
	})
	return out, err
}

// DeleteMember deletes a member with its bindings and API tokens.
func (s *Store) DeleteMember(ctx context.Context, m store.WriteMeta, org, id string) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadMember(ctx, t.q(), org, id, true)
		if err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `DELETE FROM members WHERE org = ? AND id = ?`, org, id); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: org, action: "member.delete", resourceType: "member",
			resource: memberPath(id), before: before})
	})
}

// MemberByOIDCSubject finds a member by OIDC subject ("issuer|subject"), else by email.
func (s *Store) MemberByOIDCSubject(ctx context.Context, org, subject, email string) (*adminv1.Member, []*adminv1.RoleBinding, error) {
	var mem *adminv1.Member
	var err error
	if subject != "" {
		mem, err = scanMember(s.r().row(ctx, `SELECT `+memberColumns+` FROM members WHERE org = ? AND oidc_subject = ?
			ORDER BY id LIMIT 1`, org, subject))
	}
	if (subject == "" || errors.Is(err, sql.ErrNoRows)) && email != "" {
		mem, err = scanMember(s.r().row(ctx, `SELECT `+memberColumns+` FROM members WHERE org = ? AND email = ?`, org, email))
	}
	if mem == nil && err == nil || errors.Is(err, sql.ErrNoRows) {
		return nil, nil, errs.E(errs.NotFound, "no member for subject %q or email %q", subject, email)
	}
	if err != nil {
		return nil, nil, s.translate(err)
	}
	b, err := s.bindings(ctx, s.r(), org, mem.Id)
	if err != nil {
		return nil, nil, s.translate(err)
	}
	return mem, b, nil
}

func bindingPath(memberID string, sc *adminv1.Scope) string {
	p := memberPath(memberID) + "/bindings/"
	switch {
	case sc.GetEnvironment() != "":
		return p + envPath(sc.GetProject(), sc.GetEnvironment())
	case sc.GetProject() != "":
		return p + projectPath(sc.GetProject())
	default:
		return p + "organization"
	}
}

func (s *Store) loadBinding(ctx context.Context, x q, org, memberID string, sc *adminv1.Scope) (*adminv1.RoleBinding, error) {
	b, err := scanBinding(x.row(ctx, `SELECT member_id, project, environment, role, granted_at FROM role_bindings
		WHERE org = ? AND member_id = ? AND project = ? AND environment = ?`+s.d.ForUpdate,
		org, memberID, sc.GetProject(), sc.GetEnvironment()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

// GrantRole creates or replaces the member's binding at the binding's scope.
func (s *Store) GrantRole(ctx context.Context, m store.WriteMeta, org string, b *adminv1.RoleBinding) (*adminv1.RoleBinding, error) {
	if b.GetScope().GetEnvironment() != "" && b.GetScope().GetProject() == "" {
		return nil, errs.Invalid("binding.scope.project", "required with an environment")
	}
	if b.GetRole() == adminv1.Role_ROLE_UNSPECIFIED {
		return nil, errs.Invalid("binding.role", "required")
	}
	var out *adminv1.RoleBinding
	err := s.inTx(ctx, func(t *Tx) error {
		if _, err := s.loadMember(ctx, t.q(), org, b.GetMemberId(), false); err != nil {
			return err
		}
		sc := b.GetScope()
		before, err := s.loadBinding(ctx, t.q(), org, b.GetMemberId(), sc)
		if err != nil {
			return err
		}
		// A changed role is a new grant: its time is now (the same role keeps its time).
		if _, err := t.q().exec(ctx, `INSERT INTO role_bindings (org, member_id, project, environment, role, granted_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org, member_id, project, environment) DO UPDATE SET role = excluded.role,
			granted_at = CASE WHEN role_bindings.role = excluded.role THEN role_bindings.granted_at ELSE excluded.granted_at END`,
			org, b.GetMemberId(), sc.GetProject(), sc.GetEnvironment(), int32(b.GetRole()), micros(t.now)); err != nil {
			return err
		}
		out, err = s.loadBinding(ctx, t.q(), org, b.GetMemberId(), sc)
		if err != nil {
			return err
		}
		return t.record(ctx, m, change{org: org, project: sc.GetProject(), env: sc.GetEnvironment(),
			action: "member.role_grant", resourceType: "role_binding", resource: bindingPath(out.MemberId, sc),
			before: before, after: out})
	})
	return out, err
}

// RevokeRole deletes the member's binding at scope.
func (s *Store) RevokeRole(ctx context.Context, m store.WriteMeta, org, memberID string, scope *adminv1.Scope) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadBinding(ctx, t.q(), org, memberID, scope)
		if err != nil {
			return err
		}
		if before == nil {
			return errs.E(errs.NotFound, "member %q has no role binding at that scope", memberID)
		}
		if _, err := t.q().exec(ctx, `DELETE FROM role_bindings WHERE org = ? AND member_id = ? AND project = ? AND environment = ?`,
			org, memberID, scope.GetProject(), scope.GetEnvironment()); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: org, project: scope.GetProject(), env: scope.GetEnvironment(),
			action: "member.role_revoke", resourceType: "role_binding", resource: bindingPath(memberID, scope),
			before: before})
	})
}

// bindingCursor is the page token of ListRoleBindings.
type bindingCursor struct{ M, P, E string }

// ListRoleBindings lists bindings by member, project, environment.
func (s *Store) ListRoleBindings(ctx context.Context, org, memberID string, p store.Page) ([]*adminv1.RoleBinding, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT member_id, project, environment, role, granted_at FROM role_bindings WHERE org = ?`
	args := []any{org}
	if memberID != "" {
		query += ` AND member_id = ?`
		args = append(args, memberID)
	}
	if after != "" {
		var c bindingCursor
		if err := json.Unmarshal([]byte(after), &c); err != nil {
			return nil, "", errs.Invalid("page_token", "invalid page token")
		}
		query += ` AND (member_id > ? OR (member_id = ? AND (project > ? OR (project = ? AND environment > ?))))`
		args = append(args, c.M, c.M, c.P, c.P, c.E)
	}
	query += ` ORDER BY member_id, project, environment LIMIT ?`
	args = append(args, size+1)
	rows, err := s.r().query(ctx, query, args...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanBinding)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, func(b *adminv1.RoleBinding) string {
		j, _ := json.Marshal(bindingCursor{b.MemberId, b.Scope.GetProject(), b.Scope.GetEnvironment()})
		return string(j)
	})
	return out, next, nil
}
