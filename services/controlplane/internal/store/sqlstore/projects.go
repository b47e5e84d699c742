package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// defaultEnvironments are created with every project, in this order.
var defaultEnvironments = []struct{ key, name string }{
	{"development", "Development"}, {"staging", "Staging"}, {"production", "Production"},
}

func projectPath(project string) string { return "projects/" + project }

func envPath(project, env string) string {
	return projectPath(project) + "/environments/" + env
}

const projectColumns = `key, name, description, revision, created_at, updated_at`

func scanProject(sc interface{ Scan(...any) error }) (*adminv1.Project, error) {
	var p adminv1.Project
	var c, u int64
	if err := sc.Scan(&p.Key, &p.Name, &p.Description, &p.Revision, &c, &u); err != nil {
		return nil, err
	}
	p.CreateTime, p.UpdateTime = ts(c), ts(u)
	return &p, nil
}

func (s *Store) loadProject(ctx context.Context, x q, ref store.ProjectRef, lock bool) (*adminv1.Project, error) {
	query := `SELECT ` + projectColumns + ` FROM projects WHERE org = ? AND key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	p, err := scanProject(x.row(ctx, query, ref.Org, ref.Project))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("project", ref.Project)
	}
	return p, err
}

// CreateProject creates a project with its development, staging and production
// environments.
func (s *Store) CreateProject(ctx context.Context, m store.WriteMeta, org string, p *adminv1.Project) (*adminv1.Project, []*adminv1.Environment, error) {
	if p.GetKey() == "" {
		return nil, nil, errs.Invalid("project.key", "required")
	}
	res, err := create(ctx, s, m, org, "project.create", requestHash(p),
		func() *adminv1.CreateProjectResponse { return &adminv1.CreateProjectResponse{} },
		func(t *Tx) (*adminv1.CreateProjectResponse, error) {
			if _, err := s.loadOrg(ctx, t.q(), org, false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			now := micros(t.now)
			out := &adminv1.Project{Key: p.GetKey(), Name: p.GetName(), Description: p.GetDescription(),
				Revision: 1, CreateTime: timestamppb.New(t.now), UpdateTime: timestamppb.New(t.now)}
			if _, err := t.q().exec(ctx, `INSERT INTO projects (org, key, id, name, description, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, 1, ?, ?)`, org, out.Key, id, out.Name, out.Description, now, now); err != nil {
				return nil, err
			}
			res := &adminv1.CreateProjectResponse{Project: out}
			for _, de := range defaultEnvironments {
				e, err := t.insertEnvironment(ctx, store.ProjectRef{Org: org, Project: out.Key},
					&adminv1.Environment{Key: de.key, Name: de.name})
				if err != nil {
					return nil, err
				}
				res.Environments = append(res.Environments, e)
			}
			return res, t.record(ctx, m, change{org: org, project: out.Key, action: "project.create",
				resourceType: "project", resource: projectPath(out.Key), after: out})
		})
	if err != nil {
		return nil, nil, err
	}
	return res.GetProject(), res.GetEnvironments(), nil
}

// GetProject returns a project.
func (s *Store) GetProject(ctx context.Context, ref store.ProjectRef) (*adminv1.Project, error) {
	p, err := s.loadProject(ctx, s.r(), ref, false)
	return p, s.translate(err)
}

// ListProjects lists an organization's projects by key.
func (s *Store) ListProjects(ctx context.Context, org string, p store.Page) ([]*adminv1.Project, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+projectColumns+` FROM projects WHERE org = ? AND key > ? ORDER BY key LIMIT ?`,
		org, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanProject)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Project).GetKey)
	return out, next, nil
}

// UpdateProject changes a project's name and description.
func (s *Store) UpdateProject(ctx context.Context, m store.WriteMeta, org string, p *adminv1.Project, revision int64) (*adminv1.Project, error) {
	var out *adminv1.Project
	err := s.inTx(ctx, func(t *Tx) error {
		ref := store.ProjectRef{Org: org, Project: p.GetKey()}
		before, err := s.loadProject(ctx, t.q(), ref, true)
		if err != nil {
			return err
		}
		if err := checkRevision("project", ref.Project, before.Revision, revision); err != nil {
			return err
		}
		after := proto.Clone(before).(*adminv1.Project)
		after.Name, after.Description = p.GetName(), p.GetDescription()
		after.Revision, after.UpdateTime = before.Revision+1, timestamppb.New(t.now)
		if _, err := t.q().exec(ctx, `UPDATE projects SET name = ?, description = ?, revision = ?, updated_at = ?
			WHERE org = ? AND key = ?`, after.Name, after.Description, after.Revision, micros(t.now), org, ref.Project); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, change{org: org, project: ref.Project, action: "project.update",
			resourceType: "project", resource: projectPath(ref.Project), before: before, after: after})
	})
	return out, err
}

// DeleteProject deletes a project and everything in it.
func (s *Store) DeleteProject(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, revision int64) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadProject(ctx, t.q(), ref, true)
		if err != nil {
			return err
		}
		if err := checkRevision("project", ref.Project, before.Revision, revision); err != nil {
			return err
		}
		if envs, err := t.protectedEnvs(ctx, ref); err != nil {
			return err
		} else if len(envs) > 0 {
			return protectedError(envs[0].GetKey(), "deleting project "+quote(ref.Project), howLowerProtection)
		}
		if _, err := t.q().exec(ctx, `DELETE FROM projects WHERE org = ? AND key = ?`, ref.Org, ref.Project); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: "project.delete",
			resourceType: "project", resource: projectPath(ref.Project), before: before})
	})
}

// --- environments ---

const envColumns = `key, name, settings, manifest_version, revision, created_at, updated_at`

func scanEnv(sc interface{ Scan(...any) error }) (*adminv1.Environment, error) {
	var e adminv1.Environment
	var settings []byte
	var mv, c, u int64
	if err := sc.Scan(&e.Key, &e.Name, &settings, &mv, &e.Revision, &c, &u); err != nil {
		return nil, err
	}
	e.Settings = &adminv1.EnvironmentSettings{}
	if err := proto.Unmarshal(settings, e.Settings); err != nil {
		return nil, err
	}
	e.ManifestVersion = uint64(mv) //nolint:gosec // stored from a uint64
	e.CreateTime, e.UpdateTime = ts(c), ts(u)
	return &e, nil
}

func (s *Store) loadEnv(ctx context.Context, x q, ref store.EnvRef, lock bool) (*adminv1.Environment, error) {
	query := `SELECT ` + envColumns + ` FROM environments WHERE org = ? AND project = ? AND key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	e, err := scanEnv(x.row(ctx, query, ref.Org, ref.Project, ref.Environment))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("environment", ref.Environment)
	}
	return e, err
}

