package app_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// syncControlPlane is a SyncService that behaves like the control plane's
// (services/controlplane/internal/syncsvc) for one environment: every stream opens
// with SyncStart naming the head version, then the deltas from the caller's cursor
// (or the snapshot of the head when it has none), then live versions and
// heartbeats. Versions are signed by fixture.Publisher, which attaches to every
// delta the signature of the manifest it produces, as the publisher does.
type syncControlPlane struct {
	syncv1.UnimplementedSyncServiceServer
	pub  *fixture.Publisher
	beat time.Duration

	mu       sync.Mutex
	versions []fixture.Published // versions[i] is version i+1
	changed  chan struct{}       // closed and replaced at each new version
	hold     chan struct{}       // when set, streams wait for it before catching up
}

func newSyncControlPlane(t *testing.T) (*syncControlPlane, string) {
	t.Helper()
	cp := &syncControlPlane{pub: &fixture.Publisher{Signer: fixture.NewSigner()}, beat: time.Hour, changed: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	syncv1.RegisterSyncServiceServer(gs, cp)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return cp, lis.Addr().String()
}

// publish signs the next version (flag new-ui on at odd versions) and streams it.
func (cp *syncControlPlane) publish(t *testing.T) fixture.Published {
	t.Helper()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	v := uint64(len(cp.versions) + 1)
	p, err := cp.pub.Sign(fixture.Manifest(env, v, now(), fixture.BoolFlag("new-ui", v%2 == 1, true)))
	if err != nil {
		t.Fatal(err)
	}
	cp.versions = append(cp.versions, p)
	close(cp.changed)
	cp.changed = make(chan struct{})
	return p
}

func (cp *syncControlPlane) SyncManifests(req *syncv1.SyncManifestsRequest, st grpc.ServerStreamingServer[syncv1.SyncManifestsResponse]) error {
	var held uint64
	for _, c := range req.GetCursors() {
		held = c.GetVersion()
	}
	cp.mu.Lock()
	head, hold := uint64(len(cp.versions)), cp.hold
	cp.mu.Unlock()
	ref := &syncv1.EnvironmentRef{Org: "acme", Project: "web", Environment: "production"}
	if err := st.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Start{Start: &syncv1.SyncStart{
		Heads: []*syncv1.SyncCursor{{Environment: ref, Version: head}}}}}); err != nil {
		return err
	}
	if hold != nil {
		select {
		case <-hold:
		case <-st.Context().Done():
			return nil
		}
	}
	beat := time.NewTicker(cp.beat)
	defer beat.Stop()
	for {
		cp.mu.Lock()
		versions, changed := cp.versions, cp.changed
		cp.mu.Unlock()
		switch {
		case uint64(len(versions)) > held && held > 0:
			for _, p := range versions[held:] {
				if err := st.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Delta{Delta: p.Delta}}); err != nil {
					return err
				}
			}
			held = uint64(len(versions))
		case uint64(len(versions)) > held:
			if err := st.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Snapshot{Snapshot: versions[len(versions)-1].Manifest}}); err != nil {
				return err
			}
			held = uint64(len(versions))
		}
		select {
		case <-st.Context().Done():
			return nil
		case <-changed:
		case <-beat.C:
			if err := st.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Heartbeat{
				Heartbeat: &syncv1.SyncHeartbeat{Time: timestamppb.Now()}}}); err != nil {
				return err
			}
		}
	}
}

func syncConfig(cp *syncControlPlane, addr string, dataDir string) config.Config {
	return config.Config{SyncAddr: addr, SyncToken: "svc", TrustedKeys: fixture.PublicPEM(cp.pub.Signer), DataDir: dataDir}
}

// fetchManifest makes GET /v1/manifest with a server key; it returns the status, the
// ETag and the decoded signed manifest (nil unless 200).
func fetchManifest(t *testing.T, e *evaluator, etag, wait string) (int, string, *manifestv1.SignedManifest) {
	t.Helper()
	u := "http://" + e.app.HTTPAddr() + "/v1/manifest"
	if wait != "" {
		u += "?wait=" + wait
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, resp.Header.Get("ETag"), nil
	}
	var sm manifestv1.SignedManifest
	if err := proto.Unmarshal(b, &sm); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), &sm
}

