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
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func flagPath(project, flag string) string { return projectPath(project) + "/flags/" + flag }

func flagConfigPath(ref store.EnvRef, flag string) string {
	return envPath(ref.Project, ref.Environment) + "/flags/" + flag
}

// tagsColumn stores tags as ",a,b," so that one LIKE finds a tag.
func tagsColumn(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return "," + strings.Join(tags, ",") + ","
}

const flagColumns = `key, body, archived, revision, created_at, updated_at`

func scanFlag(sc interface{ Scan(...any) error }) (*adminv1.Flag, error) {
	var body []byte
	var key string
	var archived bool
	var rev, c, u int64
	if err := sc.Scan(&key, &body, &archived, &rev, &c, &u); err != nil {
		return nil, err
	}
	f := &adminv1.Flag{}
	if err := proto.Unmarshal(body, f); err != nil {
		return nil, err
	}
	f.Key, f.Archived, f.Revision, f.CreateTime, f.UpdateTime = key, archived, rev, ts(c), ts(u)
	return f, nil
}

// flagBody is the stored body: the definition without the columns' fields.
func flagBody(f *adminv1.Flag) ([]byte, error) {
	b := proto.Clone(f).(*adminv1.Flag)
	b.Archived, b.Revision, b.CreateTime, b.UpdateTime = false, 0, nil, nil
	return deterministic.Marshal(b)
}

