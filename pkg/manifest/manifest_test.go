package manifest_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func newSigner(t testing.TB) *manifest.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func flag(key string, on bool) *manifestv1.Flag {
	return &manifestv1.Flag{
		Key: key, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN,
		Variants: []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}},
		Config:   &manifestv1.FlagConfig{On: on, OffVariant: "off", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}},
	}
}

func sample(version uint64, flags ...*manifestv1.Flag) *manifestv1.Manifest {
	m := &manifestv1.Manifest{
		Org: "acme", Project: "web", Environment: "production", Version: version, Bucketing: manifest.Bucketing,
		IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(7 * 24 * time.Hour)), Flags: flags,
	}
	manifest.Canonicalize(m)
	return m
}

func verifier(t *testing.T, now time.Time, keys ...ed25519.PublicKey) *manifest.Verifier {
	t.Helper()
	v, err := manifest.NewVerifier(func() time.Time { return now }, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignedManifestVerifies(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	m := sample(3, flag("a", true), flag("b", false))
	sm, err := s.Manifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verifier(t, t0.Add(time.Hour), s.PublicKey()).Manifest(sm)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if diff := cmp.Diff(m, got, protocmp.Transform()); diff != "" {
		t.Fatalf("verified manifest differs (-want +got):\n%s", diff)
	}
}

func TestVerificationRefuses(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	other := newSigner(t)
	sm, err := s.Manifest(sample(5, flag("a", true)))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Manifest(sample(5, flag("a", true)))
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	for i := range sm.GetPayload() {
		tampered := &manifestv1.SignedManifest{Payload: append([]byte(nil), sm.GetPayload()...), KeyId: sm.GetKeyId(), Signature: sm.GetSignature()}
		tampered.Payload[i] ^= 0x01
		if _, err := v.Manifest(tampered); !errors.Is(err, manifest.ErrBadSignature) {
			t.Fatalf("payload altered at byte %d: got %v, want ErrBadSignature", i, err)
		}
	}
	badSig := &manifestv1.SignedManifest{Payload: sm.GetPayload(), KeyId: sm.GetKeyId(), Signature: append([]byte(nil), sm.GetSignature()...)}
	badSig.Signature[0] ^= 0x80
	tests := []struct {
		name string
		v    *manifest.Verifier
		sm   *manifestv1.SignedManifest
		want error
	}{
		{"a signature altered by one bit", v, badSig, manifest.ErrBadSignature},
		{"signed with an unknown key", v, foreign, manifest.ErrUnknownKey},
		{"a foreign key claiming a trusted key id", v, &manifestv1.SignedManifest{Payload: foreign.GetPayload(), KeyId: s.KeyID(), Signature: foreign.GetSignature()}, manifest.ErrBadSignature},
		{"expired", verifier(t, t0.Add(8*24*time.Hour), s.PublicKey()), sm, manifest.ErrExpired},
		{"expiry instant itself", verifier(t, t0.Add(7*24*time.Hour), s.PublicKey()), sm, manifest.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.v.Manifest(tt.sm); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNextRefusesOlderVersionsAndOtherEnvironments(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	held := sample(7, flag("a", true))
	sign := func(m *manifestv1.Manifest) *manifestv1.SignedManifest {
		sm, err := s.Manifest(m)
		if err != nil {
			t.Fatal(err)
		}
		return sm
	}
	if _, err := v.Next(held, sign(sample(6, flag("a", false)))); !errors.Is(err, manifest.ErrStale) {
		t.Fatalf("older version: got %v, want ErrStale", err)
	}
	if _, err := v.Next(held, sign(sample(7, flag("a", false)))); !errors.Is(err, manifest.ErrStale) {
		t.Fatalf("same version, same issuedAt: got %v, want ErrStale", err)
	}
	resigned := sample(7, flag("a", true))
	resigned.IssuedAt = timestamppb.New(t0.Add(time.Minute))
	if _, err := v.Next(held, sign(resigned)); err != nil {
		t.Fatalf("re-signed same version: %v", err)
	}
	if _, err := v.Next(held, sign(sample(8, flag("a", false)))); err != nil {
		t.Fatalf("newer version: %v", err)
	}
	staging := sample(9)
	staging.Environment = "staging"
	if _, err := v.Next(held, sign(staging)); !errors.Is(err, manifest.ErrWrongTarget) {
		t.Fatalf("other environment: got %v, want ErrWrongTarget", err)
	}
}

func TestRotationTrustsSeveralKeys(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newSigner(t), newSigner(t)
	v := verifier(t, t0.Add(time.Hour), oldKey.PublicKey(), newKey.PublicKey())
	for _, s := range []*manifest.Signer{oldKey, newKey} {
		sm, err := s.Manifest(sample(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Manifest(sm); err != nil {
			t.Fatalf("key %s: %v", s.KeyID(), err)
		}
	}
}

func TestDiffThenApplyReproducesTheTarget(t *testing.T) {
	t.Parallel()
	from := sample(1, flag("a", true), flag("b", true), flag("c", true))
	from.Segments = []*manifestv1.Segment{{Key: "beta", Included: []string{"u1"}}, {Key: "gone"}}
	to := sample(2, flag("a", true), flag("b", false), flag("d", true))
	to.Segments = []*manifestv1.Segment{{Key: "beta", Included: []string{"u1", "u2"}}}
	to.SdkKeys = []*manifestv1.SdkKey{{Id: "k1", Hash: make([]byte, 32), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER}}
	manifest.Canonicalize(to)
	fromPayload, err := manifest.Encode(from)
	if err != nil {
		t.Fatal(err)
	}
	to.PreviousDigest = manifest.Digest(fromPayload)

	d, err := manifest.Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	unchained := sample(2)
	unchained.PreviousDigest = []byte("not the digest of from")
	if _, err := manifest.Diff(from, unchained); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("diff to a manifest that does not follow from: got %v, want ErrMalformed", err)
	}
	keys := func(fs []*manifestv1.Flag) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.GetKey())
		}
		return out
	}
	if diff := cmp.Diff([]string{"b", "d"}, keys(d.GetUpsertedFlags())); diff != "" {
		t.Errorf("upserted flags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c"}, d.GetDeletedFlags()); diff != "" {
		t.Errorf("deleted flags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gone"}, d.GetDeletedSegments()); diff != "" {
		t.Errorf("deleted segments (-want +got):\n%s", diff)
	}
	if !d.GetSdkKeysChanged() {
		t.Error("SDK key change not carried")
	}
	got, err := manifest.Apply(from, d)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if diff := cmp.Diff(to, got, protocmp.Transform()); diff != "" {
		t.Fatalf("applied delta differs from the target (-want +got):\n%s", diff)
	}
	if len(from.GetFlags()) != 3 || !from.GetFlags()[1].GetConfig().GetOn() {
		t.Fatal("Apply modified its input")
	}
}

func TestApplyRefusesADeltaFromAnotherBase(t *testing.T) {
	t.Parallel()
	from := sample(1, flag("a", true))
	to := sample(2, flag("a", false))
	d, err := manifest.Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Apply(sample(2, flag("a", false)), d); !errors.Is(err, manifest.ErrStale) {
		t.Fatalf("wrong version: got %v, want ErrStale", err)
	}
	forked := sample(1, flag("a", true), flag("x", true))
	if _, err := manifest.Apply(forked, d); !errors.Is(err, manifest.ErrMalformed) {
		t.Fatalf("same version, other content: got %v, want ErrMalformed", err)
	}
}

func TestSignedDeltaVerifies(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	d, err := manifest.Diff(sample(1, flag("a", true)), sample(2, flag("a", false)))
	if err != nil {
		t.Fatal(err)
	}
	sd, err := s.Delta(d)
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	if _, err := v.Delta(sd); err != nil {
		t.Fatalf("verify delta: %v", err)
	}
	// A delta signature is not a manifest signature (domain separation).
	if _, err := v.Manifest(&manifestv1.SignedManifest{Payload: sd.GetPayload(), KeyId: sd.GetKeyId(), Signature: sd.GetSignature()}); !errors.Is(err, manifest.ErrBadSignature) {
		t.Fatalf("delta replayed as manifest: got %v, want ErrBadSignature", err)
	}
	sd.Payload[len(sd.Payload)-1] ^= 1
	if _, err := v.Delta(sd); !errors.Is(err, manifest.ErrBadSignature) {
		t.Fatalf("tampered delta: got %v", err)
	}
}

func TestKeysRoundTripThroughPEM(t *testing.T) {
	t.Parallel()
	privPEM, pubPEM, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := manifest.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	_, pub2PEM, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := manifest.ParsePublicKeys(append(append([]byte{}, pubPEM...), pub2PEM...))
	if err != nil || len(pubs) != 2 {
		t.Fatalf("ParsePublicKeys: %d keys, %v", len(pubs), err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pubs[0]) {
		t.Fatal("public key does not match the private key")
	}
	if _, err := manifest.ParsePrivateKey(pubPEM); err == nil {
		t.Fatal("a public key parsed as a private key")
	}
	if _, err := manifest.ParsePublicKeys([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed as public keys")
	}
}
