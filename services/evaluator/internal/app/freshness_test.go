package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

// Finding 4: the time since the source last confirmed the version served rises
// while Redis is down (and the source reads as down, in the metrics and /readyz),
// and falls once Redis is back, although nothing new was published.
func TestFreshnessRisesDuringARedisOutageAndFallsAfter(t *testing.T) {
	t.Parallel()
	rs := startRedis(t, 0)
	client := redis.NewClient(&redis.Options{Addr: rs.addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	s := fixture.NewSigner()
	pub := &fixture.Publisher{Client: client, Prefix: "ff:", Signer: s}
	p, err := pub.Publish(context.Background(), fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false)))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, config.Config{RedisURL: "redis://" + rs.addr() + "/0", TrustedKeys: fixture.PublicPEM(s), ResyncInterval: time.Second})
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })
	const age = `flagforge_evaluator_source_confirmed_age_seconds{environment="acme/web/production"}`
	const up = `flagforge_evaluator_source_up{environment="acme/web/production"}`
	eventually(t, "the source is up and confirms", func() bool { return metric(t, e, up) == 1 && metric(t, e, age) < 1.5 })

	rs.kill()
	eventually(t, "the source reads as down", func() bool { return metric(t, e, up) == 0 })
	eventually(t, "the confirmation age rises past 3s", func() bool { return metric(t, e, age) > 3 })
	if code, body := get(t, e, "/readyz"); code != http.StatusOK || !strings.Contains(body, `"sourceUp":false`) {
		t.Fatalf("/readyz during the outage: %d %s, want 200 (still serving) with sourceUp false", code, body)
	}
	if v := e.app.Holder.Version(env); v != 1 {
		t.Fatalf("version %d during the outage, want 1", v)
	}

	// Redis comes back (empty, as a restarted cache would); the publisher re-writes
	// the same version: nothing new, but the source confirms what is held.
	startRedis(t, rs.port)
	if err := pub.Write(context.Background(), env, 1, p, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source is up again", func() bool { return metric(t, e, up) == 1 })
	eventually(t, "the confirmation age falls below 1.5s (the re-read period is 1s)", func() bool { return metric(t, e, age) < 1.5 })
	if lag := metric(t, e, `flagforge_evaluator_manifest_version_lag{environment="acme/web/production"}`); lag != 0 {
		t.Fatalf("version lag %v, want 0", lag)
	}
}

// Finding 3 (evaluator side): a forged version field in the hash decides nothing.
// Set far above the truth it neither stops a re-read from finding the real newer
// manifest nor makes the evaluator accept anything unsigned.
func TestAForgedVersionFieldInRedisDecidesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false)))
	cfg := r.cfg
	cfg.ResyncInterval = time.Second
	e := start(t, cfg)
	eventually(t, "version 1 is loaded", func() bool { return e.app.Holder.Version(env) == 1 })
	ctx := context.Background()
	key := rediskeys.Keys{Prefix: r.pub.Prefix}.Env(env)
	if err := r.pub.Client.HSet(ctx, key, "version", "99").Err(); err != nil {
		t.Fatal(err)
	}
	// Version 2 is written without the field being touched and without an event:
	// only the periodic re-read can find it, and the forged field must not hide it.
	p2, err := r.pub.Sign(fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.pub.Write(ctx, env, 99, p2, false); err != nil { // the writer keeps the forged index
		t.Fatal(err)
	}
	eventually(t, "version 2 is found by the re-read", func() bool { return e.app.Holder.Version(env) == 2 })
	// A forged event for a version nobody signed changes nothing.
	if err := r.pub.Announce(ctx, env, 1000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if v := e.app.Holder.Version(env); v != 2 {
		t.Fatalf("version %d after a forged event, want 2", v)
	}
}
