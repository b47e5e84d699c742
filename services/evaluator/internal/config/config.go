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
	"slices"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/redisconn"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
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
	// TLSCertFile and TLSKeyFile, when set, serve the gRPC and HTTP listeners
	// over TLS (PEM files, reloaded when they change).
	TLSCertFile string `env:"TLS_CERT_FILE"`
	TLSKeyFile  string `env:"TLS_KEY_FILE"`
	// SyncTLS connects to the control plane (sync stream, usage reports) over
	// TLS; implied by any SyncTLS* file. Without SyncTLSCAFile the system roots
	// verify the control plane.
	SyncTLS bool `env:"SYNC_TLS"`
	// SyncTLSCAFile verifies the control plane's certificate.
	SyncTLSCAFile string `env:"SYNC_TLS_CA_FILE"`
	// SyncTLSCertFile and SyncTLSKeyFile are this evaluator's client certificate
	// (mTLS; reloaded when they change).
	SyncTLSCertFile string `env:"SYNC_TLS_CERT_FILE"`
	SyncTLSKeyFile  string `env:"SYNC_TLS_KEY_FILE"`
	// SyncTLSServerName overrides the name verified in the control plane's
	// certificate (default: the host of the address).
	SyncTLSServerName string `env:"SYNC_TLS_SERVER_NAME"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT, default=15s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL, default=info"`

	// StreamHeartbeat is the heartbeat period of StreamManifest and /v1/sse.
	StreamHeartbeat time.Duration `env:"STREAM_HEARTBEAT, default=15s"`
	// StreamBuffer is each manifest subscriber's queue length; a subscriber whose
	// queue is full is dropped (slow_consumer).
	StreamBuffer int `env:"STREAM_BUFFER, default=64"`
	// StreamRing is how many recent deltas per environment are kept for resumption.
	StreamRing int `env:"STREAM_RING, default=128"`
	// MaxStreamsPerKey caps concurrent streams (StreamManifest + SSE) per SDK key
	// (0: no cap).
	MaxStreamsPerKey int `env:"MAX_STREAMS_PER_KEY, default=1000"`
	// MaxStreams caps concurrent streams of the process (0: no cap).
	MaxStreams int `env:"MAX_STREAMS, default=20000"`
	// RateLimit is the calls per second allowed per SDK key (0: unlimited).
	RateLimit float64 `env:"RATE_LIMIT, default=1000"`
	// RateBurst is the burst allowed per SDK key (0: RateLimit rounded up).
	RateBurst int `env:"RATE_BURST, default=2000"`
	// CORSOrigins may call /v1/evaluate, /v1/evaluate/all and /v1/sse from browsers:
	// comma-separated origins, or "*" ("": none).
	CORSOrigins string `env:"CORS_ORIGINS"`
	// UsageInterval is the period of usage reports to the control plane.
	UsageInterval time.Duration `env:"USAGE_INTERVAL, default=1m"`
	// UsageAddr is the control plane's gRPC address for usage reports when the
	// manifests come from Redis (with the sync stream, SyncAddr is used); "" with
	// no SyncAddr: evaluations are not counted.
	UsageAddr string `env:"USAGE_ADDR"`
	// SeenContextsPerMinute bounds the contexts sampled per environment and minute
	// for impact previews (docs/release-safety.md; 0: none sampled).
	SeenContextsPerMinute int `env:"SEEN_CONTEXTS_PER_MINUTE, default=100"`
	// AdminAddr serves pprof (/debug/pprof/); "" disables it. Keep it on loopback.
	AdminAddr string `env:"ADMIN_ADDR, default=127.0.0.1:6061"`
	// OTLPEndpoint receives traces over OTLP/gRPC ("host:port" plaintext, or an
	// http(s):// URL); "": tracing is off (no-op).
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`

	// Limits bound every HTTP and gRPC request: body size (FLAGFORGE_MAX_REQUEST_BYTES),
	// read timeouts, stream write timeout, keepalive pings (see pkg/limits).
	Limits limits.Config
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
	fs.DurationVar(&c.StreamHeartbeat, "stream-heartbeat", c.StreamHeartbeat, "stream heartbeat period (FLAGFORGE_STREAM_HEARTBEAT)")
	fs.IntVar(&c.StreamBuffer, "stream-buffer", c.StreamBuffer, "per-subscriber queue length (FLAGFORGE_STREAM_BUFFER)")
	fs.IntVar(&c.StreamRing, "stream-ring", c.StreamRing, "recent deltas kept per environment (FLAGFORGE_STREAM_RING)")
	fs.IntVar(&c.MaxStreamsPerKey, "max-streams-per-key", c.MaxStreamsPerKey, "concurrent streams per SDK key, 0: no cap (FLAGFORGE_MAX_STREAMS_PER_KEY)")
	fs.IntVar(&c.MaxStreams, "max-streams", c.MaxStreams, "concurrent streams per process, 0: no cap (FLAGFORGE_MAX_STREAMS)")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "calls per second per SDK key, 0: unlimited (FLAGFORGE_RATE_LIMIT)")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "burst per SDK key (FLAGFORGE_RATE_BURST)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", c.CORSOrigins, `browser origins allowed, comma-separated or "*" (FLAGFORGE_CORS_ORIGINS)`)
	fs.DurationVar(&c.UsageInterval, "usage-interval", c.UsageInterval, "usage report period (FLAGFORGE_USAGE_INTERVAL)")
	fs.StringVar(&c.UsageAddr, "usage-addr", c.UsageAddr, "control plane gRPC address for usage reports with Redis (FLAGFORGE_USAGE_ADDR)")
	fs.IntVar(&c.SeenContextsPerMinute, "seen-contexts-per-minute", c.SeenContextsPerMinute, "contexts sampled per environment and minute for impact previews, 0: none (FLAGFORGE_SEEN_CONTEXTS_PER_MINUTE)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, `pprof listen address, "" disables (FLAGFORGE_ADMIN_ADDR)`)
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-request-bytes", c.Limits.MaxBodyBytes, "largest request body or gRPC message (FLAGFORGE_MAX_REQUEST_BYTES)")
	fs.StringVar(&c.OTLPEndpoint, "otel-exporter-otlp-endpoint", c.OTLPEndpoint, "OTLP/gRPC trace endpoint (FLAGFORGE_OTEL_EXPORTER_OTLP_ENDPOINT)")
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

// CORSOriginList returns the allowed browser origins.
func (c *Config) CORSOriginList() []string {
	var out []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// UsageTarget is the control plane address usage reports go to ("": none).
func (c *Config) UsageTarget() string {
	if c.SyncAddr != "" {
		return c.SyncAddr
	}
	return c.UsageAddr
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

// ListenerTLS are the files of the listeners' TLS (none: plaintext).
func (c *Config) ListenerTLS() tlsfiles.Files {
	return tlsfiles.Files{Cert: c.TLSCertFile, Key: c.TLSKeyFile}
}

// ControlPlaneTLS are the files of the connection to the control plane; ok is
// false for plaintext.
func (c *Config) ControlPlaneTLS() (f tlsfiles.Files, ok bool) {
	f = tlsfiles.Files{CA: c.SyncTLSCAFile, Cert: c.SyncTLSCertFile, Key: c.SyncTLSKeyFile, ServerName: c.SyncTLSServerName}
	return f, c.SyncTLS || f.Enabled() || f.ServerName != ""
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
		if u, err := url.Parse(c.RedisURL); err != nil || !slices.Contains(redisconn.Schemes, u.Scheme) {
			problems = append(problems, fmt.Errorf("FLAGFORGE_REDIS_URL: %q is not a redis://, rediss://, unix://, redis-sentinel://, redis-cluster:// or rediss-cluster:// URL", redisconn.Redacted(c.RedisURL)))
		} else if err := redisconn.Validate(c.RedisURL); err != nil {
			problems = append(problems, fmt.Errorf("FLAGFORGE_REDIS_URL: %w", err))
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
	if err := c.ListenerTLS().Validate(); err != nil {
		problems = append(problems, fmt.Errorf("FLAGFORGE_TLS_CERT_FILE and FLAGFORGE_TLS_KEY_FILE: %w", err))
	}
	if f, _ := c.ControlPlaneTLS(); f.Validate() != nil {
		problems = append(problems, fmt.Errorf("FLAGFORGE_SYNC_TLS_CA_FILE, _CERT_FILE, _KEY_FILE: %w", f.Validate()))
	}
	if c.ShutdownTimeout <= 0 {
		problems = append(problems, errors.New("FLAGFORGE_SHUTDOWN_TIMEOUT: must be positive"))
	}
	if _, err := c.SlogLevel(); err != nil {
		problems = append(problems, err)
	}
	if c.StreamHeartbeat < 10*time.Millisecond {
		problems = append(problems, fmt.Errorf("FLAGFORGE_STREAM_HEARTBEAT: %s is below 10ms", c.StreamHeartbeat))
	}
	if c.StreamBuffer < 1 || c.StreamRing < 1 {
		problems = append(problems, errors.New("FLAGFORGE_STREAM_BUFFER and FLAGFORGE_STREAM_RING: must be at least 1"))
	}
	if c.MaxStreamsPerKey < 0 || c.MaxStreams < 0 {
		problems = append(problems, errors.New("FLAGFORGE_MAX_STREAMS_PER_KEY and FLAGFORGE_MAX_STREAMS: must not be negative"))
	}
	if c.RateLimit < 0 || c.RateBurst < 0 {
		problems = append(problems, errors.New("FLAGFORGE_RATE_LIMIT and FLAGFORGE_RATE_BURST: must not be negative"))
	}
	if c.SeenContextsPerMinute < 0 || c.SeenContextsPerMinute > 10_000 {
		problems = append(problems, errors.New("FLAGFORGE_SEEN_CONTEXTS_PER_MINUTE: must be between 0 and 10000"))
	}
	if c.UsageInterval < 10*time.Millisecond {
		problems = append(problems, fmt.Errorf("FLAGFORGE_USAGE_INTERVAL: %s is below 10ms", c.UsageInterval))
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			problems = append(problems, fmt.Errorf("FLAGFORGE_ADMIN_ADDR: %w", err))
		}
	}
	for _, o := range c.CORSOriginList() {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			problems = append(problems, fmt.Errorf("FLAGFORGE_CORS_ORIGINS: %q is not an origin such as https://app.example.com", o))
		}
	}
	if err := c.Limits.WithDefaults().Validate(); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}
