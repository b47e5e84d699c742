package holder_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// segFlag serves "on" to members of segment seg.
func segFlag(key, seg string, on bool) *manifestv1.Flag {
	f := fixture.BoolFlag(key, on, false)
	f.Config.Rules = []*manifestv1.Rule{{Id: "members", Clauses: []*manifestv1.Clause{{
		Operator: manifestv1.Operator_OPERATOR_SEGMENT_MATCH, Values: []*structpb.Value{structpb.NewStringValue(seg)},
	}}, Serve: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}}
	return f
}

// Property: a random sequence of format-2 deltas (flags and segments upserted and
// deleted, SDK keys replaced) applied by the holder yields exactly the manifest a
// full rebuild gives (same content digest), and the incrementally compiled
// manifest evaluates every flag exactly as the full rebuild compiled from scratch,
// including flags that only depend on a changed segment or prerequisite.
func TestFormat2DeltasMatchAFullRebuild(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(19, 2))
	r := newRig(t, t0.Add(time.Hour), nil, t.TempDir(), env)
	flags := map[string]*manifestv1.Flag{}
	segs := map[string]*manifestv1.Segment{}
	for i := range 30 {
		k := fmt.Sprintf("f%02d", i)
		flags[k] = segFlag(k, fmt.Sprintf("s%d", i%3), true)
	}
	flags["p"] = fixture.BoolFlag("p", true, false)
	flags["p"].Config.Prerequisites = []*manifestv1.Prerequisite{{FlagKey: "f00", Variants: []string{"on"}}}
	for i := range 3 {
		k := fmt.Sprintf("s%d", i)
		segs[k] = &manifestv1.Segment{Key: k, Included: []string{"u0"}}
	}
	build := func(version uint64) *manifestv1.Manifest {
		m := fixture.Manifest(env, version, t0, sorted(flags)...)
		m.Segments = sorted(segs)
		manifest.Canonicalize(m)
		return m
	}
	pub, err := r.signer.First(build(1))
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := pub.Signed()
	if err := r.h.Offer(env, sm); err != nil {
		t.Fatal(err)
	}
	users := []string{"u0", "u1", "u2"}
	for version := uint64(2); version <= 120; version++ {
		d := &manifestv1.ManifestDelta{ToVersion: version, IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(24 * time.Hour))}
		switch op := rng.IntN(6); {
		case op < 3: // change, add or delete a flag
			k := fmt.Sprintf("f%02d", rng.IntN(36))
			if _, ok := flags[k]; ok && op == 0 && k != "f00" {
				delete(flags, k)
				d.DeletedFlags = []string{k}
			} else {
				flags[k] = segFlag(k, fmt.Sprintf("s%d", rng.IntN(3)), rng.IntN(3) > 0)
				d.UpsertedFlags = []*manifestv1.Flag{flags[k]}
			}
		case op < 5: // change a segment's members: flags using it change without being sent
			k := fmt.Sprintf("s%d", rng.IntN(3))
			segs[k] = &manifestv1.Segment{Key: k, Included: []string{users[rng.IntN(3)], users[rng.IntN(3)]}, Revision: int64(version)}
			d.UpsertedSegments = []*manifestv1.Segment{segs[k]}
		default: // the prerequisite flips: "p" changes without being sent
			flags["f00"] = segFlag("f00", "s0", !flags["f00"].GetConfig().GetOn())
			d.UpsertedFlags = []*manifestv1.Flag{flags["f00"]}
		}
		var sd *manifestv1.SignedDelta
		if pub, sd, err = r.signer.Next(pub, d); err != nil {
			t.Fatal(err)
		}
		if err := r.h.OfferDelta(sd); err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		e := r.h.State().Env(env)
		full := build(version)
		full.IssuedAt, full.ExpiresAt, full.PreviousDigest = d.GetIssuedAt(), d.GetExpiresAt(), e.Manifest.GetPreviousDigest()
		if !proto.Equal(full, e.Manifest) {
			t.Fatalf("version %d: the applied manifest differs from the full rebuild", version)
		}
		c, err := manifest.NewContent(full)
		if err != nil {
			t.Fatal(err)
		}
		var hd manifestv1.ManifestHeader
		if err := proto.Unmarshal(e.Held.Header().GetHeader(), &hd); err != nil || string(hd.GetContentDigest()) != string(c.Digest()) {
			t.Fatalf("version %d: the content digest differs from the full rebuild's (%v)", version, err)
		}
		scratch, err := engine.Compile(full)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(scratch.FlagKeys(), e.Compiled.FlagKeys()) {
			t.Fatalf("version %d: flag keys %v, want %v", version, e.Compiled.FlagKeys(), scratch.FlagKeys())
		}
		for _, u := range users {
			ctx, err := engine.NewContext(&structpb.Struct{Fields: map[string]*structpb.Value{"targetingKey": structpb.NewStringValue(u)}})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range scratch.FlagKeys() {
				want, got := scratch.Evaluate(k, ctx, nil), e.Compiled.Evaluate(k, ctx, nil)
				if !proto.Equal(want.Value, got.Value) || want.Reason != got.Reason || want.Variant != got.Variant {
					t.Fatalf("version %d, flag %s, user %s: incremental %+v, full %+v", version, k, u, got, want)
				}
			}
		}
	}
	// The local copy (full copy + delta log) restarts at exactly the last version.
	restarted := newRig(t, t0.Add(time.Hour), r.signer, r.dir, env)
	if n := restarted.h.LoadLocal(); n != 1 || restarted.h.Version(env) != 120 {
		t.Fatalf("restart from disk: loaded %d at version %d, want 1 at 120", n, restarted.h.Version(env))
	}
	if !proto.Equal(restarted.h.State().Env(env).Manifest, r.h.State().Env(env).Manifest) {
		t.Fatal("restart from disk: the manifest differs from the one served")
	}
}

