package publisher_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

// TestActivePublisherPrunesSnapshotsToTheRetention: with a retention of the last
// 2 versions (no daily ones), the active publisher leaves production's newest
// two snapshots and every other environment's only one; recovery's starting
// point (the newest snapshot of each environment) is always there.
func TestActivePublisherPrunesSnapshotsToTheRetention(t *testing.T) {
	t.Parallel()
	dir, err := snapshot.NewDir(t.TempDir())
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
	r := start(t, publisher.Config{SnapshotKeepVersions: 2, SnapshotKeepDays: -1, SnapshotPruneInterval: 50 * time.Millisecond},
		publisher.Deps{Store: st, Signer: signer, Snapshots: dir})
	st.OnOutboxCommit(r.p.Notify)
	waitFor(t, 5*time.Second, "version 1", func() (bool, error) {
		_, err := st.LatestManifest(t.Context(), prod)
		return err == nil, err
	})
	for i := range 5 {
		toggle(t, st, prod, "a", i%2 == 0)
		waitFor(t, 5*time.Second, "the toggle published", func() (bool, error) {
			l, err := st.LatestManifest(t.Context(), prod)
			return err == nil && l.Version == uint64(i+2), err
		})
	}
	want := map[string][]uint64{"acme/web/production": {5, 6}, "acme/web/development": {1}, "acme/web/staging": {1}}
	waitFor(t, 10*time.Second, "snapshots pruned to the retention", func() (bool, error) {
		entries, err := dir.Entries(t.Context())
		if err != nil {
			return false, err
		}
		got := map[string][]uint64{}
		for target, es := range entries {
			for _, e := range es {
				got[target] = append(got[target], e.Version)
			}
			slices.Sort(got[target])
		}
		// The counter is added to right after the deletions.
		n := counter(t, r.reg, "flagforge_publisher_snapshots_pruned_total")
		return maps.EqualFunc(got, want, slices.Equal[[]uint64]) && n == 4,
			fmt.Errorf("snapshots %v, want %v; flagforge_publisher_snapshots_pruned_total %v, want 4", got, want, n)
	})
	newest, err := dir.Newest(t.Context())
	if err != nil || newest["acme/web/production"] != 6 {
		t.Fatalf("newest snapshots %v %v", newest, err)
	}
}

func TestSnapshotRetentionSettings(t *testing.T) {
	t.Parallel()
	d := publisher.Config{}.WithDefaults()
	if r, on := d.SnapshotRetention(); !on || r.Keep != 100 || r.Days != 30 || d.SnapshotPruneInterval != time.Hour {
		t.Fatalf("default retention %+v (on %v), interval %s; want 100 versions, 30 days, 1h", r, on, d.SnapshotPruneInterval)
	}
	if _, on := (publisher.Config{SnapshotKeepVersions: -1}).WithDefaults().SnapshotRetention(); on {
		t.Fatal("SnapshotKeepVersions < 0 should keep every snapshot")
	}
	if r, _ := (publisher.Config{SnapshotKeepDays: -1}).WithDefaults().SnapshotRetention(); r.Days != 0 || r.Keep != 100 {
		t.Fatalf("SnapshotKeepDays < 0: %+v, want no daily snapshots", r)
	}
	c := d
	c.SnapshotPruneInterval = -time.Second
	if err := c.Validate(); err == nil {
		t.Fatal("a negative snapshot prune interval was accepted")
	}
}