func (s *Store) loadFlag(ctx context.Context, x q, ref store.ProjectRef, key string, lock bool) (*adminv1.Flag, error) {
	query := `SELECT ` + flagColumns + ` FROM flags WHERE org = ? AND project = ? AND key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	f, err := scanFlag(x.row(ctx, query, ref.Org, ref.Project, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("flag", key)
	}
	return f, err
}

// envKeys lists a project's environments.
func envKeys(ctx context.Context, x q, ref store.ProjectRef) ([]string, error) {
	rows, err := x.query(ctx, `SELECT key FROM environments WHERE org = ? AND project = ? ORDER BY key`, ref.Org, ref.Project)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var k string
		err := sc.Scan(&k)
		return k, err
	})
}

// runCheck runs check against the environment as the transaction sees it (with
// the change in place). Its error is returned untouched.
func (t *Tx) runCheck(ctx context.Context, ref store.EnvRef, check store.Check) error {
	if check == nil {
		return nil
	}
	v := &envView{ctx: ctx, t: t, ref: ref}
	err := check(v)
	if v.err != nil {
		return v.err
	}
	if err != nil {
		return checkError{err}
	}
	return nil
}

// envView reads the environment lazily inside the write transaction. It keeps the
// transaction's context because EnvView's methods take none; it lives only for
// the duration of one Check call.
type envView struct {
	ctx context.Context //nolint:containedctx // scoped to one Check call
	t   *Tx
	ref store.EnvRef
	err error
}

func (v *envView) Flag(key string) (*manifestv1.Flag, bool) {
	if v.err != nil {
		return nil, false
	}
	f, err := v.t.s.manifestFlag(v.ctx, v.t.q(), v.ref, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false
	}
	if err != nil {
		v.err = err
		return nil, false
	}
	return f, true
}

func (v *envView) Segment(key string) (*manifestv1.Segment, bool) {
	if v.err != nil {
		return nil, false
	}
	sg, err := v.t.s.loadSegment(v.ctx, v.t.q(), v.ref, key, false)
	if errs.KindOf(err) == errs.NotFound {
		return nil, false
	}
	if err != nil {
		v.err = err
		return nil, false
	}
	return sg, true
}

const manifestFlagQuery = `SELECT f.key, f.body, c.config, c.revision FROM flags f
	JOIN flag_configs c ON c.org = f.org AND c.project = f.project AND c.flag = f.key
	WHERE f.org = ? AND f.project = ? AND c.environment = ? AND f.archived = ?`

// manifestFlag returns a non-archived flag as the environment's manifest carries it
// (sql.ErrNoRows when there is none).
func (s *Store) manifestFlag(ctx context.Context, x q, ref store.EnvRef, key string) (*manifestv1.Flag, error) {
	return scanManifestFlag(x.row(ctx, manifestFlagQuery+` AND f.key = ?`, ref.Org, ref.Project, ref.Environment, false, key))
}

func scanManifestFlag(sc interface{ Scan(...any) error }) (*manifestv1.Flag, error) {
	var key string
	var body, config []byte
	var rev int64
	if err := sc.Scan(&key, &body, &config, &rev); err != nil {
		return nil, err
	}
	return decodeManifestFlag(key, body, config, rev)
}

// decodeManifestFlag builds a flag as the manifest carries it from its stored
// definition and configuration.
func decodeManifestFlag(key string, body, config []byte, rev int64) (*manifestv1.Flag, error) {
	var def adminv1.Flag
	if err := proto.Unmarshal(body, &def); err != nil {
		return nil, err
	}
	cfg := &manifestv1.FlagConfig{}
	if err := proto.Unmarshal(config, cfg); err != nil {
		return nil, err
	}
	return &manifestv1.Flag{Key: key, Type: def.GetType(), Variants: def.GetVariants(),
		ClientVisible: def.GetClientVisible(), Config: cfg, Revision: rev}, nil
}

// CreateFlag creates a flag and its configuration initial in every environment.
func (s *Store) CreateFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, f *adminv1.Flag, initial *manifestv1.FlagConfig, check store.Check) (*adminv1.Flag, error) {
	if f.GetKey() == "" {
		return nil, errs.Invalid("flag.key", "required")
	}
	if initial == nil {
		initial = &manifestv1.FlagConfig{}
	}
	return create(ctx, s, m, ref.Org, "flag.create", requestHash(ref.Project, f, initial),
		func() *adminv1.Flag { return &adminv1.Flag{} },
		func(t *Tx) (*adminv1.Flag, error) {
			if _, err := s.loadProject(ctx, t.q(), ref, false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			out := proto.Clone(f).(*adminv1.Flag)
			out.Archived, out.Revision = false, 1
			out.CreateTime, out.UpdateTime = timestamppb.New(t.now), timestamppb.New(t.now)
			body, err := flagBody(out)
			if err != nil {
				return nil, err
			}
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO flags (org, project, key, id, body, tags, archived, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, out.Key, id, body, tagsColumn(out.Tags),
				false, now, now); err != nil {
				return nil, err
			}
			cfg, err := deterministic.Marshal(initial)
			if err != nil {
				return nil, err
			}
			envs, err := envKeys(ctx, t.q(), ref)
			if err != nil {
				return nil, err
			}
			for _, env := range envs {
				if _, err := t.q().exec(ctx, `INSERT INTO flag_configs (org, project, environment, flag, config, revision, updated_at)
					VALUES (?, ?, ?, ?, ?, 1, ?)`, ref.Org, ref.Project, env, out.Key, cfg, now); err != nil {
					return nil, err
				}
			}
			for _, env := range envs {
				if err := t.runCheck(ctx, store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: env}, check); err != nil {
					return nil, err
				}
			}
			return out, t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: "flag.create",
				resourceType: "flag", resource: flagPath(ref.Project, out.Key), after: out})
		})
}

// GetFlag returns a flag definition.
func (s *Store) GetFlag(ctx context.Context, ref store.ProjectRef, key string) (*adminv1.Flag, error) {
	f, err := s.loadFlag(ctx, s.r(), ref, key, false)
	return f, s.translate(err)
}

// ListFlags lists a project's flags by key.
func (s *Store) ListFlags(ctx context.Context, ref store.ProjectRef, f store.FlagFilter, p store.Page) ([]*adminv1.Flag, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT ` + flagColumns + ` FROM flags WHERE org = ? AND project = ? AND key > ?`
	args := []any{ref.Org, ref.Project, after}
	if !f.IncludeArchived {
		query += ` AND archived = ?`
		args = append(args, false)
	}
	if f.Tag != "" {
		query += ` AND tags LIKE ? ESCAPE '\'`
		args = append(args, "%,"+likeEscape(f.Tag)+",%")
	}
	query += ` ORDER BY key LIMIT ?`
	args = append(args, size+1)
	rows, err := s.r().query(ctx, query, args...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanFlag)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Flag).GetKey)
	return out, next, nil
}