func sorted[T interface{ GetKey() string }](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int {
		switch {
		case a.GetKey() < b.GetKey():
			return -1
		case a.GetKey() > b.GetKey():
			return 1
		}
		return 0
	})
	return out
}

// Format-2 deltas: a gap asks for the full manifest; a tampered delta is refused
// (counted) and the version held keeps serving; a delta already applied is a no-op;
// the signed copy of a version built from deltas is the published one; the delta
// log is appended (not the full copy rewritten) and a torn record at its end is
// ignored on restart.
func TestFormat2DeltaRefusalsAndLocalLog(t *testing.T) {
	t.Parallel()
	r := newRig(t, t0.Add(time.Hour), nil, t.TempDir(), env)
	pub, err := r.signer.First(fixture.Manifest(env, 1, t0, fixture.BoolFlag("a", true, false)))
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := pub.Signed()
	if err := r.h.Offer(env, sm); err != nil {
		t.Fatal(err)
	}
	next := func(on bool) *manifestv1.SignedDelta {
		t.Helper()
		d := &manifestv1.ManifestDelta{ToVersion: pub.Number() + 1, IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(24 * time.Hour)),
			UpsertedFlags: []*manifestv1.Flag{fixture.BoolFlag("a", on, false)}}
		var sd *manifestv1.SignedDelta
		if pub, sd, err = r.signer.Next(pub, d); err != nil {
			t.Fatal(err)
		}
		return sd
	}
	d2 := next(false)
	d3 := next(true)
	if err := r.h.OfferDelta(d3); !errors.Is(err, holder.ErrGap) {
		t.Fatalf("delta past a gap: %v, want ErrGap", err)
	}
	tampered := proto.Clone(d2).(*manifestv1.SignedDelta)
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	if err := r.h.OfferDelta(tampered); !errors.Is(err, manifest.ErrBadSignature) || r.h.Version(env) != 1 {
		t.Fatalf("tampered delta: %v (version %d), want ErrBadSignature at 1", err, r.h.Version(env))
	}
	if got := refusals(t, r.reg, holder.ReasonBadSignature); got != 1 {
		t.Fatalf("tampered delta counted %v refusals, want 1", got)
	}
	fullPath := holder.Path(r.dir, env)
	before, err := os.Stat(fullPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, sd := range []*manifestv1.SignedDelta{d2, d3, d2} {
		if err := r.h.OfferDelta(sd); err != nil {
			t.Fatalf("OfferDelta: %v", err)
		}
	}
	if r.h.Version(env) != 3 {
		t.Fatalf("version %d, want 3", r.h.Version(env))
	}
	after, err := os.Stat(fullPath)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("the full copy was rewritten for a small delta (%v)", err)
	}
	got, want := r.h.Signed(env), func() *manifestv1.SignedManifest { s, _ := pub.Signed(); return s }()
	if !proto.Equal(got, want) {
		t.Fatal("the signed copy of version 3 is not the published one")
	}
	// A torn record (a crash while appending) is ignored: the restart serves 3.
	f, err := os.OpenFile(fullPath+holder.DeltaLogExt, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 1, 0, 7}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	restarted := newRig(t, t0.Add(time.Hour), r.signer, r.dir, env)
	if n := restarted.h.LoadLocal(); n != 1 || restarted.h.Version(env) != 3 {
		t.Fatalf("restart: loaded %d at version %d, want 1 at 3", n, restarted.h.Version(env))
	}
	// The next version after a torn log is written as a full copy.
	if err := restarted.h.OfferDelta(next(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fullPath + holder.DeltaLogExt); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the torn log was kept: %v", err)
	}
	again := newRig(t, t0.Add(time.Hour), r.signer, r.dir, env)
	if n := again.h.LoadLocal(); n != 1 || again.h.Version(env) != 4 {
		t.Fatalf("second restart: loaded %d at version %d, want 1 at 4", n, again.h.Version(env))
	}
}
