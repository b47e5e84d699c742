package sqlstore

import (
	"context"

	"github.com/flagforge/flagforge/pkg/errs"

	"google.golang.org/protobuf/proto"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// --- kill ---

// KillFlag turns a flag off in every environment of its project at once. It is
// refused as a whole (nothing changes) when the flag is on in an environment that
// requires approvals and does not allow emergency off.
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
			e, err := s.loadEnv(ctx, t.q(), eref, false)
			if err != nil {
				return err
			}
			cur, err := s.loadFlagConfig(ctx, t.q(), eref, flag, true)
			if err != nil {
				return err
			}
			if !cur.GetConfig().GetOn() {
				out = append(out, cur)
				continue
			}
			if st := e.GetSettings(); st.GetApprovalsRequired() && !st.GetEmergencyOffAllowed() {
				return errs.E(errs.FailedPrecondition, "environment %q requires approvals and does not allow emergency off: "+
					"nothing was killed; turn the flag off there with a change request (UpdateFlagConfig) and use "+
					"EmergencyOffFlag in the environments that allow it", env)
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
