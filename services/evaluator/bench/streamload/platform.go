package streamload

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	org, project, environment = "bench", "streams", "production"
	envPath                   = "/v1/orgs/" + org + "/projects/" + project + "/environments/" + environment
	// ChangedFlag is the client-visible flag the run turns on and off.
	ChangedFlag = "stream-bench-toggle"
)

// platform is the control plane (SQLite, embedded form) and one evaluator
// following it over the gRPC sync stream, as real processes on 127.0.0.1.
type platform struct {
	dir        string
	cp, ev     *proc
	cpHTTP     string
	evHTTP     string
	evGRPC     string
	evAdmin    string
	adminToken string
	serverKey  string
	clientKey  string
	revision   int64 // ChangedFlag's configuration revision
}

// startPlatform builds and starts both processes, creates the project, an SDK
// key of each kind, flags client-visible flags plus ChangedFlag (off), and waits
// until the evaluator serves them.
func startPlatform(ctx context.Context, cfg Config, dir string) (*platform, error) {
	cpBin, evBin := filepath.Join(cfg.Bin, "flagforge-controlplane"), filepath.Join(cfg.Bin, "flagforge-evaluator")
	if cfg.Bin == "" {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		if cpBin, evBin, err = buildBinaries(root, dir); err != nil {
			return nil, err
		}
	}
	pl := &platform{dir: dir, adminToken: "ffat_" + randomHex(20)}
	var err error
	if out, err := exec.Command(cpBin, "keys", "generate", "-dir", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("keys generate: %w\n%s", err, out)
	}
	syncToken := "sync-" + randomHex(16)
	cpGRPC, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if pl.cpHTTP, err = freeAddr(); err != nil {
		return nil, err
	}
	pl.cp, err = startProc("control plane", cpBin, []string{
		"FLAGFORGE_DATABASE_URL=sqlite://" + filepath.Join(dir, "flagforge.db"),
		"FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "controlplane"),
		"FLAGFORGE_SIGNING_KEY=" + filepath.Join(dir, "signing-key.pem"),
		"FLAGFORGE_SYNC_TOKEN=" + syncToken,
		"FLAGFORGE_GRPC_ADDR=" + cpGRPC,
		"FLAGFORGE_HTTP_ADDR=" + pl.cpHTTP,
		"FLAGFORGE_BOOTSTRAP_ORG=" + org,
		"FLAGFORGE_BOOTSTRAP_EMAIL=admin@bench.test",
		"FLAGFORGE_BOOTSTRAP_TOKEN=" + pl.adminToken,
		"FLAGFORGE_RATE_LIMIT_RPS=0",
		"FLAGFORGE_LOG_LEVEL=warn",
	}, "serve")
	if err != nil {
		return nil, err
	}
	if err := pl.cp.waitReady("http://"+pl.cpHTTP+"/readyz", 60*time.Second); err != nil {
		pl.stop()
		return nil, err
	}
	if err := pl.setUp(ctx, cfg.Flags); err != nil {
		pl.stop()
		return nil, err
	}
	for _, a := range []*string{&pl.evHTTP, &pl.evGRPC, &pl.evAdmin} {
		if *a, err = freeAddr(); err != nil {
			pl.stop()
			return nil, err
		}
	}
	pl.ev, err = startProc("evaluator", evBin, append([]string{
		"FLAGFORGE_SYNC_ADDR=" + cpGRPC,
		"FLAGFORGE_SYNC_TOKEN=" + syncToken,
		"FLAGFORGE_TRUSTED_KEYS=" + filepath.Join(dir, "signing-key.pub.pem"),
		"FLAGFORGE_ENVIRONMENTS=" + org + "/" + project + "/" + environment,
		"FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "evaluator"),
		"FLAGFORGE_GRPC_ADDR=" + pl.evGRPC,
		"FLAGFORGE_HTTP_ADDR=" + pl.evHTTP,
		"FLAGFORGE_ADMIN_ADDR=" + pl.evAdmin,
		"FLAGFORGE_RATE_LIMIT=0",
		"FLAGFORGE_MAX_STREAMS=0",
		"FLAGFORGE_MAX_STREAMS_PER_KEY=0",
		"FLAGFORGE_STREAM_HEARTBEAT=" + cfg.Heartbeat.String(),
		"FLAGFORGE_LOG_LEVEL=warn",
	}, cfg.EvaluatorEnv...))
	if err != nil {
		pl.stop()
		return nil, err
	}
	if err := pl.ev.waitReady("http://"+pl.evHTTP+"/readyz", 60*time.Second); err != nil {
		pl.stop()
		return nil, err
	}
	// Wait until the evaluator serves the changed flag.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := call(ctx, "POST", "http://"+pl.evHTTP+"/v1/evaluate", pl.serverKey, map[string]any{"flagKey": ChangedFlag})
		if err == nil && out["reason"] != nil && out["errorCode"] == nil {
			return pl, nil
		}
		if time.Now().After(deadline) {
			pl.stop()
			return nil, fmt.Errorf("the evaluator does not serve %s after 30s: %v: %w", ChangedFlag, out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (pl *platform) admin(ctx context.Context, method, path string, body any) (map[string]any, error) {
	return call(ctx, method, "http://"+pl.cpHTTP+path, pl.adminToken, body)
}

// setUp creates the project, the keys and the flags: flags-1 client-visible
// flags targeting the context's plan, and ChangedFlag (off, client-visible).
func (pl *platform) setUp(ctx context.Context, flags int) error {
	if _, err := pl.admin(ctx, "POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Streams"}}); err != nil {
		return err
	}
	for _, k := range []struct {
		kind string
		dst  *string
	}{{"SDK_KEY_KIND_SERVER", &pl.serverKey}, {"SDK_KEY_KIND_CLIENT", &pl.clientKey}} {
		out, err := pl.admin(ctx, "POST", envPath+"/sdk-keys", map[string]any{"name": "bench " + k.kind, "kind": k.kind})
		if err != nil {
			return err
		}
		*k.dst, _ = out["secret"].(string)
	}
	for i := range max(flags-1, 0) {
		key := "bench-flag-" + strconv.Itoa(i)
		if _, err := pl.admin(ctx, "POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{
			"key": key, "type": "FLAG_TYPE_BOOLEAN", "clientVisible": true}}); err != nil {
			return err
		}
		rev, err := pl.flagRevision(ctx, key)
		if err != nil {
			return err
		}
		if _, err := pl.admin(ctx, "PUT", envPath+"/flags/"+key, map[string]any{"config": map[string]any{
			"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "off"},
			"rules": []any{map[string]any{"id": "paid", "clauses": []any{map[string]any{"attribute": "plan", "operator": "OPERATOR_IN", "values": []any{"pro", "enterprise"}}},
				"serve": map[string]any{"variant": "on"}}},
		}, "revision": rev}); err != nil {
			return fmt.Errorf("flag %s: %w", key, err)
		}
	}
	if _, err := pl.admin(ctx, "POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{
		"key": ChangedFlag, "type": "FLAG_TYPE_BOOLEAN", "clientVisible": true}}); err != nil {
		return err
	}
	rev, err := pl.flagRevision(ctx, ChangedFlag)
	pl.revision = rev
	return err
}