func verifiedVersion(t *testing.T, v *manifest.Verifier, sm *manifestv1.SignedManifest) uint64 {
	t.Helper()
	m, err := v.Manifest(sm)
	if err != nil {
		t.Fatalf("signed manifest does not verify: %v", err)
	}
	return m.GetVersion()
}

// Finding 1: an evaluator fed by the sync stream applies deltas, and for every
// version it serves it holds the complete signed manifest: GET /v1/manifest, its
// ETag and long-poll, and the on-disk copy all follow; restarted from that copy
// with no control plane, it serves exactly the last version.
func TestSyncFedEvaluatorHoldsTheSignedManifestOfEveryVersionItServes(t *testing.T) {
	t.Parallel()
	cp, addr := newSyncControlPlane(t)
	cp.publish(t)
	dir := t.TempDir()
	e := start(t, syncConfig(cp, addr, dir))
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	verifier, err := manifest.NewVerifier(nil, cp.pub.Signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	for v := uint64(2); v <= 5; v++ {
		cp.publish(t)
		eventually(t, "version "+strconv.FormatUint(v, 10)+" is served", func() bool { return e.app.Holder.Version(env) == v })
		code, etag, sm := fetchManifest(t, e, "", "")
		if code != http.StatusOK || !strings.Contains(etag, "-"+strconv.FormatUint(v, 10)+"-") {
			t.Fatalf("GET /v1/manifest while serving %d: %d, ETag %s", v, code, etag)
		}
		if got := verifiedVersion(t, verifier, sm); got != v {
			t.Fatalf("GET /v1/manifest while serving %d returned version %d", v, got)
		}
		b, err := os.ReadFile(holder.Path(dir, env))
		if err != nil {
			t.Fatal(err)
		}
		var disk manifestv1.SignedManifest
		if err := proto.Unmarshal(b, &disk); err != nil {
			t.Fatal(err)
		}
		if got := verifiedVersion(t, verifier, &disk); got != v {
			t.Fatalf("the local copy is at version %d while %d is served", got, v)
		}
		// Those delta-built versions were never offered whole: the deltas' own
		// result signatures were enough.
	}

	// Long-poll with the current ETag: a new version answers 200 at once.
	_, etag, _ := fetchManifest(t, e, "", "")
	type answer struct {
		code int
		sm   *manifestv1.SignedManifest
		took time.Duration
	}
	polled := make(chan answer, 1)
	go func() {
		start := time.Now()
		code, _, sm := fetchManifest(t, e, etag, "10s")
		polled <- answer{code, sm, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond)
	cp.publish(t)
	a := <-polled
	if a.code != http.StatusOK || verifiedVersion(t, verifier, a.sm) != 6 || a.took > 5*time.Second {
		t.Fatalf("long-poll answered %d after %s, want 200 with version 6 at once", a.code, a.took)
	}
	eventually(t, "version 6 is served", func() bool { return e.app.Holder.Version(env) == 6 })
	code, out := post(t, e, "/v1/evaluate", fixture.ServerKey(env), `{"flagKey":"new-ui","context":{"targetingKey":"u","region":"us-east-1"}}`)
	if code != http.StatusOK || out["manifestVersion"] != "6" {
		t.Fatalf("before restart: %d %v", code, out)
	}
	before := out

	// Restart from the local copy alone: exactly the last version served.
	e.stop()
	cfg := syncConfig(cp, "", dir)
	cfg.SyncAddr = ""
	e2 := start(t, cfg)
	eventually(t, "the restarted evaluator is ready", func() bool { return e2.app.Holder.Ready() })
	code, out = post(t, e2, "/v1/evaluate", fixture.ServerKey(env), `{"flagKey":"new-ui","context":{"targetingKey":"u","region":"us-east-1"}}`)
	if code != http.StatusOK || out["manifestVersion"] != "6" || out["value"] != before["value"] || out["reason"] != before["reason"] {
		t.Fatalf("after restart from disk: %d %v, want %v", code, out, before)
	}
}

// Finding 1: after 2,000 deltas (far beyond the ring of 128), a new /v1/stream
// subscriber from version 0 gets the start and the snapshot of the current version
// at once, never 503.
func TestANewStreamAfter2000DeltasGetsASnapshotOfTheCurrentVersionAtOnce(t *testing.T) {
	t.Parallel()
	cp, addr := newSyncControlPlane(t)
	cp.publish(t)
	e := start(t, syncConfig(cp, addr, ""))
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	const last = 2001
	for v := 2; v <= last; v++ {
		cp.publish(t)
	}
	eventually(t, "version 2001 is served", func() bool { return e.app.Holder.Version(env) == last })

	req, _ := http.NewRequest(http.MethodGet, "http://"+e.app.HTTPAddr()+"/v1/stream?fromVersion=0", nil)
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /v1/stream: %d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(first) != `{"result":{"start":{"headVersion":"2001"}}}` {
		t.Fatalf("first line %q, want the start at head 2001", first)
	}
	second, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no snapshot within 2s: %v", err)
	}
	if !strings.HasPrefix(second, `{"result":{"snapshot":`) {
		t.Fatalf("second line %.200q, want the snapshot", second)
	}
	sm, _, _, _, ok := e.app.Hub.Signed(env)
	if !ok || sm == nil {
		t.Fatal("the hub holds no signed manifest")
	}
	var m manifestv1.Manifest
	if err := proto.Unmarshal(sm.GetPayload(), &m); err != nil || m.GetVersion() != last {
		t.Fatalf("the snapshot given is version %d, want %d", m.GetVersion(), last)
	}
}

// Findings 2 and 5: while the evaluator holds less than the head version the
// stream announced it is not ready (/readyz 503 with the detail), and a key it does
// not know yet is 503 with Retry-After (gRPC UNAVAILABLE), never 401. Once caught
// up it is ready and an unknown key is 401.
func TestNotReadyBelowTheHeadVersionAndUnknownKeysAreRetryableMeanwhile(t *testing.T) {
	t.Parallel()
	cp, addr := newSyncControlPlane(t)
	for range 3 {
		cp.publish(t)
	}
	release := make(chan struct{})
	cp.hold = release
	e := start(t, syncConfig(cp, addr, ""))
	eventually(t, "the head version is known", func() bool { return e.app.Holder.State().Head(env) == 3 })

	// Nothing held: the environment's own key is 503 + Retry-After, not 401.
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.app.HTTPAddr()+"/v1/evaluate", strings.NewReader(`{"flagKey":"new-ui"}`))
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("evaluate before any manifest: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, err = e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("gRPC evaluate before any manifest: %v, want UNAVAILABLE", err)
	}
	code, body := get(t, e, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"headVersion":3`) || !strings.Contains(body, `"version":0`) {
		t.Fatalf("/readyz before catching up: %d %s", code, body)
	}

	close(release)
	eventually(t, "ready at the head version", func() bool { return e.app.Holder.Ready() })
	if e.app.Holder.Version(env) != 3 {
		t.Fatalf("ready at version %d, want 3", e.app.Holder.Version(env))
	}
	code, body = get(t, e, "/readyz")
	if code != http.StatusOK || !strings.Contains(body, `"ready":true`) || !strings.Contains(body, `"sourceUp":true`) {
		t.Fatalf("/readyz once caught up: %d %s", code, body)
	}
	if code, _ := post(t, e, "/v1/evaluate", "no-such-key", `{"flagKey":"new-ui"}`); code != http.StatusUnauthorized {
		t.Fatalf("unknown key once ready: %d, want 401", code)
	}
}

// Finding 5: an SDK started before its evaluator is ready retries (503/UNAVAILABLE
// is not a refusal) and becomes ready once the evaluator is.
func TestAnSDKStartedBeforeItsEvaluatorIsReadyBecomesReadyOnceItIs(t *testing.T) {
	t.Parallel()
	cp, addr := newSyncControlPlane(t)
	cp.publish(t)
	cp.publish(t)
	release := make(chan struct{})
	cp.hold = release
	e := start(t, syncConfig(cp, addr, ""))
	c, err := sdk.New(sdk.Config{Address: e.app.GRPCAddr(), SDKKey: fixture.ServerKey(env), DisableUsage: true,
		TrustedKeys: []ed25519.PublicKey{cp.pub.Signer.PublicKey()},
		Backoff:     sdk.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	time.Sleep(500 * time.Millisecond) // several refused attempts
	if st := c.Status(); st.State != sdk.StateNotReady || errors.Is(st.LastError, sdk.ErrKeyRefused) {
		t.Fatalf("before the evaluator is ready: %+v, want NOT_READY and retrying", st)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if st := c.Status(); st.ManifestVersion != 2 {
		t.Fatalf("ready at version %d, want 2", st.ManifestVersion)
	}
}
