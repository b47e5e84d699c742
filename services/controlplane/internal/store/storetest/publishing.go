package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func init() { tests = append(tests, publishingTests...) }

func stored(ref store.EnvRef, version, epoch uint64) *store.StoredManifest {
	payload := []byte{byte(version), byte(version >> 8), 'p'}
	return &store.StoredManifest{
		Ref: ref, Version: version, Epoch: epoch,
		Signed:    &manifestv1.SignedManifest{Payload: payload, KeyId: "k1", Signature: []byte("sig")},
		Digest:    []byte{byte(version), 'd'},
		IssuedAt:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		ExpiresAt: time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC),
	}
}

var publishingTests = []test{
	{"publishing: each new leader gets a higher fencing epoch", func(t *testing.T, f *fixture) {
		a := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		b := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		if b <= a {
			t.Fatalf("epochs %d then %d, want increasing", a, b)
		}
	}},
	{"publishing: a stale epoch cannot store a manifest nor mark the outbox", func(t *testing.T, f *fixture) {
		old := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		pending := f.outbox(t)
		err := f.s.CommitManifests(f.ctx, old, []*store.StoredManifest{stored(eref, 1, old)}, []int64{pending[0].ID}, 0)
		wantKind(t, err, errs.FailedPrecondition)
		if _, err := f.s.LatestManifest(f.ctx, eref); !errors.Is(err, errs.NotFound) {
			t.Fatalf("latest after fenced commit: %v, want NotFound", err)
		}
		if got := len(f.outbox(t)); got != len(pending) {
			t.Fatalf("pending outbox rows %d, want %d", got, len(pending))
		}
	}},
	{"publishing: versions are gapless and never stored twice", func(t *testing.T, f *fixture) {
		e := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		noErr(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, 1, e), stored(eref, 2, e)}, nil, 0))
		wantKind(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, 2, e)}, nil, 0), errs.Aborted)
		wantKind(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, 4, e)}, nil, 0), errs.Aborted)
		wantKind(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, 1, e)}, nil, 0), errs.Aborted)
		latest := must[*store.StoredManifest](t)(f.s.LatestManifest(f.ctx, eref))
		if latest.Version != 2 || latest.Epoch != e || string(latest.Digest) != string([]byte{2, 'd'}) {
			t.Fatalf("latest = version %d epoch %d digest %x", latest.Version, latest.Epoch, latest.Digest)
		}
		env := must[*store.StoredManifest](t)(f.s.GetManifest(f.ctx, eref, 1))
		if env.Signed.GetKeyId() != "k1" || !env.ExpiresAt.Equal(stored(eref, 1, e).ExpiresAt) {
			t.Fatalf("version 1 = %+v", env)
		}
	}},
	{"publishing: commit stores versions and marks the outbox rows published together", func(t *testing.T, f *fixture) {
		e := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		pending := f.outbox(t)
		ids := []int64{pending[0].ID}
		noErr(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, 1, e)}, ids, 0))
		if got := len(f.outbox(t)); got != len(pending)-1 {
			t.Fatalf("pending outbox rows %d, want %d", got, len(pending)-1)
		}
		// A failing commit (version conflict) marks nothing.
		wantKind(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, 1, e)}, []int64{pending[1].ID}, 0), errs.Aborted)
		if got := len(f.outbox(t)); got != len(pending)-1 {
			t.Fatalf("pending outbox rows after a failed commit %d, want %d", got, len(pending)-1)
		}
		env := must[*adminv1.Environment](t)(f.s.GetEnvironment(f.ctx, eref))
		if env.GetManifestVersion() != 1 {
			t.Fatalf("environment manifest_version = %d, want 1", env.GetManifestVersion())
		}
	}},
	{"publishing: history keeps the last N versions per environment", func(t *testing.T, f *fixture) {
		e := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		for v := uint64(1); v <= 7; v++ {
			noErr(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(eref, v, e)}, nil, 3))
		}
		got := must[[]*store.StoredManifest](t)(f.s.ManifestRange(f.ctx, eref, 1, 100))
		var versions []uint64
		for _, m := range got {
			versions = append(versions, m.Version)
		}
		if len(versions) != 3 || versions[0] != 5 || versions[2] != 7 {
			t.Fatalf("stored versions %v, want [5 6 7]", versions)
		}
		_, err := f.s.GetManifest(f.ctx, eref, 2)
		wantKind(t, err, errs.NotFound)
		heads := must[[]store.ManifestHead](t)(f.s.ManifestHeads(f.ctx))
		if len(heads) != 1 || heads[0].Version != 7 || heads[0].Ref != eref {
			t.Fatalf("heads = %+v", heads)
		}
	}},
	{"publishing: targets are the environments in scope, deleted ones with manifests included", func(t *testing.T, f *fixture) {
		e := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		gone := store.EnvRef{Org: org, Project: "old", Environment: "qa"}
		noErr(t, f.s.CommitManifests(f.ctx, e, []*store.StoredManifest{stored(gone, 1, e)}, nil, 0))
		all := must[[]store.EnvRef](t)(f.s.PublishTargets(f.ctx, org, ""))
		if len(all) != 4 || all[0] != gone {
			t.Fatalf("org targets = %v, want old/qa and web's three environments", all)
		}
		web := must[[]store.EnvRef](t)(f.s.PublishTargets(f.ctx, org, project))
		if len(web) != 3 {
			t.Fatalf("project targets = %v", web)
		}
		if got := must[[]store.EnvRef](t)(f.s.PublishTargets(f.ctx, "other", "")); len(got) != 0 {
			t.Fatalf("other org targets = %v", got)
		}
	}},
	{"publishing: pruning deletes only published outbox rows older than the cutoff, in batches", func(t *testing.T, f *fixture) {
		p := f.s
		for i := range 4 {
			f.flag(t, fmt.Sprintf("prune-%d", i), onConfig())
		}
		e := must[uint64](t)(f.s.NextPublisherEpoch(f.ctx))
		pending := f.outbox(t)
		if len(pending) < 5 {
			t.Fatalf("%d outbox rows, want at least 5", len(pending))
		}
		ids := func(evs []store.OutboxEvent) []int64 {
			out := make([]int64, len(evs))
			for i, ev := range evs {
				out[i] = ev.ID
			}
			return out
		}
		// Three rows published "long ago", two published recently, the rest pending.
		old, recent, unpublished := pending[:3], pending[3:5], pending[5:]
		noErr(t, f.s.CommitManifests(f.ctx, e, nil, ids(old), 0))
		time.Sleep(5 * time.Millisecond)
		cutoff := time.Now()
		time.Sleep(5 * time.Millisecond)
		noErr(t, f.s.CommitManifests(f.ctx, e, nil, ids(recent), 0))
		// Nothing was published before a cutoff in the past.
		if n := must[int64](t)(p.PruneOutbox(f.ctx, cutoff.Add(-time.Hour), 1000)); n != 0 {
			t.Fatalf("pruned %d rows published after the cutoff", n)
		}
		// Batches: at most limit rows per call, until the old ones are gone.
		var deleted []int64
		for range 10 {
			n := must[int64](t)(p.PruneOutbox(f.ctx, cutoff, 2))
			if n > 2 {
				t.Fatalf("pruned %d rows with limit 2", n)
			}
			if n == 0 {
				break
			}
			deleted = append(deleted, n)
		}
		if len(deleted) != 2 || deleted[0]+deleted[1] != int64(len(old)) {
			t.Fatalf("batches deleted %v rows, want [2 1]", deleted)
		}
		if got := len(f.outbox(t)); got != len(unpublished) {
			t.Fatalf("pending rows %d after pruning, want %d (unpublished rows are never deleted)", got, len(unpublished))
		}
		// The recent published rows were kept: a later cutoff still finds them.
		if n := must[int64](t)(p.PruneOutbox(f.ctx, time.Now().Add(time.Hour), 1000)); n != int64(len(recent)) {
			t.Fatalf("recent published rows pruned later = %d, want %d", n, len(recent))
		}
		// Even a cutoff far in the future leaves unpublished rows alone.
		if n := must[int64](t)(p.PruneOutbox(f.ctx, time.Now().Add(1000*time.Hour), 1000)); n != 0 {
			t.Fatalf("pruned %d more rows; only unpublished ones are left", n)
		}
		if got := ids(f.outbox(t)); len(got) != len(unpublished) || got[0] != unpublished[0].ID {
			t.Fatalf("pending rows %v, want %v", got, ids(unpublished))
		}
	}},
}

