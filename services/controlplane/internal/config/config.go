// Package config loads the control plane's configuration in one place: every
// package's Config struct, filled from FLAGFORGE_* environment variables
// (go-envconfig, with the defaults in the struct tags) and then from command-line
// flags, which win. Validate runs every package's Validate.
package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/redisconn"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
	"github.com/flagforge/flagforge/services/controlplane/internal/auditcheck"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/bootstrap"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/httpapi"
	"github.com/flagforge/flagforge/services/controlplane/internal/lifecycle"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/flagforge/flagforge/services/controlplane/internal/release"
	"github.com/flagforge/flagforge/services/controlplane/internal/schedule"
	"github.com/flagforge/flagforge/services/controlplane/internal/seencontexts"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/syncsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/webhook"
	"github.com/sethvargo/go-envconfig"
)

// EnvPrefix starts every environment variable.
const EnvPrefix = "FLAGFORGE_"

// Config is the whole configuration.
type Config struct {
	// DatabaseURL selects the store: "sqlite://<path>" or "postgres://...".
	DatabaseURL string `env:"DATABASE_URL, default=sqlite://./data/flagforge.db"`
	// MigrateDatabaseURL, when set, is used for migrations (PostgreSQL: the owner
	// role); the application connects with DatabaseURL.
	MigrateDatabaseURL string `env:"MIGRATE_DATABASE_URL"`
	// GRPCAddr is the admin gRPC listen address.
	GRPCAddr string `env:"GRPC_ADDR, default=127.0.0.1:9090"`
	// GRPCShutdownTimeout bounds GracefulStop before in-flight calls are cut.
	GRPCShutdownTimeout time.Duration `env:"GRPC_SHUTDOWN_TIMEOUT, default=15s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL, default=info"`
	// TLSCertFile and TLSKeyFile, when set, serve the gRPC and HTTP listeners
	// over TLS (PEM files, reloaded when they change).
	TLSCertFile string `env:"TLS_CERT_FILE"`
	TLSKeyFile  string `env:"TLS_KEY_FILE"`
	// TLSClientCAFile verifies client certificates; the sync service (evaluators)
	// then requires one (mTLS). Other callers may still connect without.
	TLSClientCAFile string `env:"TLS_CLIENT_CA_FILE"`
	// DataDir holds what the embedded default creates on first run: the signing
	// key (unless FLAGFORGE_SIGNING_KEY is set), the sync token (unless
	// FLAGFORGE_SYNC_TOKEN is set) and the manifest snapshots (unless a snapshot
	// directory or bucket is configured).
	DataDir string `env:"DATA_DIR, default=./data"`
	// RedisURL, when set, is where the publisher writes the latest manifest of
	// each environment for evaluators (redis://, rediss://, unix://). Optional:
	// without it evaluators follow the sync stream.
	RedisURL string `env:"REDIS_URL"`
	// SnapshotDir receives every manifest version when no S3 bucket is configured
	// (default {DataDir}/snapshots).
	SnapshotDir string `env:"SNAPSHOT_DIR"`

	HTTP httpapi.Config
	// Limits bound every HTTP and gRPC request: body size
	// (FLAGFORGE_MAX_REQUEST_BYTES), read timeouts, stream write timeout,
	// keepalive pings (see pkg/limits).
	Limits    limits.Config
	Auth      auth.Config
	RateLimit ratelimit.Config
	Bootstrap bootstrap.Config
	// Signing is the manifest signing key (FLAGFORGE_SIGNING_KEY; its DataDir is
	// DataDir).
	Signing signing.Config
	// Publisher tunes the manifest publisher (lifetime, history, polling, Redis
	// key prefix).
	Publisher publisher.Config
	// Sync is the evaluators' sync service (FLAGFORGE_SYNC_TOKEN ...).
	Sync syncsvc.Config
	// S3, when a bucket is set, receives the snapshots instead of SnapshotDir.
	S3       snapshot.S3Config
	Schedule schedule.Config
	// Release runs release plans and their guardrails
	// (FLAGFORGE_PROMETHEUS_URL, FLAGFORGE_RELEASE_CHECK_INTERVAL ...).
	Release   release.Config
	Webhooks  webhook.Config
	Lifecycle lifecycle.Config
	// SeenContexts keeps the contexts evaluators sample for impact previews
	// (FLAGFORGE_SEEN_CONTEXTS_KEEP, default 10,000 per environment;
	// FLAGFORGE_SEEN_CONTEXTS_RETENTION, default 168h).
	SeenContexts seencontexts.Config
	// Audit is the periodic audit chain verification
	// (FLAGFORGE_AUDIT_VERIFY_INTERVAL, default 1h; 0 disables).
	Audit auditcheck.Config
	// Checkpoints signs each organization's audit chain head into the snapshot
	// store (FLAGFORGE_AUDIT_CHECKPOINT_INTERVAL, default 1m; 0 disables).
	Checkpoints checkpoint.Config
}

