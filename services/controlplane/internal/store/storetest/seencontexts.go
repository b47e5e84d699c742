package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func init() { tests = append(tests, seenContextTests...) }

func seenCtx(i int, at time.Time) store.SeenContext {
	return store.SeenContext{Digest: fmt.Sprintf("d%03d", i), Attributes: fmt.Appendf(nil, `{"targetingKey":"user-%d"}`, i), Seen: at}
}

var seenContextTests = []test{
	{"seen contexts: newest kept up to the bound, older than retention pruned, listed newest first", func(t *testing.T, f *fixture) {
		t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		var cs []store.SeenContext
		for i := range 8 {
			cs = append(cs, seenCtx(i, t0.Add(time.Duration(i)*time.Minute)))
		}
		noErr(t, f.s.RecordSeenContexts(f.ctx, eref, cs, 5, t0.Add(-time.Hour)))
		// user-0 is seen again: it moves forward, and the oldest other goes.
		noErr(t, f.s.RecordSeenContexts(f.ctx, eref, []store.SeenContext{seenCtx(0, t0.Add(time.Hour))}, 5, t0.Add(-time.Hour)))
		got, next, total, err := f.s.ListSeenContexts(f.ctx, eref, t0.Add(-time.Hour), store.Page{Size: 3})
		noErr(t, err)
		if total != 5 {
			t.Fatalf("total %d, want the bound of 5", total)
		}
		var keys []string
		for _, c := range got {
			keys = append(keys, c.GetAttributes().GetFields()["targetingKey"].GetStringValue())
		}
		more, next2, _, err := f.s.ListSeenContexts(f.ctx, eref, t0.Add(-time.Hour), store.Page{Size: 3, Token: next})
		noErr(t, err)
		for _, c := range more {
			keys = append(keys, c.GetAttributes().GetFields()["targetingKey"].GetStringValue())
		}
		if d := cmp.Diff([]string{"user-0", "user-7", "user-6", "user-5", "user-4"}, keys); d != "" || next2 != "" {
			t.Fatalf("pages (-want +got):\n%s next=%q", d, next2)
		}
		if !got[0].GetLastSeenTime().AsTime().Equal(t0.Add(time.Hour)) || got[0].GetDigest() != "d000" {
			t.Errorf("first: %v", got[0])
		}
		// Retention: a later report prunes what is older than since.
		noErr(t, f.s.RecordSeenContexts(f.ctx, eref, nil, 5, t0.Add(30*time.Minute)))
		_, _, total, err = f.s.ListSeenContexts(f.ctx, eref, time.Time{}, store.Page{})
		noErr(t, err)
		if total != 1 {
			t.Errorf("after pruning at t0+30m: %d contexts, want 1 (user-0)", total)
		}
		n, err := f.s.PruneSeenContexts(f.ctx, t0.Add(2*time.Hour))
		noErr(t, err)
		if n != 1 {
			t.Errorf("PruneSeenContexts deleted %d, want 1", n)
		}
		_, _, _, err = f.s.ListSeenContexts(f.ctx, store.EnvRef{Org: org, Project: project, Environment: "nope"}, time.Time{}, store.Page{})
		wantKind(t, err, errs.NotFound)
		_, _, _, err = f.s.ListSeenContexts(f.ctx, eref, time.Time{}, store.Page{Token: "!!"})
		wantKind(t, err, errs.InvalidArgument)
	}},
	{"the context policy is audited and every environment's manifest carries it", func(t *testing.T, f *fixture) {
		p := must[*adminv1.ContextPolicy](t)(f.s.ContextPolicy(f.ctx, pref))
		if len(p.GetPrivateAttributes()) != 0 {
			t.Fatalf("new project: %v", p)
		}
		set := must[*adminv1.ContextPolicy](t)(f.s.SetContextPolicy(f.ctx, meta, pref,
			&adminv1.ContextPolicy{PrivateAttributes: []string{"email", "address.street", "email"}}))
		want := []string{"address.street", "email"}
		if d := cmp.Diff(want, set.GetPrivateAttributes()); d != "" {
			t.Fatalf("set (-want +got):\n%s", d)
		}
		m, err := f.s.EnvironmentManifest(f.ctx, eref, time.Now())
		noErr(t, err)
		if d := cmp.Diff(want, m.GetPrivateAttributes()); d != "" {
			t.Errorf("manifest (-want +got):\n%s", d)
		}
		entries, _, err := f.s.ListAudit(f.ctx, org, store.AuditFilter{ResourceType: "context_policy"}, store.Page{})
		noErr(t, err)
		if len(entries) != 1 || entries[0].GetAction() != "context_policy.update" {
			t.Errorf("audit: %v", entries)
		}
		_, err = f.s.SetContextPolicy(f.ctx, meta, store.ProjectRef{Org: org, Project: "nope"}, &adminv1.ContextPolicy{})
		wantKind(t, err, errs.NotFound)
	}},
}
