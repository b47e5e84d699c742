package holder_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// BenchmarkOfferDelta is what one version costs the evaluator when it arrives as a
// delta carrying its result signature (100 flags, one changed): verify, apply,
// rebuild and verify the signed manifest, compile, swap, and (with a data dir)
// write the local copy with fsync before serving it.
func BenchmarkOfferDelta(b *testing.B) {
	for _, disk := range []bool{false, true} {
		b.Run(fmt.Sprintf("localCopy=%v", disk), func(b *testing.B) {
			signer := fixture.NewSigner()
			pub := &fixture.Publisher{Signer: signer}
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
			build := func(version uint64) *manifestv1.Manifest {
				flags := make([]*manifestv1.Flag, 100)
				for i := range flags {
					flags[i] = fixture.BoolFlag(fmt.Sprintf("flag-%03d", i), i == 0 && version%2 == 0, false)
				}
				return fixture.Manifest(env, version, now, flags...)
			}
			first, err := pub.Sign(build(1))
			if err != nil {
				b.Fatal(err)
			}
			if err := h.Offer(env, first.Manifest); err != nil {
				b.Fatal(err)
			}
			// Sign ahead: only the holder's work is timed.
			deltas := make([]*manifestv1.SignedDelta, b.N)
			for i := range deltas {
				p, err := pub.Sign(build(uint64(i) + 2))
				if err != nil {
					b.Fatal(err)
				}
				deltas[i] = p.Delta
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := h.OfferDelta(deltas[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if h.Signed(env) == nil {
				b.Fatal("no signed manifest held after the deltas")
			}
		})
	}
}
