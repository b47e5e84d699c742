package holder_test

import (
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// coldStartEnvs are the environments of the cold-start benchmark (issue 18: an
// evaluator with 10,000 flags x 3 environments).
var coldStartEnvs = []string{"acme/web/production", "acme/web/staging", "acme/web/development"}

// ColdStartFlags is the number of flags per environment.
const coldStartFlags = 10_000

// coldStartManifests signs one manifest of coldStartFlags flags per environment.
func coldStartManifests(tb testing.TB, signer *manifest.Signer) []*manifestv1.SignedManifest {
	tb.Helper()
	pub := &fixture.Publisher{Signer: signer}
	now := time.Now()
	out := make([]*manifestv1.SignedManifest, 0, len(coldStartEnvs))
	for _, env := range coldStartEnvs {
		flags := make([]*manifestv1.Flag, coldStartFlags)
		for i := range flags {
			flags[i] = fixture.BoolFlag(fmt.Sprintf("flag-%05d", i), i%3 != 0, i%5 == 0)
		}
		p, err := pub.Sign(fixture.Manifest(env, 1, now, flags...))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, p.Manifest)
	}
	return out
}

// BenchmarkColdStartLocal is an evaluator starting from its local copies with
// 10,000 flags in each of 3 environments: a new holder, LoadLocal (read, verify,
// compile, swap each) until it is ready. Goal (issue 18): < 500 ms per op.
func BenchmarkColdStartLocal(b *testing.B) {
	signer := fixture.NewSigner()
	v, err := manifest.NewVerifier(nil, signer.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cfg := holder.Config{Verifier: v, Environments: coldStartEnvs, DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	writer, err := holder.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for i, sm := range coldStartManifests(b, signer) {
		if err := writer.Offer(coldStartEnvs[i], sm); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer func() { reportCPU(b, cpu) }()
	for b.Loop() {
		h, err := holder.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if n := h.LoadLocal(); n != len(coldStartEnvs) || !h.Ready() {
			b.Fatalf("loaded %d local copies, ready %v", n, h.Ready())
		}
	}
}

// BenchmarkColdStartOffer is the part of a cold start from Redis after the
// bytes arrived: offering the three full manifests (verify, compile, write the
// local copy, swap). The Redis round trips are measured by the source package.
func BenchmarkColdStartOffer(b *testing.B) {
	signer := fixture.NewSigner()
	v, err := manifest.NewVerifier(nil, signer.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	sms := coldStartManifests(b, signer)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer func() { reportCPU(b, cpu) }()
	for b.Loop() {
		h, err := holder.New(holder.Config{Verifier: v, Environments: coldStartEnvs, DataDir: b.TempDir(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		for i, sm := range sms {
			if err := h.Offer(coldStartEnvs[i], sm); err != nil {
				b.Fatal(err)
			}
		}
		if !h.Ready() {
			b.Fatal("not ready")
		}
	}
}

// cpuTime is the process's user+system CPU time: the cold-start benchmarks
// report it per op (cpu-ms/op), which the shared machine's load distorts less
// than wall-clock ns/op. On 2 idle cores the wall clock is at most the CPU time
// (the work is sequential).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64((cpuTime()-since).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}
