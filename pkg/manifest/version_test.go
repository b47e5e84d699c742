package manifest_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

func segment(key string, included ...string) *manifestv1.Segment {
	return &manifestv1.Segment{Key: key, Included: included}
}

// chainDelta is the delta a publisher builds for version to (issued one minute
// after the previous one).
func chainDelta(to uint64) *manifestv1.ManifestDelta {
	return &manifestv1.ManifestDelta{
		ToVersion: to, IssuedAt: timestamppb.New(t0.Add(time.Duration(to) * time.Minute)),
		ExpiresAt: timestamppb.New(t0.Add(7 * 24 * time.Hour)), PublisherEpoch: 1,
	}
}

// A format-2 chain: the publisher signs headers only, the receiver applies deltas
// and ends up with exactly the manifest the publisher holds, which verifies whole.
func TestFormat2ChainRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	first, err := s.First(sample(1, flag("a", true), flag("b", false)))
	if err != nil {
		t.Fatal(err)
	}
	sm, err := first.Signed()
	if err != nil {
		t.Fatal(err)
	}
	held, err := v.Open(sm)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	d := chainDelta(2)
	d.UpsertedFlags = []*manifestv1.Flag{flag("a", false), flag("c", true)}
	d.DeletedFlags = []string{"b"}
	d.UpsertedSegments = []*manifestv1.Segment{segment("beta", "u1")}
	d.SdkKeysChanged = true
	d.SdkKeys = []*manifestv1.SdkKey{{Id: "k2", Hash: []byte{2}}, {Id: "k1", Hash: []byte{1}}}
	d.PrivateAttributesChanged = true
	d.PrivateAttributes = []string{"email"}
	second, sd, err := s.Next(first, d)
	if err != nil {
		t.Fatal(err)
	}
	got, gotDelta, err := v.Apply(held, sd)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !proto.Equal(got.Manifest(), second.Manifest()) {
		t.Fatal("the receiver's manifest differs from the publisher's")
	}
	if len(gotDelta.GetUpsertedFlags()) != 2 || gotDelta.GetDeletedFlags()[0] != "b" {
		t.Fatalf("delta returned: %v", gotDelta)
	}
	if keys := got.Manifest().GetSdkKeys(); keys[0].GetId() != "k1" || keys[1].GetId() != "k2" {
		t.Fatalf("SDK keys not canonical: %v", keys)
	}
	if got.Manifest().GetPreviousDigest() == nil || string(got.Manifest().GetPreviousDigest()) != string(held.Digest()) {
		t.Fatal("version 2 does not chain onto version 1")
	}
	full, err := got.Signed()
	if err != nil {
		t.Fatal(err)
	}
	reopened, err := v.Open(full)
	if err != nil {
		t.Fatalf("the receiver's signed copy does not verify: %v", err)
	}
	if !proto.Equal(reopened.Manifest(), second.Manifest()) || string(reopened.Digest()) != string(second.Digest()) {
		t.Fatal("the signed copy is not the published version")
	}
	if _, err := v.OpenNext(got, sm); !errors.Is(err, manifest.ErrStale) {
		t.Fatalf("version 1 after 2: %v, want ErrStale", err)
	}
	resigned, err := s.Resign(second, t0.Add(time.Hour), t0.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := resigned.Signed()
	if _, err := v.OpenNext(got, rs); err != nil {
		t.Fatalf("re-signed version 2: %v", err)
	}
}

