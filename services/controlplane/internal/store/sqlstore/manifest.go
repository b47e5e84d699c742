package sqlstore

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Bucketing is the bucketing algorithm manifests declare.
const Bucketing = "murmur3-v1"

// EnvironmentManifest assembles an environment's current content from one snapshot.
func (s *Store) EnvironmentManifest(ctx context.Context, ref store.EnvRef, now time.Time) (*manifestv1.Manifest, error) {
	out := &manifestv1.Manifest{Org: ref.Org, Project: ref.Project, Environment: ref.Environment, Bucketing: Bucketing}
	err := s.readTx(ctx, func(x q) error {
		if _, err := s.loadEnv(ctx, x, ref, false); err != nil {
			return err
		}
		var err error
		if out.PrivateAttributes, err = privateAttributes(ctx, x, ref); err != nil {
			return err
		}
		if out.Flags, err = environmentFlags(ctx, x, ref); err != nil {
			return err
		}
		rows, err := x.query(ctx, `SELECT key, body, revision FROM segments WHERE org = ? AND project = ? AND environment = ?
			ORDER BY key`, ref.Org, ref.Project, ref.Environment)
		if err != nil {
			return err
		}
		if out.Segments, err = collect(rows, scanSegment); err != nil {
			return err
		}
		rows, err = x.query(ctx, `SELECT id, hash, kind, expire_at FROM sdk_keys
			WHERE org = ? AND project = ? AND environment = ? AND revoked_at = 0 AND (expire_at = 0 OR expire_at > ?)
			ORDER BY id`, ref.Org, ref.Project, ref.Environment, micros(now))
		if err != nil {
			return err
		}
		out.SdkKeys, err = collect(rows, func(sc interface{ Scan(...any) error }) (*manifestv1.SdkKey, error) {
			var k manifestv1.SdkKey
			var kind int32
			var e int64
			if err := sc.Scan(&k.Id, &k.Hash, &kind, &e); err != nil {
				return nil, err
			}
			k.Kind = manifestv1.SdkKeyKind(kind)
			if e != 0 {
				k.ExpiresAt = timestamppb.New(fromMicros(e))
			}
			return &k, nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PendingOutbox returns up to limit unpublished events, oldest first.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]store.OutboxEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r().query(ctx, `SELECT id, org, project, environment, kind, resource, created_at FROM outbox
		WHERE published_at IS NULL ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.OutboxEvent, error) {
		var e store.OutboxEvent
		var c int64
		err := sc.Scan(&e.ID, &e.Org, &e.Project, &e.Environment, &e.Kind, &e.Resource, &c)
		e.Created = fromMicros(c)
		return e, err
	})
	if err != nil {
		return nil, s.translate(err)
	}
	return out, nil
}

// environmentFlags reads the environment's non-archived flags with their
// configuration, ordered by key. It reads flags and configurations with two range
// scans of their primary keys and joins them here, rather than with a SQL join:
// on tables that grew since PostgreSQL last analyzed them, the planner picked a
// nested loop over the (org, project) index prefix that compared every flag with
// every configuration (3 s for 3,200 flags); two range scans are linear whatever
// the statistics say.
func environmentFlags(ctx context.Context, x q, ref store.EnvRef) ([]*manifestv1.Flag, error) {
	type cfg struct {
		config []byte
		rev    int64
	}
	rows, err := x.query(ctx, `SELECT flag, config, revision FROM flag_configs
		WHERE org = ? AND project = ? AND environment = ?`, ref.Org, ref.Project, ref.Environment)
	if err != nil {
		return nil, err
	}
	configs := map[string]cfg{}
	for rows.Next() {
		var key string
		var c cfg
		if err := rows.Scan(&key, &c.config, &c.rev); err != nil {
			_ = rows.Close()
			return nil, err
		}
		configs[key] = c
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = x.query(ctx, `SELECT key, body FROM flags WHERE org = ? AND project = ? AND archived = ? ORDER BY key`,
		ref.Org, ref.Project, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []*manifestv1.Flag
	for rows.Next() {
		var key string
		var body []byte
		if err := rows.Scan(&key, &body); err != nil {
			return nil, err
		}
		c, ok := configs[key]
		if !ok {
			continue
		}
		f, err := decodeManifestFlag(key, body, c.config, c.rev)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
