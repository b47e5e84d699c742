// Package e2e runs the Go SDK (pkg/sdk) against a real evaluator process: the
// binary is built once in TestMain, started on free loopback ports with a private
// Redis key prefix, fed manifests through Redis with internal/fixture, and killed
// (and waited for) at the end of each test.
//
// Redis: FLAGFORGE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0). When it is
// unreachable the tests skip loudly, except under CI=true where they fail.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

const target = "acme/web/production"

var binary string // the evaluator built by TestMain

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flagforge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	binary = filepath.Join(dir, "flagforge-evaluator")
	build := exec.Command("go", "build", "-o", binary, "github.com/flagforge/flagforge/services/evaluator/cmd/evaluator")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the evaluator: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// rig is one evaluator process with its Redis prefix and publisher.
type rig struct {
	t         *testing.T
	pub       *fixture.Publisher
	redisURL  string
	prefix    string
	keyPEM    string
	grpcAddr  string
	httpAddr  string
	adminAddr string
	cmd       *exec.Cmd
	logs      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newRig connects to the test Redis (skipping loudly when it is unreachable,
// failing under CI=true) with a fresh key prefix, deleted at the end.
func newRig(t *testing.T) *rig {
	t.Helper()
	url := os.Getenv("FLAGFORGE_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("FLAGFORGE_TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opts)
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
	prefix := "ffe2e:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := client.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		_ = client.Close()
	})
	signer := fixture.NewSigner()
	r := &rig{t: t, redisURL: url, prefix: prefix, keyPEM: fixture.PublicPEM(signer),
		pub:      &fixture.Publisher{Client: client, Prefix: prefix, Signer: signer},
		grpcAddr: freeAddr(t), httpAddr: freeAddr(t), adminAddr: freeAddr(t)}
	t.Cleanup(func() {
		r.kill()
		if t.Failed() && r.logs != nil {
			t.Logf("evaluator logs:\n%s", r.logs.String())
		}
	})
	return r
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// start runs the evaluator on the rig's ports and waits until it is ready.
func (r *rig) start() {
	r.t.Helper()
	if r.logs == nil {
		r.logs = &syncBuffer{}
	}
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(),
		"FLAGFORGE_REDIS_URL="+r.redisURL, "FLAGFORGE_REDIS_KEY_PREFIX="+r.prefix,
		"FLAGFORGE_TRUSTED_KEYS="+r.keyPEM, "FLAGFORGE_ENVIRONMENTS="+target, "FLAGFORGE_DATA_DIR=",
		"FLAGFORGE_GRPC_ADDR="+r.grpcAddr, "FLAGFORGE_HTTP_ADDR="+r.httpAddr, "FLAGFORGE_ADMIN_ADDR="+r.adminAddr,
		"FLAGFORGE_STREAM_HEARTBEAT=1s", "FLAGFORGE_SHUTDOWN_TIMEOUT=2s", "FLAGFORGE_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd = cmd
	waitFor(r.t, 15*time.Second, "the evaluator to be ready", func() bool {
		resp, err := http.Get("http://" + r.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// kill ends the evaluator at once (SIGKILL: no drain) and reaps it.
func (r *rig) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// publish publishes version of the manifest with new-ui on or off.
func (r *rig) publish(version uint64, on bool) {
	r.t.Helper()
	m := fixture.Manifest(target, version, time.Now(), fixture.BoolFlag("new-ui", on, false))
	if _, err := r.pub.Publish(context.Background(), m); err != nil {
		r.t.Fatal(err)
	}
}

// config is an SDK configuration for the rig with fast reconnection bounds.
func (r *rig) config() sdk.Config {
	keys, err := manifest.ParsePublicKeys([]byte(r.keyPEM))
	if err != nil {
		r.t.Fatal(err)
	}
	return sdk.Config{
		SDKKey: fixture.ServerKey(target), Address: r.grpcAddr, HTTPURL: "http://" + r.httpAddr,
		TrustedKeys: keys, Backoff: sdk.Backoff{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond, ResetAfter: 5 * time.Second},
		PollWait: 5 * time.Second, StaleAfter: 10 * time.Second,
	}
}

func (r *rig) client(cfg sdk.Config) *sdk.Client {
	r.t.Helper()
	c, err := sdk.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitReady(t *testing.T, c *sdk.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v (status %+v)", err, c.Status())
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

var east = func() *sdk.Context {
	c, err := sdk.NewContext(map[string]any{"targetingKey": "user-1", "region": "us-east-1"})
	if err != nil {
		panic(err)
	}
	return c
}()

func TestAChangeReachesTheSDKWithin200ms(t *testing.T) {
	r := newRig(t)
	r.publish(1, true)
	r.start()
	c := r.client(r.config())
	waitReady(t, c)
	var lat []time.Duration
	for v := uint64(2); v <= 11; v++ {
		on := v%2 == 1
		start := time.Now()
		r.publish(v, on)
		waitFor(t, 2*time.Second, fmt.Sprintf("version %d", v), func() bool { return c.Bool("new-ui", east, !on) == on })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("publish to SDK (Redis -> evaluator -> stream -> verify -> swap), 10 changes: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	if worst := lat[len(lat)-1]; worst > 200*time.Millisecond {
		t.Errorf("a change took %v to reach the SDK, want <= 200ms", worst)
	}
	if st := c.Status(); st.Mode != sdk.ModeStreaming || st.ManifestVersion != 11 {
		t.Errorf("status %+v", st)
	}
}

func TestTheSDKKeepsServingThroughAnEvaluatorRestartAndConverges(t *testing.T) {
	r := newRig(t)
	r.publish(1, true)
	r.start()
	cfg := r.config()
	cfg.HTTPURL = "" // streaming only: reconnection with backoff (the fallback has its own tests)
	var streams atomic.Int64
	cfg.DialOptions = []grpc.DialOption{grpc.WithStreamInterceptor(countStreams(&streams))}
	c := r.client(cfg)
	waitReady(t, c)

	r.kill()
	before := streams.Load()
	time.Sleep(600 * time.Millisecond)
	if got := c.BoolDetail("new-ui", east, false); !got.Value || got.ManifestVersion != 1 {
		t.Errorf("while the evaluator is down: %+v, want the last manifest's answer", got)
	}
	st := c.Status()
	if st.LastError == nil || st.ManifestVersion != 1 {
		t.Errorf("status while down: %+v", st)
	}
	attempts := streams.Load() - before
	// 600 ms with backoff from 50 ms (doubling, capped at 400 ms): a few attempts,
	// not a tight loop.
	if attempts < 2 || attempts > 8 {
		t.Errorf("%d stream attempts in 600 ms while down", attempts)
	}
	t.Logf("while down: %d stream attempts in 600ms, mode %s, last error: %v", attempts, st.Mode, st.LastError)

	r.publish(2, false) // a change made while the evaluator is down
	restarted := time.Now()
	r.start()
	waitFor(t, 10*time.Second, "the SDK to converge to version 2", func() bool { return c.Status().ManifestVersion == 2 })
	t.Logf("converged %v after the restart began (mode %s)", time.Since(restarted), c.Status().Mode)
	if c.Bool("new-ui", east, true) {
		t.Error("new-ui still on after converging to version 2")
	}
	if st := c.Status(); st.State != sdk.StateReady {
		t.Errorf("status %+v, want READY", st)
	}
}

func countStreams(n *atomic.Int64) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if strings.HasSuffix(method, "/StreamManifest") {
			n.Add(1)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

func TestAWrongSDKKeyStopsTheClientWithoutRetrying(t *testing.T) {
	r := newRig(t)
	r.publish(1, true)
	r.start()
	for _, tc := range []struct {
		name, key string
	}{
		{"unknown key (401)", "srv-not-a-key"},
		{"client key on the server stream (403)", fixture.ClientKey(target)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := r.config()
			cfg.SDKKey = tc.key
			var streams atomic.Int64
			polls := &countingTransport{next: http.DefaultTransport}
			cfg.DialOptions = []grpc.DialOption{grpc.WithStreamInterceptor(countStreams(&streams))}
			cfg.HTTPClient = &http.Client{Transport: polls}
			c := r.client(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.WaitReady(ctx); !errors.Is(err, sdk.ErrKeyRefused) {
				t.Fatalf("WaitReady = %v, want ErrKeyRefused", err)
			}
			time.Sleep(time.Second) // 20 minimum backoff periods
			if st := c.Status(); st.State != sdk.StateError || !errors.Is(st.LastError, sdk.ErrKeyRefused) {
				t.Errorf("status %+v, want ERROR", st)
			}
			if n, p := streams.Load(), polls.n.Load(); n != 1 || p != 0 {
				t.Errorf("%d stream attempts and %d polls, want exactly 1 attempt and no retry", n, p)
			}
			if d := c.BoolDetail("new-ui", east, false); d.ErrorCode != sdk.ErrorProviderNotReady || d.Value {
				t.Errorf("%+v: want the default with PROVIDER_NOT_READY", d)
			}
		})
	}
}

func TestATamperedManifestIsRefusedAndTheLastGoodOneKept(t *testing.T) {
	r := newRig(t)
	r.publish(1, true)
	r.start()
	c := r.client(r.config())
	waitReady(t, c)

	// Tampered in Redis: the evaluator refuses it, so the SDK never sees it.
	pub, err := r.pub.Sign(fixture.Manifest(target, 2, time.Now(), fixture.BoolFlag("new-ui", false, false)))
	if err != nil {
		t.Fatal(err)
	}
	tampered := &manifestv1.SignedManifest{Payload: bytes.Clone(pub.Manifest.GetPayload()), KeyId: pub.Manifest.GetKeyId(), Signature: pub.Manifest.GetSignature()}
	tampered.Payload[len(tampered.Payload)/2] ^= 0x01
	if err := r.pub.Write(context.Background(), target, 2, fixture.Published{Manifest: tampered}, true); err != nil {
		t.Fatal(err)
	}
	r.pub.Forget(target)
	waitFor(t, 5*time.Second, "the evaluator to refuse it", func() bool {
		return strings.Contains(metrics(t, r), `flagforge_evaluator_manifest_refusals_total{reason="bad_signature"} 1`)
	})
	time.Sleep(100 * time.Millisecond)
	if d := c.BoolDetail("new-ui", east, false); !d.Value || d.ManifestVersion != 1 {
		t.Errorf("after a tampered publish: %+v, want version 1 still", d)
	}

	// Fed directly to the SDK: refused on its own verification.
	if err := c.ApplySignedManifest(tampered); !errors.Is(err, manifest.ErrBadSignature) {
		t.Errorf("ApplySignedManifest(tampered) = %v, want ErrBadSignature", err)
	}
	foreign, err := fixture.NewSigner().Manifest(fixture.Manifest(target, 3, time.Now(), fixture.BoolFlag("new-ui", false, false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplySignedManifest(foreign); !errors.Is(err, manifest.ErrUnknownKey) {
		t.Errorf("ApplySignedManifest(foreign key) = %v, want ErrUnknownKey", err)
	}
	if st := c.Status(); st.ManifestVersion != 1 {
		t.Errorf("version %d, want 1 kept", st.ManifestVersion)
	}

	// The stream still works: a good version arrives.
	r.publish(3, false)
	waitFor(t, 5*time.Second, "version 3", func() bool { return c.Status().ManifestVersion == 3 })
}

func metrics(t *testing.T, r *rig) string {
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPollingFallbackWhenStreamingIsUnavailable(t *testing.T) {
	r := newRig(t)
	r.publish(1, true)
	r.start()
	cfg := r.config()
	cfg.Address = freeAddr(t) // nothing listens: every stream attempt fails
	var streams atomic.Int64
	cfg.DialOptions = []grpc.DialOption{grpc.WithStreamInterceptor(countStreams(&streams))}
	cfg.PollingPeriod = time.Hour
	c := r.client(cfg)
	waitReady(t, c)
	if st := c.Status(); st.Mode != sdk.ModePolling || streams.Load() != 3 {
		t.Errorf("status %+v after %d stream attempts, want polling after 3", st, streams.Load())
	}
	start := time.Now()
	r.publish(2, false)
	waitFor(t, 3*time.Second, "version 2 by long-poll", func() bool { return !c.Bool("new-ui", east, true) })
	t.Logf("change by long-poll in %v", time.Since(start))
	if st := c.Status(); st.ManifestVersion != 2 || st.State != sdk.StateReady {
		t.Errorf("status %+v", st)
	}
}

func TestPollingGoesBackToStreamingAfterItsPeriod(t *testing.T) {
	r := newRig(t)
	r.publish(1, true)
	cfg := r.config()
	cfg.PollingPeriod = 300 * time.Millisecond
	cfg.PollWait = 200 * time.Millisecond
	c := r.client(cfg) // the evaluator is not up yet: streaming fails, then polling
	waitFor(t, 5*time.Second, "polling", func() bool { return c.Status().Mode == sdk.ModePolling })
	r.start()
	waitReady(t, c)
	waitFor(t, 5*time.Second, "streaming again", func() bool { return c.Status().Mode == sdk.ModeStreaming })
	start := time.Now()
	r.publish(2, false)
	waitFor(t, 2*time.Second, "version 2", func() bool { return !c.Bool("new-ui", east, true) })
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("change took %v after going back to streaming", d)
	}
}
