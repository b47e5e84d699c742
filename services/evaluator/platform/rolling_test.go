package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// restartableEvaluator is an evaluator process that can be restarted on the same
// addresses (as a pod replaced behind a headless Service keeps its DNS name).
type restartableEvaluator struct {
	*evaluator
	name string
	env  []string
}

func (pl *platform) startRestartable(name string) *restartableEvaluator {
	pl.t.Helper()
	e := &evaluator{dataDir: pl.t.TempDir(), httpAddr: freeAddr(pl.t), grpcAddr: freeAddr(pl.t)}
	r := &restartableEvaluator{evaluator: e, name: name, env: []string{
		"FLAGFORGE_REDIS_URL=" + pl.redisURL(),
		"FLAGFORGE_TRUSTED_KEYS=" + pl.pubPath,
		"FLAGFORGE_ENVIRONMENTS=" + org + "/" + project + "/" + environment,
		"FLAGFORGE_GRPC_ADDR=" + e.grpcAddr,
		"FLAGFORGE_HTTP_ADDR=" + e.httpAddr,
		"FLAGFORGE_ADMIN_ADDR=",
		"FLAGFORGE_RESYNC_INTERVAL=2s",
		"FLAGFORGE_RATE_LIMIT=0",
		"FLAGFORGE_MAX_STREAMS_PER_KEY=0",
		"FLAGFORGE_SHUTDOWN_TIMEOUT=5s",
		"FLAGFORGE_LOG_LEVEL=warn",
	}}
	r.start(pl.t)
	return r
}

// start starts the process with a fresh data directory, as a rolling update
// gives each new pod a new emptyDir.
func (r *restartableEvaluator) start(t *testing.T) {
	t.Helper()
	r.dataDir = t.TempDir()
	r.p = start(t, r.name, evaluatorBin, append(slices.Clone(r.env), "FLAGFORGE_DATA_DIR="+r.dataDir))
	r.p.waitReady("http://"+r.httpAddr+"/readyz", 30*time.Second)
}

