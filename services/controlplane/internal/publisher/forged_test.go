package publisher_test

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

// The Redis hash's version field is not signed. An attacker (or a bug) that sets it
// above the real version must not make the publisher skip later writes: the next
// change is written and announced within 1 s, the hash is repaired from the
// database, and the repair is counted.
func TestAForgedRedisVersionFieldIsRepairedByTheNextPublish(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	srv := newPrivateRedis(t)
	signer, _ := newSigner(t)
	v := verifierFor(t, nil, signer)
	r := start(t, publisher.Config{RetryMin: 20 * time.Millisecond, RetryMax: 10 * time.Second},
		publisher.Deps{Store: st, Signer: signer, Redis: srv.client("")})
	st.OnOutboxCommit(r.p.Notify)
	reader := srv.client("")
	waitFor(t, 10*time.Second, "every environment in Redis", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	key := rediskeys.Keys{}.Env("acme/web/production")
	if err := reader.HSet(t.Context(), key, "version", "12").Err(); err != nil {
		t.Fatal(err)
	}
	sub := reader.Subscribe(t.Context(), rediskeys.Keys{}.Channel())
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(t.Context()); err != nil { // the subscription confirmation
		t.Fatal(err)
	}

	before := heads(t, st)["acme/web/production"]
	began := time.Now()
	toggle(t, st, prod, "a", true) // any change will do
	want := before + 1
	msg, err := sub.ReceiveMessage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); msg.Payload != "acme/web/production "+strconv.FormatUint(want, 10) || took > time.Second {
		t.Fatalf("event %q after %s, want %q within 1s", msg.Payload, took, "acme/web/production "+strconv.FormatUint(want, 10))
	}
	version, sm, _, err := readRedis(t.Context(), reader, "ff:", "acme/web/production")
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Manifest(sm)
	if err != nil {
		t.Fatal(err)
	}
	if version != want || m.GetVersion() != want {
		t.Fatalf("Redis holds version field %d, signed version %d; want both %d", version, m.GetVersion(), want)
	}
	if on, _ := flagOn(m, "a"); !on {
		t.Fatal("the change is not in the manifest Redis holds")
	}
	waitFor(t, time.Second, "the repair to be counted", func() (bool, error) {
		return counter(t, r.reg, "flagforge_publisher_redis_repairs_total") == 1, nil
	})
	// A consistent hash is never "repaired": the next change is an ordinary write.
	toggle(t, st, prod, "a", false)
	waitFor(t, 5*time.Second, "the next version in Redis", func() (bool, error) {
		return redisHoldsLatest(t.Context(), reader, v, st)
	})
	if n := counter(t, r.reg, "flagforge_publisher_redis_repairs_total"); n != 1 {
		t.Fatalf("after an ordinary write flagforge_publisher_redis_repairs_total = %v, want still 1", n)
	}
}
