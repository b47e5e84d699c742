package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// composeEnv is what deploy/compose/secrets.sh writes into .env.
var composeEnv = map[string]string{
	"POSTGRES_PASSWORD":         "pg-password",
	"MINIO_ROOT_PASSWORD":       "minio-password",
	"FLAGFORGE_SYNC_TOKEN":      "sync-token",
	"FLAGFORGE_BOOTSTRAP_TOKEN": "ffat_0123456789012345678901234567890123456789",
}

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(deployDir, "compose"))
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("flagforge", true) })
}

func TestComposeFileLoadsWithTheComposeSpecLoader(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"controlplane-1", "controlplane-2", "controlplane-migrate", "evaluator-1", "evaluator-2",
		"minio", "minio-init", "postgres", "prometheus", "redis"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for _, name := range []string{"controlplane-1", "controlplane-2", "controlplane-migrate", "evaluator-1", "evaluator-2"} {
		s := p.Services[name]
		if !s.ReadOnly || s.User != "65532:65532" || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: must run read-only as 65532 with no capabilities and no-new-privileges", name)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %d published on %q, want loopback", name, port.Target, port.HostIP)
			}
		}
		if name != "controlplane-migrate" && (s.HealthCheck == nil || !slices.Contains(s.HealthCheck.Test, "healthcheck")) {
			t.Errorf("%s: no healthcheck through the binary's healthcheck command", name)
		}
	}
	// Both control-plane replicas share PostgreSQL (one publisher by advisory
	// lock), Redis and S3, and answer to one name for the evaluators.
	for _, name := range []string{"controlplane-1", "controlplane-2"} {
		s := p.Services[name]
		if db := deref(s.Environment["FLAGFORGE_DATABASE_URL"]); !strings.HasPrefix(db, "postgres://flagforge:pg-password@postgres:5432/") {
			t.Errorf("%s: database URL %q", name, db)
		}
		if deref(s.Environment["FLAGFORGE_SNAPSHOT_S3_BUCKET"]) == "" || deref(s.Environment["FLAGFORGE_REDIS_URL"]) == "" {
			t.Errorf("%s: needs Redis and S3 snapshots", name)
		}
		checkS3Endpoint(t, name, deref(s.Environment["FLAGFORGE_SNAPSHOT_S3_ENDPOINT"]))
		if !slices.Contains(s.Networks["backend"].Aliases, "controlplane") {
			t.Errorf("%s: not reachable as controlplane on the backend network", name)
		}
	}
	// Evaluators are not on the network of PostgreSQL and MinIO.
	for _, name := range []string{"evaluator-1", "evaluator-2", "prometheus"} {
		if _, ok := p.Services[name].Networks["data"]; ok {
			t.Errorf("%s is on the data network (PostgreSQL, MinIO)", name)
		}
	}
	if _, ok := p.Services["postgres"].Networks["backend"]; ok {
		t.Error("postgres is on the backend network: evaluators could reach it")
	}
	if got := p.Services["controlplane-1"].Ports; len(got) == 0 || got[0].Target != 8080 {
		t.Errorf("the console (control plane HTTP 8080) is not published: %+v", got)
	}
	checkPrometheusScrapesEveryProcess(t, p)
}

func TestComposeRefusesToStartWithoutSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{}
	for k, v := range composeEnv {
		if k != "FLAGFORGE_SYNC_TOKEN" {
			env[k] = v
		}
	}
	_, err := loadCompose(t, env)
	if err == nil || !strings.Contains(err.Error(), "secrets.sh") {
		t.Fatalf("loaded without FLAGFORGE_SYNC_TOKEN: %v", err)
	}
}

// checkPrometheusScrapesEveryProcess reads deploy/compose/prometheus.yml: every
// control plane and evaluator is a target on its HTTP port, and the alert rules
// are loaded.
func checkPrometheusScrapesEveryProcess(t *testing.T, p *types.Project) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, "compose", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for name, s := range p.Services {
		port := ""
		switch {
		case strings.HasPrefix(name, "controlplane-") && name != "controlplane-migrate":
			port = "8080"
		case strings.HasPrefix(name, "evaluator-"):
			port = "8081"
		default:
			continue
		}
		if addr := deref(s.Environment["FLAGFORGE_HTTP_ADDR"]); !strings.HasSuffix(addr, ":"+port) {
			t.Errorf("%s listens for HTTP on %q, Prometheus scrapes :%s", name, addr, port)
		}
		if !slices.Contains(targets, name+":"+port) {
			t.Errorf("Prometheus does not scrape %s:%s (targets %v)", name, port, targets)
		}
	}
	var mounted bool
	for _, v := range p.Services["prometheus"].Volumes {
		for _, rf := range cfg.RuleFiles {
			mounted = mounted || (v.Target == rf && strings.HasSuffix(v.Source, filepath.Join("deploy", "prometheus", "alerts.yml")))
		}
	}
	if !mounted {
		t.Error("Prometheus does not load deploy/prometheus/alerts.yml")
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// checkS3Endpoint: the control plane refuses an S3 endpoint with a scheme
// (host[:port] only; FLAGFORGE_SNAPSHOT_S3_INSECURE selects plain HTTP) and would
// not start, leaving no snapshots to recover from.
func checkS3Endpoint(t *testing.T, where, endpoint string) {
	t.Helper()
	if strings.Contains(endpoint, "://") {
		t.Errorf("%s: FLAGFORGE_SNAPSHOT_S3_ENDPOINT %q has a scheme; the control plane wants host[:port]", where, endpoint)
	}
}
