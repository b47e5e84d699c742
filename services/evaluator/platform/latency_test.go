package platform

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
)

// TestEndToEndLatency measures commit to subscriber: a flag toggled over REST
// (PostgreSQL commit), published (publisher -> Redis), picked up by an evaluator
// and received on its StreamManifest stream. One change at a time; each is timed
// from just before the REST call is sent until the stream delivers it, so the
// figure includes the REST call itself (an upper bound of commit-to-received).
//
//	FLAGFORGE_E2E_LATENCY=200 go test -run TestEndToEndLatency -v ./services/evaluator/platform
func TestEndToEndLatency(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLAGFORGE_E2E_LATENCY"))
	if n <= 0 {
		t.Skip("set FLAGFORGE_E2E_LATENCY=<changes> to measure end-to-end latency")
	}
	// The shared server, with its real durability settings (the private cluster
	// runs with fsync off).
	pl := newPlatform(t, false)
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "latency", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	pl.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}})
	e := pl.startEvaluator("evaluator", filepath.Join(pl.dir, "evaluator"))

	conn, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+pl.sdkKey))
	defer cancel()
	stream, err := evaluationv1.NewEvaluationServiceClient(conn).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		on  bool
		at  time.Time
		err error
	}
	got := make(chan state, 16)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				got <- state{err: err}
				return
			}
			now := time.Now()
			switch {
			case msg.GetDelta() != nil:
				if d, err := pl.verifier.Delta(msg.GetDelta()); err == nil {
					if on, found := flagState(d.GetUpsertedFlags(), "new-ui"); found {
						got <- state{on: on, at: now}
					}
				}
			case msg.GetSnapshot() != nil:
				if m, err := pl.verifier.Manifest(msg.GetSnapshot()); err == nil {
					on, _ := flagState(m.GetFlags(), "new-ui")
					got <- state{on: on, at: now}
				}
			}
		}
	}()
	if s := <-got; s.err != nil || s.on {
		t.Fatalf("initial snapshot: %+v", s)
	}
	rev := 1
	lat := make([]time.Duration, 0, n)
	for i := range n {
		on := i%2 == 0
		sent := time.Now()
		pl.admin("PUT", envPath+"/flags/new-ui", map[string]any{"config": map[string]any{"on": on, "offVariant": "off",
			"defaultServe": map[string]any{"variant": "on"}}, "revision": rev})
		rev++
		for {
			select {
			case s := <-got:
				if s.err != nil {
					t.Fatal(s.err)
				}
				if s.on != on {
					continue
				}
				lat = append(lat, s.at.Sub(sent))
			case <-time.After(5 * time.Second):
				t.Fatalf("change %d not received within 5s", i)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("commit to StreamManifest subscriber over %d changes: p50 %s, p90 %s, p99 %s, max %s",
		len(lat), pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	if p50, p99 := pct(0.50), pct(0.99); p50 > 25*time.Millisecond || p99 > 100*time.Millisecond {
		t.Errorf("targets missed: p50 %s (<= 25ms), p99 %s (<= 100ms)", p50, p99)
	}
}