// defaultSettings fills unset environment settings with their defaults: no
// approvals, one approval when they are required, emergency off allowed. Every
// field is set in what is stored.
func defaultSettings(in *adminv1.EnvironmentSettings) *adminv1.EnvironmentSettings {
	out := proto.CloneOf(in)
	if out == nil {
		out = &adminv1.EnvironmentSettings{}
	}
	if out.ApprovalsRequired == nil {
		out.ApprovalsRequired = proto.Bool(false)
	}
	if out.GetRequiredApprovals() <= 0 {
		out.RequiredApprovals = proto.Int32(1)
	}
	if out.EmergencyOffAllowed == nil {
		out.EmergencyOffAllowed = proto.Bool(true)
	}
	return out
}

// insertEnvironment creates an environment and every flag's (off) configuration
// there. It records nothing: its callers do.
func (t *Tx) insertEnvironment(ctx context.Context, ref store.ProjectRef, e *adminv1.Environment) (*adminv1.Environment, error) {
	if e.GetKey() == "" {
		return nil, errs.Invalid("environment.key", "required")
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	out := &adminv1.Environment{Key: e.GetKey(), Name: e.GetName(), Settings: defaultSettings(e.GetSettings()),
		Revision: 1, CreateTime: timestamppb.New(t.now), UpdateTime: timestamppb.New(t.now)}
	settings, err := deterministic.Marshal(out.Settings)
	if err != nil {
		return nil, err
	}
	now := micros(t.now)
	if _, err := t.q().exec(ctx, `INSERT INTO environments (org, project, key, id, name, settings, revision, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, out.Key, id, out.Name, settings, now, now); err != nil {
		return nil, err
	}
	off, err := deterministic.Marshal(&manifestv1.FlagConfig{})
	if err != nil {
		return nil, err
	}
	if _, err := t.q().exec(ctx, `INSERT INTO flag_configs (org, project, environment, flag, config, revision, updated_at)
		SELECT org, project, ?, key, ?, 1, ? FROM flags WHERE org = ? AND project = ?`,
		out.Key, off, now, ref.Org, ref.Project); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateEnvironment creates an environment with every flag's configuration (off).
func (s *Store) CreateEnvironment(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, e *adminv1.Environment) (*adminv1.Environment, error) {
	return create(ctx, s, m, ref.Org, "environment.create", requestHash(ref.Project, e),
		func() *adminv1.Environment { return &adminv1.Environment{} },
		func(t *Tx) (*adminv1.Environment, error) {
			if _, err := s.loadProject(ctx, t.q(), ref, false); err != nil {
				return nil, err
			}
			out, err := t.insertEnvironment(ctx, ref, e)
			if err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: out.Key,
				action: "environment.create", resourceType: "environment",
				resource: envPath(ref.Project, out.Key), after: out})
		})
}

// GetEnvironment returns an environment.
func (s *Store) GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error) {
	e, err := s.loadEnv(ctx, s.r(), ref, false)
	return e, s.translate(err)
}

// ListEnvironments lists a project's environments by key.
func (s *Store) ListEnvironments(ctx context.Context, ref store.ProjectRef, p store.Page) ([]*adminv1.Environment, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+envColumns+` FROM environments WHERE org = ? AND project = ? AND key > ?
		ORDER BY key LIMIT ?`, ref.Org, ref.Project, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanEnv)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Environment).GetKey)
	return out, next, nil
}

// UpdateEnvironment changes an environment's name and settings. Turning approvals
// on fails, in the same transaction, the environment's pending schedules that were
// made without a change request.
func (s *Store) UpdateEnvironment(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, e *adminv1.Environment, revision int64) (*adminv1.Environment, error) {
	var out *adminv1.Environment
	err := s.inTx(ctx, func(t *Tx) error {
		eref := store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: e.GetKey()}
		before, err := s.loadEnv(ctx, t.q(), eref, true)
		if err != nil {
			return err
		}
		if err := checkRevision("environment", eref.Environment, before.Revision, revision); err != nil {
			return err
		}
		after := proto.Clone(before).(*adminv1.Environment)
		after.Name, after.Settings = e.GetName(), defaultSettings(e.GetSettings())
		out, err = t.writeEnvironment(ctx, m, eref, before, after)
		return err
	})
	return out, err
}

// writeEnvironment saves after over the locked before (the caller checked the
// revision) and records it.
func (t *Tx) writeEnvironment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, before, after *adminv1.Environment) (*adminv1.Environment, error) {
	after.Revision, after.UpdateTime = before.Revision+1, timestamppb.New(t.now)
	settings, err := deterministic.Marshal(after.Settings)
	if err != nil {
		return nil, err
	}
	if _, err := t.q().exec(ctx, `UPDATE environments SET name = ?, settings = ?, revision = ?, updated_at = ?
		WHERE org = ? AND project = ? AND key = ?`, after.Name, settings, after.Revision, micros(t.now),
		ref.Org, ref.Project, ref.Environment); err != nil {
		return nil, err
	}
	if after.GetSettings().GetApprovalsRequired() && !before.GetSettings().GetApprovalsRequired() {
		if err := t.failUnapprovedSchedules(ctx, m, ref); err != nil {
			return nil, err
		}
	}
	return after, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
		action: "environment.update", resourceType: "environment",
		resource: envPath(ref.Project, ref.Environment), before: before, after: after})
}

// DeleteEnvironment deletes an environment and everything in it.
func (s *Store) DeleteEnvironment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, revision int64) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadEnv(ctx, t.q(), ref, true)
		if err != nil {
			return err
		}
		if err := checkRevision("environment", ref.Environment, before.Revision, revision); err != nil {
			return err
		}
		if before.GetSettings().GetApprovalsRequired() {
			return protectedError(ref.Environment, "deleting it", howLowerProtection)
		}
		if _, err := t.q().exec(ctx, `DELETE FROM environments WHERE org = ? AND project = ? AND key = ?`,
			ref.Org, ref.Project, ref.Environment); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "environment.delete", resourceType: "environment",
			resource: envPath(ref.Project, ref.Environment), before: before})
	})
}

// collect scans all rows and closes them.
func collect[T any](rows *sql.Rows, scan func(sc interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer func() { _ = rows.Close() }()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
