package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func orgPath(org string) string { return "organizations/" + org }

func ts(v int64) *timestamppb.Timestamp {
	if v == 0 {
		return nil
	}
	return timestamppb.New(fromMicros(v))
}

func (s *Store) loadOrg(ctx context.Context, x q, org string, lock bool) (*adminv1.Organization, error) {
	query := `SELECT key, name, revision, created_at, updated_at FROM organizations WHERE key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	var o adminv1.Organization
	var c, u int64
	err := x.row(ctx, query, org).Scan(&o.Key, &o.Name, &o.Revision, &c, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("organization", org)
	}
	if err != nil {
		return nil, err
	}
	o.CreateTime, o.UpdateTime = ts(c), ts(u)
	return &o, nil
}

// CreateOrg creates an organization.
func (s *Store) CreateOrg(ctx context.Context, m store.WriteMeta, org *adminv1.Organization) (*adminv1.Organization, error) {
	if org.GetKey() == "" {
		return nil, errs.Invalid("organization.key", "required")
	}
	return create(ctx, s, m, org.GetKey(), "organization.create", requestHash(org),
		func() *adminv1.Organization { return &adminv1.Organization{} },
		func(t *Tx) (*adminv1.Organization, error) { return t.insertOrg(ctx, m, org) })
}

// CreateOrgWithOwner creates an organization and its first owner in one
// transaction, so an organization never exists without an owner.
func (s *Store) CreateOrgWithOwner(ctx context.Context, m store.WriteMeta, org *adminv1.Organization, owner *adminv1.Member) (*adminv1.Organization, error) {
	if org.GetKey() == "" {
		return nil, errs.Invalid("organization.key", "required")
	}
	return create(ctx, s, m, org.GetKey(), "organization.create", requestHash(org, owner),
		func() *adminv1.Organization { return &adminv1.Organization{} },
		func(t *Tx) (*adminv1.Organization, error) {
			o, err := t.insertOrg(ctx, m, org)
			if err != nil {
				return nil, err
			}
			if _, err := t.insertMember(ctx, m, o.GetKey(), owner, adminv1.Role_ROLE_OWNER); err != nil {
				return nil, err
			}
			return o, nil
		})
}

// insertOrg creates an organization and records it.
func (t *Tx) insertOrg(ctx context.Context, m store.WriteMeta, org *adminv1.Organization) (*adminv1.Organization, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	o := &adminv1.Organization{Key: org.GetKey(), Name: org.GetName(), Revision: 1,
		CreateTime: timestamppb.New(t.now), UpdateTime: timestamppb.New(t.now)}
	if _, err := t.q().exec(ctx, `INSERT INTO organizations (key, id, name, revision, created_at, updated_at)
		VALUES (?, ?, ?, 1, ?, ?)`, o.Key, id, o.Name, micros(t.now), micros(t.now)); err != nil {
		return nil, err
	}
	return o, t.record(ctx, m, change{org: o.Key, action: "organization.create",
		resourceType: "organization", resource: orgPath(o.Key), after: o})
}

// GetOrg returns an organization.
func (s *Store) GetOrg(ctx context.Context, org string) (*adminv1.Organization, error) {
	o, err := s.loadOrg(ctx, s.r(), org, false)
	return o, s.translate(err)
}

// ListOrgs lists organizations by key; keys non-empty restricts the list.
func (s *Store) ListOrgs(ctx context.Context, keys []string, p store.Page) ([]*adminv1.Organization, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT key, name, revision, created_at, updated_at FROM organizations WHERE key > ?`
	args := []any{after}
	if len(keys) > 0 {
		query += ` AND key IN (?` + strings.Repeat(", ?", len(keys)-1) + `)`
		for _, k := range keys {
			args = append(args, k)
		}
	}
	query += ` ORDER BY key LIMIT ?`
	args = append(args, size+1)
	rows, err := s.r().query(ctx, query, args...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	defer func() { _ = rows.Close() }()
	var out []*adminv1.Organization
	for rows.Next() {
		var o adminv1.Organization
		var c, u int64
		if err := rows.Scan(&o.Key, &o.Name, &o.Revision, &c, &u); err != nil {
			return nil, "", s.translate(err)
		}
		o.CreateTime, o.UpdateTime = ts(c), ts(u)
		out = append(out, &o)
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Organization).GetKey)
	return out, next, nil
}

// UpdateOrg renames an organization.
func (s *Store) UpdateOrg(ctx context.Context, m store.WriteMeta, org *adminv1.Organization, revision int64) (*adminv1.Organization, error) {
	var out *adminv1.Organization
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadOrg(ctx, t.q(), org.GetKey(), true)
		if err != nil {
			return err
		}
		if err := checkRevision("organization", org.GetKey(), before.Revision, revision); err != nil {
			return err
		}
		after := proto.Clone(before).(*adminv1.Organization)
		after.Name, after.Revision, after.UpdateTime = org.GetName(), before.Revision+1, timestamppb.New(t.now)
		if _, err := t.q().exec(ctx, `UPDATE organizations SET name = ?, revision = ?, updated_at = ? WHERE key = ?`,
			after.Name, after.Revision, micros(t.now), after.Key); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, change{org: after.Key, action: "organization.update",
			resourceType: "organization", resource: orgPath(after.Key), before: before, after: after})
	})
	return out, err
}

// DeleteOrg deletes an organization and everything in it (its audit log stays).
func (s *Store) DeleteOrg(ctx context.Context, m store.WriteMeta, org string, revision int64) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadOrg(ctx, t.q(), org, true)
		if err != nil {
			return err
		}
		if err := checkRevision("organization", org, before.Revision, revision); err != nil {
			return err
		}
		rows, err := t.q().query(ctx, `SELECT project, `+envColumns+` FROM environments WHERE org = ? ORDER BY project, key`, org)
		if err != nil {
			return err
		}
		type projEnv struct {
			project string
			env     *adminv1.Environment
		}
		envs, err := collect(rows, func(sc interface{ Scan(...any) error }) (projEnv, error) {
			var p projEnv
			var err error
			p.env, err = scanEnv(prefixScanner{sc, &p.project})
			return p, err
		})
		if err != nil {
			return err
		}
		for _, e := range envs {
			if e.env.GetSettings().GetApprovalsRequired() {
				return protectedError(e.project+"/"+e.env.GetKey(), "deleting organization "+quote(org), howLowerProtection)
			}
		}
		if _, err := t.q().exec(ctx, `DELETE FROM organizations WHERE key = ?`, org); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: org, action: "organization.delete",
			resourceType: "organization", resource: orgPath(org), before: before})
	})
}

// prefixScanner scans a leading column into first, the rest with sc.
type prefixScanner struct {
	sc    interface{ Scan(...any) error }
	first any
}

// Scan implements the scanner of collect.
func (p prefixScanner) Scan(dest ...any) error { return p.sc.Scan(append([]any{p.first}, dest...)...) }
