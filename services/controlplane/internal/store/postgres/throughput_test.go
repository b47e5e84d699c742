package postgres_test

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

// TestWriteThroughput measures sustained flag-configuration updates (state + audit
// entry + outbox row per transaction) at 1, 8 and 32 concurrent writers, each
// updating its own flag in one environment of one organization, connected as the
// application role. It runs only when FLAGFORGE_BENCH_DURATION is set (per level,
// e.g. 10s):
//
//	FLAGFORGE_BENCH_DURATION=10s go test -run TestWriteThroughput -v ./services/controlplane/internal/store/postgres/
func TestWriteThroughput(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("FLAGFORGE_BENCH_DURATION"))
	if err != nil || d <= 0 {
		t.Skip("set FLAGFORGE_BENCH_DURATION (e.g. 10s) to run the write benchmark")
	}
	s := open(t, testpg.AppURL(t, testpg.New(t)))
	ctx := t.Context()
	if _, err := s.CreateOrg(ctx, meta, &adminv1.Organization{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateProject(ctx, meta, "acme", &adminv1.Project{Key: "web"}); err != nil {
		t.Fatal(err)
	}
	ref := store.ProjectRef{Org: "acme", Project: "web"}
	env := store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	revs := make([]int64, 32)
	for i := range revs {
		if _, err := s.CreateFlag(ctx, meta, ref, &adminv1.Flag{Key: fmt.Sprintf("flag-%02d", i),
			Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN}, nil, nil); err != nil {
			t.Fatal(err)
		}
		revs[i] = 1
	}
	cfg := func(i int) *manifestv1.FlagConfig {
		return &manifestv1.FlagConfig{On: i%2 == 0, OffVariant: "off",
			DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{Rollout: &manifestv1.Rollout{
				Weights: []*manifestv1.WeightedVariant{{Variant: "on", Weight: int32(i % 100)}, {Variant: "off", Weight: 100 - int32(i%100)}}}}}}
	}
	t.Logf("| writers | updates | updates/s | p50 | p99 | max |")
	t.Logf("|---|---|---|---|---|---|")
	for _, writers := range []int{1, 8, 32} {
		lat := make([][]time.Duration, writers)
		var wg sync.WaitGroup
		start := time.Now()
		deadline := start.Add(d)
		var failed error
		var mu sync.Mutex
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("flag-%02d", w)
				for i := 0; time.Now().Before(deadline); i++ {
					t0 := time.Now()
					c, err := s.UpdateFlagConfig(ctx, meta, env, key, cfg(i), revs[w], nil)
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
					lat[w] = append(lat[w], time.Since(t0))
					revs[w] = c.Revision
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		if failed != nil {
			t.Fatal(failed)
		}
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		slices.Sort(all)
		pct := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)] }
		t.Logf("| %d | %d | %.0f | %s | %s | %s |", writers, len(all), float64(len(all))/elapsed.Seconds(),
			pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond))
	}
	v, err := s.VerifyAudit(ctx, "acme")
	if err != nil || !v.OK {
		t.Fatalf("VerifyAudit after the run: %+v %v", v, err)
	}
	t.Logf("audit chain verified: %d entries", v.Checked)
}
