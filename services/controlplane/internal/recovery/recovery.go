// Package recovery rebuilds environments from their newest signed manifest
// snapshot: the second half of disaster recovery, after the database was
// restored from a backup older than the last change (docs/operations.md,
// "Disaster recovery"). The control plane's `recover-from-snapshots` command runs
// it, with the API down.
//
// Run reads and verifies every snapshot first (trusted keys, the environment it
// names, its version, and that the snapshot history continues the database's own
// latest version) and refuses the whole recovery on the first foreign or tampered
// one, before anything is written. It then recovers each environment in its own
// transaction (store.Recoverer): flags, configurations, segments and SDK keys
// equal to the snapshot, one audit entry, the snapshot stored as the latest
// version and the publisher fenced, so the next published version follows the
// snapshot and evaluators only ever move forward. Running it again finds every
// environment up to date and writes nothing.
//
// A snapshot holds what evaluators need, nothing more: members, role bindings,
// API tokens, change requests, schedules, webhooks, audit entries, environment
// settings and the descriptive fields of flags (name, description, tags, owner)
// written after the backup are not in it and are not recovered.
package recovery

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Actor is the audit actor of every recovery.
const Actor = "recovery"

// Store is what recovery needs of the database.
type Store interface {
	PublishTargets(ctx context.Context, org, project string) ([]store.EnvRef, error)
	GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
	LatestManifest(ctx context.Context, ref store.EnvRef) (*store.StoredManifest, error)
	store.Recoverer
}

// Snapshots is where the snapshots are (snapshot.Dir, snapshot.S3).
type Snapshots interface {
	snapshot.Store
	snapshot.Lister
}

// Options narrow and describe a run.
type Options struct {
	// DryRun reports what would be done and writes nothing.
	DryRun bool
	// Environment limits the run to one "org/project/environment" (empty: all).
	Environment string
	// Comment is recorded in each audit entry, after the snapshot version.
	Comment string
	// AuditLoss, by organization, says which audit entries the restore lost (what
	// verify-audit reports against the signed checkpoints); it is recorded in the
	// comment of each of the organization's recovery entries, so the audit log
	// itself says what history is missing.
	AuditLoss map[string]string
	// RequestID is recorded in each audit entry.
	RequestID string
}

// Result is what a run did.
type Result struct {
	DryRun bool `json:"dryRun"`
	// Environments are the recovered (or up-to-date) environments, by target.
	Environments []*EnvResult `json:"environments"`
	// NoSnapshot names environments of the database without any snapshot: left
	// as the backup has them.
	NoSnapshot []string `json:"noSnapshot,omitempty"`
	// NotInDatabase names snapshot targets whose environment the database does
	// not have (created, or its project, after the backup; or deleted): not
	// recovered.
	NotInDatabase []string `json:"notInDatabase,omitempty"`
}

// EnvResult is one environment's recovery.
type EnvResult struct {
	Environment string `json:"environment"`
	*store.Recovery
}

// plan is one environment to recover: its verified newest snapshot.
type plan struct {
	target  string
	stored  *store.StoredManifest
	content *manifestv1.Manifest
}

