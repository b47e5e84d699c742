package sqlstore

import (
	"context"

	"google.golang.org/protobuf/proto"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// --- kill ---

// KillFlag turns a flag off in every environment of its project at once.
func (s *Store) KillFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, flag string) ([]*adminv1.FlagEnvironmentConfig, error) {
	var out []*adminv1.FlagEnvironmentConfig
	err := s.inTx(ctx, func(t *Tx) error {
		out = nil
		if _, err := s.loadFlag(ctx, t.q(), ref, flag, false); err != nil {
			return err
		}
		envs, err := envKeys(ctx, t.q(), ref)
		if err != nil {
			return err
		}
		for _, env := range envs {
			eref := store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: env}
			cur, err := s.loadFlagConfig(ctx, t.q(), eref, flag, true)
			if err != nil {
				return err
			}
			if !cur.GetConfig().GetOn() {
				out = append(out, cur)
				continue
			}
			cfg := proto.CloneOf(cur.GetConfig())
			cfg.On = false
			// Turning off cannot make a valid configuration invalid: no check.
			fc, err := t.writeFlagConfig(ctx, m, eref, cur, cfg, nil)
			if err != nil {
				return err
			}
			out = append(out, fc)
		}
		return nil
	})
	return out, err
}
