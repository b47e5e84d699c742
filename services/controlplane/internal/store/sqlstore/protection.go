package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Protection is the four-eyes guard of the writes that are not change requests
// (authz.GovernanceTable decision "refused when serving"): inside the write's
// transaction, against the state it is about to commit, it refuses a write that
// would change what an environment requiring approvals ("protected") serves.

// protectedEnvs returns the environments of a project that require approvals.
// The rows are read, not locked: locking them would make every definition write
// wait for (and deadlock with) the publisher's manifest-version updates. A
// settings change committing between this read and the write's commit is the
// one window (documented in docs/governance.md).
func (t *Tx) protectedEnvs(ctx context.Context, ref store.ProjectRef) ([]*adminv1.Environment, error) {
	rows, err := t.q().query(ctx, `SELECT `+envColumns+` FROM environments WHERE org = ? AND project = ? ORDER BY key`,
		ref.Org, ref.Project)
	if err != nil {
		return nil, err
	}
	envs, err := collect(rows, scanEnv)
	if err != nil {
		return nil, err
	}
	out := envs[:0]
	for _, e := range envs {
		if e.GetSettings().GetApprovalsRequired() {
			out = append(out, e)
		}
	}
	return out, nil
}

func protectedError(env, what, how string) error {
	return errs.E(errs.FailedPrecondition, "environment %q requires approvals: %s would change what it serves; %s", env, what, how)
}

// howLowerProtection is the way forward for writes that have no change request of
// their own.
const howLowerProtection = "turn approvals off there first (UpdateEnvironment; another admin must approve that change request)"

// servedFlags reads, for each protected environment, the flag as its manifest
// carries it reduced to what decides evaluation results (nil: not served).
func (t *Tx) servedFlags(ctx context.Context, ref store.ProjectRef, envs []*adminv1.Environment, key string) ([]*manifestv1.Flag, error) {
	out := make([]*manifestv1.Flag, len(envs))
	for i, e := range envs {
		eref := store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: e.GetKey()}
		f, err := t.s.manifestFlag(ctx, t.q(), eref, key)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		used, err := t.variantsUsed(ctx, eref, f)
		if err != nil {
			return nil, err
		}
		out[i] = servedProjection(f, used)
	}
	return out, nil
}

// guardFlagWrite runs write (a change of flag key's definition or archived state)
// and refuses it when it changed what a protected environment serves. what names
// the write in the error.
func (t *Tx) guardFlagWrite(ctx context.Context, ref store.ProjectRef, key, what, how string, write func() error) error {
	envs, err := t.protectedEnvs(ctx, ref)
	if err != nil {
		return err
	}
	before, err := t.servedFlags(ctx, ref, envs, key)
	if err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	after, err := t.servedFlags(ctx, ref, envs, key)
	if err != nil {
		return err
	}
	for i, e := range envs {
		if !proto.Equal(before[i], after[i]) {
			return protectedError(e.GetKey(), what+" flag "+quote(key), how)
		}
	}
	return nil
}

func quote(s string) string { return `"` + s + `"` }

// variantsUsed lists the variant keys of f that the environment can serve or
// depend on: those its configuration serves (off variant, targets, rules,
// default, rollouts) and those other flags' prerequisites on f name.
func (t *Tx) variantsUsed(ctx context.Context, ref store.EnvRef, f *manifestv1.Flag) (map[string]bool, error) {
	used := map[string]bool{}
	add := func(s *manifestv1.Serve) {
		if v := s.GetVariant(); v != "" {
			used[v] = true
		}
		for _, w := range s.GetRollout().GetWeights() {
			used[w.GetVariant()] = true
		}
	}
	cfg := f.GetConfig()
	if cfg.GetOffVariant() != "" {
		used[cfg.GetOffVariant()] = true
	}
	for _, tg := range cfg.GetTargets() {
		used[tg.GetVariant()] = true
	}
	for _, r := range cfg.GetRules() {
		add(r.GetServe())
	}
	add(cfg.GetDefaultServe())
	rows, err := t.q().query(ctx, `SELECT config FROM flag_configs WHERE org = ? AND project = ? AND environment = ? AND flag <> ?`,
		ref.Org, ref.Project, ref.Environment, f.GetKey())
	if err != nil {
		return nil, err
	}
	cfgs, err := collect(rows, func(sc interface{ Scan(...any) error }) (*manifestv1.FlagConfig, error) {
		var b []byte
		if err := sc.Scan(&b); err != nil {
			return nil, err
		}
		c := &manifestv1.FlagConfig{}
		return c, proto.Unmarshal(b, c)
	})
	if err != nil {
		return nil, err
	}
	for _, c := range cfgs {
		for _, p := range c.GetPrerequisites() {
			if p.GetFlagKey() == f.GetKey() {
				for _, v := range p.GetVariants() {
					used[v] = true
				}
			}
		}
	}
	return used, nil
}

// servedProjection keeps what decides evaluation results: type, client
// visibility, configuration and the used variants (key and value, by key; a used
// variant that no longer exists stays as a key without value).
func servedProjection(f *manifestv1.Flag, used map[string]bool) *manifestv1.Flag {
	out := &manifestv1.Flag{Key: f.GetKey(), Type: f.GetType(), ClientVisible: f.GetClientVisible(), Config: f.GetConfig()}
	have := map[string]*manifestv1.Variant{}
	for _, v := range f.GetVariants() {
		have[v.GetKey()] = v
	}
	keys := make([]string, 0, len(used))
	for k := range used {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.Variants = append(out.Variants, &manifestv1.Variant{Key: k, Value: have[k].GetValue()})
	}
	return out
}

// prerequisiteUsers names the first flag (and environment) whose configuration
// requires flag key ("" when none).
func (t *Tx) prerequisiteUsers(ctx context.Context, ref store.ProjectRef, key string, liveOnly bool) (string, error) {
	query := `SELECT c.environment, c.flag, c.config FROM flag_configs c JOIN flags f
		ON f.org = c.org AND f.project = c.project AND f.key = c.flag
		WHERE c.org = ? AND c.project = ? AND c.flag <> ?`
	args := []any{ref.Org, ref.Project, key}
	if liveOnly {
		query += ` AND f.archived = ?`
		args = append(args, false)
	}
	rows, err := t.q().query(ctx, query+` ORDER BY c.flag, c.environment`, args...)
	if err != nil {
		return "", err
	}
	type cfgRow struct {
		env, flag string
		cfg       *manifestv1.FlagConfig
	}
	cfgs, err := collect(rows, func(sc interface{ Scan(...any) error }) (cfgRow, error) {
		var r cfgRow
		var b []byte
		if err := sc.Scan(&r.env, &r.flag, &b); err != nil {
			return r, err
		}
		r.cfg = &manifestv1.FlagConfig{}
		return r, proto.Unmarshal(b, r.cfg)
	})
	if err != nil {
		return "", err
	}
	for _, c := range cfgs {
		for _, p := range c.cfg.GetPrerequisites() {
			if p.GetFlagKey() == key {
				return "flag " + quote(c.flag) + " in environment " + quote(c.env), nil
			}
		}
	}
	return "", nil
}
