package config

import (
	"context"
	"flag"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
)

func load(t *testing.T, env map[string]string, args ...string) *Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c, err := Load(context.Background(), fs, args, envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := load(t, nil)
	if c.DatabaseURL != "sqlite://./data/flagforge.db" || c.GRPCAddr != "127.0.0.1:9090" || c.HTTP.Addr != "127.0.0.1:8080" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.GRPCShutdownTimeout != 15*time.Second || c.RateLimit.Rate != 50 || c.RateLimit.Burst != 100 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.DataDir != "./data" || c.Signing.DataDir != "./data" || c.SnapshotDir != filepath.Join("data", "snapshots") || c.RedisURL != "" || !c.Embedded() {
		t.Fatalf("embedded defaults: %+v", c)
	}
	if c.Publisher.Lifetime != 7*24*time.Hour || c.Publisher.History != 50 || c.Publisher.RedisPrefix != "ff:" ||
		c.Sync.Heartbeat != 15*time.Second || c.Sync.MaxDeltas != 50 || c.Schedule.PollInterval != time.Second ||
		c.Webhooks.MaxAttempts != 12 || c.Lifecycle.StaleAfter != 720*time.Hour {
		t.Fatalf("publisher, sync and governance defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvironmentThenFlags(t *testing.T) {
	t.Parallel()
	c := load(t, map[string]string{
		"FLAGFORGE_DATABASE_URL":   "postgres://app@localhost/flagforge",
		"FLAGFORGE_HTTP_ADDR":      "0.0.0.0:8000",
		"FLAGFORGE_RATE_LIMIT_RPS": "5",
		"FLAGFORGE_OIDC_ISSUER":    "https://idp.example",
		"FLAGFORGE_OIDC_AUDIENCE":  "flagforge",
		"FLAGFORGE_BOOTSTRAP_ORG":  "acme",
	}, "--http-addr", "127.0.0.1:9999")
	if c.DatabaseURL != "postgres://app@localhost/flagforge" || c.RateLimit.Rate != 5 || c.Auth.OIDCIssuer != "https://idp.example" {
		t.Fatalf("env not applied: %+v", c)
	}
	if c.HTTP.Addr != "127.0.0.1:9999" {
		t.Fatalf("flag must win over env: %s", c.HTTP.Addr)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("bootstrap org without email and token accepted")
	}
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]map[string]string{
		"unknown database":        {"FLAGFORGE_DATABASE_URL": "mysql://x"},
		"bad grpc address":        {"FLAGFORGE_GRPC_ADDR": "9090"},
		"bad log level":           {"FLAGFORGE_LOG_LEVEL": "loud"},
		"negative rate":           {"FLAGFORGE_RATE_LIMIT_RPS": "-1"},
		"issuer without audience": {"FLAGFORGE_OIDC_ISSUER": "https://idp.example"},
		"postgres without signing key and sync token": {"FLAGFORGE_DATABASE_URL": "postgres://app@localhost/flagforge"},
		"postgres without sync token":                 {"FLAGFORGE_DATABASE_URL": "postgres://app@localhost/flagforge", "FLAGFORGE_SIGNING_KEY": "/etc/flagforge/key.pem"},
		"bad redis url":                               {"FLAGFORGE_REDIS_URL": "http://127.0.0.1:6379"},
		"s3 without bucket":                           {"FLAGFORGE_SNAPSHOT_S3_ENDPOINT": "s3.example"},
		"short manifest lifetime":                     {"FLAGFORGE_MANIFEST_LIFETIME": "30s"},
		"tls certificate without key":                 {"FLAGFORGE_TLS_CERT_FILE": "/etc/tls/tls.crt"},
		"tls client CA without a certificate":         {"FLAGFORGE_TLS_CLIENT_CA_FILE": "/dev/null"},
		"tls files that do not exist":                 {"FLAGFORGE_TLS_CERT_FILE": "/nonexistent/tls.crt", "FLAGFORGE_TLS_KEY_FILE": "/nonexistent/tls.key"},
		"negative audit interval":                     {"FLAGFORGE_AUDIT_VERIFY_INTERVAL": "-1h"},
		"history of one":                              {"FLAGFORGE_MANIFEST_HISTORY": "1"},
		"bad webhook attempts":                        {"FLAGFORGE_WEBHOOK_MAX_ATTEMPTS": "0"},
		"short bootstrap token": {
			"FLAGFORGE_BOOTSTRAP_ORG": "acme", "FLAGFORGE_BOOTSTRAP_EMAIL": "a@acme.test", "FLAGFORGE_BOOTSTRAP_TOKEN": "ffat_short",
		},
	}
	for name, env := range tests {
		if err := load(t, env).Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPostgresWithSharedSecrets: on PostgreSQL the signing key and the sync token
// come from the environment (replicas share them); the rest maps as documented.
func TestPostgresWithSharedSecrets(t *testing.T) {
	t.Parallel()
	c := load(t, map[string]string{
		"FLAGFORGE_DATABASE_URL":         "postgres://app@localhost/flagforge",
		"FLAGFORGE_SIGNING_KEY":          "/etc/flagforge/signing-key.pem",
		"FLAGFORGE_SYNC_TOKEN":           "a-long-enough-sync-token",
		"FLAGFORGE_REDIS_URL":            "redis://127.0.0.1:6379/0",
		"FLAGFORGE_REDIS_KEY_PREFIX":     "blue:",
		"FLAGFORGE_SNAPSHOT_S3_BUCKET":   "manifests",
		"FLAGFORGE_SNAPSHOT_S3_ENDPOINT": "s3.example",
		"FLAGFORGE_MANIFEST_LIFETIME":    "48h",
	}, "--data-dir", "/var/lib/flagforge")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Embedded() || c.Signing.Key != "/etc/flagforge/signing-key.pem" || c.Sync.Token != "a-long-enough-sync-token" ||
		c.Publisher.RedisPrefix != "blue:" || !c.S3.Enabled() || c.Publisher.Lifetime != 48*time.Hour ||
		c.SnapshotDir != "/var/lib/flagforge/snapshots" {
		t.Fatalf("%+v", c)
	}
}

func TestParseDatabaseURL(t *testing.T) {
	t.Parallel()
	if k, p, err := ParseDatabaseURL("sqlite://./data/x.db"); err != nil || k != SQLite || p != "./data/x.db" {
		t.Fatalf("%s %s %v", k, p, err)
	}
	if k, _, err := ParseDatabaseURL("postgresql://u@h/db"); err != nil || k != Postgres {
		t.Fatalf("%s %v", k, err)
	}
}
