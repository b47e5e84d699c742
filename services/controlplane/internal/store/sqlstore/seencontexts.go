package sqlstore

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// RecordSeenContexts stores sampled contexts of an environment (a context seen
// again only moves its last-seen time forward), then prunes the environment: rows
// last seen before since go, and beyond keep the least recently seen go. Like
// usage, it is telemetry: no audit entry, no outbox row.
func (s *Store) RecordSeenContexts(ctx context.Context, ref store.EnvRef, cs []store.SeenContext, keep int, since time.Time) error {
	cs = slices.Clone(cs)
	// One order for every writer, so concurrent reports cannot deadlock.
	slices.SortFunc(cs, func(a, b store.SeenContext) int { return strings.Compare(a.Digest, b.Digest) })
	return s.inTx(ctx, func(t *Tx) error {
		x := t.q()
		if _, err := s.loadEnv(ctx, x, ref, false); err != nil {
			return err
		}
		for _, c := range cs {
			if _, err := x.exec(ctx, `INSERT INTO seen_contexts (org, project, environment, digest, attributes, last_seen)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org, project, environment, digest)
				DO UPDATE SET last_seen = CASE WHEN excluded.last_seen > seen_contexts.last_seen
					THEN excluded.last_seen ELSE seen_contexts.last_seen END`,
				ref.Org, ref.Project, ref.Environment, c.Digest, string(c.Attributes), micros(c.Seen)); err != nil {
				return err
			}
		}
		if _, err := x.exec(ctx, `DELETE FROM seen_contexts WHERE org = ? AND project = ? AND environment = ? AND last_seen < ?`,
			ref.Org, ref.Project, ref.Environment, micros(since)); err != nil {
			return err
		}
		var n int64
		if err := x.row(ctx, `SELECT COUNT(*) FROM seen_contexts WHERE org = ? AND project = ? AND environment = ?`,
			ref.Org, ref.Project, ref.Environment).Scan(&n); err != nil {
			return err
		}
		if over := n - int64(keep); keep > 0 && over > 0 {
			_, err := x.exec(ctx, `DELETE FROM seen_contexts WHERE org = ? AND project = ? AND environment = ? AND digest IN (
				SELECT digest FROM seen_contexts WHERE org = ? AND project = ? AND environment = ?
				ORDER BY last_seen, digest LIMIT ?)`,
				ref.Org, ref.Project, ref.Environment, ref.Org, ref.Project, ref.Environment, over)
			return err
		}
		return nil
	})
}

// ListSeenContexts lists an environment's contexts last seen at or after since,
// most recent first, and how many there are.
func (s *Store) ListSeenContexts(ctx context.Context, ref store.EnvRef, since time.Time, p store.Page) ([]*adminv1.SeenContext, string, int64, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", 0, err
	}
	// The page token is "<last_seen micros>/<digest>" of the page's last row.
	afterSeen, afterDigest := int64(1<<62), ""
	if after != "" {
		seen, digest, ok := strings.Cut(after, "/")
		if !ok {
			return nil, "", 0, errs.Invalid("page_token", "invalid page token")
		}
		if afterSeen, err = parseInt(seen); err != nil {
			return nil, "", 0, err
		}
		afterDigest = digest
	}
	var out []*adminv1.SeenContext
	var total int64
	err = s.readTx(ctx, func(x q) error {
		if _, err := s.loadEnv(ctx, x, ref, false); err != nil {
			return err
		}
		if err := x.row(ctx, `SELECT COUNT(*) FROM seen_contexts WHERE org = ? AND project = ? AND environment = ? AND last_seen >= ?`,
			ref.Org, ref.Project, ref.Environment, micros(since)).Scan(&total); err != nil {
			return err
		}
		rows, err := x.query(ctx, `SELECT digest, attributes, last_seen FROM seen_contexts
			WHERE org = ? AND project = ? AND environment = ? AND last_seen >= ?
			AND (last_seen < ? OR (last_seen = ? AND digest > ?))
			ORDER BY last_seen DESC, digest LIMIT ?`,
			ref.Org, ref.Project, ref.Environment, micros(since), afterSeen, afterSeen, afterDigest, size+1)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanSeenContext)
		return err
	})
	if err != nil {
		return nil, "", 0, s.translate(err)
	}
	page, next := cut(out, size, func(c *adminv1.SeenContext) string {
		return strconv.FormatInt(micros(c.GetLastSeenTime().AsTime()), 10) + "/" + c.GetDigest()
	})
	return page, next, total, nil
}

