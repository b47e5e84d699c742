package publisher_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

// An upgrade from layout 1 (ff:env:org/project/env, no hash tag): the new
// publisher finds no layout-2 marker, re-writes every environment under the
// hash-tagged names, then deletes the layout-1 hashes and marker (so a control
// plane rolled back to layout 1 re-writes everything there).
func TestUpgradeFromLayout1RewritesEveryEnvironmentUnderHashTaggedNames(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	srv := newPrivateRedis(t)
	reader := srv.client("")
	keys := rediskeys.Keys{}
	// What a layout-1 publisher left behind.
	for _, e := range []string{"development", "staging", "production"} {
		if err := reader.HSet(t.Context(), keys.LegacyEnv("acme/web/"+e), "version", "1", "manifest", "layout-1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := reader.Set(t.Context(), keys.LegacySynced(), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	signer, _ := newSigner(t)
	v := verifierFor(t, nil, signer)
	r := start(t, publisher.Config{RetryMin: 20 * time.Millisecond, RetryMax: 10 * time.Second},
		publisher.Deps{Store: st, Signer: signer, Redis: srv.client("")})
	st.OnOutboxCommit(r.p.Notify)
	waitFor(t, 10*time.Second, "every environment under its layout-2 name, the layout-1 names gone", func() (bool, error) {
		ok, err := redisHoldsLatest(t.Context(), reader, v, st)
		if !ok || err != nil {
			return false, err
		}
		n, err := reader.Exists(t.Context(), keys.LegacyEnv("acme/web/development"), keys.LegacyEnv("acme/web/staging"),
			keys.LegacyEnv("acme/web/production"), keys.LegacySynced()).Result()
		return n == 0, err
	})
	if n, err := reader.Exists(t.Context(), keys.Synced()).Result(); err != nil || n != 1 {
		t.Fatalf("layout-2 marker %s: exists %d, %v", keys.Synced(), n, err)
	}
}

// On a Redis Cluster one master can restart empty while the one holding the
// synced marker keeps it: a write that finds no hash for an environment this
// publisher wrote before reveals it, and every environment is re-written.
func TestAWriteThatFindsItsEnvironmentGoneRewritesEveryEnvironment(t *testing.T) {
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
	// The idle probe runs every RetryMax (10 s), longer than this test waits, and
	// the marker stays: only the write can reveal the loss.
	r := start(t, publisher.Config{RetryMin: 20 * time.Millisecond, RetryMax: 10 * time.Second},
		publisher.Deps{Store: st, Signer: signer, Redis: srv.client("")})
	st.OnOutboxCommit(r.p.Notify)
	reader := srv.client("")
	waitFor(t, 10*time.Second, "every environment in Redis", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	keys := rediskeys.Keys{}
	if err := reader.Del(t.Context(), keys.Env("acme/web/production"), keys.Env("acme/web/staging")).Err(); err != nil {
		t.Fatal(err)
	}
	toggle(t, st, prod, "a", true)
	waitFor(t, 3*time.Second, "staging re-written next to production's change", func() (bool, error) {
		if heads(t, st)["acme/web/production"] != 2 {
			return false, nil
		}
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
}