// Load reads the environment (through lookup; nil: the process environment) and
// then the flags in args, registered on fs (which may carry the subcommand's own
// flags). It does not validate.
func Load(ctx context.Context, fs *flag.FlagSet, args []string, lookup envconfig.Lookuper) (*Config, error) {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: envconfig.PrefixLookuper(EnvPrefix, lookup)}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "database URL: sqlite://<path> or postgres://... (FLAGFORGE_DATABASE_URL)")
	fs.StringVar(&c.MigrateDatabaseURL, "migrate-database-url", c.MigrateDatabaseURL, "database URL for migrations (FLAGFORGE_MIGRATE_DATABASE_URL)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address (FLAGFORGE_GRPC_ADDR)")
	fs.StringVar(&c.HTTP.Addr, "http-addr", c.HTTP.Addr, "HTTP listen address (FLAGFORGE_HTTP_ADDR)")
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-request-bytes", c.Limits.MaxBodyBytes, "largest request body or gRPC message (FLAGFORGE_MAX_REQUEST_BYTES)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error (FLAGFORGE_LOG_LEVEL)")
	fs.Float64Var(&c.RateLimit.Rate, "rate-limit-rps", c.RateLimit.Rate, "admin API requests per second per organization, 0 = off (FLAGFORGE_RATE_LIMIT_RPS)")
	fs.IntVar(&c.RateLimit.Burst, "rate-limit-burst", c.RateLimit.Burst, "rate limit burst (FLAGFORGE_RATE_LIMIT_BURST)")
	fs.StringVar(&c.Auth.OIDCIssuer, "oidc-issuer", c.Auth.OIDCIssuer, "OIDC issuer URL (FLAGFORGE_OIDC_ISSUER)")
	fs.StringVar(&c.Auth.OIDCAudience, "oidc-audience", c.Auth.OIDCAudience, "OIDC audience (FLAGFORGE_OIDC_AUDIENCE)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory: generated signing key, sync token, snapshots (FLAGFORGE_DATA_DIR)")
	fs.StringVar(&c.Signing.Key, "signing-key", c.Signing.Key, "manifest signing key: PEM or path (FLAGFORGE_SIGNING_KEY)")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis for manifest distribution, optional (FLAGFORGE_REDIS_URL)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.Signing.DataDir = c.DataDir
	if c.SnapshotDir == "" && c.DataDir != "" {
		c.SnapshotDir = filepath.Join(c.DataDir, "snapshots")
	}
	return &c, nil
}

