package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
	"github.com/flagforge/flagforge/services/controlplane/internal/manifestsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

func toggle(t testing.TB, st store.Store, ref store.EnvRef, key string, on bool) {
	t.Helper()
	c, err := st.GetFlagConfig(context.Background(), ref, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateFlagConfig(context.Background(), meta, ref, key, config(on), c.GetRevision(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestCommittedChangeAppearsVerifiedInRedisAndOnTheSyncStream(t *testing.T) {
	t.Parallel()
	st, url := pgStore(t)
	rc, prefix := redisClient(t)
	signer, _ := newSigner(t)
	hub := fanout.New(0)
	start(t, publisher.Config{RedisPrefix: prefix}, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url),
		Hub: hub, Redis: rc, Snapshots: mustDir(t, t.TempDir())})
	client := syncServer(t, st, signer, hub)
	v := verifierFor(t, nil, signer)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+syncToken)

	// An unauthenticated caller is refused.
	bad, err := client.SyncManifests(t.Context(), &syncv1.SyncManifestsRequest{AllEnvironments: true})
	if err == nil {
		_, err = bad.Recv()
	}
	if err == nil {
		t.Fatal("stream without a token accepted")
	}

	events := rc.Subscribe(t.Context(), rediskeys.Keys{Prefix: prefix}.Channel())
	defer func() { _ = events.Close() }()
	if _, err := events.Receive(t.Context()); err != nil { // subscription confirmation
		t.Fatal(err)
	}

	stream, err := client.SyncManifests(ctx, &syncv1.SyncManifestsRequest{Cursors: []*syncv1.SyncCursor{{
		Environment: &syncv1.EnvironmentRef{Org: "acme", Project: "web", Environment: "production"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The stream's view, maintained by applying verified snapshots and deltas.
	var mu sync.Mutex
	var held *manifestv1.Manifest
	streamErr := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				streamErr <- err
				return
			}
			mu.Lock()
			switch e := r.GetEvent().(type) {
			case *syncv1.SyncManifestsResponse_Snapshot:
				m, err := v.Next(held, e.Snapshot)
				if err != nil {
					streamErr <- err
				}
				held = m
			case *syncv1.SyncManifestsResponse_Delta:
				d, err := v.Delta(e.Delta)
				if err == nil {
					held, err = manifest.Apply(held, d)
				}
				if err != nil {
					streamErr <- err
				}
			}
			mu.Unlock()
		}
	}()
	// The initial state is published first.
	waitFor(t, 10*time.Second, "version 1 on the stream", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return held != nil, nil
	})

	toggle(t, st, prod, "a", true)
	waitFor(t, 5*time.Second, "flag a on in Redis", func() (bool, error) {
		_, sm, _, err := readRedis(t.Context(), rc, prefix, "acme/web/production")
		if err != nil {
			return false, err
		}
		m, err := v.Manifest(sm)
		if err != nil {
			t.Fatalf("manifest in Redis does not verify: %v", err)
		}
		on, _ := flagOn(m, "a")
		return on, nil
	})
	waitFor(t, 5*time.Second, "flag a on through the sync stream", func() (bool, error) {
		select {
		case err := <-streamErr:
			t.Fatalf("sync stream: %v", err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		on, _ := flagOn(held, "a")
		return on, nil
	})
	version, _, delta, err := readRedis(t.Context(), rc, prefix, "acme/web/production")
	if err != nil || version < 2 || len(delta) == 0 {
		t.Fatalf("Redis hash: version %d, delta %d bytes, %v", version, len(delta), err)
	}
	isMember, err := rc.SIsMember(t.Context(), rediskeys.Keys{Prefix: prefix}.Envs(), "acme/web/production").Result()
	if err != nil || !isMember {
		t.Fatalf("ff:envs does not list the environment: %v %v", isMember, err)
	}
	want := fmt.Sprintf("acme/web/production %d", version)
	waitFor(t, 5*time.Second, "change event "+want, func() (bool, error) {
		msg, err := events.ReceiveMessage(t.Context())
		if err != nil {
			return false, err
		}
		return msg.Payload == want, nil
	})
	checkHistory(t, st, signer)
}

func mustDir(t testing.TB, dir string) *snapshot.Dir {
	t.Helper()
	d, err := snapshot.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTwoPublishersNeverProduceTheSameVersionAndTheStandbyTakesOver(t *testing.T) {
	t.Parallel()
	st, url := pgStore(t)
	signer, _ := newSigner(t)
	cfg := publisher.Config{History: 10000}
	a := start(t, cfg, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url)})
	b := start(t, cfg, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url)})
	waitFor(t, 10*time.Second, "a leader", func() (bool, error) { return a.leading() || b.leading(), nil })
	if a.leading() && b.leading() {
		t.Fatal("both publishers lead")
	}
	leader, standby := a, b
	if b.leading() {
		leader, standby = b, a
	}
	for i := range 20 {
		toggle(t, st, prod, "a", i%2 == 0)
	}
	leader.stop()
	waitFor(t, 10*time.Second, "the standby to take over", func() (bool, error) { return standby.leading(), nil })
	for i := range 20 {
		toggle(t, st, prod, "a", i%2 == 1)
	}
	if _, err := st.CreateFlag(t.Context(), meta, pref, boolFlag("after-takeover"), config(true), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the outbox to drain", func() (bool, error) {
		ev, err := st.PendingOutbox(t.Context(), 1)
		return len(ev) == 0, err
	})
	latest := checkHistory(t, st, signer)
	if on, found := flagOn(latest[prod], "after-takeover"); !on || !found {
		t.Fatal("a change committed after the takeover is not published")
	}
	if on, _ := flagOn(latest[prod], "a"); !on {
		t.Fatal("the last toggle (on) is not reflected")
	}
	epochs := map[uint64]bool{}
	ms, _ := st.ManifestRange(t.Context(), prod, 1, 1<<62)
	for _, m := range ms {
		epochs[m.Epoch] = true
	}
	if len(epochs) < 2 {
		t.Fatalf("versions carry epochs %v, want the old leader's and the new one's", epochs)
	}
}

