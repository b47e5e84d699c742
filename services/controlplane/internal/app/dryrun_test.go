package app_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/flagforge/flagforge/cli/write"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// writesOf is what a write leaves behind in production: the flag's and the
// segment's revisions, the organization's audit entries, the unpublished outbox
// rows (0 once published) and the latest manifest version.
type writesOf struct {
	revisions, segmentRevisions, audit, pending int
	head                                        uint64
}

func (c *cp) writes(t *testing.T) writesOf {
	t.Helper()
	var w writesOf
	w.revisions = len(revisionsOf(t, c, "new-ui"))
	sr, err := adminv1.NewHistoryServiceClient(c.conn).ListSegmentRevisions(as(c.owner), &adminv1.ListSegmentRevisionsRequest{
		Org: "acme", Project: "web", Environment: "production", Segment: "beta"})
	if err != nil {
		t.Fatal(err)
	}
	w.segmentRevisions = len(sr.GetRevisions())
	a := c.call("GET", "/v1/orgs/acme/audit?pageSize=1000", c.owner, nil).want(t, 200)
	es, _ := a.body["entries"].([]any)
	w.audit = len(es)
	// Earlier writes are published first (a row a dry run wrote would be
	// published too, and show as a new manifest version).
	waitFor(t, func() bool {
		p, err := c.st.PendingOutbox(context.Background(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		w.pending = len(p)
		return w.pending == 0
	}, "the outbox to be published")
	hs, err := c.st.ManifestHeads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Ref.Environment == "production" && h.Ref.Project == "web" {
			w.head = h.Version
		}
	}
	return w
}

// TestDryRunWritesNothingAndAnswersTheResultWithItsImpact: PUT and PATCH of a
// flag configuration and PUT of a segment with ?dryRun=true (and the gRPC
// field) are validated as the real write (errors name the field; a stale
// revision is 409), answer the configuration as it would be saved and its
// impact over the seen contexts, and write nothing: no revision, no audit
// entry, no outbox row, no manifest version; in a protected environment they
// say a change request would be opened and open none.
func TestDryRunWritesNothingAndAnswersTheResultWithItsImpact(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.call("POST", prodPath+"/segments", c.owner, map[string]any{"segment": map[string]any{"key": "beta", "included": []any{"user-1"}}}).want(t, 200)
		c.call("PUT", prodPath+"/flags/new-ui", c.owner, onBody).want(t, 200) // revision 2
		latestManifest(t, c, func(m *manifestv1.Manifest) bool { return flagNamed(m, "new-ui").GetConfig().GetOn() })
		before := c.writes(t)

		off := map[string]any{"config": map[string]any{"on": false, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}},
			"revision": 2, "comment": "try"}
		r := c.call("PUT", prodFlag+"?dryRun=true", c.owner, off).want(t, 200)
		if r.get("config", "revision") != "3" || r.get("config", "config", "on") != false || r.get("impact") == nil ||
			r.get("wouldOpenChangeRequest") != false || r.get("changeRequest") != nil {
			t.Fatalf("PUT ?dryRun=true: %s", r.raw)
		}
		r = c.call("PATCH", prodFlag+"?dryRun=true", c.owner, map[string]any{"rolloutPercentage": 25}).want(t, 200)
		if !strings.Contains(r.raw, `"rollout"`) || r.get("config", "revision") != "3" || r.get("impact") == nil {
			t.Fatalf("PATCH ?dryRun=true: %s", r.raw)
		}
		r = c.call("PUT", prodPath+"/segments/beta?dryRun=true", c.owner, map[string]any{"definition": map[string]any{"key": "beta",
			"included": []any{"user-1", "user-2"}}, "revision": 1}).want(t, 200)
		if r.get("segment", "revision") != "2" || r.get("impact") == nil {
			t.Fatalf("PUT segment ?dryRun=true: %s", r.raw)
		}
		g, err := adminv1.NewFlagServiceClient(c.conn).UpdateFlagConfig(as(c.owner), &adminv1.UpdateFlagConfigRequest{Org: "acme", Project: "web",
			Environment: "production", Flag: "new-ui", Revision: 2, DryRun: true, Config: &manifestv1.FlagConfig{OffVariant: "off", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}})
		if err != nil || g.GetConfig().GetRevision() != 3 || g.GetImpact() == nil {
			t.Fatalf("gRPC dry_run: %v %v", g, err)
		}

		// Refused as the real write refuses, naming the field.
		for _, tc := range []struct {
			name, method, path string
			body               map[string]any
			code               int
			field              string
		}{
			{"a variant the flag does not have", "PUT", prodFlag + "?dryRun=true", map[string]any{"config": map[string]any{"on": true,
				"offVariant": "off", "defaultServe": map[string]any{"variant": "blue"}}, "revision": 2}, 400, "config.defaultServe.variant"},
			{"a stale revision", "PUT", prodFlag + "?dryRun=true", map[string]any{"config": off["config"], "revision": 1}, 409, ""},
			{"dryRun not a boolean", "PUT", prodFlag + "?dryRun=maybe", off, 400, "dryRun"},
			{"a route without a dry run", "PUT", "/v1/orgs/acme/projects/web/environments/production?dryRun=true", map[string]any{}, 400, "dryRun"},
			{"a segment using an unknown segment", "PUT", prodPath + "/segments/beta?dryRun=true", map[string]any{"definition": map[string]any{
				"key": "beta", "rules": []any{map[string]any{"clauses": []any{map[string]any{"attribute": "", "operator": "OPERATOR_SEGMENT_MATCH",
					"values": []any{"nope"}}}}}}, "revision": 1}, 400, ""},
		} {
			r := c.call(tc.method, tc.path, c.owner, tc.body)
			if r.status != tc.code || (tc.field != "" && r.fieldViolation() != tc.field) {
				t.Errorf("%s: %d %s, want %d naming %q", tc.name, r.status, r.raw, tc.code, tc.field)
			}
		}

		if after := c.writes(t); after != before {
			t.Fatalf("dry runs wrote: before %+v, after %+v", before, after)
		}

		// Protected: the answer says a change request would be opened; none is.
		c.protect(t, false)
		before = c.writes(t)
		r = c.call("PUT", prodFlag+"?dryRun=true", c.owner, off).want(t, 200)
		if r.get("wouldOpenChangeRequest") != true || r.get("changeRequest") != nil {
			t.Fatalf("PUT ?dryRun=true in a protected environment: %s", r.raw)
		}
		if l := c.call("GET", prodCRs, c.owner, nil).want(t, 200); strings.Contains(l.raw, `"id"`) {
			t.Fatalf("a dry run opened a change request: %s", l.raw)
		}
		if after := c.writes(t); after != before {
			t.Fatalf("dry runs wrote: before %+v, after %+v", before, after)
		}
	})
}