func scanSeenContext(sc interface{ Scan(...any) error }) (*adminv1.SeenContext, error) {
	var c adminv1.SeenContext
	var attrs string
	var seen int64
	if err := sc.Scan(&c.Digest, &attrs, &seen); err != nil {
		return nil, err
	}
	c.Attributes = &structpb.Struct{}
	if err := c.Attributes.UnmarshalJSON([]byte(attrs)); err != nil {
		return nil, err
	}
	c.LastSeenTime = timestamppb.New(fromMicros(seen))
	return &c, nil
}

// PruneSeenContexts deletes every context last seen before before (the retention
// period), whatever its environment, and returns how many.
func (s *Store) PruneSeenContexts(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.r().exec(ctx, `DELETE FROM seen_contexts WHERE last_seen < ?`, micros(before))
	if err != nil {
		return 0, s.translate(err)
	}
	n, err := affected(res)
	return n, s.translate(err)
}

// ContextPolicy returns a project's private attributes.
func (s *Store) ContextPolicy(ctx context.Context, ref store.ProjectRef) (*adminv1.ContextPolicy, error) {
	var out *adminv1.ContextPolicy
	err := s.readTx(ctx, func(x q) error {
		var err error
		out, err = s.loadContextPolicy(ctx, x, ref)
		return err
	})
	return out, err
}

func (s *Store) loadContextPolicy(ctx context.Context, x q, ref store.ProjectRef) (*adminv1.ContextPolicy, error) {
	if _, err := s.loadProject(ctx, x, ref, false); err != nil {
		return nil, err
	}
	var raw string
	if err := x.row(ctx, `SELECT private_attributes FROM projects WHERE org = ? AND key = ?`, ref.Org, ref.Project).Scan(&raw); err != nil {
		return nil, err
	}
	p := &adminv1.ContextPolicy{}
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &p.PrivateAttributes); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// privateAttributes reads a project's private attributes for its manifests.
func privateAttributes(ctx context.Context, x q, ref store.EnvRef) ([]string, error) {
	var raw string
	if err := x.row(ctx, `SELECT private_attributes FROM projects WHERE org = ? AND key = ?`, ref.Org, ref.Project).Scan(&raw); err != nil {
		return nil, err
	}
	var out []string
	if raw == "" {
		return nil, nil
	}
	return out, json.Unmarshal([]byte(raw), &out)
}

// SetContextPolicy replaces a project's private attributes (sorted, without
// duplicates) in one audited write whose outbox row republishes every
// environment of the project.
func (s *Store) SetContextPolicy(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, p *adminv1.ContextPolicy) (*adminv1.ContextPolicy, error) {
	attrs := slices.Clone(p.GetPrivateAttributes())
	slices.Sort(attrs)
	attrs = slices.Compact(attrs)
	after := &adminv1.ContextPolicy{PrivateAttributes: attrs}
	err := s.inTx(ctx, func(t *Tx) error {
		if _, err := s.loadProject(ctx, t.q(), ref, true); err != nil {
			return err
		}
		before, err := s.loadContextPolicy(ctx, t.q(), ref)
		if err != nil {
			return err
		}
		raw := ""
		if len(attrs) > 0 {
			b, err := json.Marshal(attrs)
			if err != nil {
				return err
			}
			raw = string(b)
		}
		if _, err := t.q().exec(ctx, `UPDATE projects SET private_attributes = ? WHERE org = ? AND key = ?`,
			raw, ref.Org, ref.Project); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, action: "context_policy.update",
			resourceType: "context_policy", resource: projectPath(ref.Project) + "/context-policy", before: before, after: after})
	})
	if err != nil {
		return nil, err
	}
	return after, nil
}
