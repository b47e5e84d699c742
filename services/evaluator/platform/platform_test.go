// Package platform runs the whole platform as real processes on 127.0.0.1: the
// control plane on a fresh PostgreSQL database with the test's own redis-server,
// and two evaluators reading manifests from that Redis. It proves what reaches an
// SDK and what survives outages (see TestPlatform). TestMain builds both binaries
// from source; process handling is in procs_test.go.
//
// Needs PostgreSQL (FLAGFORGE_TEST_POSTGRES_URL, a superuser URL; default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), psql and
// redis-server in PATH. Without them the tests skip loudly, except under CI=true
// where they fail.
package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

const (
	org, project, environment = "acme", "web", "production"
	envPath                   = "/v1/orgs/" + org + "/projects/" + project + "/environments/" + environment
)

// platform is the running system of one test.
type platform struct {
	t     *testing.T
	dir   string
	dbURL string
	// pg is the private PostgreSQL cluster (nil: a fresh database on the shared
	// server, which the test cannot stop).
	pg    *privatePostgres
	redis *redisServer
	// cluster, when set, replaces redis: everything uses the Redis Cluster.
	cluster    *redisCluster
	keyPath    string
	pubPath    string
	syncToken  string
	adminToken string
	sdkKey     string
	cp         *proc
	// cpEnv are extra variables of the control plane (startControlPlane).
	cpEnv    []string
	cpHTTP   string
	cpGRPC   string
	verifier *manifest.Verifier
}

// newPlatform starts PostgreSQL (with private, the test's own cluster when one can
// be run; else a fresh database on the shared server), Redis and the control plane.
func newPlatform(t *testing.T, private bool) *platform {
	t.Helper()
	return newPlatformOn(t, private, nil)
}

// newPlatformOn is newPlatform on cluster (nil: the test's own redis-server),
// with cpEnv added to the control plane's environment.
func newPlatformOn(t *testing.T, private bool, cluster *redisCluster, cpEnv ...string) *platform {
	t.Helper()
	pl := &platform{t: t, dir: t.TempDir(), syncToken: "sync-" + randomHex(16), adminToken: "ffat_" + randomHex(20), cluster: cluster, cpEnv: cpEnv}
	if pg, ok := startPrivatePostgresIf(t, private); ok {
		pl.pg, pl.dbURL = pg, pg.url
	} else {
		pl.dbURL = freshPostgres(t)
	}
	if cluster == nil {
		pl.redis = startRedis(t)
	}
	out, err := exec.Command(controlPlaneBin, "keys", "generate", "-dir", pl.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	pl.keyPath, pl.pubPath = filepath.Join(pl.dir, "signing-key.pem"), filepath.Join(pl.dir, "signing-key.pub.pem")
	pub, err := os.ReadFile(pl.pubPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	if pl.verifier, err = manifest.NewVerifier(time.Now, keys...); err != nil {
		t.Fatal(err)
	}
	pl.cpHTTP, pl.cpGRPC = freeAddr(t), freeAddr(t)
	pl.startControlPlane()
	return pl
}

// redisURL is the FLAGFORGE_REDIS_URL of the platform's Redis.
func (pl *platform) redisURL() string {
	if pl.cluster != nil {
		return pl.cluster.URL()
	}
	return pl.redis.URL()
}

// startControlPlane starts the control plane on PostgreSQL + Redis and waits for
// /readyz. The first start bootstraps organization acme with the admin token.
func (pl *platform) startControlPlane() {
	pl.t.Helper()
	pl.cp = start(pl.t, "control plane", controlPlaneBin, append([]string{
		"FLAGFORGE_DATABASE_URL=" + pl.dbURL,
		"FLAGFORGE_DATA_DIR=" + filepath.Join(pl.dir, "controlplane"),
		"FLAGFORGE_SIGNING_KEY=" + pl.keyPath,
		"FLAGFORGE_SYNC_TOKEN=" + pl.syncToken,
		"FLAGFORGE_REDIS_URL=" + pl.redisURL(),
		"FLAGFORGE_GRPC_ADDR=" + pl.cpGRPC,
		"FLAGFORGE_HTTP_ADDR=" + pl.cpHTTP,
		"FLAGFORGE_BOOTSTRAP_ORG=" + org,
		"FLAGFORGE_BOOTSTRAP_EMAIL=admin@acme.test",
		"FLAGFORGE_BOOTSTRAP_TOKEN=" + pl.adminToken,
		"FLAGFORGE_RATE_LIMIT_RPS=0",
		"FLAGFORGE_LOG_LEVEL=warn",
	}, pl.cpEnv...), "serve")
	pl.cp.waitReady("http://"+pl.cpHTTP+"/readyz", 30*time.Second)
}

// evaluator is one evaluator process.
type evaluator struct {
	p        *proc
	dataDir  string
	httpAddr string
	grpcAddr string
}

// startEvaluator starts an evaluator on Redis with its local copies in dataDir; with
// ready, it waits for /readyz (a verified manifest of acme/web/production held).
func (pl *platform) startEvaluator(name, dataDir string) *evaluator {
	pl.t.Helper()
	return pl.startEvaluatorWith(name, dataDir)
}

// startEvaluatorWith is startEvaluator with extra environment variables, which
// override the defaults.
func (pl *platform) startEvaluatorWith(name, dataDir string, extra ...string) *evaluator {
	pl.t.Helper()
	e := &evaluator{dataDir: dataDir, httpAddr: freeAddr(pl.t), grpcAddr: freeAddr(pl.t)}
	e.p = start(pl.t, name, evaluatorBin, append([]string{
		"FLAGFORGE_REDIS_URL=" + pl.redisURL(),
		"FLAGFORGE_TRUSTED_KEYS=" + pl.pubPath,
		"FLAGFORGE_ENVIRONMENTS=" + org + "/" + project + "/" + environment,
		"FLAGFORGE_DATA_DIR=" + dataDir,
		"FLAGFORGE_GRPC_ADDR=" + e.grpcAddr,
		"FLAGFORGE_HTTP_ADDR=" + e.httpAddr,
		"FLAGFORGE_ADMIN_ADDR=" + freeAddr(pl.t),
		"FLAGFORGE_USAGE_ADDR=" + pl.cpGRPC,
		"FLAGFORGE_SYNC_TOKEN=" + pl.syncToken,
		"FLAGFORGE_RESYNC_INTERVAL=2s",
		"FLAGFORGE_RATE_LIMIT=0",
		"FLAGFORGE_LOG_LEVEL=warn",
	}, extra...))
	e.p.waitReady("http://"+e.httpAddr+"/readyz", 30*time.Second)
	return e
}

// call makes a JSON call within 5 s; body is marshalled unless nil.
func call(method, url, token string, body any) (int, map[string]any, error) {
	return callWithin(5*time.Second, method, url, token, body)
}

// callWithin is call with another time limit.
func callWithin(limit time.Duration, method, url, token string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = r.Body.Close() }()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return r.StatusCode, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return r.StatusCode, nil, fmt.Errorf("%w: %s", err, raw)
	}
	return r.StatusCode, out, nil
}

