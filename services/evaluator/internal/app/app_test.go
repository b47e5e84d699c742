package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/evaluator/internal/app"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

const env = "acme/web/production"

// testRedis returns a client of the test Redis (FLAGFORGE_TEST_REDIS_URL, default
// the machine's) and a fresh key prefix whose keys are deleted after the test. It
// skips loudly when Redis is unreachable, and fails under CI=true.
func testRedis(t *testing.T) (url string, client *redis.Client, prefix string) {
	t.Helper()
	url = os.Getenv("FLAGFORGE_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("FLAGFORGE_TEST_REDIS_URL: %v", err)
	}
	client = redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("Redis at %s unreachable under CI: %v", url, err)
		}
		t.Skipf("SKIPPING: Redis at %s unreachable (%v); set FLAGFORGE_TEST_REDIS_URL", url, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix = "fftest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := client.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		_ = client.Close()
	})
	return url, client, prefix
}

type evaluator struct {
	app  *app.App
	grpc evaluationv1.EvaluationServiceClient
	hc   healthpb.HealthClient
	stop func()
}

// start runs an evaluator with cfg (listening on free loopback ports) until the
// test ends.
func start(t *testing.T, cfg config.Config) *evaluator {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Environments == "" {
		cfg.Environments = env
	}
	if cfg.RedisKeyPrefix == "" {
		cfg.RedisKeyPrefix = "ff:"
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	cfg.ShutdownTimeout, cfg.LogLevel = 5*time.Second, "info"
	if cfg.StreamHeartbeat == 0 {
		cfg.StreamHeartbeat = 15 * time.Second
	}
	if cfg.StreamBuffer == 0 {
		cfg.StreamBuffer = 64
	}
	if cfg.StreamRing == 0 {
		cfg.StreamRing = 128
	}
	if cfg.UsageInterval == 0 {
		cfg.UsageInterval = time.Minute
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, &cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("evaluator Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return &evaluator{app: a, grpc: evaluationv1.NewEvaluationServiceClient(conn), hc: healthpb.NewHealthClient(conn), stop: stop}
}

func withKey(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// post sends a REST call and decodes the JSON answer.
func post(t *testing.T, e *evaluator, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+e.app.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %d %q is not JSON: %v", path, resp.StatusCode, b, err)
	}
	return resp.StatusCode, out
}

func get(t *testing.T, e *evaluator, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + e.app.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample starting with series in /metrics.
func metric(t *testing.T, e *evaluator, series string) float64 {
	t.Helper()
	_, body := get(t, e, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

func evalCtx() *structpb.Struct {
	s, _ := structpb.NewStruct(map[string]any{"targetingKey": "123", "region": "us-east-1"})
	return s
}

type rig struct {
	pub *fixture.Publisher
	cfg config.Config
}

func newRig(t *testing.T) *rig {
	url, client, prefix := testRedis(t)
	s := fixture.NewSigner()
	return &rig{
		pub: &fixture.Publisher{Client: client, Prefix: prefix, Signer: s},
		cfg: config.Config{RedisURL: url, RedisKeyPrefix: prefix, TrustedKeys: fixture.PublicPEM(s), DataDir: t.TempDir()},
	}
}

func (r *rig) publish(t *testing.T, m *manifestv1.Manifest) fixture.Published {
	t.Helper()
	p, err := r.pub.Publish(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// subscribed waits until the evaluator listens on the channel and has done the
// re-read that follows a subscription, so the next event is handled on its own.
func subscribed(t *testing.T, r *rig) {
	t.Helper()
	eventually(t, "the evaluator subscribes", func() bool {
		n, err := r.pub.Client.PubSubNumSub(context.Background(), rediskeys.Keys{Prefix: r.pub.Prefix}.Channel()).Result()
		return err == nil && n[rediskeys.Keys{Prefix: r.pub.Prefix}.Channel()] > 0
	})
	time.Sleep(300 * time.Millisecond)
}

func now() time.Time { return time.Now().UTC() }

func TestManifestPublishedToRedisIsEvaluatedOverGRPCAndREST(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })

	got, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetValue().GetBoolValue() != true || got.GetVariant() != "on" || got.GetReason() != "TARGETING_MATCH" ||
		got.GetRuleId() != "east" || got.GetManifestVersion() != 1 || got.GetFlagKey() != "new-ui" {
		t.Fatalf("gRPC Evaluate = %v", got)
	}

	code, body := post(t, e, "/v1/evaluate", fixture.ServerKey(env), `{"flagKey":"new-ui","context":{"targetingKey":"123","region":"us-east-1"}}`)
	want := map[string]any{"value": true, "variant": "on", "reason": "TARGETING_MATCH", "ruleId": "east", "flagKey": "new-ui", "manifestVersion": "1"}
	if code != http.StatusOK || !cmp.Equal(want, body) {
		t.Fatalf("POST /v1/evaluate: %d %s", code, cmp.Diff(want, body))
	}
	code, body = post(t, e, "/v1/evaluate/all", fixture.ServerKey(env), `{"context":{"region":"eu-west-1"}}`)
	wantAll := map[string]any{"flags": map[string]any{"new-ui": map[string]any{"value": false, "variant": "off", "reason": "DEFAULT"}}, "manifestVersion": "1"}
	if code != http.StatusOK || !cmp.Equal(wantAll, body) {
		t.Fatalf("POST /v1/evaluate/all: %d %s", code, cmp.Diff(wantAll, body))
	}
	if v := metric(t, e, `flagforge_evaluator_evaluations_total{reason="TARGETING_MATCH"}`); v < 2 {
		t.Fatalf("evaluations_total{TARGETING_MATCH} = %v, want >= 2", v)
	}
}

func TestUpdatesApplyByDeltaAndAGapTriggersAFullReread(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)

	// An event whose hash carries the delta from the held version: applied as a delta.
	r.publish(t, fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, false)))
	eventually(t, "version 2 is applied", func() bool { return e.app.Holder.Version(env) == 2 })
	if n := metric(t, e, `flagforge_evaluator_manifest_updates_total{kind="delta"}`); n != 1 {
		t.Fatalf("%v updates by delta, want 1 (version 2 came whole)", n)
	}
	res, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()})
	if err != nil || res.GetReason() != "DISABLED" || res.GetManifestVersion() != 2 {
		t.Fatalf("after the update: %v, %v; want DISABLED at version 2", res, err)
	}

	// Version 3 is written without an event (lost), then 4 is announced: its delta
	// starts at 3, not at the held 2, so the evaluator re-reads the full manifest.
	v3, err := r.pub.Sign(fixture.Manifest(env, 3, now(), fixture.BoolFlag("new-ui", true, false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.pub.Write(ctx, env, 3, v3, false); err != nil {
		t.Fatal(err)
	}
	r.publish(t, fixture.Manifest(env, 4, now(), fixture.BoolFlag("new-ui", true, true)))
	eventually(t, "version 4 is read whole after the gap", func() bool { return e.app.Holder.Version(env) == 4 })
	if n := metric(t, e, `flagforge_evaluator_manifest_updates_total{kind="full"}`); n != 2 {
		t.Fatalf("%v full manifests read, want 2 (version 1, and version 4 after the gap)", n)
	}
	res, err = e.grpc.Evaluate(withKey(fixture.ClientKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()})
	if err != nil || res.GetVariant() != "on" {
		t.Fatalf("after the gap: %v, %v", res, err)
	}
}

func TestRefusedManifestsInRedisLeaveTheLastGoodOneServing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	r.publish(t, fixture.Manifest(env, 5, now(), fixture.BoolFlag("new-ui", true, false)))
	e := start(t, r.cfg)
	eventually(t, "version 5 is loaded", func() bool { return e.app.Holder.Version(env) == 5 })

	foreign := &fixture.Publisher{Signer: fixture.NewSigner()}
	sign := func(p *fixture.Publisher, m *manifestv1.Manifest) fixture.Published {
		out, err := p.Sign(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tampered := sign(foreign, fixture.Manifest(env, 6, now()))
	good6 := sign(&fixture.Publisher{Signer: r.pub.Signer}, fixture.Manifest(env, 6, now(), fixture.BoolFlag("new-ui", false, false)))
	good6.Manifest.Payload = tampered.Manifest.GetPayload() // trusted key id and signature, other bytes
	good6.Delta = nil
	expiredM := fixture.Manifest(env, 8, now().Add(-8*24*time.Hour))
	tests := []struct {
		name    string
		version uint64
		pub     fixture.Published
		series  string
	}{
		{"tampered", 6, good6, `flagforge_evaluator_manifest_refusals_total{reason="bad_signature"}`},
		{"signed by a foreign key", 7, sign(foreign, fixture.Manifest(env, 7, now())), `flagforge_evaluator_manifest_refusals_total{reason="unknown_key"}`},
		{"expired", 8, sign(&fixture.Publisher{Signer: r.pub.Signer}, expiredM), `flagforge_evaluator_manifest_refusals_total{reason="expired"}`},
		{"older", 9, sign(&fixture.Publisher{Signer: r.pub.Signer}, fixture.Manifest(env, 4, now())), `flagforge_evaluator_manifest_refusals_total{reason="stale"}`},
	}
	for _, tt := range tests {
		before := metric(t, e, tt.series)
		// The hash claims a newer version so the evaluator reads the manifest.
		if err := r.pub.Write(ctx, env, tt.version, tt.pub, true); err != nil {
			t.Fatal(err)
		}
		eventually(t, tt.name+" is refused and counted", func() bool { return metric(t, e, tt.series) > before })
		res, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()})
		if err != nil || res.GetManifestVersion() != 5 || res.GetVariant() != "on" {
			t.Fatalf("%s: serving %v, %v; want the last good version 5", tt.name, res, err)
		}
	}
}

// redisServer runs a redis-server of its own on port (0: a free one).
type redisServer struct {
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T, port int) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed")
		}
		t.Skip("SKIPPING: redis-server not installed")
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &redisServer{port: port, cmd: cmd}
	t.Cleanup(s.kill)
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer func() { _ = c.Close() }()
	eventually(t, "redis-server answers", func() bool { return c.Ping(context.Background()).Err() == nil })
	return s
}

func (s *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *redisServer) kill() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func TestRedisOutageKeepsEvaluationsSucceedingAndCatchesUpAfterRestart(t *testing.T) {
	t.Parallel()
	rs := startRedis(t, 0)
	client := redis.NewClient(&redis.Options{Addr: rs.addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	s := fixture.NewSigner()
	pub := &fixture.Publisher{Client: client, Prefix: "ff:", Signer: s}
	if _, err := pub.Publish(context.Background(), fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false))); err != nil {
		t.Fatal(err)
	}
	e := start(t, config.Config{RedisURL: "redis://" + rs.addr() + "/0", TrustedKeys: fixture.PublicPEM(s), DataDir: t.TempDir(), ResyncInterval: time.Second})
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })

	var calls, failures atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()})
			calls.Add(1)
			if err != nil {
				failures.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()

	rs.kill()
	time.Sleep(1500 * time.Millisecond) // longer than the resync period: retries fail meanwhile
	if v := e.app.Holder.Version(env); v != 1 {
		t.Fatalf("version %d during the outage, want 1", v)
	}
	startRedis(t, rs.port) // empty: nothing was saved
	pub.Forget(env)
	if _, err := pub.Publish(context.Background(), fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, false))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the evaluator catches up with version 2", func() bool { return e.app.Holder.Version(env) == 2 })
	cancel()
	<-done
	if failures.Load() != 0 || calls.Load() < 100 {
		t.Fatalf("%d of %d evaluations failed during the outage, want 0 of >= 100", failures.Load(), calls.Load())
	}
}

