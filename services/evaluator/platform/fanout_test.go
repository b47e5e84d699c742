package platform

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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
	"google.golang.org/protobuf/proto"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// fanoutEvaluator is an evaluator process with its admin (pprof) listener known
// and no stream caps, for TestEndToEndFanout.
type fanoutEvaluator struct {
	p        *proc
	httpAddr string
	grpcAddr string
	admin    string
}

// startFanoutEvaluator is startEvaluator with the per-key and per-process stream
// caps off (the defaults, 1,000 per key and 20,000 per process, would refuse the
// 1,001st stream of the one SDK key) and the admin listener's address kept.
func (pl *platform) startFanoutEvaluator(dataDir string) *fanoutEvaluator {
	pl.t.Helper()
	e := &fanoutEvaluator{httpAddr: freeAddr(pl.t), grpcAddr: freeAddr(pl.t), admin: freeAddr(pl.t)}
	e.p = start(pl.t, "evaluator", evaluatorBin, []string{
		"FLAGFORGE_REDIS_URL=" + pl.redis.URL(),
		"FLAGFORGE_TRUSTED_KEYS=" + pl.pubPath,
		"FLAGFORGE_ENVIRONMENTS=" + org + "/" + project + "/" + environment,
		"FLAGFORGE_DATA_DIR=" + dataDir,
		"FLAGFORGE_GRPC_ADDR=" + e.grpcAddr,
		"FLAGFORGE_HTTP_ADDR=" + e.httpAddr,
		"FLAGFORGE_ADMIN_ADDR=" + e.admin,
		"FLAGFORGE_USAGE_ADDR=" + pl.cpGRPC,
		"FLAGFORGE_SYNC_TOKEN=" + pl.syncToken,
		"FLAGFORGE_RESYNC_INTERVAL=2s",
		"FLAGFORGE_RATE_LIMIT=0",
		"FLAGFORGE_MAX_STREAMS=0",
		"FLAGFORGE_MAX_STREAMS_PER_KEY=0",
		"FLAGFORGE_LOG_LEVEL=warn",
	})
	e.p.waitReady("http://"+e.httpAddr+"/readyz", 30*time.Second)
	return e
}

// memory forces two GCs in the evaluator (pprof heap?gc=1 on the admin listener)
// and reads go_memstats_heap_inuse_bytes and go_memstats_stack_inuse_bytes from its
// /metrics.
func (e *fanoutEvaluator) memory(t *testing.T) (heap, stack float64) {
	t.Helper()
	get := func(url string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return string(b)
	}
	for range 2 {
		get("http://" + e.admin + "/debug/pprof/heap?gc=1")
	}
	heap, stack = -1, -1
	for line := range strings.SplitSeq(get("http://"+e.httpAddr+"/metrics"), "\n") {
		if rest, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			heap, _ = strconv.ParseFloat(rest, 64)
		}
		if rest, ok := strings.CutPrefix(line, "go_memstats_stack_inuse_bytes "); ok {
			stack, _ = strconv.ParseFloat(rest, 64)
		}
	}
	if heap < 0 || stack < 0 {
		t.Fatal("the evaluator's /metrics has no go_memstats_heap_inuse_bytes / go_memstats_stack_inuse_bytes")
	}
	return heap, stack
}

