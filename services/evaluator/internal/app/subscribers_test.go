package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// heapInuse forces a GC in the evaluator (pprof heap?gc=1 on the admin listener)
// and reads go_memstats_heap_inuse_bytes and go_memstats_stack_inuse_bytes from
// its /metrics.
func heapInuse(t *testing.T, admin, httpAddr string) (heap, stack float64) {
	t.Helper()
	for range 2 {
		resp, err := http.Get("http://" + admin + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			heap, _ = strconv.ParseFloat(rest, 64)
		}
		if rest, ok := strings.CutPrefix(line, "go_memstats_stack_inuse_bytes "); ok {
			stack, _ = strconv.ParseFloat(rest, 64)
		}
	}
	return heap, stack
}

// TestTenThousandSubscribersReceiveAChangeWithinOneSecond opens N (default
// 10,000) StreamManifest subscribers on one evaluator process (the built binary,
// so its heap is measured alone), measures its heap per subscriber, publishes one
// change through Redis and measures how long until every subscriber has it.
// Env-gated: FLAGFORGE_BENCH_SUBSCRIBERS=10000.
func TestTenThousandSubscribersReceiveAChangeWithinOneSecond(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLAGFORGE_BENCH_SUBSCRIBERS"))
	if n <= 0 {
		t.Skip("set FLAGFORGE_BENCH_SUBSCRIBERS=10000 to run")
	}
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	bin := filepath.Join(t.TempDir(), "evaluator")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/flagforge/flagforge/services/evaluator/cmd/evaluator").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	grpcAddr, httpAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"FLAGFORGE_REDIS_URL="+r.cfg.RedisURL, "FLAGFORGE_REDIS_KEY_PREFIX="+r.cfg.RedisKeyPrefix,
		"FLAGFORGE_TRUSTED_KEYS="+r.cfg.TrustedKeys, "FLAGFORGE_ENVIRONMENTS="+env, "FLAGFORGE_DATA_DIR=",
		"FLAGFORGE_GRPC_ADDR="+grpcAddr, "FLAGFORGE_HTTP_ADDR="+httpAddr, "FLAGFORGE_ADMIN_ADDR="+admin,
		"FLAGFORGE_MAX_STREAMS=0", "FLAGFORGE_MAX_STREAMS_PER_KEY=0", "FLAGFORGE_RATE_LIMIT=0", "FLAGFORGE_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, "the evaluator is ready", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	subscribed(t, r)

	const conns = 20
	clients := make([]evaluationv1.EvaluationServiceClient, conns)
	for i := range clients {
		c, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		clients[i] = evaluationv1.NewEvaluationServiceClient(c)
	}
	before, stackBefore := heapInuse(t, admin, httpAddr)

	ctx, cancel := context.WithCancel(withKey(fixture.ServerKey(env)))
	defer cancel()
	var ready, got sync.WaitGroup
	ready.Add(n)
	got.Add(n)
	arrivals := make([]time.Time, n)
	for i := range n {
		go func() {
			st, err := clients[i%conns].StreamManifest(ctx, &evaluationv1.StreamManifestRequest{FromVersion: 1})
			if err != nil {
				t.Error(err)
				ready.Done()
				got.Done()
				return
			}
			if _, err := st.Recv(); err != nil { // heartbeat: current
				t.Error(err)
				ready.Done()
				got.Done()
				return
			}
			ready.Done()
			for {
				m, err := st.Recv()
				if err != nil {
					return
				}
				if m.GetDelta() != nil || m.GetSnapshot() != nil {
					arrivals[i] = time.Now()
					got.Done()
					return
				}
			}
		}()
	}
	ready.Wait()
	if t.Failed() {
		t.FailNow()
	}
	after, stackAfter := heapInuse(t, admin, httpAddr)
	perSub := (after - before) / float64(n)

	published := time.Now()
	r.publish(t, fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, true)))
	done := make(chan struct{})
	go func() { got.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("not every subscriber got the change within 30s")
	}
	lat := make([]time.Duration, n)
	for i, a := range arrivals {
		lat[i] = a.Sub(published)
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(n-1, int(float64(n)*q))] }
	t.Logf("%d subscribers over %d connections: evaluator heap in use %.1f MiB -> %.1f MiB, %.1f KB per subscriber",
		n, conns, before/(1<<20), after/(1<<20), perSub/1000)
	t.Logf("goroutine stacks %.1f MiB -> %.1f MiB, %.1f KB per subscriber (not heap)",
		stackBefore/(1<<20), stackAfter/(1<<20), (stackAfter-stackBefore)/float64(n)/1000)
	t.Logf("publish (Redis) -> subscriber received: p50 %s, p99 %s, max %s", p(0.50), p(0.99), lat[n-1])
	fmt.Printf("SUBSCRIBERS n=%d heap_per_sub_kb=%.1f p50=%s p99=%s max=%s\n", n, perSub/1000, p(0.5), p(0.99), lat[n-1])
	if perSub > 20_000 {
		t.Errorf("heap per subscriber %.1f KB, target <= 20 KB", perSub/1000)
	}
	if p(0.99) > time.Second {
		t.Errorf("p99 %s, target <= 1s", p(0.99))
	}
}