func TestStartsFromTheLocalCopyWhenNoSourceAnswers(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 3, now(), fixture.BoolFlag("new-ui", true, false)))
	first := start(t, r.cfg)
	eventually(t, "version 3 is loaded", func() bool { return first.app.Holder.Version(env) == 3 })
	first.stop()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	cfg := r.cfg
	cfg.RedisURL = "redis://" + dead + "/0"
	e := start(t, cfg)
	if code, _ := get(t, e, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d with a local copy loaded, want 200", code)
	}
	res, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()})
	if err != nil || res.GetManifestVersion() != 3 || res.GetVariant() != "on" {
		t.Fatalf("from the local copy: %v, %v", res, err)
	}
}

func TestNotReadyUntilEveryConfiguredEnvironmentIsLoaded(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	staging := "acme/web/staging"
	cfg := r.cfg
	cfg.Environments = env + "," + staging
	r.publish(t, fixture.Manifest(env, 1, now()))
	e := start(t, cfg)
	eventually(t, "production is loaded", func() bool { return e.app.Holder.Version(env) == 1 })
	if code, _ := get(t, e, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d with staging missing, want 503", code)
	}
	if code, _ := get(t, e, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200 (the process is alive)", code)
	}
	hs, err := e.hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hs.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health with staging missing: %v, %v; want NOT_SERVING", hs, err)
	}
	r.publish(t, fixture.Manifest(staging, 1, now()))
	eventually(t, "/readyz turns 200", func() bool { code, _ := get(t, e, "/readyz"); return code == http.StatusOK })
	eventually(t, "gRPC health turns SERVING", func() bool {
		hs, err := e.hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil && hs.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

func TestSDKKeys(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("public", true, true), fixture.BoolFlag("secret", true, false)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })
	body := `{"flagKey":"secret","context":{"region":"us-east-1"}}`

	t.Run("an unknown key is 401 / UNAUTHENTICATED", func(t *testing.T) {
		if code, _ := post(t, e, "/v1/evaluate", "nope", body); code != http.StatusUnauthorized {
			t.Fatalf("REST: %d, want 401", code)
		}
		if code, _ := post(t, e, "/v1/evaluate/all", "", `{}`); code != http.StatusUnauthorized {
			t.Fatalf("REST without a key: %d, want 401", code)
		}
		_, err := e.grpc.Evaluate(withKey("nope"), &evaluationv1.EvaluateRequest{FlagKey: "secret"})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("gRPC: %v, want UNAUTHENTICATED", err)
		}
	})
	t.Run("a client key sees a non-client-visible flag as absent", func(t *testing.T) {
		code, got := post(t, e, "/v1/evaluate", fixture.ClientKey(env), body)
		if code != http.StatusOK || got["errorCode"] != "FLAG_NOT_FOUND" || got["reason"] != "ERROR" {
			t.Fatalf("client key on a hidden flag: %d %v", code, got)
		}
		code, got = post(t, e, "/v1/evaluate", fixture.ServerKey(env), body)
		if code != http.StatusOK || got["variant"] != "on" {
			t.Fatalf("server key on the same flag: %d %v", code, got)
		}
	})
	t.Run("EvaluateAll with a client key returns only client-visible flags", func(t *testing.T) {
		res, err := e.grpc.EvaluateAll(withKey(fixture.ClientKey(env)), &evaluationv1.EvaluateAllRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := res.GetFlags()["secret"]; ok || res.GetFlags()["public"] == nil {
			t.Fatalf("client key EvaluateAll: %v", res.GetFlags())
		}
		res, err = e.grpc.EvaluateAll(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateAllRequest{})
		if err != nil || len(res.GetFlags()) != 2 {
			t.Fatalf("server key EvaluateAll: %v, %v; want both flags", res, err)
		}
	})
}

func TestInvalidRequestsAre400NamingTheField(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })
	var many bytes.Buffer
	many.WriteString(`{"flagKey":"new-ui","context":{`)
	for i := range 300 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"a%d":1`, i)
	}
	many.WriteString("}}")
	tests := []struct {
		name, body, field string
	}{
		{"a missing flagKey", `{"context":{}}`, "flagKey"},
		{"a context with too many attributes", many.String(), "context"},
		{"a string over the limit", `{"flagKey":"new-ui","context":{"bio":"` + strings.Repeat("x", 9000) + `"}}`, "context.bio"},
		{"malformed JSON", `{"flagKey":`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got := post(t, e, "/v1/evaluate", fixture.ServerKey(env), tt.body)
			msg, _ := got["message"].(string)
			if code != http.StatusBadRequest || !strings.HasPrefix(msg, tt.field) {
				t.Fatalf("got %d %v; want 400 naming %q", code, got, tt.field)
			}
		})
	}
	_, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "flagKey") {
		t.Fatalf("gRPC without flagKey: %v", err)
	}
}
