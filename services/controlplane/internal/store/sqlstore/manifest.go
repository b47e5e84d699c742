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
		rows, err := x.query(ctx, manifestFlagQuery+` ORDER BY f.key`, ref.Org, ref.Project, ref.Environment, false)
		if err != nil {
			return err
		}
		if out.Flags, err = collect(rows, scanManifestFlag); err != nil {
			return err
		}
		rows, err = x.query(ctx, `SELECT key, body, revision FROM segments WHERE org = ? AND project = ? AND environment = ?
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