// Run recovers every environment (or opts.Environment) from its newest snapshot
// verified with v. Bad input is an error naming it: an environment the database
// does not have (errs.NotFound), one without a snapshot (errs.NotFound), a
// snapshot that does not verify or belongs elsewhere (errs.FailedPrecondition).
func Run(ctx context.Context, st Store, snaps Snapshots, v *Verifier, opts Options) (*Result, error) {
	newest, err := snaps.Newest(ctx)
	if err != nil {
		return nil, err
	}
	refs, err := st.PublishTargets(ctx, "", "")
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	var targets []string
	for _, ref := range refs {
		_, err := st.GetEnvironment(ctx, ref)
		if errors.Is(err, errs.NotFound) {
			continue // deleted; only its published versions remain
		}
		if err != nil {
			return nil, err
		}
		t := target(ref)
		exists[t] = true
		targets = append(targets, t)
	}
	res := &Result{DryRun: opts.DryRun, Environments: []*EnvResult{}}
	if opts.Environment != "" {
		if _, err := snapshot.Name(opts.Environment, 1); err != nil {
			return nil, errs.Invalid("environment", "%q is not org/project/environment", opts.Environment)
		}
		if !exists[opts.Environment] {
			return nil, errs.E(errs.NotFound, "environment %q does not exist in the database", opts.Environment)
		}
		if newest[opts.Environment] == 0 {
			return nil, errs.E(errs.NotFound, "environment %q has no manifest snapshot in the snapshot store", opts.Environment)
		}
		targets = []string{opts.Environment}
	} else {
		for t := range newest {
			if !exists[t] {
				res.NotInDatabase = append(res.NotInDatabase, t)
			}
		}
		sort.Strings(res.NotInDatabase)
	}
	sort.Strings(targets)
	var plans []plan
	for _, t := range targets {
		version := newest[t]
		if version == 0 {
			res.NoSnapshot = append(res.NoSnapshot, t)
			continue
		}
		p, err := load(ctx, st, snaps, v, t, version)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	// Every snapshot verified: now write, one environment per transaction.
	for _, p := range plans {
		comment := opts.Comment
		if loss := opts.AuditLoss[p.stored.Ref.Org]; loss != "" {
			comment = strings.TrimPrefix(comment+"; audit history lost in the restore: "+loss, "; ")
		}
		meta := store.WriteMeta{ActorID: Actor, ActorName: Actor, RequestID: opts.RequestID, Comment: comment}
		r, err := st.RecoverEnvironment(ctx, meta, p.stored, p.content, opts.DryRun)
		if err != nil {
			return res, fmt.Errorf("%s: %w", p.target, err)
		}
		res.Environments = append(res.Environments, &EnvResult{Environment: p.target, Recovery: r})
	}
	return res, nil
}

// load reads and verifies version of target's snapshot.
func load(ctx context.Context, st Store, snaps Snapshots, v *Verifier, t string, version uint64) (plan, error) {
	data, err := snaps.Get(ctx, t, version)
	if err != nil {
		return plan{}, fmt.Errorf("%s: snapshot version %d: %w", t, version, err)
	}
	sm := &manifestv1.SignedManifest{}
	if err := proto.Unmarshal(data, sm); err != nil {
		return plan{}, errs.E(errs.FailedPrecondition, "%s: snapshot version %d is not a signed manifest: %v", t, version, err)
	}
	m, err := v.v.Manifest(sm)
	if err != nil {
		return plan{}, errs.E(errs.FailedPrecondition, "%s: snapshot version %d refused: %v (trusted key ids: %s)",
			t, version, err, strings.Join(v.ids, ", "))
	}
	if manifest.Target(m) != t || m.GetVersion() != version {
		return plan{}, errs.E(errs.FailedPrecondition, "%s: snapshot version %d refused: it is version %d of %s (a foreign or misplaced snapshot)",
			t, version, m.GetVersion(), manifest.Target(m))
	}
	ref := store.EnvRef{Org: m.GetOrg(), Project: m.GetProject(), Environment: m.GetEnvironment()}
	stored := &store.StoredManifest{Ref: ref, Version: version, Signed: sm, Digest: manifest.Digest(sm.GetPayload()),
		Epoch: m.GetPublisherEpoch(), IssuedAt: m.GetIssuedAt().AsTime(), ExpiresAt: m.GetExpiresAt().AsTime()}
	// Lineage: the snapshot history must continue the database's own latest
	// version (same bytes at that version), else the snapshots are another
	// deployment's or were overwritten by a publisher that ran on the restored
	// database.
	latest, err := st.LatestManifest(ctx, ref)
	switch {
	case errors.Is(err, errs.NotFound):
	case err != nil:
		return plan{}, err
	case latest.Version < version:
		old, err := snaps.Get(ctx, t, latest.Version)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Not snapshotted (the queue was full): nothing to compare with.
		case err != nil:
			return plan{}, fmt.Errorf("%s: snapshot version %d: %w", t, latest.Version, err)
		default:
			osm := &manifestv1.SignedManifest{}
			if err := proto.Unmarshal(old, osm); err != nil || !proto.Equal(osm, latest.Signed) {
				return plan{}, errs.E(errs.FailedPrecondition,
					"%s: the snapshot of version %d differs from the database's version %d: the snapshots belong to another deployment or were overwritten; refusing to recover from them",
					t, latest.Version, latest.Version)
			}
		}
	}
	return plan{target: t, stored: stored, content: m}, nil
}

// Verifier checks snapshots against the trusted keys.
type Verifier struct {
	v   *manifest.Verifier
	ids []string
}

// NewVerifier trusts keys (at least one). Unlike an evaluator's it accepts
// expired snapshots: expiry keeps evaluators from serving a stale manifest, while
// recovery deliberately reads the last state there was, however old.
func NewVerifier(keys ...ed25519.PublicKey) (*Verifier, error) {
	v, err := manifest.NewVerifier(func() time.Time { return time.Time{} }, keys...)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = manifest.KeyID(k)
	}
	sort.Strings(ids)
	return &Verifier{v: v, ids: ids}, nil
}

// KeyIDs are the trusted keys' ids.
func (v *Verifier) KeyIDs() []string { return v.ids }

func target(r store.EnvRef) string { return r.Org + "/" + r.Project + "/" + r.Environment }