// admin makes an admin REST call and fails the test unless it answers 200.
func (pl *platform) admin(method, path string, body any) map[string]any {
	pl.t.Helper()
	code, out, err := call(method, "http://"+pl.cpHTTP+path, pl.adminToken, body)
	if err != nil || code != http.StatusOK {
		pl.t.Fatalf("%s %s: %d %v %v", method, path, code, out, err)
	}
	return out
}

// setFlag turns flag new-ui on or off in production (PUT with the current
// revision).
func (pl *platform) setFlag(on bool) {
	pl.t.Helper()
	cur := pl.admin("GET", envPath+"/flags/new-ui", nil)
	rev := cur["config"].(map[string]any)["revision"]
	pl.admin("PUT", envPath+"/flags/new-ui", map[string]any{"config": map[string]any{"on": on, "offVariant": "off",
		"defaultServe": map[string]any{"variant": "on"}}, "revision": rev})
}

// evaluate asks e for new-ui; an error is a failed evaluation (transport, status
// or an error code in the answer).
func (pl *platform) evaluate(e *evaluator) (bool, error) {
	code, out, err := call("POST", "http://"+e.httpAddr+"/v1/evaluate", pl.sdkKey,
		map[string]any{"flagKey": "new-ui", "context": map[string]any{"targetingKey": "user-1"}})
	if err != nil {
		return false, err
	}
	if code != http.StatusOK || out["errorCode"] != nil && out["errorCode"] != "" {
		return false, fmt.Errorf("evaluate: %d %v", code, out)
	}
	v, ok := out["value"].(bool)
	if !ok {
		return false, fmt.Errorf("evaluate: value %v", out)
	}
	return v, nil
}

