package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/config"
	"github.com/flagforge/flagforge/services/controlplane/internal/recovery"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// recoverFromSnapshots implements `recover-from-snapshots`: after the database
// was restored from a backup, rebuild each environment from its newest signed
// snapshot (internal/recovery). It is a command of the server binary, not an
// API: it runs while the API is down (before `serve` starts on the restored
// database), with the database URL, snapshot store and key of the deployment.
func recoverFromSnapshots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recover-from-snapshots", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "report what would be recovered; write nothing")
	env := fs.String("environment", "", "recover only this environment (org/project/environment)")
	trusted := fs.String("trusted-keys", "", "PEM public key(s), or a file holding them, that snapshots must be signed with "+
		"(default: the public key of FLAGFORGE_SIGNING_KEY, else of the key in the data directory)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	comment := fs.String("comment", "", "recorded in each environment's audit entry")
	cfg, log, err := setupWith(ctx, fs, args, stderr, (*config.Config).ValidateDatabase)
	if err != nil {
		return err
	}
	keys, err := trustedKeys(cfg, *trusted)
	if err != nil {
		return err
	}
	v, err := recovery.NewVerifier(keys...)
	if err != nil {
		return err
	}
	var snaps recovery.Snapshots
	where := ""
	if cfg.S3.Enabled() {
		if snaps, err = snapshot.NewS3(cfg.S3); err != nil {
			return err
		}
		where = "S3 bucket " + cfg.S3.Bucket + " prefix " + fmt.Sprintf("%q", cfg.S3.Prefix)
	} else {
		if _, err := os.Stat(cfg.SnapshotDir); err != nil {
			return fmt.Errorf("recover-from-snapshots: snapshot directory (FLAGFORGE_SNAPSHOT_DIR) %s: %w", cfg.SnapshotDir, err)
		}
		if snaps, err = snapshot.NewDir(cfg.SnapshotDir); err != nil {
			return err
		}
		where = "directory " + cfg.SnapshotDir
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	rs, ok := st.(recovery.Store)
	if !ok {
		return errors.New("recover-from-snapshots: this store cannot recover environments")
	}
	_, _ = fmt.Fprintf(stderr, "recover-from-snapshots: snapshots in %s; trusted key ids %v\n", where, v.KeyIDs())
	loss, err := auditLoss(ctx, cfg, st, stdout, !*dryRun)
	if err != nil {
		return err
	}
	res, err := recovery.Run(ctx, rs, snaps, v, recovery.Options{DryRun: *dryRun, Environment: *env, Comment: *comment, AuditLoss: loss})
	if res != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(res); werr != nil {
				return werr
			}
		} else if werr := res.WriteText(stdout); werr != nil {
			return werr
		}
	}
	if err != nil {
		return fmt.Errorf("recover-from-snapshots: %w", err)
	}
	return nil
}

// trustedKeys are the keys snapshots must verify with: --trusted-keys, else the
// public key of the configured signing key (never generating one).
func trustedKeys(cfg *config.Config, flagValue string) ([]ed25519.PublicKey, error) {
	if flagValue != "" {
		pemBytes, err := manifest.LoadPEM(flagValue)
		if err != nil {
			return nil, fmt.Errorf("recover-from-snapshots: --trusted-keys: %w", err)
		}
		keys, err := manifest.ParsePublicKeys(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("recover-from-snapshots: --trusted-keys: %w", err)
		}
		return keys, nil
	}
	if cfg.Signing.Key == "" {
		path := filepath.Join(cfg.Signing.DataDir, signing.PrivateKeyFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("recover-from-snapshots: no key to verify snapshots with: set FLAGFORGE_SIGNING_KEY or --trusted-keys (no generated key at %s)", path)
		}
	}
	signer, _, err := signing.Load(cfg.Signing)
	if err != nil {
		return nil, fmt.Errorf("recover-from-snapshots: signing key: %w", err)
	}
	return []ed25519.PublicKey{signer.PublicKey()}, nil
}

// auditLoss compares each organization's restored audit chain with the signed
// checkpoints (as verify-audit does) and prints, for each whose newest entries
// the restore lost, the missing range; recovery records it in its audit entries.
// With mark, it also writes a signed recovery marker of that range beside the
// checkpoints (checkpoint.MarkRecovery), so verify-audit accepts the loss the
// operator acknowledged by recovering, and nothing else.
func auditLoss(ctx context.Context, cfg *config.Config, st store.Store, stdout io.Writer, mark bool) (map[string]string, error) {
	anchors, err := checkpoints(cfg)
	if err != nil || anchors == nil {
		return nil, err
	}
	chains, ok := st.(checkpoint.Chains)
	if !ok {
		return nil, nil
	}
	out := map[string]string{}
	for page := ""; ; {
		orgs, next, err := st.ListOrgs(ctx, nil, storePage(page))
		if err != nil {
			return nil, err
		}
		for _, o := range orgs {
			r, err := checkpoint.Verify(ctx, chains, anchors.storage, anchors.verifier, o.GetKey())
			if err != nil {
				return nil, fmt.Errorf("checkpoints of %s: %w", o.GetKey(), err)
			}
			if r.OK {
				continue
			}
			out[o.GetKey()] = r.Problem
			_, _ = fmt.Fprintf(stdout, "%s: audit history lost in the restore: %s\n", o.GetKey(), r.Problem)
			if !mark {
				continue
			}
			m, ok, err := checkpoint.MarkRecovery(ctx, chains, anchors.storage, anchors.signer, anchors.verifier, o.GetKey(), time.Now())
			if err != nil {
				return nil, fmt.Errorf("recovery marker of %s: %w", o.GetKey(), err)
			}
			if ok {
				_, _ = fmt.Fprintf(stdout, "%s: signed recovery marker written: entries %d..%d lost, the chain continues from entry %d\n",
					o.GetKey(), m.RestoredTo+1, m.LostThrough, m.RestoredTo)
			} else {
				_, _ = fmt.Fprintf(stdout, "%s: no recovery marker: the database contradicts its checkpoints otherwise than by a lost tail; verify-audit will report it\n", o.GetKey())
			}
		}
		if next == "" {
			return out, nil
		}
		page = next
	}
}
