package manifest_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

// A delta that carries its result's signature lets the receiver rebuild the exact
// signed manifest of the new version, verified; anything else is refused.
func TestDeltaResultRebuildsTheSignedManifest(t *testing.T) {
	t.Parallel()
	s, other := newSigner(t), newSigner(t)
	from := sample(1, flag("a", true))
	to := sample(2, flag("a", false), flag("b", true))
	fromPayload, _ := manifest.Encode(from)
	to.PreviousDigest = manifest.Digest(fromPayload)
	signedTo, err := s.Manifest(to)
	if err != nil {
		t.Fatal(err)
	}
	d, err := manifest.Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := s.Delta(d)
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(t, t0.Add(time.Hour), s.PublicKey())
	applied, err := manifest.Apply(from, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Result(sd, applied); !errors.Is(err, manifest.ErrNoResult) {
		t.Fatalf("without a result signature: %v, want ErrNoResult", err)
	}
	manifest.WithResult(sd, signedTo)
	got, err := v.Result(sd, applied)
	if err != nil {
		t.Fatalf("Result: %v", err)
	}
	if !bytes.Equal(got.GetPayload(), signedTo.GetPayload()) || !bytes.Equal(got.GetSignature(), signedTo.GetSignature()) ||
		got.GetKeyId() != signedTo.GetKeyId() {
		t.Fatal("the rebuilt signed manifest differs from the published one")
	}

	t.Run("a result that is not what was signed is refused", func(t *testing.T) {
		t.Parallel()
		wrong := sample(2, flag("a", true))
		wrong.PreviousDigest = to.PreviousDigest
		if _, err := v.Result(sd, wrong); !errors.Is(err, manifest.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	})
	t.Run("a result signed by an untrusted key is refused", func(t *testing.T) {
		t.Parallel()
		foreign, err := other.Manifest(to)
		if err != nil {
			t.Fatal(err)
		}
		sd2, _ := s.Delta(d)
		manifest.WithResult(sd2, foreign)
		if _, err := v.Result(sd2, applied); !errors.Is(err, manifest.ErrUnknownKey) {
			t.Fatalf("got %v, want ErrUnknownKey", err)
		}
	})
	t.Run("an expired result is refused", func(t *testing.T) {
		t.Parallel()
		late := verifier(t, t0.Add(8*24*time.Hour), s.PublicKey())
		if _, err := late.Result(sd, applied); !errors.Is(err, manifest.ErrExpired) {
			t.Fatalf("got %v, want ErrExpired", err)
		}
	})
}

// BenchmarkResult is what a receiver pays per delta to hold the signed manifest of
// the new version: re-encoding the applied manifest (n flags) and verifying the
// attached signature.
func BenchmarkResult(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("flags=%d", n), func(b *testing.B) {
			s := newSigner(b)
			flags := make([]*manifestv1.Flag, n)
			for i := range flags {
				flags[i] = flag(fmt.Sprintf("flag-%04d", i), i%2 == 0)
			}
			from := sample(1, flags...)
			to := sample(2, append(flags[1:], flag("flag-0000", false))...)
			signedTo, err := s.Manifest(to)
			if err != nil {
				b.Fatal(err)
			}
			d, err := manifest.Diff(from, to)
			if err != nil {
				b.Fatal(err)
			}
			sd, err := s.Delta(d)
			if err != nil {
				b.Fatal(err)
			}
			manifest.WithResult(sd, signedTo)
			v, err := manifest.NewVerifier(func() time.Time { return t0.Add(time.Hour) }, s.PublicKey())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Result(sd, to); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
