// Package config loads the evaluator's configuration in one place: FLAGFORGE_*
// environment variables (go-envconfig, defaults in the struct tags), then
// command-line flags, which win. Validate checks everything before anything starts.
package config

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/flagforge/flagforge/pkg/manifest"
)

// EnvPrefix starts every environment variable.
const EnvPrefix = "FLAGFORGE_"

// Config is the evaluator's whole configuration.
type Config struct {
	// Environments served: "org/project/env,..." or "*" (every environment published).
	Environments string `env:"ENVIRONMENTS, default=*"`
	// RedisURL of the manifest cache and change events; "" disables the Redis source.
	RedisURL string `env:"REDIS_URL"`
	// RedisKeyPrefix starts every Redis key and the channel name.
	RedisKeyPrefix string `env:"REDIS_KEY_PREFIX, default=ff:"`
	// ResyncInterval is the period of the full re-read safety net.
	ResyncInterval time.Duration `env:"RESYNC_INTERVAL, default=30s"`
	// SyncAddr is the control plane's gRPC address for the sync stream (used when no
	// Redis URL is set); "" disables it.
	SyncAddr string `env:"SYNC_ADDR"`
	// SyncToken is the service token for the sync stream.
	SyncToken string `env:"SYNC_TOKEN"`
	// TrustedKeys are the manifest signing public keys: inline PEM (one or more
	// blocks), or a comma-separated list of PEM file paths.
	TrustedKeys string `env:"TRUSTED_KEYS"`
	// DataDir holds the local copies of the last good manifests; "" disables them.
	DataDir string `env:"DATA_DIR, default=./data/evaluator"`
	// GRPCAddr is the gRPC listen address.
	GRPCAddr string `env:"GRPC_ADDR, default=127.0.0.1:9091"`
	// HTTPAddr is the HTTP (REST gateway, health, metrics) listen address.
	HTTPAddr string `env:"HTTP_ADDR, default=127.0.0.1:8081"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT, default=15s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL, default=info"`
}

// Load reads the environment (through lookup; nil: the process environment) and
// then the flags in args, registered on fs. It does not validate.
func Load(ctx context.Context, fs *flag.FlagSet, args []string, lookup envconfig.Lookuper) (*Config, error) {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: envconfig.PrefixLookuper(EnvPrefix, lookup)}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fs.StringVar(&c.Environments, "environments", c.Environments, `environments served: "org/project/env,..." or "*" (FLAGFORGE_ENVIRONMENTS)`)
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL of the manifest cache (FLAGFORGE_REDIS_URL)")
	fs.StringVar(&c.RedisKeyPrefix, "redis-key-prefix", c.RedisKeyPrefix, "Redis key prefix (FLAGFORGE_REDIS_KEY_PREFIX)")
	fs.DurationVar(&c.ResyncInterval, "resync-interval", c.ResyncInterval, "full re-read period (FLAGFORGE_RESYNC_INTERVAL)")
	fs.StringVar(&c.SyncAddr, "sync-addr", c.SyncAddr, "control plane gRPC address for the sync stream (FLAGFORGE_SYNC_ADDR)")
	fs.StringVar(&c.TrustedKeys, "trusted-keys", c.TrustedKeys, "trusted public keys: inline PEM or comma-separated PEM files (FLAGFORGE_TRUSTED_KEYS)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "local manifest copies (FLAGFORGE_DATA_DIR)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address (FLAGFORGE_GRPC_ADDR)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address (FLAGFORGE_HTTP_ADDR)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful drain bound (FLAGFORGE_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn, error (FLAGFORGE_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return &c, nil
}

// EnvironmentList returns the environments served; nil means every one ("*").
func (c *Config) EnvironmentList() []string {
	if strings.TrimSpace(c.Environments) == "*" {
		return nil
	}
	var out []string
	for _, t := range strings.Split(c.Environments, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// PublicKeys loads and parses the trusted keys.
func (c *Config) PublicKeys() ([]ed25519.PublicKey, error) {
	v := strings.TrimSpace(c.TrustedKeys)
	if v == "" {
		return nil, errors.New("FLAGFORGE_TRUSTED_KEYS: at least one trusted public key is required")
	}
	var sources []string
	if strings.HasPrefix(v, "-----BEGIN") {
		sources = []string{v}
	} else {
		sources = strings.Split(v, ",")
	}
	var keys []ed25519.PublicKey
	for _, s := range sources {
		pemBytes, err := manifest.LoadPEM(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("FLAGFORGE_TRUSTED_KEYS: %w", err)
		}
		ks, err := manifest.ParsePublicKeys(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("FLAGFORGE_TRUSTED_KEYS: %w", err)
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}

// SlogLevel parses LogLevel.
func (c *Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("FLAGFORGE_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// Validate checks the whole configuration and reports every problem.
func (c *Config) Validate() error {
	var problems []error
	if strings.TrimSpace(c.Environments) != "*" {
		list := c.EnvironmentList()
		if len(list) == 0 {
			problems = append(problems, errors.New(`FLAGFORGE_ENVIRONMENTS: name at least one "org/project/environment", or "*"`))
		}
		for _, t := range list {
			parts := strings.Split(t, "/")
			if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || strings.ContainsAny(t, " .\\") {
				problems = append(problems, fmt.Errorf("FLAGFORGE_ENVIRONMENTS: %q is not org/project/environment", t))
			}
		}
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			problems = append(problems, fmt.Errorf("FLAGFORGE_REDIS_URL: %q is not a redis://, rediss:// or unix:// URL", c.RedisURL))
		}
	}
	if c.RedisKeyPrefix == "" {
		problems = append(problems, errors.New("FLAGFORGE_REDIS_KEY_PREFIX: must not be empty"))
	}
	if c.RedisURL != "" && c.SyncAddr != "" {
		problems = append(problems, errors.New("FLAGFORGE_REDIS_URL and FLAGFORGE_SYNC_ADDR: choose one source"))
	}
	if c.ResyncInterval < time.Second {
		problems = append(problems, fmt.Errorf("FLAGFORGE_RESYNC_INTERVAL: %s is below 1s", c.ResyncInterval))
	}
	if _, err := c.PublicKeys(); err != nil {
		problems = append(problems, err)
	}
	for name, addr := range map[string]string{"FLAGFORGE_GRPC_ADDR": c.GRPCAddr, "FLAGFORGE_HTTP_ADDR": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
		}
	}
	if c.ShutdownTimeout <= 0 {
		problems = append(problems, errors.New("FLAGFORGE_SHUTDOWN_TIMEOUT: must be positive"))
	}
	if _, err := c.SlogLevel(); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}
