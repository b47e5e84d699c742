package publisher_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// BenchmarkCommitToPublishedIdle measures, on PostgreSQL, the time from the return
// of a committed flag change to the publication of the manifest version carrying
// it (the in-process fan-out event, right after the version's commit), and to its
// change event on Redis pub/sub. Changes are one at a time (an idle publisher).
func BenchmarkCommitToPublishedIdle(b *testing.B) {
	st, url := pgStore(b)
	rc, prefix := redisClient(b)
	signer, _ := newSigner(b)
	hub := fanout.New(0)
	start(b, publisher.Config{RedisPrefix: prefix}, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(b, url), Hub: hub, Redis: rc})
	ctx := context.Background()
	sub := hub.Subscribe()
	defer sub.Close()
	events := rc.Subscribe(ctx, rediskeys.Keys{Prefix: prefix}.Channel())
	defer func() { _ = events.Close() }()
	if _, err := events.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	msgs := events.Channel()
	waitFor(b, 10*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(ctx, prod)
		return err == nil, err
	})
	time.Sleep(200 * time.Millisecond)
	drain(sub, msgs)
	var published, redisSeen []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := st.GetFlagConfig(ctx, prod, "a")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.UpdateFlagConfig(ctx, meta, prod, "a", config(i%2 == 0), c.GetRevision(), nil); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		gotHub, gotRedis := false, false
		for !gotHub || !gotRedis {
			select {
			case ev := <-sub.C():
				if ev.Ref == prod {
					published = append(published, time.Since(t0))
					gotHub = true
				}
			case <-msgs:
				redisSeen = append(redisSeen, time.Since(t0))
				gotRedis = true
			case <-time.After(5 * time.Second):
				b.Fatal("change not published within 5s")
			}
		}
		time.Sleep(5 * time.Millisecond) // idle between changes
	}
	b.StopTimer()
	report(b, "published", published)
	report(b, "redis", redisSeen)
}

func drain[U any](sub *fanout.Subscription, msgs <-chan U) {
	for {
		select {
		case <-sub.C():
		case <-msgs:
		case <-time.After(50 * time.Millisecond):
			return
		}
	}
}

func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	p := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), name+"-p50-ms")
	b.ReportMetric(p(0.99), name+"-p99-ms")
}

// BenchmarkPublishThroughput1000Changes100Envs commits 1,000 flag changes spread
// over 100 environments (8 concurrent writers) with the publisher running, and
// measures the time until every change is published.
func BenchmarkPublishThroughput1000Changes100Envs(b *testing.B) {
	st, url := pgStore(b)
	signer, _ := newSigner(b)
	ctx := context.Background()
	envs := []store.EnvRef{}
	for _, e := range []string{"development", "staging", "production"} {
		envs = append(envs, store.EnvRef{Org: "acme", Project: "web", Environment: e})
	}
	for i := len(envs); i < 100; i++ {
		key := fmt.Sprintf("env%03d", i)
		if _, err := st.CreateEnvironment(ctx, meta, pref, &adminv1.Environment{Key: key, Name: key}); err != nil {
			b.Fatal(err)
		}
		envs = append(envs, store.EnvRef{Org: "acme", Project: "web", Environment: key})
	}
	start(b, publisher.Config{}, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(b, url)})
	waitFor(b, 30*time.Second, "initial versions", func() (bool, error) {
		ev, err := st.PendingOutbox(ctx, 1)
		return len(ev) == 0, err
	})
	b.ResetTimer()
	var total time.Duration
	versionsBefore := versionSum(b, st)
	for n := 0; n < b.N; n++ {
		t0 := time.Now()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each writer owns the environments e with e%8 == w and changes each 10
				// times (1,000 changes in all), so writers never race on a revision.
				for range 10 {
					for e := w; e < 100; e += 8 {
						ref := envs[e]
						c, err := st.GetFlagConfig(ctx, ref, "a")
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := st.UpdateFlagConfig(ctx, meta, ref, "a", config(!c.GetConfig().GetOn()), c.GetRevision(), nil); err != nil {
							b.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		committed := time.Since(t0)
		waitFor(b, 60*time.Second, "all changes published", func() (bool, error) {
			ev, err := st.PendingOutbox(ctx, 1)
			return len(ev) == 0, err
		})
		total += time.Since(t0)
		b.ReportMetric(committed.Seconds()*1000, "commit-ms")
	}
	b.StopTimer()
	b.ReportMetric(float64(1000*b.N)/total.Seconds(), "changes/s")
	b.ReportMetric(float64(versionSum(b, st)-versionsBefore)/float64(b.N), "versions/op")
}

func versionSum(b *testing.B, st store.Store) uint64 {
	heads, err := st.ManifestHeads(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var s uint64
	for _, h := range heads {
		s += h.Version
	}
	return s
}

// BenchmarkPruneOutbox measures, on PostgreSQL, how fast the publisher's pruning
// deletes published outbox rows older than the retention: 100,000 such rows next
// to 1,000 pending ones, deleted in batches of the default size (500). The pending
// rows must survive.
func BenchmarkPruneOutbox(b *testing.B) {
	const rows, batch = 100_000, 500
	st, url := pgStore(b)
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	old := time.Now().Add(-48 * time.Hour).UnixMicro()
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		if _, err := c.Exec(ctx, `INSERT INTO outbox (org, project, environment, kind, resource, created_at, published_at)
			SELECT 'acme', 'web', 'production', 'flag', 'a', $1::bigint + g, CASE WHEN g <= $2 THEN $1::bigint + g END
			FROM generate_series(1, $2 + 1000) AS g`, old, rows); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		began := time.Now()
		var total int64
		for {
			n, err := st.PruneOutbox(ctx, time.Now().Add(-24*time.Hour), batch)
			if err != nil {
				b.Fatal(err)
			}
			total += n
			if n < batch {
				break
			}
		}
		elapsed := time.Since(began)
		b.StopTimer()
		if total != rows {
			b.Fatalf("pruned %d rows, want %d", total, rows)
		}
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
		if pending, _ := outboxCounts(b, url); pending < 1000 {
			b.Fatalf("%d pending rows left, want at least 1000", pending)
		}
		if _, err := c.Exec(ctx, `DELETE FROM outbox`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
