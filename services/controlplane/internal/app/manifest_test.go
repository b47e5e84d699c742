package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// flagOn reports whether m holds flag key switched on.
func flagOn(flags []*manifestv1.Flag, key string) (on, found bool) {
	for _, f := range flags {
		if f.GetKey() == key {
			return f.GetConfig().GetOn(), true
		}
	}
	return false, false
}

// TestFlagTurnedOnReachesManifestDownloadAndSyncStream: a flag turned on over REST
// is in the next verified manifest of the environment, both from the manifest
// download endpoint and on a SyncManifests stream that was open before the
// change. The stream needs the sync token; the download, a member's credentials.
func TestFlagTurnedOnReachesManifestDownloadAndSyncStream(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		verifier, err := manifest.NewVerifier(time.Now, c.signer.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		c.project()
		const path = "/v1/orgs/acme/projects/web/environments/production"
		sync := syncv1.NewSyncServiceClient(c.conn)
		req := &syncv1.SyncManifestsRequest{Cursors: []*syncv1.SyncCursor{{Environment: &syncv1.EnvironmentRef{Org: "acme", Project: "web", Environment: "production"}}}}

		// Without the token the stream is refused.
		bad, err := sync.SyncManifests(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer wrong"), req)
		if err == nil {
			_, err = bad.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("wrong sync token: %v", err)
		}

		// The publisher publishes the project and flag creation: the stream opens
		// on a snapshot with the flag off.
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+syncToken), 20*time.Second)
		defer cancel()
		var held *manifestv1.Manifest
		deadline := time.Now().Add(10 * time.Second)
		for held == nil {
			st, err := sync.SyncManifests(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for held == nil {
				msg, err := st.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if snap := msg.GetSnapshot(); snap != nil {
					m, err := verifier.Manifest(snap)
					if err != nil {
						t.Fatalf("snapshot does not verify: %v", err)
					}
					if _, found := flagOn(m.GetFlags(), "new-ui"); found {
						held = m
					}
				}
				if msg.GetHeartbeat() != nil && held == nil {
					break // caught up without the flag yet: subscribe again
				}
			}
			if held != nil {
				if on, _ := flagOn(held.GetFlags(), "new-ui"); on {
					t.Fatal("new-ui is on before it was turned on")
				}
				// Turn it on over REST; the open stream must carry the change.
				c.call("PUT", path+"/flags/new-ui", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "off",
					"defaultServe": map[string]any{"variant": "on"}}, "revision": 1}).want(t, 200)
				for {
					msg, err := st.Recv()
					if err != nil {
						t.Fatalf("stream ended before the change arrived: %v", err)
					}
					switch {
					case msg.GetDelta() != nil:
						d, err := verifier.Delta(msg.GetDelta())
						if err != nil {
							t.Fatalf("delta does not verify: %v", err)
						}
						if d.GetFromVersion() != held.GetVersion() {
							t.Fatalf("delta %d->%d, held %d", d.GetFromVersion(), d.GetToVersion(), held.GetVersion())
						}
						held.Version = d.GetToVersion()
						if on, found := flagOn(d.GetUpsertedFlags(), "new-ui"); found && on {
							goto streamed
						}
					case msg.GetSnapshot() != nil:
						m, err := verifier.Next(held, msg.GetSnapshot())
						if err != nil {
							t.Fatalf("snapshot refused: %v", err)
						}
						held = m
						if on, _ := flagOn(m.GetFlags(), "new-ui"); on {
							goto streamed
						}
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the flag creation was never published")
			}
			time.Sleep(20 * time.Millisecond)
		}
	streamed:

		// The download endpoint serves the same state, signed.
		if r := c.call("GET", path+"/manifest", "", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("anonymous download: %d %s", r.status, r.raw)
		}
		r := c.call("GET", path+"/manifest", c.owner, nil).want(t, 200)
		var got adminv1.GetSignedManifestResponse
		if err := protojson.Unmarshal([]byte(r.raw), &got); err != nil {
			t.Fatalf("%v: %s", err, r.raw)
		}
		m, err := verifier.Manifest(got.GetManifest())
		if err != nil {
			t.Fatalf("downloaded manifest does not verify: %v", err)
		}
		if on, _ := flagOn(m.GetFlags(), "new-ui"); !on || m.GetVersion() != got.GetVersion() || manifest.Target(m) != "acme/web/production" {
			t.Fatalf("downloaded version %d (response says %d) of %s: new-ui on=%v", m.GetVersion(), got.GetVersion(), manifest.Target(m), on)
		}
		if m.GetVersion() < held.GetVersion() {
			t.Fatalf("download is at version %d, the stream at %d", m.GetVersion(), held.GetVersion())
		}
		// An older version stays downloadable while in the history.
		old := c.call("GET", path+"/manifest?version=1", c.owner, nil).want(t, 200)
		if old.get("version") != "1" {
			t.Fatalf("version 1: %s", old.raw)
		}
	})
}