// writeFlag replaces a flag's definition after the revision check; check runs in
// every environment.
func (s *Store) writeFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, key string, revision int64,
	action string, check store.Check, edit func(before, after *adminv1.Flag) error) (*adminv1.Flag, error) {
	var out *adminv1.Flag
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadFlag(ctx, t.q(), ref, key, true)
		if err != nil {
			return err
		}
		if err := checkRevision("flag", key, before.Revision, revision); err != nil {
			return err
		}
		after := proto.Clone(before).(*adminv1.Flag)
		if err := edit(before, after); err != nil {
			return err
		}
		after.Key, after.Revision = before.Key, before.Revision+1
		after.CreateTime, after.UpdateTime = before.CreateTime, timestamppb.New(t.now)
		body, err := flagBody(after)
		if err != nil {
			return err
		}
		if after.Archived && !before.Archived {
			if by, err := t.prerequisiteUsers(ctx, ref, key, true); err != nil {
				return err
			} else if by != "" {
				return errs.E(errs.FailedPrecondition, "flag %q is a prerequisite of %s: remove the prerequisite first (archiving it would make that flag fail)", key, by)
			}
		}
		what, how := flagWriteGuard(action)
		if err := t.guardFlagWrite(ctx, ref, key, what, how, func() error {
			_, err := t.q().exec(ctx, `UPDATE flags SET body = ?, tags = ?, archived = ?, revision = ?, updated_at = ?
				WHERE org = ? AND project = ? AND key = ?`, body, tagsColumn(after.Tags), after.Archived, after.Revision,
				micros(t.now), ref.Org, ref.Project, key)
			return err
		}); err != nil {
			return err
		}
		if check != nil {
			envs, err := envKeys(ctx, t.q(), ref)
			if err != nil {
				return err
			}
			for _, env := range envs {
				if err := t.runCheck(ctx, store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: env}, check); err != nil {
					return err
				}
			}
		}
		out = after
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: action,
			resourceType: "flag", resource: flagPath(ref.Project, key), before: before, after: after})
	})
	return out, err
}

// flagWriteGuard names a definition write in the four-eyes refusal and says how
// to proceed instead.
func flagWriteGuard(action string) (what, how string) {
	switch action {
	case "flag.archive":
		return "archiving", howLowerProtection
	case "flag.restore":
		return "restoring", howLowerProtection
	default:
		return "this edit of the definition of", "add a new variant with the new value and serve it through a change request " +
			"(UpdateFlagConfig) there; remove the old variant once no protected environment uses it"
	}
}

// UpdateFlag replaces a flag's definition (key and type are immutable).
func (s *Store) UpdateFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, f *adminv1.Flag, revision int64, check store.Check) (*adminv1.Flag, error) {
	return s.writeFlag(ctx, m, ref, f.GetKey(), revision, "flag.update", check, func(before, after *adminv1.Flag) error {
		if f.GetType() != before.GetType() {
			return errs.Invalid("flag.type", "the type of a flag cannot change")
		}
		proto.Reset(after)
		proto.Merge(after, f)
		after.Archived = before.Archived
		return nil
	})
}

// SetFlagArchived archives or restores a flag.
func (s *Store) SetFlagArchived(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, key string, archived bool, revision int64) (*adminv1.Flag, error) {
	action := "flag.restore"
	if archived {
		action = "flag.archive"
	}
	return s.writeFlag(ctx, m, ref, key, revision, action, nil, func(_, after *adminv1.Flag) error {
		after.Archived = archived
		return nil
	})
}

// DeleteFlag deletes a flag unless another flag requires it.
func (s *Store) DeleteFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, key string, revision int64) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadFlag(ctx, t.q(), ref, key, true)
		if err != nil {
			return err
		}
		if err := checkRevision("flag", key, before.Revision, revision); err != nil {
			return err
		}
		if by, err := t.prerequisiteUsers(ctx, ref, key, false); err != nil {
			return err
		} else if by != "" {
			return errs.E(errs.FailedPrecondition, "flag %q is a prerequisite of %s", key, by)
		}
		if err := t.guardFlagWrite(ctx, ref, key, "deleting", "archive it first, which is governed the same way", func() error {
			_, err := t.q().exec(ctx, `DELETE FROM flags WHERE org = ? AND project = ? AND key = ?`, ref.Org, ref.Project, key)
			return err
		}); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: "flag.delete",
			resourceType: "flag", resource: flagPath(ref.Project, key), before: before})
	})
}

// --- configurations ---

func (s *Store) loadFlagConfig(ctx context.Context, x q, ref store.EnvRef, flag string, lock bool) (*adminv1.FlagEnvironmentConfig, error) {
	query := `SELECT flag, config, revision, updated_at, last_evaluated FROM flag_configs
		WHERE org = ? AND project = ? AND environment = ? AND flag = ?`
	if lock {
		query += s.d.ForUpdate
	}
	c, err := s.scanFlagConfig(ref, x.row(ctx, query, ref.Org, ref.Project, ref.Environment, flag))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("flag configuration", flag)
	}
	return c, err
}

func (s *Store) scanFlagConfig(ref store.EnvRef, sc interface{ Scan(...any) error }) (*adminv1.FlagEnvironmentConfig, error) {
	var c adminv1.FlagEnvironmentConfig
	var b []byte
	var u, le int64
	if err := sc.Scan(&c.Flag, &b, &c.Revision, &u, &le); err != nil {
		return nil, err
	}
	c.Config = &manifestv1.FlagConfig{}
	if err := proto.Unmarshal(b, c.Config); err != nil {
		return nil, err
	}
	c.Environment, c.UpdateTime, c.LastEvaluated = ref.Environment, ts(u), ts(le)
	return &c, nil
}

