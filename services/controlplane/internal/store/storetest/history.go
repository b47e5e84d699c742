package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// HistoryStore is a store that also keeps revisions and change requests.
type HistoryStore interface {
	GovernanceStore
	store.History
}

// RunHistory runs the history (instant rollback) conformance tests.
func RunHistory(t *testing.T, open Opener) {
	t.Helper()
	for _, tc := range historyTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ok := open(t).(HistoryStore)
			if !ok {
				t.Fatal("the store does not implement store.History and store.Governance")
			}
			tc.run(t, newFixture(t, s), s)
		})
	}
}

func revisions(t *testing.T, f *fixture, h HistoryStore, kind, key string) []*adminv1.Revision {
	t.Helper()
	out, _ := must2[[]*adminv1.Revision](t)(h.ListRevisions(f.ctx, eref, kind, key, store.Page{Size: 100}))
	return out
}

// summary is a revision as "number action comment [cr] [deleted]".
func summary(r *adminv1.Revision) string {
	s := r.GetAction() + " " + r.GetComment()
	if r.GetChangeRequestId() != "" {
		s += " cr"
	}
	if r.GetDeleted() {
		s += " deleted"
	}
	return s
}

func summaries(rs []*adminv1.Revision) map[int64]string {
	out := map[int64]string{}
	for _, r := range rs {
		out[r.GetRevision()] = summary(r)
	}
	return out
}

func offConfig() *manifestv1.FlagConfig {
	return &manifestv1.FlagConfig{OffVariant: "off", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}
}

func with(m store.WriteMeta, comment string) store.WriteMeta {
	m.Comment = comment
	return m
}

