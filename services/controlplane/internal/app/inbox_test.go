package app_test

import (
	"fmt"
	"strings"
	"testing"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// ids lists the change request ids of a ListChangeRequests answer.
func ids(r resp) []string {
	var out []string
	for i := 0; ; i++ {
		id, ok := r.get("changeRequests", i, "id").(string)
		if !ok {
			return out
		}
		out = append(out, id)
	}
}

// TestChangeRequestInbox: "needs my review" lists what the caller could approve
// now (not their own, not already approved by them, not when their role cannot
// approve), "mine" what they authored; bad filters name their field.
func TestChangeRequestInbox(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.protect(t, false)
		_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, carol := c.member(c.owner, "acme", "carol@acme.test", adminv1.Role_ROLE_VIEWER, nil)
		// Three requests by alice on three flags, so that a page of one must read on
		// past requests the filter drops.
		var crs []string
		for i := range 3 {
			key := fmt.Sprintf("inbox-%d", i)
			c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": key, "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 200)
			put := c.call("PUT", "/v1/orgs/acme/projects/web/environments/production/flags/"+key, alice, onBody).want(t, 200)
			crs = append(crs, put.get("changeRequest", "id").(string))
		}
		list := func(token, query string) []string {
			t.Helper()
			return ids(c.call("GET", prodCRs+"?"+query, token, nil).want(t, 200))
		}
		eq := func(what string, got []string, want ...string) {
			t.Helper()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", what, got, want)
			}
		}
		eq("alice needs-my-review", list(alice, "inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW"))
		eq("alice mine", list(alice, "inbox=CHANGE_REQUEST_INBOX_MINE"), crs...)
		eq("bob mine", list(bob, "inbox=CHANGE_REQUEST_INBOX_MINE"))
		eq("bob needs-my-review", list(bob, "inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW"), crs...)
		eq("carol (viewer) needs-my-review", list(carol, "inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW"))

		// Bob approves the first and the last: only the middle one still needs him,
		// and a page of one finds it past the first.
		for _, id := range []string{crs[0], crs[2]} {
			g := c.call("GET", prodCRs+"/"+id, bob, nil).want(t, 200)
			c.call("POST", prodCRs+"/"+id+":approve", bob, map[string]any{"contentDigest": g.get("changeRequest", "contentDigest")}).want(t, 200)
		}
		eq("bob needs-my-review after approving two", list(bob, "inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW"), crs[1])
		p1 := c.call("GET", prodCRs+"?inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW&pageSize=1", bob, nil).want(t, 200)
		eq("bob needs-my-review, page of one", ids(p1), crs[1])
		if tok, _ := p1.get("nextPageToken").(string); tok != "" {
			eq("bob needs-my-review, second page", list(bob, "inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW&pageSize=1&pageToken="+tok))
		}
		// The owner minted alice's token: governance never lets them approve her
		// requests, so none waits for their review.
		eq("owner (issuer of alice's token) needs-my-review", list(c.owner, "inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW"))
		c.call("POST", prodCRs+"/"+crs[0]+":apply", alice, map[string]any{}).want(t, 200)
		eq("alice mine, applied", list(alice, "inbox=CHANGE_REQUEST_INBOX_MINE&state=CHANGE_REQUEST_STATE_APPLIED"), crs[0])

		if f := c.call("GET", prodCRs+"?inbox=CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW&state=CHANGE_REQUEST_STATE_APPLIED", bob, nil).want(t, 400).fieldViolation(); f != "state" {
			t.Errorf("needs-my-review of applied requests names %q, want state", f)
		}
		if r := c.call("GET", prodCRs+"?inbox=CHANGE_REQUEST_INBOX_BOGUS", bob, nil).want(t, 400); !strings.Contains(r.raw, "inbox") {
			t.Errorf("an unknown inbox is refused naming inbox: %s", r.raw)
		}
	})
}

// TestCommentOnDiffLine: a comment may name one line of the request's diff (its
// JSON Pointer) and carries the digest it was made on; a path that is not a
// line of the diff is refused naming path, and nothing is added.
func TestCommentOnDiffLine(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		c.protect(t, false)
		_, alice := c.member(c.owner, "acme", "alice@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		_, bob := c.member(c.owner, "acme", "bob@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		put := c.call("PUT", prodFlag, alice, onBody).want(t, 200)
		id := put.get("changeRequest", "id").(string)
		digest := put.get("changeRequest", "contentDigest")
		r := c.call("POST", prodCRs+"/"+id+":comment", bob, map[string]any{"text": "why on?", "path": "/on"}).want(t, 200)
		if r.get("changeRequest", "comments", 0, "path") != "/on" || r.get("changeRequest", "comments", 0, "contentDigest") != digest {
			t.Fatalf("comment on /on: %s", r.raw)
		}
		bad := c.call("POST", prodCRs+"/"+id+":comment", bob, map[string]any{"text": "?", "path": "/rules/9"}).want(t, 400)
		if f := bad.fieldViolation(); f != "path" {
			t.Errorf("comment on a line not in the diff names %q, want path: %s", f, bad.raw)
		}
		g := c.call("GET", prodCRs+"/"+id, bob, nil).want(t, 200)
		if n := len(g.get("changeRequest", "comments").([]any)); n != 1 {
			t.Errorf("comments after a refused one = %d, want 1", n)
		}
		w := c.call("POST", prodCRs+"/"+id+":comment", bob, map[string]any{"text": "overall fine"}).want(t, 200)
		if p, _ := w.get("changeRequest", "comments", 1, "path").(string); p != "" {
			t.Errorf("a comment without path is on the whole request, got path %q", p)
		}
	})
}