// TestPublisherChildProcess is the publisher process of the kill -9 test; it only
// runs when re-executed by that test.
func TestPublisherChildProcess(t *testing.T) {
	url := os.Getenv("FLAGFORGE_PUBLISHER_CHILD_DB")
	if url == "" {
		t.Skip("run by TestKill9DuringPublishingLosesNoVersion")
	}
	st, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	signer := signerFromPEM(t, []byte(os.Getenv("FLAGFORGE_SIGNING_KEY")))
	e := pgElector(t, url)
	p, err := publisher.New(publisher.Config{History: 100000, PollInterval: 50 * time.Millisecond, BatchSize: 7},
		publisher.Deps{Store: st, Signer: signer, Elector: e})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	_ = p.Run(ctx)
}

func TestKill9DuringPublishingLosesNoVersion(t *testing.T) {
	t.Parallel()
	st, url := pgStore(t)
	signer, privPEM := newSigner(t)
	iterations := 50
	if testing.Short() {
		iterations = 10
	}
	// A committer changes flags for the whole run: new flags (every environment)
	// and toggles of flag "a" in production.
	ctx, stopCommits := context.WithCancel(context.Background())
	var created []string
	lastOn := false
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for i := 0; ctx.Err() == nil; i++ {
			if i%2 == 0 {
				key := fmt.Sprintf("f%05d", i)
				if _, err := st.CreateFlag(context.Background(), meta, pref, boolFlag(key), config(true), nil); err != nil {
					t.Errorf("create %s: %v", key, err)
					return
				}
				created = append(created, key)
			} else {
				lastOn = !lastOn
				toggle(t, st, prod, "a", lastOn)
			}
			time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond)
		}
	}()
	kills := 0
	for i := range iterations {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublisherChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FLAGFORGE_PUBLISHER_CHILD_DB="+url, "FLAGFORGE_SIGNING_KEY="+string(privPEM))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("iteration %d: kill: %v", i, err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			kills++
		}
	}
	stopCommits()
	<-committed
	if kills < iterations/2 {
		t.Fatalf("only %d of %d children were killed by SIGKILL (the others exited on their own)", kills, iterations)
	}
	heads, _ := st.ManifestHeads(context.Background())
	var published uint64
	for _, h := range heads {
		published += h.Version
	}
	t.Logf("%d SIGKILLs, %d changes committed, %d versions published by the killed processes", kills, len(created)*2, published)
	// A last publisher finishes the work.
	start(t, publisher.Config{History: 100000}, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url)})
	waitFor(t, 30*time.Second, "the outbox to drain", func() (bool, error) {
		ev, err := st.PendingOutbox(context.Background(), 1)
		return len(ev) == 0, err
	})
	latest := checkHistory(t, st, signer)
	for _, env := range []string{"development", "staging", "production"} {
		m := latest[store.EnvRef{Org: "acme", Project: "web", Environment: env}]
		for _, key := range created {
			if _, found := flagOn(m, key); !found {
				t.Fatalf("%s: flag %s committed but not in the latest manifest", env, key)
			}
		}
	}
	if on, _ := flagOn(latest[prod], "a"); on != lastOn {
		t.Fatalf("production flag a = %v, last committed %v", on, lastOn)
	}
}