func (pl *platform) flagRevision(ctx context.Context, key string) (int64, error) {
	out, err := pl.admin(ctx, "GET", envPath+"/flags/"+key, nil)
	if err != nil {
		return 0, err
	}
	cfg, _ := out["config"].(map[string]any)
	return strconv.ParseInt(fmt.Sprint(cfg["revision"]), 10, 64) // protojson: int64 as a string
}

// toggle commits ChangedFlag on (k even) or off through the admin API and
// returns when the control plane answered.
func (pl *platform) toggle(ctx context.Context, on bool) error {
	out, err := pl.admin(ctx, "PUT", envPath+"/flags/"+ChangedFlag, map[string]any{"config": map[string]any{
		"on": on, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}, "revision": pl.revision})
	if err != nil {
		return err
	}
	cfg, _ := out["config"].(map[string]any)
	rev, err := strconv.ParseInt(fmt.Sprint(cfg["revision"]), 10, 64)
	if err != nil {
		return fmt.Errorf("PUT %s answered no revision: %v", ChangedFlag, out)
	}
	pl.revision = rev
	return nil
}

// metrics reads the evaluator's /metrics: the named gauges (summed over labels).
func (pl *platform) metrics(names ...string) (map[string]float64, error) {
	code, b, err := get("http://" + pl.evHTTP + "/metrics")
	if err != nil || code != 200 {
		return nil, fmt.Errorf("GET /metrics: %d: %w", code, err)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, n := range names {
			if strings.HasPrefix(line, n+" ") || strings.HasPrefix(line, n+"{") {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				out[n] += v
			}
		}
	}
	return out, nil
}

// forceGC asks the evaluator for a heap profile after a GC, twice.
func (pl *platform) forceGC() error {
	for range 2 {
		if code, _, err := get("http://" + pl.evAdmin + "/debug/pprof/heap?gc=1"); err != nil || code != 200 {
			return fmt.Errorf("pprof heap: %d: %w", code, err)
		}
	}
	return nil
}

func (pl *platform) stop() {
	if pl.ev != nil {
		pl.ev.stop()
	}
	if pl.cp != nil {
		pl.cp.stop()
	}
}

// saveProfiles writes the evaluator's heap (inuse) and goroutine profiles into dir.
func (pl *platform) saveProfiles(dir string) error {
	for name, path := range map[string]string{"heap.pb.gz": "/debug/pprof/heap", "goroutines.txt": "/debug/pprof/goroutine?debug=1"} {
		code, b, err := get("http://" + pl.evAdmin + path)
		if err != nil || code != 200 {
			return fmt.Errorf("GET %s: %d: %w", path, code, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
