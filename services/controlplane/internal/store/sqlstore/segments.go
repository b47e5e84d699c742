package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func segmentPath(ref store.EnvRef, key string) string {
	return envPath(ref.Project, ref.Environment) + "/segments/" + key
}

func scanSegment(sc interface{ Scan(...any) error }) (*manifestv1.Segment, error) {
	var key string
	var body []byte
	var rev int64
	if err := sc.Scan(&key, &body, &rev); err != nil {
		return nil, err
	}
	sg := &manifestv1.Segment{}
	if err := proto.Unmarshal(body, sg); err != nil {
		return nil, err
	}
	sg.Key, sg.Revision = key, rev
	return sg, nil
}

func segmentBody(sg *manifestv1.Segment) ([]byte, error) {
	b := proto.Clone(sg).(*manifestv1.Segment)
	b.Revision = 0
	return deterministic.Marshal(b)
}

func (s *Store) loadSegment(ctx context.Context, x q, ref store.EnvRef, key string, lock bool) (*manifestv1.Segment, error) {
	query := `SELECT key, body, revision FROM segments WHERE org = ? AND project = ? AND environment = ? AND key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	sg, err := scanSegment(x.row(ctx, query, ref.Org, ref.Project, ref.Environment, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("segment", key)
	}
	return sg, err
}

// CreateSegment creates a segment in an environment.
func (s *Store) CreateSegment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, sg *manifestv1.Segment, check store.Check) (*manifestv1.Segment, error) {
	if sg.GetKey() == "" {
		return nil, errs.Invalid("segment.key", "required")
	}
	return create(ctx, s, m, ref.Org, "segment.create", requestHash(ref.Project, ref.Environment, sg),
		func() *manifestv1.Segment { return &manifestv1.Segment{} },
		func(t *Tx) (*manifestv1.Segment, error) {
			env, err := s.loadEnv(ctx, t.q(), ref, false)
			if err != nil {
				return nil, err
			}
			// A reference to a missing segment never matches: creating a segment that
			// something already names changes what the environment serves.
			if env.GetSettings().GetApprovalsRequired() {
				if by, err := t.segmentUsers(ctx, ref, sg.GetKey()); err != nil {
					return nil, err
				} else if by != "" {
					return nil, protectedError(ref.Environment, "creating segment "+quote(sg.GetKey())+" (used by "+by+")",
						"propose it with CreateChangeRequest (change.segment, base_revision 0)")
				}
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			out := proto.Clone(sg).(*manifestv1.Segment)
			out.Revision = 1
			body, err := segmentBody(out)
			if err != nil {
				return nil, err
			}
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO segments (org, project, environment, key, id, body, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, ref.Environment, out.Key, id, body, now, now); err != nil {
				return nil, err
			}
			if err := t.runCheck(ctx, ref, check); err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
				action: "segment.create", resourceType: "segment", resource: segmentPath(ref, out.Key), after: out})
		})
}

// GetSegment returns a segment.
func (s *Store) GetSegment(ctx context.Context, ref store.EnvRef, key string) (*manifestv1.Segment, error) {
	sg, err := s.loadSegment(ctx, s.r(), ref, key, false)
	return sg, s.translate(err)
}

// ListSegments lists an environment's segments by key.
func (s *Store) ListSegments(ctx context.Context, ref store.EnvRef, p store.Page) ([]*manifestv1.Segment, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT key, body, revision FROM segments
		WHERE org = ? AND project = ? AND environment = ? AND key > ? ORDER BY key LIMIT ?`,
		ref.Org, ref.Project, ref.Environment, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanSegment)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*manifestv1.Segment).GetKey)
	return out, next, nil
}

// UpdateSegment replaces a segment.
func (s *Store) UpdateSegment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, sg *manifestv1.Segment, revision int64, check store.Check) (*manifestv1.Segment, error) {
	var out *manifestv1.Segment
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSegment(ctx, t.q(), ref, sg.GetKey(), true)
		if err != nil {
			return err
		}
		if err := checkRevision("segment", sg.GetKey(), before.Revision, revision); err != nil {
			return err
		}
		after := proto.Clone(sg).(*manifestv1.Segment)
		after.Revision = before.Revision + 1
		body, err := segmentBody(after)
		if err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `UPDATE segments SET body = ?, revision = ?, updated_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND key = ?`, body, after.Revision, micros(t.now),
			ref.Org, ref.Project, ref.Environment, after.Key); err != nil {
			return err
		}
		if err := t.runCheck(ctx, ref, check); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "segment.update", resourceType: "segment", resource: segmentPath(ref, after.Key),
			before: before, after: after})
	})
	return out, err
}

// DeleteSegment deletes a segment unless a flag or segment of the environment
// references it.
func (s *Store) DeleteSegment(ctx context.Context, m store.WriteMeta, ref store.EnvRef, key string, revision int64) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSegment(ctx, t.q(), ref, key, true)
		if err != nil {
			return err
		}
		if err := checkRevision("segment", key, before.Revision, revision); err != nil {
			return err
		}
		if by, err := t.segmentUsers(ctx, ref, key); err != nil {
			return err
		} else if by != "" {
			return errs.E(errs.FailedPrecondition, "segment %q is used by %s", key, by)
		}
		if _, err := t.q().exec(ctx, `DELETE FROM segments WHERE org = ? AND project = ? AND environment = ? AND key = ?`,
			ref.Org, ref.Project, ref.Environment, key); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "segment.delete", resourceType: "segment", resource: segmentPath(ref, key), before: before})
	})
}

// segmentUsers names the first flag or segment of the environment that references
// segment ("" when none).
func (t *Tx) segmentUsers(ctx context.Context, ref store.EnvRef, segment string) (string, error) {
	rows, err := t.q().query(ctx, `SELECT flag, config FROM flag_configs WHERE org = ? AND project = ? AND environment = ?`,
		ref.Org, ref.Project, ref.Environment)
	if err != nil {
		return "", err
	}
	type cfgRow struct {
		flag string
		cfg  *manifestv1.FlagConfig
	}
	cfgs, err := collect(rows, func(sc interface{ Scan(...any) error }) (cfgRow, error) {
		var r cfgRow
		var b []byte
		if err := sc.Scan(&r.flag, &b); err != nil {
			return r, err
		}
		r.cfg = &manifestv1.FlagConfig{}
		return r, proto.Unmarshal(b, r.cfg)
	})
	if err != nil {
		return "", err
	}
	for _, c := range cfgs {
		for _, r := range c.cfg.GetRules() {
			if segmentReferenced(r.GetClauses(), segment) {
				return "flag " + c.flag, nil
			}
		}
	}
	rows, err = t.q().query(ctx, `SELECT key, body, revision FROM segments WHERE org = ? AND project = ? AND environment = ? AND key <> ?`,
		ref.Org, ref.Project, ref.Environment, segment)
	if err != nil {
		return "", err
	}
	segs, err := collect(rows, scanSegment)
	if err != nil {
		return "", err
	}
	for _, sg := range segs {
		for _, r := range sg.GetRules() {
			if segmentReferenced(r.GetClauses(), segment) {
				return "segment " + sg.GetKey(), nil
			}
		}
	}
	return "", nil
}