// Every refusal of format 1 holds for format 2: tampering (header, payload or
// delta), foreign keys, expiry, staleness, gaps, another environment, and a version
// that does not chain onto the one held (a fenced publisher's fork).
func TestFormat2Refusals(t *testing.T) {
	t.Parallel()
	s, other := newSigner(t), newSigner(t)
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	first, err := s.First(sample(1, flag("a", true), flag("b", false)))
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := first.Signed()
	held, err := v.Open(sm)
	if err != nil {
		t.Fatal(err)
	}
	d := chainDelta(2)
	d.UpsertedFlags = []*manifestv1.Flag{flag("a", false)}
	_, sd, err := s.Next(first, d)
	if err != nil {
		t.Fatal(err)
	}

	for i := range sm.GetPayload() {
		tampered := proto.Clone(sm).(*manifestv1.SignedManifest)
		tampered.Payload[i] ^= 0x01
		if _, err := v.Open(tampered); !errors.Is(err, manifest.ErrBadSignature) {
			t.Fatalf("manifest payload altered at byte %d: got %v, want ErrBadSignature", i, err)
		}
	}
	for i := range sm.GetHeader().GetHeader() {
		tampered := proto.Clone(sm).(*manifestv1.SignedManifest)
		tampered.Header.Header[i] ^= 0x01
		if _, err := v.Open(tampered); !errors.Is(err, manifest.ErrBadSignature) {
			t.Fatalf("header altered at byte %d: got %v, want ErrBadSignature", i, err)
		}
	}
	for i := range sd.GetPayload() {
		tampered := proto.Clone(sd).(*manifestv1.SignedDelta)
		tampered.Payload[i] ^= 0x01
		if _, _, err := v.Apply(held, tampered); !errors.Is(err, manifest.ErrBadSignature) {
			t.Fatalf("delta payload altered at byte %d: got %v, want ErrBadSignature", i, err)
		}
	}

	foreignFirst, err := other.First(sample(1, flag("a", true), flag("b", false)))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := foreignFirst.Signed()
	d3 := chainDelta(3)
	d3.DeletedFlags = []string{"a"}
	second, _, _ := s.Next(first, func() *manifestv1.ManifestDelta {
		x := chainDelta(2)
		x.UpsertedFlags = []*manifestv1.Flag{flag("a", false)}
		return x
	}())
	_, gap, err := s.Next(second, d3)
	if err != nil {
		t.Fatal(err)
	}
	// A fork: another version 2 (signed by the trusted key, e.g. a fenced-off
	// publisher) followed by its version 3; and a version 2 of another environment.
	fork := sample(1, flag("a", true))
	forkFirst, _ := s.First(fork)
	_, forked, _ := s.Next(forkFirst, func() *manifestv1.ManifestDelta { x := chainDelta(2); x.DeletedFlags = []string{"a"}; return x }())
	elsewhere := sample(1, flag("a", true), flag("b", false))
	elsewhere.Environment = "staging"
	elseFirst, _ := s.First(elsewhere)
	_, elseDelta, _ := s.Next(elseFirst, func() *manifestv1.ManifestDelta { x := chainDelta(2); x.DeletedFlags = []string{"a"}; return x }())
	late := verifier(t, t0.Add(8*24*time.Hour), s.PublicKey())

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"a manifest signed with an unknown key", func() error { _, err := v.Open(foreign); return err }, manifest.ErrUnknownKey},
		{"a delta signed with an unknown key", func() error {
			x := proto.Clone(sd).(*manifestv1.SignedDelta)
			x.Header.KeyId = other.KeyID()
			_, _, err := v.Apply(held, x)
			return err
		}, manifest.ErrUnknownKey},
		{"a foreign key claiming a trusted key id", func() error {
			x := proto.Clone(foreign).(*manifestv1.SignedManifest)
			x.Header.KeyId = s.KeyID()
			_, err := v.Open(x)
			return err
		}, manifest.ErrBadSignature},
		{"an expired manifest", func() error { _, err := late.Open(sm); return err }, manifest.ErrExpired},
		{"an expired delta", func() error { _, _, err := late.Apply(held, sd); return err }, manifest.ErrExpired},
		{"a delta past a gap", func() error { _, _, err := v.Apply(held, gap); return err }, manifest.ErrNotNext},
		{"a delta already applied", func() error {
			next, _, err := v.Apply(held, sd)
			if err != nil {
				return err
			}
			_, _, err = v.Apply(next, sd)
			return err
		}, manifest.ErrStale},
		{"a delta of another environment", func() error { _, _, err := v.Apply(held, elseDelta); return err }, manifest.ErrWrongTarget},
		{"a delta from another chain", func() error { _, _, err := v.Apply(held, forked); return err }, manifest.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// A publisher that signs a delta whose entries do not match the version it
// announces (or reuses a key twice) is refused by Next; a delta that claims to
// delete what is not there is refused on both sides.
func TestFormat2RefusesInconsistentDeltas(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	first, err := s.First(sample(1, flag("a", true)))
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*manifestv1.ManifestDelta{
		"deleting a missing flag": func() *manifestv1.ManifestDelta { x := chainDelta(2); x.DeletedFlags = []string{"zz"}; return x }(),
		"a flag upserted twice": func() *manifestv1.ManifestDelta {
			x := chainDelta(2)
			x.UpsertedFlags = []*manifestv1.Flag{flag("b", true), flag("b", false)}
			return x
		}(),
		"upserted and deleted": func() *manifestv1.ManifestDelta {
			x := chainDelta(2)
			x.UpsertedFlags, x.DeletedFlags = []*manifestv1.Flag{flag("a", false)}, []string{"a"}
			return x
		}(),
		"a gap":     chainDelta(3),
		"no expiry": {ToVersion: 2},
	} {
		if _, _, err := s.Next(first, d); !errors.Is(err, manifest.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// Property: applying a random sequence of deltas yields exactly the manifest a full
// rebuild gives (same content digest, same manifest), and the receiver's signed
// copy of every version verifies.
func TestFormat2RandomDeltasMatchFullRebuild(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(19, 1))
	s := newSigner(t)
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	state := map[string]*manifestv1.Flag{}
	segs := map[string]*manifestv1.Segment{}
	var initial []*manifestv1.Flag
	for i := range 40 {
		f := flag(fmt.Sprintf("f%03d", i), rng.IntN(2) == 0)
		state[f.GetKey()] = f
		initial = append(initial, f)
	}
	pub, err := s.First(sample(1, initial...))
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := pub.Signed()
	held, err := v.Open(sm)
	if err != nil {
		t.Fatal(err)
	}
	for version := uint64(2); version <= 150; version++ {
		d := chainDelta(version)
		touched := map[string]bool{}
		for range 1 + rng.IntN(4) {
			key := fmt.Sprintf("f%03d", rng.IntN(60))
			if touched[key] {
				continue
			}
			touched[key] = true
			if _, ok := state[key]; ok && rng.IntN(4) == 0 {
				delete(state, key)
				d.DeletedFlags = append(d.DeletedFlags, key)
				continue
			}
			f := flag(key, rng.IntN(2) == 0)
			f.Revision = int64(version)
			state[key] = f
			d.UpsertedFlags = append(d.UpsertedFlags, f)
		}
		if rng.IntN(5) == 0 {
			key := fmt.Sprintf("s%d", rng.IntN(4))
			if _, ok := segs[key]; ok && rng.IntN(2) == 0 {
				delete(segs, key)
				d.DeletedSegments = []string{key}
			} else {
				segs[key] = segment(key, fmt.Sprintf("u%d", version))
				d.UpsertedSegments = []*manifestv1.Segment{segs[key]}
			}
		}
		if rng.IntN(10) == 0 {
			d.SdkKeysChanged = true
			d.SdkKeys = []*manifestv1.SdkKey{{Id: fmt.Sprintf("k%d", version), Hash: []byte{byte(version)}}}
		}
		var sd *manifestv1.SignedDelta
		prevDigest := pub.Digest()
		if pub, sd, err = s.Next(pub, d); err != nil {
			t.Fatalf("version %d: Next: %v", version, err)
		}
		if held, _, err = v.Apply(held, sd); err != nil {
			t.Fatalf("version %d: Apply: %v", version, err)
		}

		rebuilt := sample(version, mapValues(state)...)
		rebuilt.Segments = mapValues(segs)
		rebuilt.SdkKeys = held.Manifest().GetSdkKeys()
		rebuilt.IssuedAt, rebuilt.PreviousDigest, rebuilt.PublisherEpoch = d.GetIssuedAt(), prevDigest, 1
		manifest.Canonicalize(rebuilt)
		if !proto.Equal(rebuilt, held.Manifest()) {
			t.Fatalf("version %d: the applied manifest differs from the full rebuild", version)
		}
		full, err := manifest.NewContent(rebuilt)
		if err != nil {
			t.Fatal(err)
		}
		var h manifestv1.ManifestHeader
		if err := proto.Unmarshal(held.Header().GetHeader(), &h); err != nil {
			t.Fatal(err)
		}
		if string(full.Digest()) != string(h.GetContentDigest()) {
			t.Fatalf("version %d: incremental content digest differs from the full rebuild's", version)
		}
		if version%25 == 0 {
			copySM, err := held.Signed()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Open(copySM); err != nil {
				t.Fatalf("version %d: the signed copy does not verify: %v", version, err)
			}
		}
	}
}

func mapValues[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// A format-2 delta may follow a format-1 version (the first version a format-2
// publisher signs after an older one): it chains onto the format-1 payload digest.
func TestFormat2FollowsFormat1(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	old := sample(1, flag("a", true))
	sm1, err := s.Manifest(old)
	if err != nil {
		t.Fatal(err)
	}
	held, err := v.Open(sm1)
	if err != nil || held.Format() != 1 {
		t.Fatalf("Open format 1: %v", err)
	}
	d := chainDelta(2)
	d.UpsertedFlags = []*manifestv1.Flag{flag("b", true)}
	_, sd, err := s.Next(held, d)
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := v.Apply(held, sd)
	if err != nil {
		t.Fatalf("format-2 delta after format 1: %v", err)
	}
	if string(next.Manifest().GetPreviousDigest()) != string(manifest.Digest(sm1.GetPayload())) {
		t.Fatal("format 2 does not chain onto the format-1 payload digest")
	}
}