// TestCLIDryRun: `flagforge config patch|set ... --dry-run` and `flagforge
// segment set ... --dry-run` (package cli/write) print what would be saved and
// its impact and write nothing; without --dry-run they save.
func TestCLIDryRun(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()
	c.call("POST", prodPath+"/segments", c.owner, map[string]any{"segment": map[string]any{"key": "beta", "included": []any{"user-1"}}}).want(t, 200)
	ctx := context.Background()
	w := write.New(c.conn, c.owner, "acme", "web", "production")
	before := len(revisionsOf(t, c, "new-ui"))
	var out bytes.Buffer
	for _, run := range []func() (*write.Result, error){
		func() (*write.Result, error) {
			return w.PatchConfig(ctx, "new-ui", `{"on": true}`, write.Options{DryRun: true})
		},
		func() (*write.Result, error) {
			return w.SetConfig(ctx, "new-ui", `{"on": true, "offVariant": "off", "defaultServe": {"variant": "on"}}`, write.Options{DryRun: true})
		},
		func() (*write.Result, error) {
			return w.SetSegment(ctx, "beta", `{"key": "beta", "included": ["user-1", "user-2"]}`, write.Options{DryRun: true})
		},
	} {
		r, err := run()
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := write.Render(&out, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "dry run: valid; nothing written") || !strings.Contains(out.String(), "Impact in production over") {
			t.Fatalf("dry run output:\n%s", out.String())
		}
	}
	if n := len(revisionsOf(t, c, "new-ui")); n != before {
		t.Fatalf("a CLI dry run wrote: %d revisions, want %d", n, before)
	}
	if _, err := w.PatchConfig(ctx, "new-ui", `{"defaultServe": {"variant": "blue"}}`, write.Options{DryRun: true}); err == nil ||
		!strings.Contains(err.Error(), "blue") {
		t.Fatalf("an invalid dry run: %v", err)
	}
	r, err := w.PatchConfig(ctx, "new-ui", `{"on": true}`, write.Options{Comment: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := write.Render(&out, r); err != nil || !strings.HasPrefix(out.String(), "saved:") || len(revisionsOf(t, c, "new-ui")) != before+1 {
		t.Fatalf("a CLI write: %v\n%s", err, out.String())
	}
}