// TestEndToEndFanout is the evaluator issue's fan-out target, end to end: N (10,000)
// concurrent StreamManifest subscribers (one server SDK key, spread over 40 gRPC
// connections) on one evaluator process; the evaluator's heap per subscriber
// (heap in use after a forced GC, before and after opening the streams); then
// several flag changes committed on the control plane (REST PUT -> PostgreSQL ->
// publisher -> Redis -> evaluator), each timed from just before the PUT is sent to
// each subscriber's receipt of the delta carrying it. Targets: heap <= 20 KB per
// subscriber, p99 of commit-to-received <= 1 s.
//
// The subscribers run in the test process on the same machine, so their own
// scheduling is part of the latency. A receipt is stamped when Recv returns; the
// deltas' signatures are all checked afterwards, not on the clock (a real
// subscriber verifies on its own CPU, not on the evaluator's).
//
//	FLAGFORGE_E2E_SUBSCRIBERS=10000 go test -count=1 -run TestEndToEndFanout -v ./services/evaluator/platform
func TestEndToEndFanout(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLAGFORGE_E2E_SUBSCRIBERS"))
	if n <= 0 {
		t.Skip("set FLAGFORGE_E2E_SUBSCRIBERS=10000 to measure 10,000 StreamManifest subscribers end to end")
	}
	const (
		conns   = 40
		changes = 5
	)
	// 40 connections need 40 descriptors on each side; the Go runtime already
	// raises RLIMIT_NOFILE to its hard limit in both processes.

	// The shared server with its real durability settings, as TestEndToEndLatency.
	pl := newPlatform(t, false)
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "fanout", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	pl.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}})
	cfg, _ := pl.admin("GET", envPath+"/flags/new-ui", nil)["config"].(map[string]any)
	base, err := strconv.ParseInt(fmt.Sprint(cfg["revision"]), 10, 64) // protojson: int64 as a string
	if err != nil {
		t.Fatalf("new-ui's configuration revision %v: %v", cfg["revision"], err)
	}
	e := pl.startFanoutEvaluator(filepath.Join(pl.dir, "evaluator"))

	// Wait until the evaluator holds new-ui, so every snapshot carries it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, err := call("POST", "http://"+e.httpAddr+"/v1/evaluate", pl.sdkKey,
			map[string]any{"flagKey": "new-ui", "context": map[string]any{"targetingKey": "user-1"}})
		if err == nil && code == http.StatusOK && (out["errorCode"] == nil || out["errorCode"] == "") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the evaluator does not serve new-ui after 10s: %d %v %v", code, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	clients := make([]evaluationv1.EvaluationServiceClient, conns)
	for i := range clients {
		c, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		c.Connect()
		clients[i] = evaluationv1.NewEvaluationServiceClient(c)
	}
	heapBefore, stackBefore := e.memory(t)

	// arrivals[k][i]: when subscriber i received change k; deltas[k][i]: what it
	// received (verified after the measurement).
	arrivals := make([][]time.Time, changes)
	deltas := make([][]*manifestv1.SignedDelta, changes)
	received := make([]atomic.Int32, changes)
	all := make([]chan struct{}, changes)
	for k := range changes {
		arrivals[k] = make([]time.Time, n)
		deltas[k] = make([]*manifestv1.SignedDelta, n)
		all[k] = make(chan struct{})
	}
	var (
		problemMu sync.Mutex
		problem   error
	)
	fail := func(err error) {
		problemMu.Lock()
		defer problemMu.Unlock()
		if problem == nil {
			problem = err
		}
	}
	firstProblem := func() error {
		problemMu.Lock()
		defer problemMu.Unlock()
		return problem
	}

	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+pl.sdkKey))
	var subscribers sync.WaitGroup
	defer func() {
		cancel()
		done := make(chan struct{})
		go func() { subscribers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("subscribers still running 15s after their streams were cancelled")
		}
	}()
	var snapshots atomic.Int32
	allSnapshots := make(chan struct{})
	opening := time.Now()
	for i := range n {
		subscribers.Go(func() {
			st, err := clients[i%conns].StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
			if err != nil {
				fail(fmt.Errorf("subscriber %d: %w", i, err))
				return
			}
			for {
				msg, err := st.Recv()
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("subscriber %d: %w", i, err))
					}
					return
				}
				at := time.Now()
				switch {
				case msg.GetSnapshot() != nil:
					m, err := pl.verifier.Manifest(msg.GetSnapshot())
					if err != nil {
						fail(fmt.Errorf("subscriber %d: snapshot: %w", i, err))
						return
					}
					if f := findFlag(m.GetFlags(), "new-ui"); f == nil || f.GetRevision() != base {
						fail(fmt.Errorf("subscriber %d: snapshot version %d has new-ui %v, want revision %d", i, m.GetVersion(), f, base))
						return
					}
					if snapshots.Add(1) == int32(n) {
						close(allSnapshots)
					}
				case msg.GetDelta() != nil:
					// Identify the change by the flag's revision (unverified here;
					// every delta is verified after the measurement).
					var d manifestv1.ManifestDelta
					if err := proto.Unmarshal(msg.GetDelta().GetPayload(), &d); err != nil {
						fail(fmt.Errorf("subscriber %d: delta: %w", i, err))
						return
					}
					f := findFlag(d.GetUpsertedFlags(), "new-ui")
					if f == nil {
						continue
					}
					k := int(f.GetRevision() - base - 1)
					if k < 0 || k >= changes || !arrivals[k][i].IsZero() {
						fail(fmt.Errorf("subscriber %d: unexpected delta with new-ui revision %d", i, f.GetRevision()))
						return
					}
					arrivals[k][i], deltas[k][i] = at, msg.GetDelta()
					if received[k].Add(1) == int32(n) {
						close(all[k])
					}
				}
			}
		})
	}
	select {
	case <-allSnapshots:
	case <-time.After(60 * time.Second):
		t.Fatalf("%d of %d subscribers have their snapshot after 60s; first problem: %v", snapshots.Load(), n, firstProblem())
	}
	opened := time.Since(opening)
	heapAfter, stackAfter := e.memory(t)
	perSub := (heapAfter - heapBefore) / float64(n)

	sent := make([]time.Time, changes)
	for k := range changes {
		time.Sleep(200 * time.Millisecond)
		on := k%2 == 0
		sent[k] = time.Now()
		out := pl.admin("PUT", envPath+"/flags/new-ui", map[string]any{"config": map[string]any{"on": on, "offVariant": "off",
			"defaultServe": map[string]any{"variant": "on"}}, "revision": base + int64(k)})
		got, _ := out["config"].(map[string]any)
		if rev := fmt.Sprint(got["revision"]); rev != strconv.FormatInt(base+int64(k)+1, 10) {
			t.Fatalf("change %d: PUT answered revision %s, want %d: %v", k, rev, base+int64(k)+1, out)
		}
		select {
		case <-all[k]:
		case <-time.After(15 * time.Second):
			t.Fatalf("change %d: %d of %d subscribers have it after 15s; first problem: %v", k, received[k].Load(), n, firstProblem())
		}
	}
	if err := firstProblem(); err != nil {
		t.Fatal(err)
	}
	cancel()

	// Every receipt is a delta signed by the control plane's key with the state set.
	for k := range changes {
		for i, sd := range deltas[k] {
			d, err := pl.verifier.Delta(sd)
			if err != nil {
				t.Fatalf("change %d, subscriber %d: %v", k, i, err)
			}
			if f := findFlag(d.GetUpsertedFlags(), "new-ui"); f.GetConfig().GetOn() != (k%2 == 0) {
				t.Fatalf("change %d, subscriber %d: new-ui on = %v", k, i, f.GetConfig().GetOn())
			}
		}
	}

	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	pct := func(lat []time.Duration, p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	lat := make([]time.Duration, 0, changes*n)
	t.Logf("%d StreamManifest subscribers (one server SDK key) over %d gRPC connections, all holding their snapshot %s after the first was opened",
		n, conns, opened.Round(time.Millisecond))
	t.Logf("evaluator heap in use (after forced GC) %.1f MiB -> %.1f MiB: %.1f KB per subscriber; goroutine stacks %.1f MiB -> %.1f MiB: %.1f KB per subscriber (not heap)",
		heapBefore/(1<<20), heapAfter/(1<<20), perSub/1000, stackBefore/(1<<20), stackAfter/(1<<20), (stackAfter-stackBefore)/float64(n)/1000)
	for k := range changes {
		one := make([]time.Duration, n)
		for i, a := range arrivals[k] {
			one[i] = a.Sub(sent[k])
		}
		slices.Sort(one)
		lat = append(lat, one...)
		t.Logf("change %d: first subscriber %s, p50 %s, p99 %s, last subscriber %s after the PUT was sent",
			k+1, round(one[0]), round(pct(one, 0.50)), round(pct(one, 0.99)), round(one[n-1]))
	}
	slices.Sort(lat)
	t.Logf("commit to subscriber over %d receipts (%d changes x %d subscribers): p50 %s, p99 %s, max %s",
		len(lat), changes, n, round(pct(lat, 0.50)), round(pct(lat, 0.99)), round(lat[len(lat)-1]))
	if perSub > 20_000 {
		t.Errorf("target missed: heap per subscriber %.1f KB (<= 20 KB)", perSub/1000)
	}
	if p99 := pct(lat, 0.99); p99 > time.Second {
		t.Errorf("target missed: p99 commit to subscriber %s (<= 1s)", p99)
	}
}

// findFlag returns the flag called key among flags, nil if absent.
func findFlag(flags []*manifestv1.Flag, key string) *manifestv1.Flag {
	for _, f := range flags {
		if f.GetKey() == key {
			return f
		}
	}
	return nil
}
