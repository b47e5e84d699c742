package publisher_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

var allEnvs = []string{"acme/web/development", "acme/web/production", "acme/web/staging"}

// ---- a private redis-server the test can kill and restart ----

// privateRedis is a redis-server child process on a fixed port of 127.0.0.1,
// keeping nothing on disk: a restart starts empty.
type privateRedis struct {
	t    testing.TB
	bin  string
	addr string
	dir  string
	cmd  *exec.Cmd
}

func newPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "SKIPPING: redis-server not in PATH: " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	r := &privateRedis{t: t, bin: bin, addr: addr, dir: t.TempDir()}
	r.start("")
	t.Cleanup(r.kill)
	return r
}

// start runs redis-server (requiring password when not "") and waits until it
// answers.
func (r *privateRedis) start(password string) {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: r.addr, Password: password, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	waitFor(r.t, 10*time.Second, "redis-server to answer", func() (bool, error) {
		err := c.Ping(context.Background()).Err()
		return err == nil, err
	})
}

// kill stops the server with SIGKILL and reaps it.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// client returns a client of the server with short timeouts, closed at the end.
func (r *privateRedis) client(password string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr, Password: password, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisView is what an evaluator reading Redis with the default prefix holds: for
// each environment of ff:envs, the verified manifest of its hash, checked
// against the hash's version and delta.
func redisView(ctx context.Context, c *redis.Client, v *manifest.Verifier) (map[string]*manifestv1.Manifest, error) {
	targets, err := c.SMembers(ctx, rediskeys.Keys{}.Envs()).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]*manifestv1.Manifest{}
	for _, target := range targets {
		h, err := c.HGetAll(ctx, rediskeys.Keys{}.Env(target)).Result()
		if err != nil {
			return nil, err
		}
		var sm manifestv1.SignedManifest
		if err := proto.Unmarshal([]byte(h["manifest"]), &sm); err != nil {
			return nil, err
		}
		m, err := v.Manifest(&sm)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		if manifest.Target(m) != target || strconv.FormatUint(m.GetVersion(), 10) != h["version"] {
			return nil, fmt.Errorf("%s: hash version %s holds version %d of %s", target, h["version"], m.GetVersion(), manifest.Target(m))
		}
		if m.GetVersion() > 1 {
			var sd manifestv1.SignedDelta
			if err := proto.Unmarshal([]byte(h["delta"]), &sd); err != nil {
				return nil, err
			}
			d, err := v.Delta(&sd)
			if err != nil {
				return nil, fmt.Errorf("%s delta: %w", target, err)
			}
			if d.GetToVersion() != m.GetVersion() || d.GetFromVersion() != m.GetVersion()-1 {
				return nil, fmt.Errorf("%s: delta %d->%d next to version %d", target, d.GetFromVersion(), d.GetToVersion(), m.GetVersion())
			}
		}
		out[target] = m
	}
	return out, nil
}

// redisHoldsLatest reports whether Redis holds, for every environment with a
// stored version, exactly the latest stored signed manifest.
func redisHoldsLatest(ctx context.Context, c *redis.Client, v *manifest.Verifier, st store.Store) (bool, error) {
	view, err := redisView(ctx, c, v)
	if err != nil {
		return false, err
	}
	heads, err := st.ManifestHeads(ctx)
	if err != nil || len(heads) == 0 {
		return false, err
	}
	if len(view) != len(heads) {
		return false, fmt.Errorf("ff:envs has %d environments, the database %d", len(view), len(heads))
	}
	for _, h := range heads {
		latest, err := st.LatestManifest(ctx, h.Ref)
		if err != nil {
			return false, err
		}
		m := view[target(h.Ref)]
		if m == nil || m.GetVersion() != latest.Version {
			return false, fmt.Errorf("%s: Redis at version %d, database at %d", target(h.Ref), m.GetVersion(), latest.Version)
		}
		var want manifestv1.Manifest
		if err := proto.Unmarshal(latest.Signed.GetPayload(), &want); err != nil {
			return false, err
		}
		if !proto.Equal(m, &want) {
			return false, fmt.Errorf("%s: Redis and the database differ at version %d", target(h.Ref), m.GetVersion())
		}
	}
	return true, nil
}

func target(r store.EnvRef) string { return r.Org + "/" + r.Project + "/" + r.Environment }

