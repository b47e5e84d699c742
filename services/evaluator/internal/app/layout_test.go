package app_test

import (
	"context"
	"testing"

	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

// The upgrade to hash-tagged keys (pkg/rediskeys), evaluators first: a new
// evaluator serves what a layout-1 control plane writes (the hash and its deltas),
// and once the upgraded control plane writes layout 2 and deletes the layout-1
// hash, it follows that.
func TestAnEvaluatorFollowsALayout1PublisherUntilTheControlPlaneIsUpgraded(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	old := &fixture.Publisher{Client: r.pub.Client, Prefix: r.pub.Prefix, Signer: r.pub.Signer, Layout1: true}
	if _, err := old.Publish(ctx, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, false))); err != nil {
		t.Fatal(err)
	}
	e := start(t, r.cfg)
	eventually(t, "version 1 is loaded from the layout-1 hash", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)
	if _, err := old.Publish(ctx, fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, false))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "version 2 is applied from the layout-1 hash", func() bool { return e.app.Holder.Version(env) == 2 })
	if n := metric(t, e, `flagforge_evaluator_manifest_updates_total{kind="delta"}`); n != 1 {
		t.Fatalf("%v updates by delta from the layout-1 hash, want 1", n)
	}

	// The control plane is upgraded: its publisher re-writes version 2 under the
	// new name, deletes the old hash, and goes on there.
	p2, err := old.Sign(fixture.Manifest(env, 3, now(), fixture.BoolFlag("new-ui", true, false)))
	if err != nil {
		t.Fatal(err)
	}
	keys := rediskeys.Keys{Prefix: r.pub.Prefix}
	if err := r.pub.Client.Rename(ctx, keys.LegacyEnv(env), keys.Env(env)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.pub.Write(ctx, env, 3, p2, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "version 3 is applied from the layout-2 hash", func() bool { return e.app.Holder.Version(env) == 3 })
	if n := metric(t, e, `flagforge_evaluator_manifest_updates_total{kind="delta"}`); n != 2 {
		t.Fatalf("%v updates by delta in all, want 2", n)
	}
}
