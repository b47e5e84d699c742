package config_test

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
)

func load(t *testing.T, env map[string]string, args ...string) *config.Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c, err := config.Load(context.Background(), fs, args, envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaultsAreTheDocumentedOnes(t *testing.T) {
	t.Parallel()
	c := load(t, nil)
	if c.GRPCAddr != "127.0.0.1:9091" || c.HTTPAddr != "127.0.0.1:8081" || c.Environments != "*" ||
		c.RedisKeyPrefix != "ff:" || c.ResyncInterval.String() != "30s" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.EnvironmentList() != nil {
		t.Fatal(`"*" should mean every environment`)
	}
}

func TestFlagsWinOverEnvironmentVariables(t *testing.T) {
	t.Parallel()
	c := load(t, map[string]string{"FLAGFORGE_GRPC_ADDR": "127.0.0.1:1"}, "-grpc-addr", "127.0.0.1:2")
	if c.GRPCAddr != "127.0.0.1:2" {
		t.Fatalf("grpc addr %q", c.GRPCAddr)
	}
}

func TestTrustedKeysInlineOrFiles(t *testing.T) {
	t.Parallel()
	_, pub1, _ := manifest.GenerateKey()
	_, pub2, _ := manifest.GenerateKey()
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "1.pem"), filepath.Join(dir, "2.pem")
	_ = os.WriteFile(f1, pub1, 0o600)
	_ = os.WriteFile(f2, pub2, 0o600)
	for name, v := range map[string]string{"inline, two blocks": string(pub1) + string(pub2), "two files": f1 + "," + f2} {
		c := load(t, map[string]string{"FLAGFORGE_TRUSTED_KEYS": v})
		keys, err := c.PublicKeys()
		if err != nil || len(keys) != 2 {
			t.Fatalf("%s: %d keys, %v", name, len(keys), err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := load(t, map[string]string{
		"FLAGFORGE_ENVIRONMENTS": "acme/web", "FLAGFORGE_REDIS_URL": "http://x", "FLAGFORGE_HTTP_ADDR": "nope",
		"FLAGFORGE_LOG_LEVEL": "loud",
	})
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"FLAGFORGE_ENVIRONMENTS", "FLAGFORGE_REDIS_URL", "FLAGFORGE_TRUSTED_KEYS", "FLAGFORGE_HTTP_ADDR", "FLAGFORGE_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate did not mention %s: %v", want, err)
		}
	}
}

func TestTLSSettingsAreCheckedAndNamed(t *testing.T) {
	t.Parallel()
	_, pub, _ := manifest.GenerateKey()
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"listener certificate without key":    {map[string]string{"FLAGFORGE_TLS_CERT_FILE": "/etc/tls/tls.crt"}, "FLAGFORGE_TLS_CERT_FILE"},
		"sync client key without certificate": {map[string]string{"FLAGFORGE_SYNC_TLS_KEY_FILE": "/etc/tls/client.key"}, "FLAGFORGE_SYNC_TLS_"},
		"sync CA that does not exist":         {map[string]string{"FLAGFORGE_SYNC_TLS_CA_FILE": "/nonexistent/ca.pem"}, "FLAGFORGE_SYNC_TLS_CA_FILE"},
	} {
		env := map[string]string{"FLAGFORGE_TRUSTED_KEYS": string(pub)}
		for k, v := range tc.env {
			env[k] = v
		}
		err := load(t, env).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	c := load(t, map[string]string{"FLAGFORGE_SYNC_TLS": "true"})
	if f, ok := c.ControlPlaneTLS(); !ok || f.Enabled() {
		t.Errorf("FLAGFORGE_SYNC_TLS=true: %+v %v, want TLS with the system roots", f, ok)
	}
	if _, ok := load(t, nil).ControlPlaneTLS(); ok {
		t.Error("TLS to the control plane without any setting")
	}
}