// unaryServiceConfig balances per call and retries UNAVAILABLE on another
// evaluator (docs/operations.md, "Rolling restarts"). waitForReady makes a call
// that finds no ready evaluator for a moment (the balancer has not yet seen that
// the restarted pod's connection broke) wait for one within its deadline instead
// of failing at once; the retries span about a second, longer than a picker update.
const unaryServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "flagforge.evaluation.v1.EvaluationService"}],
    "waitForReady": true,
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }]
}`

// rawStream follows the manifest stream the way an SDK does, reconnecting with
// from_version after every end, and records whether a resumption ever needed a
// snapshot. A resumption is a call made while holding a version: a call from
// version 0 (the first, or a retry of a first call that failed, say on an
// evaluator that was draining) rightly starts with a snapshot.
type rawStream struct {
	version  atomic.Uint64
	resumes  atomic.Int64
	midSnaps atomic.Int64 // snapshots pushed later on an established stream (the evaluator re-read a full manifest)

	mu        sync.Mutex
	snapshots []string // one line per resumption that started with a snapshot
}

func (s *rawStream) run(ctx context.Context, client evaluationv1.EvaluationServiceClient, key string) {
	for ctx.Err() == nil {
		sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		from := s.version.Load()
		var pr peer.Peer
		st, err := client.StreamManifest(sctx, &evaluationv1.StreamManifestRequest{FromVersion: from}, grpc.Peer(&pr))
		if err == nil {
			if from > 0 {
				s.resumes.Add(1)
			}
			caughtUp := false // the catch-up ends with the first delta or heartbeat
			var head uint64
			for {
				msg, err := st.Recv()
				if err != nil {
					break
				}
				switch ev := msg.GetEvent().(type) {
				case *evaluationv1.StreamManifestResponse_Start:
					head = ev.Start.GetHeadVersion()
				case *evaluationv1.StreamManifestResponse_Snapshot:
					// Only the version is read here: the SDK clients verify.
					var m manifestv1.Manifest
					_ = proto.Unmarshal(ev.Snapshot.GetPayload(), &m)
					switch {
					case caughtUp:
						s.midSnaps.Add(1)
					case from > 0:
						s.mu.Lock()
						s.snapshots = append(s.snapshots, fmt.Sprintf("from version %d on %v (head %d): snapshot of version %d",
							from, pr.Addr, head, m.GetVersion()))
						s.mu.Unlock()
					}
					s.version.Store(m.GetVersion())
				case *evaluationv1.StreamManifestResponse_Delta:
					caughtUp = true
					var d manifestv1.ManifestDelta
					if proto.Unmarshal(ev.Delta.GetPayload(), &d) == nil {
						s.version.Store(d.GetToVersion())
					}
				case *evaluationv1.StreamManifestResponse_Heartbeat:
					caughtUp = true
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestRollingRestartLosesNoEvaluation restarts three evaluators one at a time
// with SIGTERM while unary gRPC load and 500 streaming SDK clients run on them,
// all balancing round_robin over the three addresses (what dns:/// gives on a
// headless Service): no evaluation fails, every SDK client stays ready and gets
// every change, and raw streams resume from their version without a snapshot.
func TestRollingRestartLosesNoEvaluation(t *testing.T) {
	chaos(t)
	clients := 500
	if n, err := strconv.Atoi(os.Getenv("FLAGFORGE_ROLLING_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	pl := newPlatform(t, false)
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "rolling", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	pl.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}})
	pl.setFlag(true)

	evs := make([]*restartableEvaluator, 3)
	addrs := make([]resolver.Address, 3)
	for i := range evs {
		evs[i] = pl.startRestartable(fmt.Sprintf("evaluator-%d", i))
		addrs[i] = resolver.Address{Addr: evs[i].grpcAddr}
	}
	pl.waitValue(true, 20*time.Second, evs[0].evaluator, evs[1].evaluator, evs[2].evaluator)
	newResolver := func() *manual.Resolver {
		r := manual.NewBuilderWithScheme("ffrolling")
		r.InitialState(resolver.State{Addresses: addrs})
		return r
	}
	roundRobin := grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)
	// The unary client's configuration is the one docs/operations.md recommends:
	// round_robin plus retries of UNAVAILABLE (Evaluate is idempotent), which
	// covers a call that raced a pod's disappearance.
	balancedWithRetry := grpc.WithDefaultServiceConfig(unaryServiceConfig)

	pub, err := os.ReadFile(pl.pubPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	sdks := make([]*sdk.Client, clients)
	for i := range sdks {
		c, err := sdk.New(sdk.Config{
			Address: "ffrolling:///evaluators", LoadBalancing: "round_robin", SDKKey: pl.sdkKey, TrustedKeys: keys,
			DialOptions:  []grpc.DialOption{grpc.WithResolvers(newResolver())},
			Backoff:      sdk.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond, ResetAfter: time.Minute},
			DisableUsage: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		sdks[i] = c
	}
	defer func() {
		for _, c := range sdks {
			_ = c.Close()
		}
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	for i, c := range sdks {
		if err := c.WaitReady(wctx); err != nil {
			t.Fatalf("SDK client %d not ready: %v", i, err)
		}
	}
	wcancel()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()

	// Raw streams that record how they resume.
	streamConn, err := grpc.NewClient("ffrolling:///evaluators", grpc.WithResolvers(newResolver()), roundRobin,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = streamConn.Close() }()
	raws := make([]*rawStream, 30)
	for i := range raws {
		raws[i] = &rawStream{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			raws[i].run(ctx, evaluationv1.NewEvaluationServiceClient(streamConn), pl.sdkKey)
		}()
	}

	// Every raw stream holds the current version before the first restart, so
	// each reconnection below is a resumption.
	waitRaw(t, raws, sdks[0].Status().ManifestVersion, 30*time.Second)

	// Unary load: 4 workers, each call with a deadline; any error is a failure.
	unaryConn, err := grpc.NewClient("ffrolling:///evaluators", grpc.WithResolvers(newResolver()), balancedWithRetry,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unaryConn.Close() }()
	api := evaluationv1.NewEvaluationServiceClient(unaryConn)
	evalCtx, _ := structpb.NewStruct(map[string]any{"targetingKey": "user-1"})
	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+pl.sdkKey), 5*time.Second)
				began := time.Now()
				var pr peer.Peer
				resp, err := api.Evaluate(cctx, &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx}, grpc.Peer(&pr))
				cancel()
				if ctx.Err() != nil {
					return
				}
				calls.Add(1)
				if err == nil && resp.GetErrorCode() != "" {
					err = errors.New(resp.GetErrorCode() + ": " + resp.GetErrorMessage())
				}
				if err != nil {
					failures.Add(1)
					msg := fmt.Sprintf("%v after %v (peer %v)", err, time.Since(began).Round(time.Millisecond), pr.Addr)
					firstFailure.CompareAndSwap(nil, msg)
					t.Logf("%s: failed evaluation: %s", time.Now().Format("15:04:05.000"), msg)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}

	// Roll: SIGTERM one evaluator, start it again on the same addresses, wait
	// until it is ready, then a change that every client must see.
	on := true
	for i, e := range evs {
		before := calls.Load()
		t.Logf("%s: SIGTERM evaluator %d (%s)", time.Now().Format("15:04:05.000"), i, e.grpcAddr)
		e.p.Stop()
		t.Logf("%s: evaluator %d exited; starting it again", time.Now().Format("15:04:05.000"), i)
		e.start(t)
		t.Logf("%s: evaluator %d ready", time.Now().Format("15:04:05.000"), i)
		on = !on
		pl.setFlag(on)
		waitSDKs(t, sdks, on, 30*time.Second)
		// Every raw stream holds that version too before the next restart: a
		// freshly started evaluator keeps deltas only from its own start on, so
		// a stream still behind would rightly need a snapshot.
		waitRaw(t, raws, sdks[0].Status().ManifestVersion, 30*time.Second)
		if calls.Load() == before {
			t.Fatalf("no unary call completed while evaluator %d restarted", i)
		}
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	var midSnaps int64
	for _, r := range raws {
		midSnaps += r.midSnaps.Load()
	}
	t.Logf("%d unary evaluations, %d failed; %d SDK clients; raw stream resumptions %d; snapshots pushed on established streams %d",
		calls.Load(), failures.Load(), clients, totalResumes(raws), midSnaps)
	if failures.Load() != 0 {
		t.Errorf("%d of %d evaluations failed; first: %v", failures.Load(), calls.Load(), firstFailure.Load())
	}
	for i, c := range sdks {
		if st := c.Status(); st.State != sdk.StateReady {
			t.Errorf("SDK client %d ends %v (%v)", i, st.State, st.LastError)
		}
	}
	if totalResumes(raws) == 0 {
		t.Error("no raw stream was ever resumed: the restarts did not reach the streams")
	}
	// Every resumption continues from the stream's version: deltas, or a
	// heartbeat when it is current, never a snapshot (issue 16).
	var resumedWithSnapshot []string
	for i, r := range raws {
		r.mu.Lock()
		for _, l := range r.snapshots {
			resumedWithSnapshot = append(resumedWithSnapshot, fmt.Sprintf("raw stream %d: %s", i, l))
		}
		r.mu.Unlock()
	}
	if len(resumedWithSnapshot) > 0 {
		t.Errorf("%d resumptions got a snapshot, want deltas or a heartbeat:\n%s",
			len(resumedWithSnapshot), strings.Join(resumedWithSnapshot, "\n"))
	}
}

// waitRaw waits until every raw stream holds version.
func waitRaw(t *testing.T, raws []*rawStream, version uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		behind := 0
		for _, r := range raws {
			if r.version.Load() < version {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d raw streams did not reach version %d within %s", behind, len(raws), version, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func totalResumes(raws []*rawStream) int64 {
	var n int64
	for _, r := range raws {
		n += r.resumes.Load()
	}
	return n
}

// waitSDKs waits until every client evaluates new-ui to want.
func waitSDKs(t *testing.T, sdks []*sdk.Client, want bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		behind := 0
		for _, c := range sdks {
			if c.Bool("new-ui", nil, !want) != want {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d SDK clients did not get new-ui=%v within %s", behind, len(sdks), want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
