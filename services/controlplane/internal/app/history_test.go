package app_test

import (
	"crypto/ed25519"
	clihistory "github.com/flagforge/flagforge/cli/history"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

const prodPath = "/v1/orgs/acme/projects/web/environments/production"

// revisionsOf lists a flag configuration's revisions in production, newest first.
func revisionsOf(t *testing.T, c *cp, flag string) []*adminv1.Revision {
	t.Helper()
	r, err := adminv1.NewHistoryServiceClient(c.conn).ListFlagConfigRevisions(as(c.owner), &adminv1.ListFlagConfigRevisionsRequest{
		Org: "acme", Project: "web", Environment: "production", Flag: flag})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetRevisions()
}

// TestRevertRestoresExactlyThatRevisionAndIsGovernedLikeAnyWrite: every write
// is listed with who and why; a revert is one call that restores the revision's
// content (same digest); it is validated like an update (a variant removed since
// is refused, naming the field); in a protected environment it becomes a change
// request that another member approves.
func TestRevertRestoresExactlyThatRevisionAndIsGovernedLikeAnyWrite(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.call("PUT", prodPath+"/flags/new-ui", c.owner, onBody).want(t, 200) // revision 2, "launch"
		c.call("PUT", prodPath+"/flags/new-ui", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "off",
			"defaultServe": map[string]any{"rollout": map[string]any{"weights": []any{
				map[string]any{"variant": "on", "weight": 10}, map[string]any{"variant": "off", "weight": 90}}}}},
			"revision": 2, "comment": "ramp"}).want(t, 200) // revision 3

		l := c.call("GET", prodPath+"/flags/new-ui/revisions", c.owner, nil).want(t, 200)
		if l.get("revisions", 0, "revision") != "3" || l.get("revisions", 1, "comment") != "launch" ||
			l.get("revisions", 2, "action") != "flag.create" || l.get("revisions", 0, "actorName") == "" {
			t.Fatalf("revisions: %s", l.raw)
		}
		d := c.call("GET", prodPath+"/flags/new-ui/revisions:diff?from=2&to=3", c.owner, nil).want(t, 200)
		if !strings.Contains(d.raw, `"/defaultServe/rollout"`) {
			t.Fatalf("diff 2..3: %s", d.raw)
		}

		rv := c.call("POST", prodPath+"/flags/new-ui/revisions/2:revert", c.owner, map[string]any{"comment": "ramp broke checkout"}).want(t, 200)
		if rv.get("config", "revision") != "4" || rv.get("changeRequest") != nil {
			t.Fatalf("revert: %s", rv.raw)
		}
		revs := revisionsOf(t, c, "new-ui")
		if revs[0].GetContentDigest() != revs[2].GetContentDigest() || revs[0].GetRevision() != 4 {
			t.Fatalf("revision 4 (%s) is not revision 2's content (%s)", revs[0].GetContentDigest(), revs[2].GetContentDigest())
		}
		if revs[0].GetComment() != "revert to revision 2: ramp broke checkout" {
			t.Errorf("comment %q", revs[0].GetComment())
		}
		// A retried revert writes nothing.
		c.call("POST", prodPath+"/flags/new-ui/revisions/2:revert", c.owner, map[string]any{}).want(t, 200)
		if n := len(revisionsOf(t, c, "new-ui")); n != 4 {
			t.Errorf("a revert to the current content wrote: %d revisions", n)
		}

		// Bad input.
		for _, tc := range []struct {
			name, path string
			body       map[string]any
			code       int
			field      string
		}{
			{"revision 0", "/flags/new-ui/revisions/0:revert", map[string]any{}, 400, "revision"},
			{"a revision that never was", "/flags/new-ui/revisions/99:revert", map[string]any{}, 404, ""},
			{"an unknown flag", "/flags/nope/revisions/1:revert", map[string]any{}, 404, ""},
			{"a stale base revision", "/flags/new-ui/revisions/1:revert", map[string]any{"baseRevision": 2}, 409, ""},
			{"a negative base revision", "/flags/new-ui/revisions/1:revert", map[string]any{"baseRevision": -1}, 400, "baseRevision"},
		} {
			r := c.call("POST", prodPath+tc.path, c.owner, tc.body)
			if r.status != tc.code || (tc.field != "" && r.fieldViolation() != tc.field) {
				t.Errorf("%s: %d %s, want %d naming %q", tc.name, r.status, r.raw, tc.code, tc.field)
			}
		}
		if r := c.call("GET", prodPath+"/flags/new-ui/revisions:diff?from=0", c.owner, nil); r.status != 400 || r.fieldViolation() != "from" {
			t.Errorf("diff from 0: %d %s", r.status, r.raw)
		}

		// A revision serving a variant that no longer exists is refused.
		c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "color", "type": "FLAG_TYPE_STRING",
			"variants": []any{map[string]any{"key": "red", "value": "red"}, map[string]any{"key": "blue", "value": "blue"}}}}).want(t, 200)
		c.call("PUT", prodPath+"/flags/color", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "red",
			"defaultServe": map[string]any{"variant": "blue"}}, "revision": 1}).want(t, 200)
		c.call("PUT", prodPath+"/flags/color", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "red",
			"defaultServe": map[string]any{"variant": "red"}}, "revision": 2}).want(t, 200)
		def := c.call("GET", "/v1/orgs/acme/projects/web/flags/color", c.owner, nil).want(t, 200)
		c.call("PATCH", "/v1/orgs/acme/projects/web/flags/color", c.owner, map[string]any{"definition": map[string]any{"key": "color",
			"type": "FLAG_TYPE_STRING", "variants": []any{map[string]any{"key": "red", "value": "red"}}},
			"revision": def.get("flag", "revision")}).want(t, 200)
		r := c.call("POST", prodPath+"/flags/color/revisions/2:revert", c.owner, map[string]any{})
		if r.status != 400 || !strings.HasPrefix(r.fieldViolation(), "revision.config.") || !strings.Contains(r.raw, "blue") {
			t.Errorf("revert to a removed variant: %d %s", r.status, r.raw)
		}

		// Protected: the revert is a change request; another editor approves.
		c.protect(t, false)
		_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		rv = c.call("POST", prodPath+"/flags/new-ui/revisions/1:revert", alice, map[string]any{"comment": "back to off"}).want(t, 200)
		id, _ := rv.get("changeRequest", "id").(string)
		digest, _ := rv.get("changeRequest", "contentDigest").(string)
		if rv.get("config") != nil || id == "" {
			t.Fatalf("revert in a protected environment: %s", rv.raw)
		}
		if g := c.call("GET", prodFlag, c.owner, nil).want(t, 200); g.get("config", "revision") != "4" {
			t.Fatalf("saved before approval: %s", g.raw)
		}
		c.call("POST", prodCRs+"/"+id+":approve", alice, map[string]any{"contentDigest": digest}).want(t, 403)
		c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": digest}).want(t, 200)
		c.call("POST", prodCRs+"/"+id+":apply", alice, map[string]any{}).want(t, 200)
		revs = revisionsOf(t, c, "new-ui")
		if revs[0].GetRevision() != 5 || revs[0].GetContentDigest() != revs[4].GetContentDigest() || revs[0].GetChangeRequestId() != id {
			t.Fatalf("after the approved revert: revision %d digest %s (revision 1: %s) change request %q",
				revs[0].GetRevision(), revs[0].GetContentDigest(), revs[4].GetContentDigest(), revs[0].GetChangeRequestId())
		}
	})
}

