package holder_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// realisticFlag is a flag of about 300 bytes encoded, like the issue's
// measurements: two rules, a target list and a rollout.
func realisticFlag(key string, on bool) *manifestv1.Flag {
	f := fixture.BoolFlag(key, on, false)
	f.Config.Targets = []*manifestv1.Target{{Variant: "on", Values: []string{"user-1", "user-2", "user-3"}}}
	f.Config.Rules = append(f.Config.Rules, &manifestv1.Rule{
		Id: "beta",
		Clauses: []*manifestv1.Clause{{Attribute: "plan", Operator: manifestv1.Operator_OPERATOR_IN,
			Values: []*structpb.Value{structpb.NewStringValue("enterprise"), structpb.NewStringValue("team")}}},
		Serve: &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{Rollout: &manifestv1.Rollout{
			Weights: []*manifestv1.WeightedVariant{{Variant: "on", Weight: 25}, {Variant: "off", Weight: 75}},
		}}},
	})
	return f
}

// BenchmarkApplyDeltaFormat2 is what one version costs the evaluator when it
// arrives as a format-2 delta changing one flag of an environment of n flags:
// verify the header, apply the delta (digests of the changed flag and its bucket),
// compile the changed flag, swap, and (localCopy) append the delta to the local
// log with fsync. The publisher's signing is not timed. The figure should not grow
// with n.
func BenchmarkApplyDeltaFormat2(b *testing.B) {
	for _, n := range []int{100, 10_000, 50_000} {
		for _, disk := range []bool{false, true} {
			b.Run(fmt.Sprintf("flags=%d/localCopy=%v", n, disk), func(b *testing.B) {
				signer := fixture.NewSigner()
				v, err := manifest.NewVerifier(nil, signer.PublicKey())
				if err != nil {
					b.Fatal(err)
				}
				dir := ""
				if disk {
					dir = b.TempDir()
				}
				h, err := holder.New(holder.Config{Verifier: v, Environments: []string{env}, DataDir: dir,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				flags := make([]*manifestv1.Flag, n)
				for i := range flags {
					flags[i] = realisticFlag(fmt.Sprintf("flag-%06d", i), true)
				}
				pub, err := signer.First(fixture.Manifest(env, 1, now, flags...))
				if err != nil {
					b.Fatal(err)
				}
				sm, err := pub.Signed()
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Offer(env, sm); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					version := uint64(i) + 2
					d := &manifestv1.ManifestDelta{
						ToVersion: version, IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(time.Hour)),
						UpsertedFlags: []*manifestv1.Flag{realisticFlag(fmt.Sprintf("flag-%06d", i%n), version%2 == 0)},
					}
					var sd *manifestv1.SignedDelta
					if pub, sd, err = signer.Next(pub, d); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := h.OfferDelta(sd); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if got := h.Version(env); got != uint64(b.N)+1 {
					b.Fatalf("holding version %d, want %d", got, b.N+1)
				}
			})
		}
	}
}