var historyTests = []struct {
	name string
	run  func(t *testing.T, f *fixture, h HistoryStore)
}{
	{"every write of a flag configuration keeps a revision with who and why, newest first", func(t *testing.T, f *fixture, h HistoryStore) {
		f.flag(t, "a", offConfig())
		must[*adminv1.FlagEnvironmentConfig](t)(h.UpdateFlagConfig(f.ctx, with(meta, "launch"), eref, "a", onConfig(), 1, nil))
		must[[]*adminv1.FlagEnvironmentConfig](t)(h.KillFlag(f.ctx, with(meta, "incident 42"), pref, "a"))
		cr := must[*adminv1.ChangeRequest](t)(h.CreateChangeRequest(f.ctx, meta, eref,
			&adminv1.ChangeRequest{Change: flagChange("a", onConfig()), BaseRevision: 3, AuthorId: "u-1"}))
		must[*adminv1.ChangeRequest](t)(h.ApplyChangeRequest(f.ctx, with(meta, ""), eref, cr.GetId(), ready, nil))

		revs := revisions(t, f, h, store.KindFlagConfig, "a")
		want := map[int64]string{1: "flag.create why not", 2: "flag_config.update launch",
			3: "flag_config.update incident 42", 4: "flag_config.update change request " + cr.GetId() + " cr"}
		if diff := cmp.Diff(want, summaries(revs)); diff != "" {
			t.Fatalf("revisions (-want +got):\n%s", diff)
		}
		if revs[0].GetRevision() != 4 || revs[3].GetRevision() != 1 {
			t.Errorf("not newest first: %v", summaries(revs))
		}
		if revs[0].GetActorName() != "alice@example.com" || revs[0].GetCreateTime() == nil || revs[0].GetChangeRequestId() != cr.GetId() {
			t.Errorf("who/when/why missing: %v", revs[0])
		}
		cur := must[*adminv1.FlagEnvironmentConfig](t)(h.GetFlagConfig(f.ctx, eref, "a"))
		if !proto.Equal(revs[0].GetConfig(), cur.GetConfig()) || revs[0].GetRevision() != cur.GetRevision() {
			t.Errorf("the latest revision is not the current configuration")
		}
		if revs[0].GetContentDigest() != revs[2].GetContentDigest() || revs[0].GetContentDigest() == revs[1].GetContentDigest() {
			t.Errorf("equal contents must have equal digests, different ones different digests")
		}
		// Every environment's configuration has its history (the flag created it there).
		stg := store.EnvRef{Org: org, Project: project, Environment: "staging"}
		if rs, _, err := h.ListRevisions(f.ctx, stg, store.KindFlagConfig, "a", store.Page{}); err != nil || len(rs) != 1 {
			t.Errorf("staging history: %v, %v", rs, err)
		}
		// Paging.
		page, next := must2[[]*adminv1.Revision](t)(h.ListRevisions(f.ctx, eref, store.KindFlagConfig, "a", store.Page{Size: 3}))
		rest, last := must2[[]*adminv1.Revision](t)(h.ListRevisions(f.ctx, eref, store.KindFlagConfig, "a", store.Page{Size: 3, Token: next}))
		if len(page) != 3 || next == "" || len(rest) != 1 || rest[0].GetRevision() != 1 || last != "" {
			t.Errorf("pages: %d %q %d %q", len(page), next, len(rest), last)
		}
	}},
	{"a diff of two revisions is the change request diff model", func(t *testing.T, f *fixture, h HistoryStore) {
		f.flag(t, "a", offConfig())
		must[*adminv1.FlagEnvironmentConfig](t)(h.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		ops, from, to, err := h.DiffRevisions(f.ctx, eref, store.KindFlagConfig, "a", 1, 0)
		noErr(t, err)
		if from.GetRevision() != 1 || to.GetRevision() != 2 || len(ops) != 1 || ops[0].GetOp() != "add" || ops[0].GetPath() != "/on" {
			t.Errorf("diff 1..latest: %v %v %v", from.GetRevision(), to.GetRevision(), ops)
		}
		_, _, _, err = h.DiffRevisions(f.ctx, eref, store.KindFlagConfig, "a", 1, 9)
		wantKind(t, err, errs.NotFound)
	}},
	{"a segment's history counts on across deletion and re-creation", func(t *testing.T, f *fixture, h HistoryStore) {
		sg := f.segment(t, "beta")
		upd := proto.CloneOf(sg)
		upd.Included = []string{"user-2"}
		must[*manifestv1.Segment](t)(h.UpdateSegment(f.ctx, meta, eref, upd, 1, nil))
		noErr(t, h.DeleteSegment(f.ctx, with(meta, "gone"), eref, "beta", 2))
		f.segment(t, "beta")
		revs := revisions(t, f, h, store.KindSegment, "beta")
		want := map[int64]string{1: "segment.create why not", 2: "segment.update why not", 3: "segment.delete gone deleted", 4: "segment.create why not"}
		if diff := cmp.Diff(want, summaries(revs)); diff != "" {
			t.Fatalf("revisions (-want +got):\n%s", diff)
		}
		if revs[1].GetSegment() != nil || revs[1].GetContentDigest() != "" {
			t.Errorf("a deletion has content: %v", revs[1])
		}
		if got := revs[2].GetSegment().GetIncluded(); len(got) != 1 || got[0] != "user-2" {
			t.Errorf("revision 2 holds %v", got)
		}
	}},
	{"deleting a flag deletes its history; a new flag with the key starts at revision 1", func(t *testing.T, f *fixture, h HistoryStore) {
		fl := f.flag(t, "a", offConfig())
		must[*adminv1.FlagEnvironmentConfig](t)(h.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		noErr(t, h.DeleteFlag(f.ctx, meta, pref, "a", fl.GetRevision()))
		f.flag(t, "a", offConfig())
		if diff := cmp.Diff(map[int64]string{1: "flag.create why not"}, summaries(revisions(t, f, h, store.KindFlagConfig, "a"))); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}},
	{"rollback to a time restores every flag configuration and segment as it was, in one audited write", func(t *testing.T, f *fixture, h HistoryStore) {
		f.flag(t, "a", offConfig())
		f.flag(t, "b", onConfig())
		f.segment(t, "beta")
		f.segment(t, "old")
		time.Sleep(5 * time.Millisecond)
		at := time.Now()
		time.Sleep(5 * time.Millisecond)
		before := must[*manifestv1.Manifest](t)(h.EnvironmentManifest(f.ctx, eref, at))

		must[*adminv1.FlagEnvironmentConfig](t)(h.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		upd := &manifestv1.Segment{Key: "beta", Included: []string{"user-9"}}
		must[*manifestv1.Segment](t)(h.UpdateSegment(f.ctx, meta, eref, upd, 1, nil))
		noErr(t, h.DeleteSegment(f.ctx, meta, eref, "old", 1))
		f.segment(t, "new")

		plan, err := h.PlanRollback(f.ctx, eref, store.RollbackTarget{Time: at})
		noErr(t, err)
		got := map[string]string{}
		for _, it := range plan.Changes {
			got[it.GetKind()+" "+it.GetKey()] = it.GetAction()
		}
		want := map[string]string{"flag_config a": "update", "segment beta": "update", "segment old": "create", "segment new": "delete"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("plan (-want +got):\n%s", diff)
		}
		// A write after planning makes the plan stale: nothing changes.
		must[*adminv1.FlagEnvironmentConfig](t)(h.UpdateFlagConfig(f.ctx, meta, eref, "a", offConfig(), 2, nil))
		wantKind(t, h.RollbackEnvironment(f.ctx, meta, eref, plan.Change, nil), errs.Aborted)
		if _, err := h.GetSegment(f.ctx, eref, "new"); err != nil {
			t.Fatalf("a refused rollback changed segments: %v", err)
		}

		plan, err = h.PlanRollback(f.ctx, eref, store.RollbackTarget{Time: at})
		noErr(t, err)
		noErr(t, h.RollbackEnvironment(f.ctx, with(meta, "rollback"), eref, plan.Change, nil))
		after := must[*manifestv1.Manifest](t)(h.EnvironmentManifest(f.ctx, eref, time.Now()))
		if diff := cmp.Diff(contentOf(before), contentOf(after), cmpP); diff != "" {
			t.Errorf("restored content (-then +now):\n%s", diff)
		}
		if a := actions(t, f, 1); a[0] != "environment.rollback" {
			t.Errorf("last audit action %v", a)
		}
		again, err := h.PlanRollback(f.ctx, eref, store.RollbackTarget{Time: at})
		noErr(t, err)
		if len(again.Changes) != 0 {
			t.Errorf("after the rollback, still to change: %v", again.Changes)
		}
	}},
	{"rollback to a manifest version that is not stored is not found", func(t *testing.T, f *fixture, h HistoryStore) {
		_, err := h.PlanRollback(f.ctx, eref, store.RollbackTarget{ManifestVersion: 99})
		wantKind(t, err, errs.NotFound)
	}},
}

// contentOf is what an environment serves: flags (key, config) and segments,
// without revisions.
func contentOf(m *manifestv1.Manifest) map[string]proto.Message {
	out := map[string]proto.Message{}
	for _, fl := range m.GetFlags() {
		out["flag "+fl.GetKey()] = fl.GetConfig()
	}
	for _, sg := range m.GetSegments() {
		c := proto.CloneOf(sg)
		c.Revision = 0
		out["segment "+sg.GetKey()] = c
	}
	return out
}