func heads(t testing.TB, st store.Store) map[string]uint64 {
	t.Helper()
	hs, err := st.ManifestHeads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, h := range hs {
		out[target(h.Ref)] = h.Version
	}
	return out
}

func counter(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func TestRedisOutageDoesNotBlockPublishingAndEveryLatestVersionIsRewrittenWhenRedisReturnsEmpty(t *testing.T) {
	t.Parallel()
	st, url := pgStore(t)
	srv := newPrivateRedis(t)
	signer, _ := newSigner(t)
	v := verifierFor(t, nil, signer)
	r := start(t, publisher.Config{RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond},
		publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url), Redis: srv.client("")})
	reader := srv.client("")
	waitFor(t, 10*time.Second, "every environment in Redis", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	before := heads(t, st)

	// Redis goes away; changes keep being committed and published to the database.
	srv.kill()
	outage := time.Now()
	for i := range 6 {
		toggle(t, st, prod, "a", i%2 == 0)
	}
	if _, err := st.CreateFlag(t.Context(), meta, pref, boolFlag("during-outage"), config(true), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new versions in the database while Redis is down", func() (bool, error) {
		pending, err := st.PendingOutbox(t.Context(), 1)
		if err != nil || len(pending) > 0 {
			return false, err
		}
		now := heads(t, st)
		for _, env := range allEnvs {
			if now[env] <= before[env] {
				return false, fmt.Errorf("%s still at version %d", env, now[env])
			}
		}
		return true, nil
	})
	t.Logf("versions during the outage: %v -> %v in %s", before, heads(t, st), time.Since(outage).Round(time.Millisecond))
	latest := checkHistory(t, st, signer)
	if _, found := flagOn(latest[prod], "during-outage"); !found {
		t.Fatal("a flag created during the outage is not in the latest version")
	}
	waitFor(t, 5*time.Second, "the publisher to notice the outage", func() (bool, error) {
		return counter(t, r.reg, "flagforge_publisher_redis_errors_total") > 0, nil
	})

	// Redis comes back empty on the same port. It first requires a password the
	// publisher does not have, so a subscriber can listen before anything is
	// re-written; clearing the password lets the publisher in.
	srv.start("gate")
	sub := srv.client("gate").Subscribe(t.Context(), "ff:manifests")
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(t.Context()); err != nil { // subscription confirmation
		t.Fatal(err)
	}
	if err := srv.client("gate").ConfigSet(t.Context(), "requirepass", "").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every environment's latest version re-written to the empty Redis", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	// One event per environment, naming its latest version.
	want := heads(t, st)
	got := map[string]uint64{}
	ch := sub.Channel()
	deadline := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case msg := <-ch:
			tgt, ver, _ := strings.Cut(msg.Payload, " ")
			n, _ := strconv.ParseUint(ver, 10, 64)
			got[tgt] = max(got[tgt], n)
		case <-deadline:
			t.Fatalf("events after the restart %v, want %v", got, want)
		}
	}
	for env, ver := range want {
		if got[env] != ver {
			t.Fatalf("event for %s names version %d, latest is %d", env, got[env], ver)
		}
	}
	// An evaluator reading Redis now sees the change made during the outage.
	view, err := redisView(t.Context(), reader, v)
	if err != nil {
		t.Fatal(err)
	}
	if on, found := flagOn(view["acme/web/production"], "during-outage"); !on || !found {
		t.Fatal("Redis does not carry the flag created during the outage")
	}
}

