package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
)

// TestServeWritesSignedAuditCheckpoints: the running control plane signs each
// organization's chain head into the snapshot store on its interval, and the
// checkpoint matches the database.
func TestServeWritesSignedAuditCheckpoints(t *testing.T) {
	t.Parallel()
	dir, err := snapshot.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := startWith(t, backends[0].open(t), ratelimit.Config{}, func(cfg *app.Config) {
		cfg.Manifests.Snapshots = dir
		cfg.Checkpoints = checkpoint.Config{Interval: 50 * time.Millisecond}
	})
	c.project() // more entries after the first checkpoint
	chains := c.st.(checkpoint.Chains)
	want, _, err := chains.AuditHead(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.NewVerifier(time.Now, c.signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := checkpoint.Verify(context.Background(), chains, dir, v, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK {
			t.Fatalf("untouched database against its checkpoints: %+v", r)
		}
		if r.Newest.Sequence >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of entry %d after 10 s: %+v", want, r)
		}
	}
}