// latestManifest waits until production's published manifest satisfies ok and
// returns it verified, with its signed form.
func latestManifest(t *testing.T, c *cp, ok func(*manifestv1.Manifest) bool) (*manifestv1.Manifest, *manifestv1.SignedManifest) {
	t.Helper()
	v, err := manifest.NewVerifier(time.Now, c.signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ms := adminv1.NewManifestServiceClient(c.conn)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := ms.GetSignedManifest(as(c.owner), &adminv1.GetSignedManifestRequest{Org: "acme", Project: "web", Environment: "production"})
		if err == nil {
			m, err := v.Manifest(r.GetManifest())
			if err != nil {
				t.Fatalf("the published manifest does not verify: %v", err)
			}
			if ok(m) {
				return m, r.GetManifest()
			}
		} else if status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the expected manifest was never published")
		}
	}
}

// served is what a manifest serves: flags' configurations and segments.
func served(m *manifestv1.Manifest) map[string]proto.Message {
	out := map[string]proto.Message{}
	for _, f := range m.GetFlags() {
		out["flag "+f.GetKey()] = f.GetConfig()
	}
	for _, s := range m.GetSegments() {
		s = proto.CloneOf(s)
		s.Revision = 0
		out["segment "+s.GetKey()] = s
	}
	return out
}

