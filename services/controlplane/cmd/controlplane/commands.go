package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagforge/flagforge/pkg/logrelay"

	"errors"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/bootstrap"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/config"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
)

// setup loads and validates the configuration (with the subcommand's flags on fs)
// and builds the JSON logger.
func setup(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (*config.Config, *slog.Logger, error) {
	return setupWith(ctx, fs, args, stderr, (*config.Config).Validate)
}

// setupWith is setup with the command's own validation.
func setupWith(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer, validate func(*config.Config) error) (*config.Config, *slog.Logger, error) {
	fs.SetOutput(stderr)
	cfg, err := config.Load(ctx, fs, args, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := validate(cfg); err != nil {
		return nil, nil, err
	}
	level, _ := cfg.Level() // validated
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	// go-redis logs its own dial failures; they go through our JSON log, a few a minute.
	redis.SetLogger(logrelay.New(logrelay.Config{Logger: log, Source: "go-redis"}))
	return cfg, log, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, log, err := setup(ctx, flag.NewFlagSet("serve", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	if cfg.Bootstrap.Enabled() {
		res, err := bootstrap.Run(ctx, st, cfg.Bootstrap.Org, cfg.Bootstrap.Email, cfg.Bootstrap.Token)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		log.InfoContext(ctx, "bootstrap", slog.String("org", res.Org.GetKey()), slog.String("owner", res.Member.GetEmail()),
			slog.Bool("created_org", res.CreatedOrg), slog.Bool("created_token", res.Token != nil))
	}
	m, sync, closeDist, err := distribution(ctx, cfg, log)
	defer closeDist()
	if err != nil {
		return err
	}
	var tlsReloader *tlsfiles.Reloader
	if f := cfg.TLSFiles(); f.Enabled() {
		if tlsReloader, err = tlsfiles.New(f, func(err error) {
			log.Error("TLS files could not be reloaded; the previous certificate stays in use", slog.Any("error", err))
		}); err != nil {
			return err
		}
	}
	a, err := app.New(ctx, app.Config{
		TLS: tlsReloader, TLSClientCA: cfg.TLSClientCAFile != "",
		GRPCAddr: cfg.GRPCAddr, GRPCShutdownTimeout: cfg.GRPCShutdownTimeout,
		HTTP: cfg.HTTP, Limits: cfg.Limits, Auth: cfg.Auth, RateLimit: cfg.RateLimit,
		Schedule: cfg.Schedule, Release: cfg.Release, Webhooks: cfg.Webhooks, Lifecycle: cfg.Lifecycle, SeenContexts: cfg.SeenContexts, Audit: cfg.Audit, Checkpoints: cfg.Checkpoints,
		Publisher: cfg.Publisher, Sync: sync, Manifests: m,
	}, st, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func migrate(ctx context.Context, args []string, stderr io.Writer) error {
	// Migrations need the database only: not the signing key or sync token of serve.
	cfg, log, err := setupWith(ctx, flag.NewFlagSet("migrate", flag.ContinueOnError), args, stderr, (*config.Config).ValidateDatabase)
	if err != nil {
		return err
	}
	if err := migrateStore(ctx, cfg); err != nil {
		return err
	}
	log.InfoContext(ctx, "migrations applied")
	return nil
}

func bootstrapCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	org := fs.String("org", "", "key of the organization to create (required)")
	email := fs.String("email", "", "email of its owner (required)")
	cfg, log, err := setup(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	if *org == "" || *email == "" {
		return fmt.Errorf("bootstrap: --org and --email are required")
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	res, err := bootstrap.Run(ctx, st, *org, *email, "")
	if err != nil {
		return err
	}
	if res.CreatedOrg {
		_, _ = fmt.Fprintf(stderr, "created organization %q with owner %s\n", res.Org.GetKey(), res.Member.GetEmail())
	} else {
		_, _ = fmt.Fprintf(stderr, "organization %q exists; new owner token for %s\n", res.Org.GetKey(), res.Member.GetEmail())
	}
	_, _ = fmt.Fprintf(stderr, "owner API token (shown once; keep it secret):\n")
	_, _ = fmt.Fprintln(stdout, res.Secret)
	return nil
}

func verifyAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, log, err := setup(ctx, flag.NewFlagSet("verify-audit", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	anchors, err := checkpoints(cfg)
	if err != nil {
		return err
	}
	broken := false
	for page := ""; ; {
		orgs, next, err := st.ListOrgs(ctx, nil, storePage(page))
		if err != nil {
			return err
		}
		for _, o := range orgs {
			v, err := st.VerifyAudit(ctx, o.GetKey())
			if err != nil {
				return fmt.Errorf("verify %s: %w", o.GetKey(), err)
			}
			if v.OK && anchors != nil {
				chains, ok := st.(checkpoint.Chains)
				if !ok {
					return errors.New("verify-audit: the store cannot read audit chain heads")
				}
				r, err := checkpoint.Verify(ctx, chains, anchors.storage, anchors.verifier, o.GetKey())
				if err != nil {
					return fmt.Errorf("checkpoints of %s: %w", o.GetKey(), err)
				}
				if !r.OK {
					broken = true
					_, _ = fmt.Fprintf(stdout, "%s: BROKEN against the signed checkpoints: %s\n", o.GetKey(), r.Problem)
					continue
				}
				if r.Checkpoints > 0 {
					_, _ = fmt.Fprintf(stdout, "%s: ok (%d entries; matches the signed checkpoint of entry %d, %s%s)\n", o.GetKey(), v.Checked,
						r.Newest.Sequence, r.Newest.Time.Format("2006-01-02T15:04:05Z07:00"), recoveredText(r.Recovered))
					continue
				}
			}
			if v.OK {
				_, _ = fmt.Fprintf(stdout, "%s: ok (%d entries; no checkpoint yet)\n", o.GetKey(), v.Checked)
				continue
			}
			broken = true
			fb := v.FirstBroken
			_, _ = fmt.Fprintf(stdout, "%s: BROKEN at entry %d (id %s, action %s, time %s): %s\n", o.GetKey(),
				fb.GetSequence(), fb.GetId(), fb.GetAction(), fb.GetTime().AsTime().Format("2006-01-02T15:04:05Z07:00"), v.Problem)
		}
		if next == "" {
			break
		}
		page = next
	}
	if broken {
		return exitCode(1)
	}
	return nil
}

// anchors is where verify-audit finds the signed checkpoints.
type anchors struct {
	storage  checkpoint.Storage
	signer   *manifest.Signer
	verifier *manifest.Verifier
}

// checkpoints opens the snapshot store and the manifest key the serving process
// uses (nil when there is no key to verify with).
func checkpoints(cfg *config.Config) (*anchors, error) {
	if cfg.Signing.Key == "" {
		// The embedded key lives in the data directory; without it nothing was ever
		// signed (and verify-audit must not generate one).
		if _, err := os.Stat(filepath.Join(cfg.Signing.DataDir, signing.PrivateKeyFile)); err != nil {
			return nil, nil //nolint:nilerr // no key: no checkpoints to compare with
		}
	}
	signer, _, err := signing.Load(cfg.Signing)
	if err != nil {
		return nil, err
	}
	v, err := manifest.NewVerifier(time.Now, signer.PublicKey())
	if err != nil {
		return nil, err
	}
	var storage checkpoint.Storage
	if cfg.S3.Enabled() {
		if storage, err = snapshot.NewS3(cfg.S3); err != nil {
			return nil, err
		}
	} else if storage, err = snapshot.NewDir(cfg.SnapshotDir); err != nil {
		return nil, err
	}
	return &anchors{storage: storage, signer: signer, verifier: v}, nil
}

// recoveredText describes the recovery markers that excused lost entries.
func recoveredText(rs []checkpoint.Recovery) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "; entries %d..%d lost in a restore, recorded by the signed recovery marker of %s",
			r.RestoredTo+1, r.LostThrough, r.Time.Format("2006-01-02T15:04:05Z07:00"))
	}
	return b.String()
}