func init() {
	tests = append(tests, test{"publishing: EnvironmentEntries reads only the named flags and segments, as the manifest carries them",
		func(t *testing.T, f *fixture) {
			f.flag(t, "a", onConfig())
			f.flag(t, "b", onConfig("a"))
			f.flag(t, "gone", onConfig())
			must[*adminv1.Flag](t)(f.s.SetFlagArchived(f.ctx, meta, pref, "gone", true, 1))
			f.segment(t, "beta")
			f.segment(t, "gamma")
			must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: "server",
				Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER, Prefix: "srv_cccc"}, []byte("hash-1")))
			must[*adminv1.ContextPolicy](t)(f.s.SetContextPolicy(f.ctx, meta, pref, &adminv1.ContextPolicy{PrivateAttributes: []string{"email"}}))
			now := time.Now()
			full := must[*manifestv1.Manifest](t)(f.s.EnvironmentManifest(f.ctx, eref, now))
			got := must[*store.EnvEntries](t)(f.s.EnvironmentEntries(f.ctx, eref, []string{"b", "gone", "missing", "a", "b"},
				[]string{"gamma", "nope"}, now))
			want := &store.EnvEntries{Flags: full.GetFlags()[:2], Segments: full.GetSegments()[1:], SdkKeys: full.GetSdkKeys(),
				PrivateAttributes: full.GetPrivateAttributes()}
			if len(full.GetFlags()) != 2 || full.GetFlags()[1].GetKey() != "b" || full.GetSegments()[1].GetKey() != "gamma" ||
				len(full.GetSdkKeys()) != 1 || len(want.PrivateAttributes) != 1 {
				t.Fatalf("unexpected manifest %v", full)
			}
			if d := diff(want, got); d != "" {
				t.Fatalf("EnvironmentEntries (-want +got):\n%s", d)
			}
			none := must[*store.EnvEntries](t)(f.s.EnvironmentEntries(f.ctx, eref, nil, nil, now))
			if len(none.Flags)+len(none.Segments) != 0 || len(none.SdkKeys) != 1 {
				t.Fatalf("no names: %+v", none)
			}
			_, err := f.s.EnvironmentEntries(f.ctx, store.EnvRef{Org: org, Project: project, Environment: "nope"}, []string{"a"}, nil, now)
			wantKind(t, err, errs.NotFound)
		}})
}