func flagNamed(m *manifestv1.Manifest, key string) *manifestv1.Flag {
	for _, f := range m.GetFlags() {
		if f.GetKey() == key {
			return f
		}
	}
	return nil
}

// TestEnvironmentRollbackToAManifestVersion: after several changes, a preview
// lists what restoring version N changes; in a protected environment the
// rollback is ONE change request; once applied, the next published (signed)
// manifest serves exactly version N's flags and segments, and an engine holding
// it answers as version N did.
func TestEnvironmentRollbackToAManifestVersion(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.call("POST", prodPath+"/segments", c.owner, map[string]any{"segment": map[string]any{"key": "beta", "included": []any{"user-1"}}}).want(t, 200)
		c.call("PUT", prodPath+"/flags/new-ui", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "off",
			"rules": []any{map[string]any{"id": "beta", "clauses": []any{map[string]any{"operator": "OPERATOR_SEGMENT_MATCH", "values": []any{"beta"}}},
				"serve": map[string]any{"variant": "on"}}},
			"defaultServe": map[string]any{"variant": "off"}}, "revision": 1}).want(t, 200)
		vN, _ := latestManifest(t, c, func(m *manifestv1.Manifest) bool { return len(flagNamed(m, "new-ui").GetConfig().GetRules()) == 1 })

		// Everyone gets it, beta changes, a new segment appears.
		c.call("PUT", prodPath+"/flags/new-ui", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "off",
			"defaultServe": map[string]any{"variant": "on"}}, "revision": 2}).want(t, 200)
		c.call("PUT", prodPath+"/segments/beta", c.owner, map[string]any{"definition": map[string]any{"key": "beta", "included": []any{"user-2"}}, "revision": 1}).want(t, 200)
		c.call("POST", prodPath+"/segments", c.owner, map[string]any{"segment": map[string]any{"key": "gamma", "included": []any{"user-3"}}}).want(t, 200)
		latestManifest(t, c, func(m *manifestv1.Manifest) bool { return len(m.GetSegments()) == 2 })

		body := map[string]any{"manifestVersion": vN.GetVersion(), "dryRun": true}
		pre := c.call("POST", prodPath+":rollback", c.owner, body).want(t, 200)
		var items []string
		for i := 0; pre.get("changes", i) != nil; i++ {
			items = append(items, pre.get("changes", i, "kind").(string)+" "+pre.get("changes", i, "key").(string)+" "+pre.get("changes", i, "action").(string))
		}
		if diff := cmp.Diff([]string{"flag_config new-ui update", "segment beta update", "segment gamma delete"}, items); diff != "" {
			t.Fatalf("preview (-want +got):\n%s\n%s", diff, pre.raw)
		}
		if pre.get("applied") != false || pre.get("changes", 0, "diff") == nil {
			t.Fatalf("preview: %s", pre.raw)
		}
		if g := c.call("GET", prodFlag, c.owner, nil).want(t, 200); g.get("config", "revision") != "3" {
			t.Fatalf("a dry run wrote: %s", g.raw)
		}

		// Bad input.
		for _, tc := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"no target", map[string]any{}, "target"},
			{"a version never published", map[string]any{"manifestVersion": 999}, "manifestVersion"},
			{"a time in the future", map[string]any{"time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "time"},
		} {
			if r := c.call("POST", prodPath+":rollback", c.owner, tc.body); r.status != 400 || r.fieldViolation() != tc.field {
				t.Errorf("%s: %d %s, want 400 naming %s", tc.name, r.status, r.raw, tc.field)
			}
		}

		c.protect(t, false)
		_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		rb := c.call("POST", prodPath+":rollback", alice, map[string]any{"manifestVersion": vN.GetVersion(), "comment": "bad launch"}).want(t, 200)
		id, _ := rb.get("changeRequest", "id").(string)
		digest, _ := rb.get("changeRequest", "contentDigest").(string)
		if id == "" || rb.get("applied") != false || rb.get("changeRequest", "change", "environmentRollback") == nil {
			t.Fatalf("rollback in a protected environment: %s", rb.raw)
		}
		c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": digest}).want(t, 200)
		c.call("POST", prodCRs+"/"+id+":apply", alice, map[string]any{}).want(t, 200)

		after, signed := latestManifest(t, c, func(m *manifestv1.Manifest) bool { return len(m.GetSegments()) == 1 })
		if diff := cmp.Diff(served(vN), served(after), protocmp.Transform()); diff != "" {
			t.Fatalf("after the rollback the manifest serves (-version N +now):\n%s", diff)
		}
		if after.GetVersion() <= vN.GetVersion() {
			t.Fatalf("version %d after rolling back to %d", after.GetVersion(), vN.GetVersion())
		}
		a := c.call("GET", "/v1/orgs/acme/audit?pageSize=1&action=environment.rollback", c.owner, nil).want(t, 200)
		if a.get("entries", 0, "action") != "environment.rollback" {
			t.Errorf("audit: %s", a.raw)
		}

		// An engine holding the published manifest answers as version N did.
		raw, err := proto.Marshal(signed)
		if err != nil {
			t.Fatal(err)
		}
		client, err := sdk.New(sdk.Config{TrustedKeys: []ed25519.PublicKey{c.signer.PublicKey()}, Bootstrap: raw})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = client.Close() }()
		for user, want := range map[string]bool{"user-1": true, "user-2": false} {
			ctx, err := sdk.NewContext(map[string]any{"targetingKey": user})
			if err != nil {
				t.Fatal(err)
			}
			if d := client.BoolDetail("new-ui", ctx, !want); d.Value != want || d.ManifestVersion != after.GetVersion() {
				t.Errorf("%s: %+v, want %v from version %d", user, d, want, after.GetVersion())
			}
		}
	})
}