// waitValue polls every evaluator until each answers want.
func (pl *platform) waitValue(want bool, timeout time.Duration, es ...*evaluator) {
	pl.t.Helper()
	deadline := time.Now().Add(timeout)
	for i, e := range es {
		for {
			got, err := pl.evaluate(e)
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				pl.t.Fatalf("evaluator %d: new-ui = %v (%v), want %v after %s", i+1, got, err, want, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestPlatform walks the "Done when" list against real processes:
//
//	(a) a flag created and turned on over REST is evaluated by both evaluators;
//	(b) an emergency off reaches an open StreamManifest stream, and evaluations flip;
//	(c) Redis stopped for 10 s: both evaluators keep serving with zero errors, and a
//	    change made during the outage is served once Redis is back;
//	(d) an evaluator restarted while PostgreSQL and Redis are both down serves from
//	    its local copy. PostgreSQL is the test's private cluster, stopped (fast
//	    shutdown) while the control plane keeps running; when no private cluster can
//	    be run (no initdb), the control plane process is stopped instead.
func TestPlatform(t *testing.T) {
	pl := newPlatform(t, true)
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "platform test", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	// The project's creation was published: the evaluators become ready on it.
	e1 := pl.startEvaluator("evaluator 1", filepath.Join(pl.dir, "evaluator-1"))
	e2 := pl.startEvaluator("evaluator 2", filepath.Join(pl.dir, "evaluator-2"))

	// (a)
	pl.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}})
	pl.setFlag(true)
	pl.waitValue(true, 5*time.Second, e1, e2)
	t.Log("(a) new-ui turned on over REST is served by both evaluators")

	// (b)
	conn, err := grpc.NewClient(e1.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+pl.sdkKey), 20*time.Second)
	defer cancel()
	stream, err := evaluationv1.NewEvaluationServiceClient(conn).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if start.GetStart() == nil {
		t.Fatalf("first stream message %v, want the start naming the head version", start)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	held, err := pl.verifier.Manifest(first.GetSnapshot())
	if err == nil && held.GetVersion() != start.GetStart().GetHeadVersion() {
		t.Fatalf("snapshot of version %d after a start at head %d", held.GetVersion(), start.GetStart().GetHeadVersion())
	}
	if err != nil {
		t.Fatalf("first stream message %v: %v", first, err)
	}
	if on, _ := flagState(held.GetFlags(), "new-ui"); !on {
		t.Fatal("the stream's snapshot does not have new-ui on")
	}
	sent := time.Now()
	pl.admin("POST", envPath+"/flags/new-ui:emergencyOff", map[string]any{"reason": "platform test kill switch"})
	for off := false; !off; {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream ended before the kill switch arrived: %v", err)
		}
		switch {
		case msg.GetDelta() != nil:
			d, err := pl.verifier.Delta(msg.GetDelta())
			if err != nil {
				t.Fatal(err)
			}
			on, found := flagState(d.GetUpsertedFlags(), "new-ui")
			off = found && !on
		case msg.GetSnapshot() != nil:
			m, err := pl.verifier.Next(held, msg.GetSnapshot())
			if err != nil {
				t.Fatal(err)
			}
			held = m
			on, _ := flagState(m.GetFlags(), "new-ui")
			off = !on
		}
	}
	t.Logf("(b) kill switch reached the StreamManifest subscriber %s after the REST call", time.Since(sent).Round(time.Millisecond))
	cancel()
	pl.waitValue(false, 5*time.Second, e1, e2)

	// (c)
	pl.redis.Stop()
	outage := time.Now()
	var evals, failures int
	var firstFailure error
	changed := false
	for time.Since(outage) < 10*time.Second {
		if !changed && time.Since(outage) > 2*time.Second {
			pl.setFlag(true) // committed in PostgreSQL; Redis cannot take it yet
			changed = true
		}
		for _, e := range []*evaluator{e1, e2} {
			evals++
			if _, err := pl.evaluate(e); err != nil {
				failures++
				if firstFailure == nil {
					firstFailure = err
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	if failures > 0 {
		t.Fatalf("(c) %d of %d evaluations failed during the Redis outage; first: %v", failures, evals, firstFailure)
	}
	pl.redis.Start()
	back := time.Now()
	pl.waitValue(true, 15*time.Second, e1, e2)
	t.Logf("(c) %d evaluations during a 10s Redis outage, 0 errors; the change made during it was served %s after Redis came back",
		evals, time.Since(back).Round(time.Millisecond))

	// (d)
	what := "PostgreSQL (private cluster stopped)"
	if pl.pg != nil {
		pl.pg.Stop()
	} else {
		what = "the control plane (the shared PostgreSQL cannot be stopped)"
		pl.cp.Stop()
	}
	pl.redis.Stop()
	e2.p.Stop()
	e2 = pl.startEvaluator("evaluator 2 (restarted, no sources)", e2.dataDir)
	if got, err := pl.evaluate(e2); err != nil || !got {
		t.Fatalf("(d) restarted evaluator serves new-ui = %v (%v), want true from its local copy", got, err)
	}
	if got, err := pl.evaluate(e1); err != nil || !got {
		t.Fatalf("(d) evaluator 1 serves new-ui = %v (%v) with both sources down", got, err)
	}
	t.Logf("(d) an evaluator restarted with %s and Redis down serves its local copy", what)
}

// flagState reports whether key is among flags and switched on.
func flagState(flags []*manifestv1.Flag, key string) (on, found bool) {
	for _, f := range flags {
		if f.GetKey() == key {
			return f.GetConfig().GetOn(), true
		}
	}
	return false, false
}

func startPrivatePostgresIf(t *testing.T, private bool) (*privatePostgres, bool) {
	t.Helper()
	if !private {
		return nil, false
	}
	return startPrivatePostgres(t)
}
