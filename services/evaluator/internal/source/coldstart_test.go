package source_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/source"
)

// BenchmarkColdStartRedis is an evaluator starting from Redis with 10,000 flags
// in each of 3 environments and no local copy: a new holder and Redis source,
// from Run until the holder is ready (read each environment's manifest, verify,
// compile, write the local copy, swap). Goal (issue 18): < 1 s per op. Redis:
// FLAGFORGE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0), a fresh key prefix
// deleted at the end; skipped loudly when unreachable (failed under CI=true).
func BenchmarkColdStartRedis(b *testing.B) {
	url := os.Getenv("FLAGFORGE_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		b.Fatalf("FLAGFORGE_TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opts)
	defer func() { _ = client.Close() }()
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("Redis at %s unreachable under CI: %v", url, err)
		}
		b.Skipf("SKIPPING: Redis at %s unreachable (%v); set FLAGFORGE_TEST_REDIS_URL", url, err)
	}
	rb := make([]byte, 6)
	_, _ = rand.Read(rb)
	prefix := "ffcold:" + hex.EncodeToString(rb) + ":"
	defer func() {
		if keys, _ := client.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			client.Del(ctx, keys...)
		}
	}()
	envs := []string{"acme/web/production", "acme/web/staging", "acme/web/development"}
	signer := fixture.NewSigner()
	pub := &fixture.Publisher{Client: client, Prefix: prefix, Signer: signer}
	for _, env := range envs {
		flags := make([]*manifestv1.Flag, 10_000)
		for i := range flags {
			flags[i] = fixture.BoolFlag(fmt.Sprintf("flag-%05d", i), i%3 != 0, i%5 == 0)
		}
		if _, err := pub.Publish(ctx, fixture.Manifest(env, 1, time.Now(), flags...)); err != nil {
			b.Fatal(err)
		}
	}
	v, err := manifest.NewVerifier(nil, signer.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		h, err := holder.New(holder.Config{Verifier: v, Environments: envs, DataDir: b.TempDir(), Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		src, err := source.NewRedis(source.RedisConfig{Client: client, Prefix: prefix, Environments: envs, Logger: log}, h)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = src.Run(runCtx); close(done) }()
		deadline := time.Now().Add(time.Minute)
		for !h.Ready() {
			if time.Now().After(deadline) {
				b.Fatal("not ready within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
	}
	// Includes the test's own Redis client; the redis-server's CPU is not counted.
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user+system CPU time (rusage), less distorted by the
// shared machine's load than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
