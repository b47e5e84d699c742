package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/redisconn"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/config"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/syncsvc"
)

// distribution builds the manifest publisher's collaborators from cfg: the signing
// key (generated into the data directory on first run in the embedded form), the
// elector (PostgreSQL advisory lock; none on SQLite, where the store's commit hook
// wakes the only publisher), Redis (optional) and the snapshot store. It also
// resolves the sync service token (generated into the data directory on first run
// in the embedded form). close releases what it opened.
func distribution(ctx context.Context, cfg *config.Config, log *slog.Logger) (m app.Manifests, sync syncsvc.Config, close func(), err error) {
	close = func() {}
	signer, generated, err := signing.Load(cfg.Signing)
	if err != nil {
		return m, sync, close, err
	}
	m.Signer = signer
	keyAttrs := []any{slog.String("key_id", signer.KeyID())}
	if cfg.Signing.Key == "" {
		keyAttrs = append(keyAttrs, slog.String("private_key", filepath.Join(cfg.DataDir, signing.PrivateKeyFile)),
			slog.String("public_key", filepath.Join(cfg.DataDir, signing.PublicKeyFile)))
	}
	if generated {
		log.InfoContext(ctx, "generated a manifest signing key; give its public key to evaluators (FLAGFORGE_TRUSTED_KEYS)", keyAttrs...)
	} else {
		log.InfoContext(ctx, "manifest signing key loaded", keyAttrs...)
	}

	sync = cfg.Sync
	if sync.Token == "" {
		tok, path, created, err := syncsvc.LoadOrCreateToken(cfg.DataDir)
		if err != nil {
			return m, sync, close, err
		}
		sync.Token = tok
		log.InfoContext(ctx, "sync service token for evaluators (FLAGFORGE_SYNC_TOKEN) is in a file",
			slog.String("path", path), slog.Bool("created", created))
	}

	if !cfg.Embedded() {
		if m.Elector, err = publisher.NewPostgres(cfg.DatabaseURL, log); err != nil {
			return m, sync, close, fmt.Errorf("publisher elector: %w", err)
		}
	}
	if cfg.S3.Enabled() {
		if m.Snapshots, err = snapshot.NewS3(cfg.S3); err != nil {
			return m, sync, close, err
		}
		log.InfoContext(ctx, "manifest snapshots go to S3", slog.String("bucket", cfg.S3.Bucket), slog.String("prefix", cfg.S3.Prefix))
	} else {
		if m.Snapshots, err = snapshot.NewDir(cfg.SnapshotDir); err != nil {
			return m, sync, close, err
		}
		log.InfoContext(ctx, "manifest snapshots go to a directory", slog.String("dir", cfg.SnapshotDir))
	}
	if cfg.RedisURL != "" {
		// One node, a Sentinel-managed primary or a cluster (pkg/redisconn).
		rc, err := redisconn.Open(cfg.RedisURL)
		if err != nil {
			return m, sync, close, fmt.Errorf("redis: %w", err)
		}
		m.Redis = rc
		close = func() { _ = rc.Close() }
		log.InfoContext(ctx, "manifests are also written to Redis", slog.String("redis", redisconn.Redacted(cfg.RedisURL)), slog.String("key_prefix", cfg.Publisher.RedisPrefix))
	}
	return m, sync, close, nil
}

// keysCmd implements `keys generate [-dir DIR]` and `keys public [KEY]`.
func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: keys generate [-dir DIR] | keys public [PEM or path]")
	}
	switch args[0] {
	case "generate":
		return signing.KeysGenerateCommand(args[1:])
	case "public":
		return keysPublic(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown keys command %q (generate, public)", args[0])
	}
}

// keysPublic prints the public key (PEM) of a private key: the argument, else
// FLAGFORGE_SIGNING_KEY, else the key generated in the data directory. It never
// creates a key.
func keysPublic(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys public", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := config.Load(ctx, fs, args, nil)
	if err != nil {
		return err
	}
	src := cfg.Signing.Key
	if fs.NArg() > 0 {
		src = fs.Arg(0)
	}
	if src == "" {
		src = filepath.Join(cfg.DataDir, signing.PrivateKeyFile)
	}
	pemBytes, err := manifest.LoadPEM(src)
	if err != nil {
		return fmt.Errorf("keys public: %w", err)
	}
	priv, err := manifest.ParsePrivateKey(pemBytes)
	if err != nil {
		return fmt.Errorf("keys public: %w", err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		return err
	}
	pub, err := signing.PublicKeyPEM(s)
	if err != nil {
		return err
	}
	_, err = stdout.Write(pub)
	return err
}
