package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// BulkWrite upserts many flag definitions, flag configurations and segments of one
// project in one transaction: all or nothing, one audit entry per resource that
// changed (nothing for an identical one), and the outbox rows of one commit, which
// the publisher turns into one manifest version per environment. check(env) runs
// after every write, once per touched environment, with the bulk in place.
func (s *Store) BulkWrite(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, b *store.Bulk, check func(env string) store.Check) (*store.BulkResult, error) {
	res := &store.BulkResult{}
	err := s.inTx(ctx, func(t *Tx) error {
		*res = store.BulkResult{}
		return t.bulk(ctx, m, ref, b, check, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// CreateFlagWithConfigs creates flag f with initial in every environment, then
// configs replacing it in theirs, in one transaction: BulkWrite's write and
// checks, CreateFlag's contract. It shares CreateFlag's idempotency keys (a retry
// with the same key and request returns the first flag and writes nothing; the
// same key with another request, a plain create included, is AlreadyExists) and
// an existing flag (archived included) is AlreadyExists.
func (s *Store) CreateFlagWithConfigs(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, f *adminv1.Flag, initial *manifestv1.FlagConfig, configs []store.BulkConfig, check func(env string) store.Check) (*adminv1.Flag, error) {
	if f.GetKey() == "" {
		return nil, errs.Invalid("flag.key", "required")
	}
	if initial == nil {
		initial = &manifestv1.FlagConfig{}
	}
	parts := []any{ref.Project, f, initial}
	for _, c := range configs {
		parts = append(parts, c.Environment, c.Flag, c.Config)
	}
	return create(ctx, s, m, ref.Org, "flag.create", requestHash(parts...),
		func() *adminv1.Flag { return &adminv1.Flag{} },
		func(t *Tx) (*adminv1.Flag, error) {
			if _, err := s.loadProject(ctx, t.q(), ref, false); err != nil {
				return nil, err
			}
			switch _, err := s.loadFlag(ctx, t.q(), ref, f.GetKey(), true); {
			case err == nil:
				return nil, errs.E(errs.AlreadyExists, "flag %q already exists", f.GetKey())
			case errs.KindOf(err) != errs.NotFound:
				return nil, err
			}
			b := &store.Bulk{Flags: []*adminv1.Flag{f}, Configs: configs,
				Initial: func(*adminv1.Flag) *manifestv1.FlagConfig { return initial }}
			if err := t.bulk(ctx, m, ref, b, check, &store.BulkResult{}); err != nil {
				return nil, err
			}
			return s.loadFlag(ctx, t.q(), ref, f.GetKey(), true)
		})
}

// bulk is BulkWrite's work inside transaction t, counted into res.
func (t *Tx) bulk(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, b *store.Bulk, check func(env string) store.Check, res *store.BulkResult) error {
	s := t.s
	if _, err := s.loadProject(ctx, t.q(), ref, false); err != nil {
		return err
	}
	envs, err := envKeys(ctx, t.q(), ref)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, e := range envs {
		known[e] = true
	}
	touched := map[string]bool{}
	for i, f := range b.Flags {
		var initial *manifestv1.FlagConfig
		if b.Initial != nil {
			initial = b.Initial(f)
		}
		created, changed, err := t.upsertFlag(ctx, m, ref, envs, f, initial)
		if err != nil {
			return fieldErr(err, fmt.Sprintf("flags[%d]", i))
		}
		switch {
		case created:
			res.FlagsCreated++
		case changed:
			res.FlagsUpdated++
		default:
			res.FlagsUnchanged++
		}
		if created || changed {
			for _, e := range envs {
				touched[e] = true
			}
		}
	}
	for i, sg := range b.Segments {
		if !known[sg.Environment] {
			return errs.Invalid(fmt.Sprintf("segments[%d].environment", i), "unknown environment %q", sg.Environment)
		}
		eref := store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: sg.Environment}
		created, changed, err := t.upsertSegment(ctx, m, eref, sg.Segment)
		if err != nil {
			return fieldErr(err, fmt.Sprintf("segments[%d]", i))
		}
		switch {
		case created:
			res.SegmentsCreated++
		case changed:
			res.SegmentsUpdated++
		default:
			res.SegmentsUnchanged++
		}
		touched[sg.Environment] = touched[sg.Environment] || created || changed
	}
	for i, c := range b.Configs {
		if !known[c.Environment] {
			return errs.Invalid(fmt.Sprintf("configs[%d].environment", i), "unknown environment %q", c.Environment)
		}
		eref := store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: c.Environment}
		changed, err := t.replaceFlagConfig(ctx, m, eref, c.Flag, c.Config, c.BaseRevision)
		if err != nil {
			return fieldErr(err, fmt.Sprintf("configs[%d]", i))
		}
		if changed {
			res.ConfigsUpdated++
			touched[c.Environment] = true
		} else {
			res.ConfigsUnchanged++
		}
	}
	for _, e := range envs {
		if touched[e] && check != nil {
			if err := t.runCheck(ctx, store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: e}, check(e)); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldErr puts the field of a store error under prefix.
func fieldErr(err error, prefix string) error {
	var e *errs.Error
	if errors.As(err, &e) && e.Field != "" {
		c := *e
		c.Field = prefix + "." + e.Field
		return &c
	}
	return err
}

// upsertFlag creates f (with an empty configuration in every environment) or
// replaces its definition when it differs; the type cannot change.
func (t *Tx) upsertFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, envs []string, f *adminv1.Flag, initial *manifestv1.FlagConfig) (created, changed bool, err error) {
	before, err := t.s.loadFlag(ctx, t.q(), ref, f.GetKey(), true)
	now := micros(t.now)
	if errs.KindOf(err) == errs.NotFound {
		id, err := newID()
		if err != nil {
			return false, false, err
		}
		out := proto.CloneOf(f)
		out.Archived, out.Revision = false, 1
		out.CreateTime, out.UpdateTime = timestamppb.New(t.now), timestamppb.New(t.now)
		body, err := flagBody(out)
		if err != nil {
			return false, false, err
		}
		if _, err := t.q().exec(ctx, `INSERT INTO flags (org, project, key, id, body, tags, archived, revision, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, out.Key, id, body, tagsColumn(out.Tags), false, now, now); err != nil {
			return false, false, err
		}
		if initial == nil {
			initial = &manifestv1.FlagConfig{}
		}
		empty, err := deterministic.Marshal(initial)
		if err != nil {
			return false, false, err
		}
		for _, env := range envs {
			if _, err := t.q().exec(ctx, `INSERT INTO flag_configs (org, project, environment, flag, config, revision, updated_at)
				VALUES (?, ?, ?, ?, ?, 1, ?)`, ref.Org, ref.Project, env, out.Key, empty, now); err != nil {
				return false, false, err
			}
		}
		return true, true, t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: "flag.create",
			resourceType: "flag", resource: flagPath(ref.Project, out.Key), after: out})
	}
	if err != nil {
		return false, false, err
	}
	if f.GetType() != before.GetType() {
		return false, false, errs.Invalid("type", "cannot change (is %s)", before.GetType())
	}
	if f.GetRevision() != 0 && f.GetRevision() != before.Revision {
		return false, false, staleField("revision", "flag", before.Key, before.Revision, f.GetRevision())
	}
	after := proto.CloneOf(f)
	after.Key, after.Archived, after.Revision = before.Key, before.Archived, before.Revision
	after.CreateTime, after.UpdateTime = before.CreateTime, before.UpdateTime
	if proto.Equal(after, before) {
		return false, false, nil
	}
	after.Revision, after.UpdateTime = before.Revision+1, timestamppb.New(t.now)
	body, err := flagBody(after)
	if err != nil {
		return false, false, err
	}
	// Four eyes: a new definition may not change what a protected environment
	// serves (variants it serves); tags, names and owners may change.
	if err := t.guardFlagWrite(ctx, ref, after.Key, "the bulk write's definition of", howLowerProtection, func() error {
		_, err := t.q().exec(ctx, `UPDATE flags SET body = ?, tags = ?, revision = ?, updated_at = ?
			WHERE org = ? AND project = ? AND key = ?`, body, tagsColumn(after.Tags), after.Revision, now,
			ref.Org, ref.Project, after.Key)
		return err
	}); err != nil {
		return false, false, err
	}
	return false, true, t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: "flag.update",
		resourceType: "flag", resource: flagPath(ref.Project, after.Key), before: before, after: after})
}

// replaceFlagConfig replaces a flag's configuration when it differs.
func (t *Tx) replaceFlagConfig(ctx context.Context, m store.WriteMeta, ref store.EnvRef, flag string, c *manifestv1.FlagConfig, base int64) (bool, error) {
	if c == nil {
		c = &manifestv1.FlagConfig{}
	}
	before, err := t.s.loadFlagConfig(ctx, t.q(), ref, flag, true)
	if err != nil {
		return false, err
	}
	if base != 0 && base != before.Revision {
		return false, staleField("base_revision", "flag configuration", flag, before.Revision, base)
	}
	if proto.Equal(before.GetConfig(), c) {
		return false, nil
	}
	b, err := deterministic.Marshal(c)
	if err != nil {
		return false, err
	}
	if _, err := t.q().exec(ctx, `UPDATE flag_configs SET config = ?, revision = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND flag = ?`, b, before.Revision+1, micros(t.now),
		ref.Org, ref.Project, ref.Environment, flag); err != nil {
		return false, err
	}
	return true, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
		action: "flag_config.update", resourceType: "flag_config", resource: flagConfigPath(ref, flag),
		before: before.Config, after: c})
}

// upsertSegment creates sg or replaces it when it differs.
func (t *Tx) upsertSegment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, sg *manifestv1.Segment) (created, changed bool, err error) {
	before, err := t.s.loadSegment(ctx, t.q(), ref, sg.GetKey(), true)
	now := micros(t.now)
	if errs.KindOf(err) == errs.NotFound {
		id, err := newID()
		if err != nil {
			return false, false, err
		}
		out := proto.CloneOf(sg)
		out.Revision = 1
		body, err := segmentBody(out)
		if err != nil {
			return false, false, err
		}
		if _, err := t.q().exec(ctx, `INSERT INTO segments (org, project, environment, key, id, body, revision, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, ref.Environment, out.Key, id, body, now, now); err != nil {
			return false, false, err
		}
		return true, true, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "segment.create", resourceType: "segment", resource: segmentPath(ref, out.Key), after: out})
	}
	if err != nil {
		return false, false, err
	}
	after := proto.CloneOf(sg)
	after.Revision = before.Revision
	if proto.Equal(after, before) {
		return false, false, nil
	}
	after.Revision = before.Revision + 1
	body, err := segmentBody(after)
	if err != nil {
		return false, false, err
	}
	if _, err := t.q().exec(ctx, `UPDATE segments SET body = ?, revision = ?, updated_at = ?
		WHERE org = ? AND project = ? AND environment = ? AND key = ?`, body, after.Revision, now,
		ref.Org, ref.Project, ref.Environment, after.Key); err != nil {
		return false, false, err
	}
	return false, true, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
		action: "segment.update", resourceType: "segment", resource: segmentPath(ref, after.Key), before: before, after: after})
}