// GetFlagConfig returns a flag's configuration in an environment.
func (s *Store) GetFlagConfig(ctx context.Context, ref store.EnvRef, flag string) (*adminv1.FlagEnvironmentConfig, error) {
	c, err := s.loadFlagConfig(ctx, s.r(), ref, flag, false)
	return c, s.translate(err)
}

// ListFlagConfigs lists an environment's flag configurations by flag key.
func (s *Store) ListFlagConfigs(ctx context.Context, ref store.EnvRef, p store.Page) ([]*adminv1.FlagEnvironmentConfig, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT flag, config, revision, updated_at, last_evaluated FROM flag_configs
		WHERE org = ? AND project = ? AND environment = ? AND flag > ? ORDER BY flag LIMIT ?`,
		ref.Org, ref.Project, ref.Environment, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (*adminv1.FlagEnvironmentConfig, error) {
		return s.scanFlagConfig(ref, sc)
	})
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.FlagEnvironmentConfig).GetFlag)
	return out, next, nil
}

// ListProjectFlagConfigs lists a project's flag configurations in envs (all
// when empty) with one query.
func (s *Store) ListProjectFlagConfigs(ctx context.Context, ref store.ProjectRef, envs []string) ([]*adminv1.FlagEnvironmentConfig, error) {
	q := `SELECT environment, flag, config, revision, updated_at, last_evaluated FROM flag_configs WHERE org = ? AND project = ?`
	args := []any{ref.Org, ref.Project}
	if len(envs) > 0 {
		q += ` AND environment IN (?` + strings.Repeat(`, ?`, len(envs)-1) + `)`
		for _, e := range envs {
			args = append(args, e)
		}
	}
	rows, err := s.r().query(ctx, q+` ORDER BY environment, flag`, args...)
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (*adminv1.FlagEnvironmentConfig, error) {
		var c adminv1.FlagEnvironmentConfig
		var b []byte
		var u, le int64
		if err := sc.Scan(&c.Environment, &c.Flag, &b, &c.Revision, &u, &le); err != nil {
			return nil, err
		}
		c.Config = &manifestv1.FlagConfig{}
		if err := proto.Unmarshal(b, c.Config); err != nil {
			return nil, err
		}
		c.UpdateTime, c.LastEvaluated = ts(u), ts(le)
		return &c, nil
	})
	return out, s.translate(err)
}

// UpdateFlagConfig replaces a flag's configuration in an environment.
func (s *Store) UpdateFlagConfig(ctx context.Context, m store.WriteMeta, ref store.EnvRef, flag string, c *manifestv1.FlagConfig, revision int64, check store.Check) (*adminv1.FlagEnvironmentConfig, error) {
	if c == nil {
		c = &manifestv1.FlagConfig{}
	}
	var out *adminv1.FlagEnvironmentConfig
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadFlagConfig(ctx, t.q(), ref, flag, true)
		if err != nil {
			return err
		}
		if err := checkRevision("flag configuration", flag, before.Revision, revision); err != nil {
			return err
		}
		b, err := deterministic.Marshal(c)
		if err != nil {
			return err
		}
		after := &adminv1.FlagEnvironmentConfig{Flag: flag, Environment: ref.Environment,
			Config: proto.Clone(c).(*manifestv1.FlagConfig), Revision: before.Revision + 1,
			UpdateTime: timestamppb.New(t.now), LastEvaluated: before.LastEvaluated}
		if _, err := t.q().exec(ctx, `UPDATE flag_configs SET config = ?, revision = ?, updated_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND flag = ?`, b, after.Revision, micros(t.now),
			ref.Org, ref.Project, ref.Environment, flag); err != nil {
			return err
		}
		if err := t.runCheck(ctx, ref, check); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "flag_config.update", resourceType: "flag_config", resource: flagConfigPath(ref, flag),
			before: before.Config, after: after.Config})
	})
	return out, err
}

// segmentReferenced reports a flag configuration or segment of the environment that
// uses segment (OPERATOR_SEGMENT_MATCH values are segment keys).
func segmentReferenced(clauses []*manifestv1.Clause, segment string) bool {
	for _, c := range clauses {
		if c.GetOperator() != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
			continue
		}
		for _, v := range c.GetValues() {
			if v.GetStringValue() == segment {
				return true
			}
		}
	}
	return false
}