// Embedded reports whether the configuration is the single-process embedded
// form (SQLite), where the signing key and the sync token may be generated into
// the data directory. Replicas on PostgreSQL must share both, so they are
// configured explicitly there.
func (c *Config) Embedded() bool {
	kind, _, err := ParseDatabaseURL(c.DatabaseURL)
	return err == nil && kind == SQLite
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	var problems []error
	if _, _, err := ParseDatabaseURL(c.DatabaseURL); err != nil {
		problems = append(problems, err)
	}
	if c.MigrateDatabaseURL != "" {
		if _, _, err := ParseDatabaseURL(c.MigrateDatabaseURL); err != nil {
			problems = append(problems, fmt.Errorf("migrate: %w", err))
		}
	}
	if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
		problems = append(problems, fmt.Errorf("config: gRPC address: %w", err))
	}
	if c.GRPCShutdownTimeout <= 0 {
		problems = append(problems, errors.New("config: gRPC shutdown timeout must be > 0"))
	}
	if _, err := c.Level(); err != nil {
		problems = append(problems, err)
	}
	if err := c.TLSFiles().Validate(); err != nil {
		problems = append(problems, fmt.Errorf("config: FLAGFORGE_TLS_CERT_FILE, _KEY_FILE, _CLIENT_CA_FILE: %w", err))
	} else if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		problems = append(problems, errors.New("config: FLAGFORGE_TLS_CLIENT_CA_FILE needs FLAGFORGE_TLS_CERT_FILE and FLAGFORGE_TLS_KEY_FILE"))
	}
	sync := c.Sync // Validate applies defaults; keep c as loaded
	for _, v := range []interface{ Validate() error }{c.HTTP, c.Limits.WithDefaults(), c.Auth, c.RateLimit, c.Bootstrap, c.Signing,
		c.Publisher.WithDefaults(), &sync, c.Schedule, c.Release.WithDefaults(), c.Webhooks, c.Lifecycle, c.Audit, c.Checkpoints} {
		if err := v.Validate(); err != nil {
			problems = append(problems, err)
		}
	}
	if !c.Embedded() {
		if c.Signing.Key == "" {
			problems = append(problems, errors.New("config: FLAGFORGE_SIGNING_KEY is required with PostgreSQL (replicas must sign with one key; `keys generate` makes one)"))
		}
		if c.Sync.Token == "" {
			problems = append(problems, errors.New("config: FLAGFORGE_SYNC_TOKEN is required with PostgreSQL (replicas must accept the same evaluator token)"))
		}
	} else if c.Sync.Token == "" && c.DataDir == "" {
		problems = append(problems, errors.New("config: set FLAGFORGE_SYNC_TOKEN or a data directory for a generated one"))
	}
	if c.RedisURL != "" {
		if err := redisconn.Validate(c.RedisURL); err != nil {
			problems = append(problems, fmt.Errorf("config: Redis URL: %w", err))
		}
	}
	if c.S3.Enabled() {
		if err := c.S3.Validate(); err != nil {
			problems = append(problems, err)
		}
	} else if c.SnapshotDir == "" {
		problems = append(problems, errors.New("config: set a snapshot directory, a data directory or an S3 bucket"))
	}
	return errors.Join(problems...)
}

// ValidateDatabase checks what a command that only touches the database needs
// (migrate): the database URLs and the log level.
func (c *Config) ValidateDatabase() error {
	var problems []error
	if _, _, err := ParseDatabaseURL(c.DatabaseURL); err != nil {
		problems = append(problems, err)
	}
	if c.MigrateDatabaseURL != "" {
		if _, _, err := ParseDatabaseURL(c.MigrateDatabaseURL); err != nil {
			problems = append(problems, fmt.Errorf("migrate: %w", err))
		}
	}
	if _, err := c.Level(); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// TLSFiles are the listeners' TLS files (none set: plaintext).
func (c *Config) TLSFiles() tlsfiles.Files {
	return tlsfiles.Files{Cert: c.TLSCertFile, Key: c.TLSKeyFile, CA: c.TLSClientCAFile}
}

// Level is the parsed log level.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("config: log level %q: %w", c.LogLevel, err)
	}
	return l, nil
}

// Database kinds.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// ParseDatabaseURL returns the kind of database and what to open: the file path
// for SQLite, the URL itself for PostgreSQL.
func ParseDatabaseURL(raw string) (kind, target string, err error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		p := strings.TrimPrefix(raw, "sqlite://")
		if p == "" {
			return "", "", errors.New("config: sqlite URL needs a path (sqlite://./data/flagforge.db)")
		}
		return SQLite, p, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("config: database URL: %w", err)
		}
		return Postgres, raw, nil
	default:
		return "", "", errors.New(`config: database URL must start with "sqlite://" or "postgres://"`)
	}
}