// TestCLIHistory: the flagforge CLI's history, diff, revert and rollback (package
// cli/history, which `flagforge history|revert|rollback` call) against a running
// control plane.
func TestCLIHistory(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	c.call("PUT", prodFlag, c.owner, onBody).want(t, 200)
	h := clihistory.New(c.conn, c.owner)
	target := clihistory.Target{Org: "acme", Project: "web", Environment: "production", Flag: "new-ui"}
	var out strings.Builder
	if err := h.List(t.Context(), &out, target, 10); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "flag_config.update") || !strings.Contains(out.String(), "launch") {
		t.Errorf("history:\n%s", out.String())
	}
	out.Reset()
	if err := h.Diff(t.Context(), &out, target, 1, 0); err != nil || !strings.Contains(out.String(), "+ /on: true") {
		t.Errorf("diff: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := h.Revert(t.Context(), &out, target, 1, "cli"); err != nil || !strings.Contains(out.String(), "restored revision 1 (now revision 3)") {
		t.Errorf("revert: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := h.Rollback(t.Context(), &out, "acme", "web", "production", 0, time.Now().Add(-time.Hour), true, ""); err != nil ||
		!strings.Contains(out.String(), "dry run: nothing written") {
		t.Errorf("rollback preview: %v\n%s", err, out.String())
	}
	if err := h.Revert(t.Context(), &out, clihistory.Target{Org: "acme", Project: "web", Environment: "production"}, 1, ""); err == nil {
		t.Error("a revert naming neither a flag nor a segment went through")
	}
	if err := h.Revert(t.Context(), &out, target, 0, ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("revert to revision 0: %v", err)
	}
}
