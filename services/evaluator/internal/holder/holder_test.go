package holder_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

const env = "acme/web/production"

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

type rig struct {
	h      *holder.Holder
	reg    *prometheus.Registry
	signer *manifest.Signer
	pub    *fixture.Publisher
	dir    string
}

func newRig(t *testing.T, now time.Time, signer *manifest.Signer, dir string, envs ...string) *rig {
	t.Helper()
	if signer == nil {
		signer = fixture.NewSigner()
	}
	v, err := manifest.NewVerifier(func() time.Time { return now }, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := holder.New(holder.Config{Verifier: v, Environments: envs, DataDir: dir, Now: func() time.Time { return now }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{h: h, reg: reg, signer: signer, pub: &fixture.Publisher{Signer: signer}, dir: dir}
}

func (r *rig) sign(t *testing.T, m *manifestv1.Manifest) fixture.Published {
	t.Helper()
	p, err := r.pub.Sign(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func refusals(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flagforge_evaluator_manifest_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestRefusedManifestsLeaveTheLastGoodOneServing(t *testing.T) {
	t.Parallel()
	r := newRig(t, t0.Add(time.Hour), nil, "", env)
	good := r.sign(t, fixture.Manifest(env, 5, t0, fixture.BoolFlag("a", true, false)))
	if err := r.h.Offer(env, good.Manifest); err != nil {
		t.Fatal(err)
	}
	tampered := proto.Clone(good.Manifest).(*manifestv1.SignedManifest)
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	foreign, err := fixture.NewSigner().Manifest(fixture.Manifest(env, 6, t0))
	if err != nil {
		t.Fatal(err)
	}
	older, _ := r.signer.Manifest(fixture.Manifest(env, 4, t0))
	expiredM := fixture.Manifest(env, 7, t0.Add(-8*24*time.Hour))
	expired, _ := r.signer.Manifest(expiredM)
	other, _ := r.signer.Manifest(fixture.Manifest("acme/web/staging", 9, t0))
	tests := []struct {
		name   string
		sm     *manifestv1.SignedManifest
		reason string
		want   error
	}{
		{"a tampered payload is refused", tampered, holder.ReasonBadSignature, manifest.ErrBadSignature},
		{"a manifest signed by an untrusted key is refused", foreign, holder.ReasonUnknownKey, manifest.ErrUnknownKey},
		{"an older version is refused", older, holder.ReasonStale, manifest.ErrStale},
		{"an expired manifest is refused", expired, holder.ReasonExpired, manifest.ErrExpired},
		{"another environment's manifest under this key is refused", other, holder.ReasonWrongTarget, manifest.ErrWrongTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := refusals(t, r.reg, tt.reason)
			err := r.h.Offer(env, tt.sm)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Offer: got %v, want %v", err, tt.want)
			}
			if got := refusals(t, r.reg, tt.reason) - before; got != 1 {
				t.Fatalf("refusal counter %q grew by %v, want 1", tt.reason, got)
			}
			if v := r.h.Version(env); v != 5 {
				t.Fatalf("serving version %d, want the last good 5", v)
			}
		})
	}
}

func TestOfferingTheManifestHeldAgainIsANoOp(t *testing.T) {
	t.Parallel()
	r := newRig(t, t0.Add(time.Hour), nil, "", env)
	p := r.sign(t, fixture.Manifest(env, 1, t0))
	for range 2 {
		if err := r.h.Offer(env, p.Manifest); err != nil {
			t.Fatal(err)
		}
	}
	if got := refusals(t, r.reg, holder.ReasonStale); got != 0 {
		t.Fatalf("re-offering the held manifest counted %v refusals", got)
	}
}

func TestDeltaAppliesOnlyFromTheVersionHeld(t *testing.T) {
	t.Parallel()
	r := newRig(t, t0.Add(time.Hour), nil, "", env)
	v1 := r.sign(t, fixture.Manifest(env, 1, t0, fixture.BoolFlag("a", true, false)))
	v2 := r.sign(t, fixture.Manifest(env, 2, t0, fixture.BoolFlag("a", false, false)))
	v3 := r.sign(t, fixture.Manifest(env, 3, t0, fixture.BoolFlag("a", true, false), fixture.BoolFlag("b", true, true)))
	if err := r.h.OfferDelta(v2.Delta); !errors.Is(err, holder.ErrGap) {
		t.Fatalf("delta with nothing held: got %v, want ErrGap", err)
	}
	if err := r.h.Offer(env, v1.Manifest); err != nil {
		t.Fatal(err)
	}
	if err := r.h.OfferDelta(v3.Delta); !errors.Is(err, holder.ErrGap) {
		t.Fatalf("delta 2->3 while holding 1: got %v, want ErrGap", err)
	}
	if err := r.h.OfferDelta(v2.Delta); err != nil {
		t.Fatalf("delta 1->2: %v", err)
	}
	if err := r.h.OfferDelta(v3.Delta); err != nil {
		t.Fatalf("delta 2->3: %v", err)
	}
	e := r.h.State().Env(env)
	if e.Version() != 3 || len(e.Manifest.GetFlags()) != 2 {
		t.Fatalf("after deltas: version %d with %d flags, want 3 with 2", e.Version(), len(e.Manifest.GetFlags()))
	}
	if err := r.h.OfferDelta(v2.Delta); err != nil {
		t.Fatalf("an already applied delta should be ignored, got %v", err)
	}
	// Each delta carried its result's signature: the holder holds the exact signed
	// manifest of version 3 without having been offered it.
	if sm := r.h.Signed(env); sm == nil || !proto.Equal(sm, v3.Manifest) {
		t.Fatalf("after deltas the signed manifest held is %v, want exactly version 3's", sm)
	}

	// A delta without it (an older publisher) leaves no signed copy until the full
	// manifest of that version is offered, which is then adopted.
	v4 := r.sign(t, fixture.Manifest(env, 4, t0, fixture.BoolFlag("a", false, false)))
	legacy := proto.Clone(v4.Delta).(*manifestv1.SignedDelta)
	legacy.ResultKeyId, legacy.ResultSignature = "", nil
	if err := r.h.OfferDelta(legacy); err != nil {
		t.Fatalf("delta 3->4 without a result signature: %v", err)
	}
	if r.h.Version(env) != 4 || r.h.Signed(env) != nil {
		t.Fatalf("after a legacy delta: version %d, signed %v; want 4 and none", r.h.Version(env), r.h.Signed(env))
	}
	if err := r.h.Offer(env, v4.Manifest); err != nil {
		t.Fatalf("adopting the signed copy of the version built by a delta: %v", err)
	}
	if sm := r.h.Signed(env); sm == nil || !proto.Equal(sm, v4.Manifest) {
		t.Fatal("the signed copy was not adopted")
	}

	// A result signature that does not verify refuses the delta (the source then
	// re-reads the full manifest).
	v5 := r.sign(t, fixture.Manifest(env, 5, t0, fixture.BoolFlag("a", true, false)))
	bad := proto.Clone(v5.Delta).(*manifestv1.SignedDelta)
	bad.ResultSignature = append([]byte(nil), bad.ResultSignature...)
	bad.ResultSignature[0] ^= 0xff
	if err := r.h.OfferDelta(bad); !errors.Is(err, holder.ErrGap) || !errors.Is(err, manifest.ErrBadSignature) {
		t.Fatalf("delta with a forged result signature: got %v, want ErrGap wrapping ErrBadSignature", err)
	}
	if r.h.Version(env) != 4 {
		t.Fatalf("version %d after a refused delta, want 4", r.h.Version(env))
	}
}

func TestLocalCopyIsWrittenAndLoadedButRefusedOnceExpired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newRig(t, t0.Add(time.Hour), nil, dir, env)
	p := r.sign(t, fixture.Manifest(env, 3, t0, fixture.BoolFlag("a", true, false)))
	if err := r.h.Offer(env, p.Manifest); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "acme", "web", "production.manifest")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("local copy not written at the documented path: %v", err)
	}
	fresh := newRig(t, t0.Add(2*time.Hour), r.signer, dir, env)
	if fresh.h.Ready() {
		t.Fatal("ready before anything loaded")
	}
	if n := fresh.h.LoadLocal(); n != 1 || fresh.h.Version(env) != 3 || !fresh.h.Ready() {
		t.Fatalf("LoadLocal loaded %d, version %d, ready %v; want 1, 3, true", n, fresh.h.Version(env), fresh.h.Ready())
	}
	all := newRig(t, t0.Add(2*time.Hour), r.signer, dir) // "*": every copy in the dir
	if n := all.h.LoadLocal(); n != 1 {
		t.Fatalf("serving every environment, LoadLocal loaded %d copies, want 1", n)
	}
	late := newRig(t, t0.Add(8*24*time.Hour), r.signer, dir, env)
	if n := late.h.LoadLocal(); n != 0 || late.h.Version(env) != 0 {
		t.Fatalf("an expired local copy was loaded (n=%d)", n)
	}
	if got := refusals(t, late.reg, holder.ReasonExpired); got != 1 {
		t.Fatalf("expired local copy counted %v refusals, want 1", got)
	}
}

func TestReadyOnlyWhenEveryConfiguredEnvironmentIsLoaded(t *testing.T) {
	t.Parallel()
	staging := "acme/web/staging"
	r := newRig(t, t0.Add(time.Hour), nil, "", env, staging)
	if err := r.h.Offer(env, r.sign(t, fixture.Manifest(env, 1, t0)).Manifest); err != nil {
		t.Fatal(err)
	}
	if r.h.Ready() {
		t.Fatal("ready with staging missing")
	}
	if err := r.h.Offer(staging, r.sign(t, fixture.Manifest(staging, 1, t0)).Manifest); err != nil {
		t.Fatal(err)
	}
	if !r.h.Ready() {
		t.Fatal("not ready with every environment loaded")
	}
	if err := r.h.Offer("", r.sign(t, fixture.Manifest("acme/web/dev", 1, t0)).Manifest); !errors.Is(err, holder.ErrNotServed) {
		t.Fatalf("an environment not configured: got %v, want ErrNotServed", err)
	}
}

func TestMetricsExportVersionPerEnvironment(t *testing.T) {
	t.Parallel()
	r := newRig(t, t0.Add(time.Hour), nil, "", env)
	if err := r.h.Offer(env, r.sign(t, fixture.Manifest(env, 4, t0)).Manifest); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(r.reg, "flagforge_evaluator_manifest_version", "flagforge_evaluator_manifest_age_seconds"); err != nil || n != 2 {
		t.Fatalf("version/age series: %d, %v; want 2", n, err)
	}
}