func TestRedisRestartedEmptyWhileThePublisherIsIdleIsRewrittenWithoutANewChange(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	srv := newPrivateRedis(t)
	signer, _ := newSigner(t)
	v := verifierFor(t, nil, signer)
	r := start(t, publisher.Config{RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond},
		publisher.Deps{Store: st, Signer: signer, Redis: srv.client("")})
	st.OnOutboxCommit(r.p.Notify)
	reader := srv.client("")
	waitFor(t, 10*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(t.Context(), prod)
		return err == nil, err
	})
	toggle(t, st, prod, "a", true)
	waitFor(t, 10*time.Second, "every environment's latest version in Redis", func() (bool, error) {
		if heads(t, st)["acme/web/production"] != 2 {
			return false, nil
		}
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	before := heads(t, st)
	// No write fails: Redis restarts empty between two writes.
	srv.kill()
	srv.start("")
	waitFor(t, 5*time.Second, "the empty Redis to be re-written", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	if after := heads(t, st); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("versions changed from %v to %v: the re-write must not need a new version", before, after)
	}
}

func TestAChangeWrittenToARestartedEmptyRedisAlsoRewritesEveryOtherEnvironment(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	srv := newPrivateRedis(t)
	signer, _ := newSigner(t)
	v := verifierFor(t, nil, signer)
	// The idle probe runs every RetryMax (10 s): longer than this test waits, so
	// only the write itself can reveal the empty Redis.
	r := start(t, publisher.Config{RetryMin: 20 * time.Millisecond, RetryMax: 10 * time.Second},
		publisher.Deps{Store: st, Signer: signer, Redis: srv.client("")})
	st.OnOutboxCommit(r.p.Notify)
	reader := srv.client("")
	waitFor(t, 10*time.Second, "every environment in Redis", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	srv.kill()
	srv.start("")
	// The first write to the empty Redis is production's next version.
	toggle(t, st, prod, "a", true)
	waitFor(t, 3*time.Second, "development and staging re-written next to production's change", func() (bool, error) {
		if heads(t, st)["acme/web/production"] != 2 {
			return false, nil
		}
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
}

// ---- S3 snapshots against gofakes3 ----

// fakeS3 serves gofakes3 (the S3 HTTP API, in-memory backend) on 127.0.0.1 with
// bucket created. gofakes3 does not check request signatures.
func fakeS3(t testing.TB, bucket string) (*s3mem.Backend, string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return backend, strings.TrimPrefix(srv.URL, "http://")
}

func TestPublishedVersionsAreUploadedToS3AsSignedManifestsUnderTheDocumentedNames(t *testing.T) {
	t.Parallel()
	backend, endpoint := fakeS3(t, "flagforge")
	s3, err := snapshot.NewS3(snapshot.S3Config{Endpoint: endpoint, Bucket: "flagforge", Prefix: "manifests/",
		Region: "us-east-1", AccessKey: "access", SecretKey: "secret", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	signer, _ := newSigner(t)
	r := start(t, publisher.Config{}, publisher.Deps{Store: st, Signer: signer, Snapshots: s3})
	st.OnOutboxCommit(r.p.Notify)
	waitFor(t, 5*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(t.Context(), prod)
		return err == nil, err
	})
	// One version per toggle: wait for each so none fold together.
	for i := range 4 {
		toggle(t, st, prod, "a", i%2 == 0)
		waitFor(t, 5*time.Second, "the toggle published", func() (bool, error) {
			l, err := st.LatestManifest(t.Context(), prod)
			return err == nil && l.Version == uint64(i+2), err
		})
	}
	hs := heads(t, st)
	var want []string
	for _, env := range allEnvs {
		for ver := uint64(1); ver <= hs[env]; ver++ {
			want = append(want, fmt.Sprintf("manifests/%s/%020d.manifest", env, ver))
		}
	}
	sort.Strings(want)
	if len(want) != 7 || hs["acme/web/production"] != 5 {
		t.Fatalf("heads %v: want production at 5, the others at 1", hs)
	}
	var names []string
	waitFor(t, 10*time.Second, "one object per published version", func() (bool, error) {
		list, err := backend.ListBucket("flagforge", nil, gofakes3.ListBucketPage{})
		if err != nil {
			return false, err
		}
		names = names[:0]
		for _, c := range list.Contents {
			names = append(names, c.Key)
		}
		sort.Strings(names)
		return slices.Equal(names, want), fmt.Errorf("objects %v, want %v", names, want)
	})
	v := verifierFor(t, nil, signer)
	for _, env := range allEnvs {
		parts := strings.Split(env, "/")
		ref := store.EnvRef{Org: parts[0], Project: parts[1], Environment: parts[2]}
		var held *manifestv1.Manifest
		for ver := uint64(1); ver <= hs[env]; ver++ {
			name := fmt.Sprintf("manifests/%s/%020d.manifest", env, ver)
			obj, err := backend.GetObject("flagforge", name, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(obj.Contents)
			_ = obj.Contents.Close()
			if err != nil {
				t.Fatal(err)
			}
			var sm manifestv1.SignedManifest
			if err := proto.Unmarshal(data, &sm); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m, err := v.Next(held, &sm)
			if err != nil {
				t.Fatalf("%s does not verify as the next version: %v", name, err)
			}
			if m.GetVersion() != ver || manifest.Target(m) != env {
				t.Fatalf("%s holds version %d of %s", name, m.GetVersion(), manifest.Target(m))
			}
			if held != nil && string(m.GetPreviousDigest()) == "" {
				t.Fatalf("%s has no previous digest", name)
			}
			stored, err := st.GetManifest(t.Context(), ref, ver)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(stored.Signed, &sm) {
				t.Fatalf("%s differs from the stored version", name)
			}
			// The store's own reader gets the same bytes back through minio-go.
			got, err := s3.Get(t.Context(), env, ver)
			if err != nil || string(got) != string(data) {
				t.Fatalf("S3.Get %s %d: %v", env, ver, err)
			}
			held = m
		}
	}
}

// ---- outbox pruning ----

func outboxCounts(t testing.TB, url string) (pending, published int) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	if err := c.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE published_at IS NULL),
		count(*) FILTER (WHERE published_at IS NOT NULL) FROM outbox`).Scan(&pending, &published); err != nil {
		t.Fatal(err)
	}
	return pending, published
}

func TestActivePublisherPrunesPublishedOutboxRowsOnlyAfterTheRetention(t *testing.T) {
	t.Parallel()
	st, url := pgStore(t)
	signer, _ := newSigner(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	// Default retention (24 h), pruning every 10 ms in batches of 2.
	r := start(t, publisher.Config{PruneInterval: 10 * time.Millisecond, PruneBatch: 2},
		publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url), Now: clock})
	lastToggle := false
	for i := range 5 {
		lastToggle = i%2 == 0
		toggle(t, st, prod, "a", lastToggle)
	}
	var published int
	waitFor(t, 10*time.Second, "the outbox published", func() (bool, error) {
		var pending int
		pending, published = outboxCounts(t, url)
		return pending == 0 && published > 0, nil
	})
	// Many prune intervals later, rows younger than the retention are all kept.
	time.Sleep(200 * time.Millisecond)
	if _, got := outboxCounts(t, url); got != published {
		t.Fatalf("published rows %d, want %d kept within the retention", got, published)
	}
	// A day and an hour later they are deleted, in batches.
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	// The counter is incremented after the delete commits, so a reader can see
	// the rows gone before the metric moves: wait for both, then require the
	// metric to equal exactly the rows pruned (never more).
	waitFor(t, 10*time.Second, "published rows pruned and counted", func() (bool, error) {
		_, got := outboxCounts(t, url)
		pruned := counter(t, r.reg, "flagforge_publisher_outbox_pruned_total")
		return got == 0 && pruned >= float64(published),
			fmt.Errorf("%d published rows left, outbox_pruned_total = %v", got, pruned)
	})
	if got := counter(t, r.reg, "flagforge_publisher_outbox_pruned_total"); got != float64(published) {
		t.Fatalf("outbox_pruned_total = %v, want %d", got, published)
	}
	// Publishing goes on after pruning (the new row is pruned right after it is
	// published, as the clock is already past its retention).
	last, err := st.LatestManifest(t.Context(), prod)
	if err != nil {
		t.Fatal(err)
	}
	toggle(t, st, prod, "a", !lastToggle)
	waitFor(t, 10*time.Second, "the next change published", func() (bool, error) {
		l, err := st.LatestManifest(t.Context(), prod)
		if err != nil {
			return false, err
		}
		pending, _ := outboxCounts(t, url)
		return pending == 0 && l.Version == last.Version+1, nil
	})
	checkHistory(t, st, signer)
}

func TestConfigDefaultsOutboxRetentionTo24HoursAndRejectsUnusablePruning(t *testing.T) {
	t.Parallel()
	d := publisher.Config{}.WithDefaults()
	if d.OutboxRetention != 24*time.Hour || d.PruneInterval <= 0 || d.PruneBatch <= 0 {
		t.Fatalf("defaults: retention %s interval %s batch %d", d.OutboxRetention, d.PruneInterval, d.PruneBatch)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*publisher.Config){
		"retention under a minute": func(c *publisher.Config) { c.OutboxRetention = time.Second },
		"negative retention":       func(c *publisher.Config) { c.OutboxRetention = -time.Hour },
		"negative interval":        func(c *publisher.Config) { c.PruneInterval = -time.Second },
		"negative batch":           func(c *publisher.Config) { c.PruneBatch = -1 },
		"huge batch":               func(c *publisher.Config) { c.PruneBatch = 1_000_000 },
	} {
		c := d
		mut(&c)
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