func TestConsumersRefuseTamperedForeignStaleAndExpiredManifests(t *testing.T) {
	t.Parallel()
	st, url := pgStore(t)
	rc, prefix := redisClient(t)
	signer, _ := newSigner(t)
	hub := fanout.New(0)
	start(t, publisher.Config{RedisPrefix: prefix}, publisher.Deps{Store: st, Signer: signer, Elector: pgElector(t, url),
		Hub: hub, Redis: rc})
	waitFor(t, 10*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(t.Context(), prod)
		return err == nil, err
	})
	toggle(t, st, prod, "a", true)
	var sm *manifestv1.SignedManifest
	var version uint64
	waitFor(t, 10*time.Second, "version 2 in Redis", func() (bool, error) {
		var err error
		version, sm, _, err = readRedis(t.Context(), rc, prefix, "acme/web/production")
		return err == nil && version >= 2, err
	})
	v := verifierFor(t, nil, signer)
	held, err := v.Manifest(sm)
	if err != nil {
		t.Fatalf("the published manifest does not verify: %v", err)
	}

	tampered := proto.Clone(sm).(*manifestv1.SignedManifest)
	tampered.Payload[len(tampered.Payload)/2] ^= 0x01
	foreignSigner, _ := newSigner(t)
	foreign, err := foreignSigner.Manifest(held)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := manifestsvc.New(st)
	if err != nil {
		t.Fatal(err)
	}
	old, err := svc.GetSignedManifest(t.Context(), &adminv1.GetSignedManifestRequest{Org: "acme", Project: "web", Environment: "production", Version: 1})
	if err != nil || old.GetVersion() != 1 {
		t.Fatalf("GetSignedManifest version 1: %v", err)
	}
	latest, err := svc.GetSignedManifest(t.Context(), &adminv1.GetSignedManifestRequest{Org: "acme", Project: "web", Environment: "production"})
	if err != nil || latest.GetVersion() != version || !proto.Equal(latest.GetManifest(), sm) {
		t.Fatalf("GetSignedManifest latest: version %d, %v", latest.GetVersion(), err)
	}
	in8days := verifierFor(t, func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }, signer)

	tests := []struct {
		name   string
		verify func() error
		want   error
	}{
		{"a payload altered by one byte is refused", func() error { _, err := v.Next(held, tampered); return err }, manifest.ErrBadSignature},
		{"a manifest signed with an unknown key is refused", func() error { _, err := v.Next(nil, foreign); return err }, manifest.ErrUnknownKey},
		{"a version older than the one held is refused", func() error { _, err := v.Next(held, old.GetManifest()); return err }, manifest.ErrStale},
		{"an expired manifest is refused", func() error { _, err := in8days.Manifest(sm); return err }, manifest.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.verify()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			t.Logf("error as consumers see it: %v", err)
		})
	}

	// Through the sync stream: a consumer resuming from version 1 receives signed
	// deltas that verify and reproduce the latest version byte for byte.
	client := syncServer(t, st, signer, hub)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+syncToken)
	stream, err := client.SyncManifests(ctx, &syncv1.SyncManifestsRequest{Cursors: []*syncv1.SyncCursor{{
		Environment: &syncv1.EnvironmentRef{Org: "acme", Project: "web", Environment: "production"}, Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := v.Manifest(old.GetManifest())
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if heads := first.GetStart().GetHeads(); len(heads) != 1 || heads[0].GetVersion() != version {
		t.Fatalf("first message %v, want the start naming head version %d", first, version)
	}
	for base.GetVersion() < version {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		sd := r.GetDelta()
		if sd == nil {
			t.Fatalf("resuming from version 1: got %T, want a delta", r.GetEvent())
		}
		bad := proto.Clone(sd).(*manifestv1.SignedDelta)
		bad.Payload[0] ^= 0x01
		if _, err := v.Delta(bad); !errors.Is(err, manifest.ErrBadSignature) {
			t.Fatalf("tampered delta: %v", err)
		}
		d, err := v.Delta(sd)
		if err != nil {
			t.Fatal(err)
		}
		if base, err = manifest.Apply(base, d); err != nil {
			t.Fatal(err)
		}
		// Each delta carries the signature of the manifest it produces: the
		// receiver holds that version's exact signed manifest without a fetch.
		rebuilt, err := v.Result(sd, base)
		if err != nil {
			t.Fatalf("delta to %d: result signature: %v", d.GetToVersion(), err)
		}
		stored, err := st.GetManifest(t.Context(), prod, d.GetToVersion())
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(rebuilt, stored.Signed) {
			t.Fatalf("the signed manifest rebuilt from delta to %d differs from the stored one", d.GetToVersion())
		}
	}
	if !proto.Equal(base, held) {
		t.Fatal("deltas from the stream did not reproduce the latest manifest")
	}
}

func TestSQLitePublisherWakesOnCommitAndWritesSnapshots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	signer, _ := newSigner(t)
	snaps := mustDir(t, filepath.Join(dir, "snapshots"))
	// A poll interval far longer than the test: only the commit hook can wake it.
	r := start(t, publisher.Config{PollInterval: time.Hour}, publisher.Deps{Store: st, Signer: signer, Snapshots: snaps})
	st.OnOutboxCommit(r.p.Notify)
	waitFor(t, 5*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(t.Context(), prod)
		return err == nil, err
	})
	toggle(t, st, prod, "a", true)
	v := verifierFor(t, nil, signer)
	waitFor(t, 2*time.Second, "the toggle published and snapshotted", func() (bool, error) {
		latest, err := st.LatestManifest(t.Context(), prod)
		if err != nil {
			return false, err
		}
		data, err := snaps.Get(t.Context(), "acme/web/production", latest.Version)
		if err != nil {
			return false, err
		}
		var sm manifestv1.SignedManifest
		if err := proto.Unmarshal(data, &sm); err != nil {
			return false, err
		}
		m, err := v.Manifest(&sm)
		if err != nil {
			return false, err
		}
		on, _ := flagOn(m, "a")
		return on, nil
	})
	checkHistory(t, st, signer)
}

func TestManifestsAreReSignedAsANewVersionBeforeTheyExpire(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	signer, _ := newSigner(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	start(t, publisher.Config{Lifetime: 10 * time.Minute, ResignCheck: time.Millisecond, PollInterval: 5 * time.Millisecond},
		publisher.Deps{Store: st, Signer: signer, Now: clock})
	waitFor(t, 5*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(t.Context(), prod)
		return err == nil, err
	})
	time.Sleep(50 * time.Millisecond)
	if l, _ := st.LatestManifest(t.Context(), prod); l.Version != 1 {
		t.Fatalf("re-signed while more than half the lifetime was left (version %d)", l.Version)
	}
	mu.Lock()
	now = now.Add(6 * time.Minute)
	mu.Unlock()
	waitFor(t, 5*time.Second, "version 2 (re-signed)", func() (bool, error) {
		l, err := st.LatestManifest(t.Context(), prod)
		return err == nil && l.Version == 2, err
	})
	ms, _ := st.ManifestRange(t.Context(), prod, 1, 2)
	v := verifierFor(t, clock, signer)
	m1, _ := v.Manifest(ms[0].Signed)
	m2, err := v.Next(m1, ms[1].Signed)
	if err != nil {
		t.Fatal(err)
	}
	if !m2.GetExpiresAt().AsTime().After(m1.GetExpiresAt().AsTime()) || len(m2.GetFlags()) != len(m1.GetFlags()) {
		t.Fatal("re-signed version does not extend the expiry with the same content")
	}
}
