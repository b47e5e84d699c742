// Package storetest is the conformance suite every store.Store backend passes.
// Backends call Run from their tests with a function that opens a fresh, empty,
// migrated store; each test states the rule it checks in its name.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Opener returns a fresh, empty store for one test; the backend closes it (and
// drops its database) in t.Cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite against the backend that open returns.
func Run(t *testing.T, open Opener) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t, open(t)))
		})
	}
}

// Count is the number of top-level conformance tests.
func Count() int { return len(tests) }

type test struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// fixture holds a store with organization "acme" and project "web" created.
type fixture struct {
	s   store.Store
	ctx context.Context //nolint:containedctx // test fixture, one per test
}

const (
	org     = "acme"
	project = "web"
	env     = "production"
)

var (
	meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com", RequestID: "req-1", Comment: "why not"}
	pref = store.ProjectRef{Org: org, Project: project}
	eref = store.EnvRef{Org: org, Project: project, Environment: env}
	cmpP = protocmp.Transform()
)

func newFixture(t *testing.T, s store.Store) *fixture {
	t.Helper()
	f := &fixture{s: s, ctx: t.Context()}
	must[*adminv1.Organization](t)(s.CreateOrg(f.ctx, meta, &adminv1.Organization{Key: org, Name: "Acme"}))
	_, _, err := s.CreateProject(f.ctx, meta, org, &adminv1.Project{Key: project, Name: "Web"})
	noErr(t, err)
	return f
}

func must[T any](t *testing.T) func(v T, err error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantKind(t *testing.T, err error, kind errs.Kind) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got error %v (kind %v), want kind %v", err, errs.KindOf(err), kind)
	}
}

func boolFlag(key string, tags ...string) *adminv1.Flag {
	return &adminv1.Flag{
		Key: key, Name: key, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN, Tags: tags,
		Variants: []*manifestv1.Variant{
			{Key: "on", Value: structpb.NewBoolValue(true)},
			{Key: "off", Value: structpb.NewBoolValue(false)},
		},
	}
}

func onConfig(prereqs ...string) *manifestv1.FlagConfig {
	c := &manifestv1.FlagConfig{On: true, OffVariant: "off",
		DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}
	for _, p := range prereqs {
		c.Prerequisites = append(c.Prerequisites, &manifestv1.Prerequisite{FlagKey: p, Variants: []string{"on"}})
	}
	return c
}

func segmentRule(segment string) *manifestv1.Rule {
	return &manifestv1.Rule{Id: "in-" + segment, Serve: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}},
		Clauses: []*manifestv1.Clause{{Operator: manifestv1.Operator_OPERATOR_SEGMENT_MATCH,
			Values: []*structpb.Value{structpb.NewStringValue(segment)}}}}
}

func (f *fixture) flag(t *testing.T, key string, cfg *manifestv1.FlagConfig) *adminv1.Flag {
	t.Helper()
	return must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, meta, pref, boolFlag(key), cfg, nil))
}

func (f *fixture) segment(t *testing.T, key string) *manifestv1.Segment {
	t.Helper()
	return must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, meta, eref,
		&manifestv1.Segment{Key: key, Included: []string{"user-1"}}, nil))
}

func (f *fixture) member(t *testing.T, email string) *adminv1.Member {
	t.Helper()
	return must[*adminv1.Member](t)(f.s.CreateMember(f.ctx, meta, org,
		&adminv1.Member{Kind: adminv1.MemberKind_MEMBER_KIND_USER, Email: email, Name: email}, adminv1.Role_ROLE_EDITOR))
}

// audit returns every entry of org, newest first.
func (f *fixture) audit(t *testing.T, o string) []*adminv1.AuditEntry {
	t.Helper()
	var all []*adminv1.AuditEntry
	tok := ""
	for {
		page, next, err := f.s.ListAudit(f.ctx, o, store.AuditFilter{}, store.Page{Size: 1000, Token: tok})
		noErr(t, err)
		all = append(all, page...)
		if next == "" {
			return all
		}
		tok = next
	}
}

func (f *fixture) outbox(t *testing.T) []store.OutboxEvent {
	t.Helper()
	return must[[]store.OutboxEvent](t)(f.s.PendingOutbox(f.ctx, 100000))
}

// unchanged asserts that fn wrote nothing: no audit entry, no outbox row.
func (f *fixture) unchanged(t *testing.T, fn func()) {
	t.Helper()
	a, o := len(f.audit(t, org)), len(f.outbox(t))
	fn()
	if got := len(f.audit(t, org)); got != a {
		t.Errorf("audit entries: %d before, %d after; want no new entry", a, got)
	}
	if got := len(f.outbox(t)); got != o {
		t.Errorf("outbox rows: %d before, %d after; want no new row", o, got)
	}
}

func diff(want, got any) string { return cmp.Diff(want, got, cmpP) }

var tests = []test{
	{"creating a project creates development, staging and production", func(t *testing.T, f *fixture) {
		p, envs, err := f.s.CreateProject(f.ctx, meta, org, &adminv1.Project{Key: "api", Name: "API", Description: "d"})
		noErr(t, err)
		if p.Revision != 1 || p.CreateTime == nil || p.Name != "API" {
			t.Errorf("project = %v", p)
		}
		var keys []string
		for _, e := range envs {
			keys = append(keys, e.Key)
		}
		if d := cmp.Diff([]string{"development", "staging", "production"}, keys); d != "" {
			t.Errorf("environments (-want +got):\n%s", d)
		}
		listed, _, err := f.s.ListEnvironments(f.ctx, store.ProjectRef{Org: org, Project: "api"}, store.Page{})
		noErr(t, err)
		if len(listed) != 3 {
			t.Errorf("listed %d environments, want 3", len(listed))
		}
		e := must[*adminv1.Environment](t)(f.s.GetEnvironment(f.ctx, store.EnvRef{Org: org, Project: "api", Environment: "staging"}))
		if e.Revision != 1 || e.Settings.GetRequiredApprovals() != 1 {
			t.Errorf("staging = %v", e)
		}
	}},

	{"organizations can be created, read, listed, updated and deleted", func(t *testing.T, f *fixture) {
		o := must[*adminv1.Organization](t)(f.s.CreateOrg(f.ctx, meta, &adminv1.Organization{Key: "globex", Name: "Globex"}))
		if o.Revision != 1 {
			t.Errorf("revision = %d, want 1", o.Revision)
		}
		got := must[*adminv1.Organization](t)(f.s.GetOrg(f.ctx, "globex"))
		if d := diff(o, got); d != "" {
			t.Errorf("GetOrg (-created +got):\n%s", d)
		}
		list, _, err := f.s.ListOrgs(f.ctx, nil, store.Page{})
		noErr(t, err)
		if len(list) != 2 {
			t.Errorf("ListOrgs = %d orgs, want 2", len(list))
		}
		list, _, err = f.s.ListOrgs(f.ctx, []string{"globex"}, store.Page{})
		noErr(t, err)
		if len(list) != 1 || list[0].Key != "globex" {
			t.Errorf("ListOrgs(globex) = %v", list)
		}
		u := must[*adminv1.Organization](t)(f.s.UpdateOrg(f.ctx, meta, &adminv1.Organization{Key: "globex", Name: "Globex Corp"}, 1))
		if u.Revision != 2 || u.Name != "Globex Corp" {
			t.Errorf("updated = %v", u)
		}
		noErr(t, f.s.DeleteOrg(f.ctx, meta, "globex", 2))
		_, err = f.s.GetOrg(f.ctx, "globex")
		wantKind(t, err, errs.NotFound)
	}},

	{"projects can be read, listed, updated and deleted with their content", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		p := must[*adminv1.Project](t)(f.s.UpdateProject(f.ctx, meta, org, &adminv1.Project{Key: project, Name: "Web 2", Description: "x"}, 1))
		if p.Revision != 2 || p.Name != "Web 2" || p.Description != "x" {
			t.Errorf("updated = %v", p)
		}
		got := must[*adminv1.Project](t)(f.s.GetProject(f.ctx, pref))
		if d := diff(p, got); d != "" {
			t.Errorf("GetProject (-updated +got):\n%s", d)
		}
		noErr(t, f.s.DeleteProject(f.ctx, meta, pref, 2))
		_, err := f.s.GetProject(f.ctx, pref)
		wantKind(t, err, errs.NotFound)
		_, err = f.s.GetFlag(f.ctx, pref, "a")
		wantKind(t, err, errs.NotFound)
		_, err = f.s.GetEnvironment(f.ctx, eref)
		wantKind(t, err, errs.NotFound)
	}},

	{"a new environment gets every flag's configuration, off", func(t *testing.T, f *fixture) {
		f.flag(t, "a", onConfig())
		e := must[*adminv1.Environment](t)(f.s.CreateEnvironment(f.ctx, meta, pref, &adminv1.Environment{Key: "qa", Name: "QA",
			Settings: &adminv1.EnvironmentSettings{ApprovalsRequired: proto.Bool(true), RequiredApprovals: proto.Int32(2)}}))
		if e.Revision != 1 || !e.GetSettings().GetApprovalsRequired() || e.GetSettings().GetRequiredApprovals() != 2 {
			t.Errorf("environment = %v", e)
		}
		if !e.GetSettings().GetEmergencyOffAllowed() {
			t.Errorf("emergency off was not defaulted to allowed when unset: %v", e.GetSettings())
			t.Errorf("environment = %v", e)
		}
		qa := store.EnvRef{Org: org, Project: project, Environment: "qa"}
		c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, qa, "a"))
		if c.Config.On || c.Revision != 1 {
			t.Errorf("config in new environment = %v, want off at revision 1", c)
		}
		u := must[*adminv1.Environment](t)(f.s.UpdateEnvironment(f.ctx, meta, pref, &adminv1.Environment{Key: "qa", Name: "Quality"}, 1))
		if u.Revision != 2 || u.Name != "Quality" {
			t.Errorf("updated = %v", u)
		}
		noErr(t, f.s.DeleteEnvironment(f.ctx, meta, qa, 2))
		_, err := f.s.GetFlagConfig(f.ctx, qa, "a")
		wantKind(t, err, errs.NotFound)
	}},

	{"a flag is created with its configuration in every environment", func(t *testing.T, f *fixture) {
		fl := f.flag(t, "new-ui", onConfig())
		if fl.Revision != 1 || fl.Archived || fl.CreateTime == nil {
			t.Errorf("flag = %v", fl)
		}
		got := must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, pref, "new-ui"))
		if d := diff(fl, got); d != "" {
			t.Errorf("GetFlag (-created +got):\n%s", d)
		}
		for _, e := range []string{"development", "staging", "production"} {
			c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, store.EnvRef{Org: org, Project: project, Environment: e}, "new-ui"))
			if d := diff(onConfig(), c.Config); d != "" || c.Revision != 1 || c.Environment != e {
				t.Errorf("%s: config %v revision %d (-want +got):\n%s", e, c.Config, c.Revision, d)
			}
		}
	}},

	{"a flag definition update keeps key and type and bumps the revision", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		def := boolFlag("a", "checkout")
		def.Description = "new description"
		u := must[*adminv1.Flag](t)(f.s.UpdateFlag(f.ctx, meta, pref, def, 1, nil))
		if u.Revision != 2 || u.Description != "new description" || u.Tags[0] != "checkout" {
			t.Errorf("updated = %v", u)
		}
		def.Type = manifestv1.FlagType_FLAG_TYPE_STRING
		_, err := f.s.UpdateFlag(f.ctx, meta, pref, def, 2, nil)
		wantKind(t, err, errs.InvalidArgument)
		byTag, _, err := f.s.ListFlags(f.ctx, pref, store.FlagFilter{Tag: "checkout"}, store.Page{})
		noErr(t, err)
		if len(byTag) != 1 {
			t.Errorf("ListFlags(tag=checkout) = %d flags, want 1", len(byTag))
		}
		byTag, _, err = f.s.ListFlags(f.ctx, pref, store.FlagFilter{Tag: "check"}, store.Page{})
		noErr(t, err)
		if len(byTag) != 0 {
			t.Errorf("ListFlags(tag=check) = %d flags, want 0 (tags match exactly)", len(byTag))
		}
	}},

	{"a flag configuration update saves the config and bumps the revision by one", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		if c.Revision != 2 || !c.Config.On {
			t.Errorf("updated = %v", c)
		}
		got := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a"))
		if d := diff(c, got); d != "" {
			t.Errorf("GetFlagConfig (-updated +got):\n%s", d)
		}
		staging := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, store.EnvRef{Org: org, Project: project, Environment: "staging"}, "a"))
		if staging.Config.On || staging.Revision != 1 {
			t.Errorf("other environment changed: %v", staging)
		}
		_, err := f.s.UpdateFlagConfig(f.ctx, meta, eref, "missing", onConfig(), 1, nil)
		wantKind(t, err, errs.NotFound)
	}},

	{"segments can be created, read, listed, updated and deleted", func(t *testing.T, f *fixture) {
		sg := f.segment(t, "beta")
		if sg.Revision != 1 {
			t.Errorf("revision = %d", sg.Revision)
		}
		got := must[*manifestv1.Segment](t)(f.s.GetSegment(f.ctx, eref, "beta"))
		if d := diff(sg, got); d != "" {
			t.Errorf("GetSegment (-created +got):\n%s", d)
		}
		u := must[*manifestv1.Segment](t)(f.s.UpdateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "beta", Excluded: []string{"x"}}, 1, nil))
		if u.Revision != 2 || len(u.Included) != 0 || u.Excluded[0] != "x" {
			t.Errorf("updated = %v", u)
		}
		_, err := f.s.GetSegment(f.ctx, store.EnvRef{Org: org, Project: project, Environment: "staging"}, "beta")
		wantKind(t, err, errs.NotFound)
		noErr(t, f.s.DeleteSegment(f.ctx, meta, eref, "beta", 2))
		_, err = f.s.GetSegment(f.ctx, eref, "beta")
		wantKind(t, err, errs.NotFound)
	}},

	{"members and role bindings can be created, read, updated and deleted", func(t *testing.T, f *fixture) {
		m := f.member(t, "bob@example.com")
		if m.Id == "" || m.Revision != 1 {
			t.Errorf("member = %v", m)
		}
		got, bindings, err := f.s.GetMember(f.ctx, org, m.Id)
		noErr(t, err)
		if d := diff(m, got); d != "" {
			t.Errorf("GetMember (-created +got):\n%s", d)
		}
		wantB := []*adminv1.RoleBinding{{MemberId: m.Id, Role: adminv1.Role_ROLE_EDITOR, Scope: &adminv1.Scope{}, GrantTime: m.CreateTime}}
		if d := diff(wantB, bindings); d != "" {
			t.Errorf("bindings (-want +got):\n%s", d)
		}
		scope := &adminv1.Scope{Project: project, Environment: env}
		must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_VIEWER, Scope: scope}))
		must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_ADMIN, Scope: scope}))
		list, _, err := f.s.ListRoleBindings(f.ctx, org, m.Id, store.Page{})
		noErr(t, err)
		if len(list) != 2 || list[1].Role != adminv1.Role_ROLE_ADMIN {
			t.Errorf("bindings after grants = %v, want the scoped one replaced", list)
		}
		noErr(t, f.s.RevokeRole(f.ctx, meta, org, m.Id, scope))
		wantKind(t, f.s.RevokeRole(f.ctx, meta, org, m.Id, scope), errs.NotFound)
		u := must[*adminv1.Member](t)(f.s.UpdateMember(f.ctx, meta, org, &adminv1.Member{Id: m.Id, Name: "Bob", OidcSubject: "iss|bob"}, 1))
		if u.Revision != 2 || u.Name != "Bob" || u.Email != "bob@example.com" {
			t.Errorf("updated = %v", u)
		}
		members, _, err := f.s.ListMembers(f.ctx, org, store.Page{})
		noErr(t, err)
		if len(members) != 1 {
			t.Errorf("ListMembers = %d, want 1", len(members))
		}
		noErr(t, f.s.DeleteMember(f.ctx, meta, org, m.Id))
		_, _, err = f.s.GetMember(f.ctx, org, m.Id)
		wantKind(t, err, errs.NotFound)
		wantKind(t, f.s.DeleteMember(f.ctx, meta, org, m.Id), errs.NotFound)
	}},

	{"a member is found by OIDC subject, else by email", func(t *testing.T, f *fixture) {
		m := f.member(t, "carol@example.com")
		must[*adminv1.Member](t)(f.s.UpdateMember(f.ctx, meta, org, &adminv1.Member{Id: m.Id, Name: "Carol", OidcSubject: "iss|carol"}, 1))
		got, b, err := f.s.MemberByOIDCSubject(f.ctx, org, "iss|carol", "")
		noErr(t, err)
		if got.Id != m.Id || len(b) != 1 {
			t.Errorf("by subject: %v %v", got, b)
		}
		got, _, err = f.s.MemberByOIDCSubject(f.ctx, org, "iss|other", "carol@example.com")
		noErr(t, err)
		if got.Id != m.Id {
			t.Errorf("by email: %v", got)
		}
		_, _, err = f.s.MemberByOIDCSubject(f.ctx, org, "iss|other", "nobody@example.com")
		wantKind(t, err, errs.NotFound)
		_, _, err = f.s.MemberByOIDCSubject(f.ctx, "globex", "iss|carol", "carol@example.com")
		wantKind(t, err, errs.NotFound)
	}},

	{"a stale revision is Aborted and changes nothing", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		f.segment(t, "beta")
		m := f.member(t, "dan@example.com")
		cases := []struct {
			name  string
			write func() error
			check func() int64 // current revision
		}{
			{"flag configuration", func() error {
				_, err := f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 7, nil)
				return err
			}, func() int64 {
				return must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")).Revision
			}},
			{"flag definition", func() error {
				_, err := f.s.UpdateFlag(f.ctx, meta, pref, boolFlag("a", "x"), 7, nil)
				return err
			}, func() int64 { return must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, pref, "a")).Revision }},
			{"flag archive", func() error {
				_, err := f.s.SetFlagArchived(f.ctx, meta, pref, "a", true, 7)
				return err
			}, func() int64 { return must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, pref, "a")).Revision }},
			{"flag delete", func() error { return f.s.DeleteFlag(f.ctx, meta, pref, "a", 7) },
				func() int64 { return must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, pref, "a")).Revision }},
			{"segment update", func() error {
				_, err := f.s.UpdateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "beta"}, 7, nil)
				return err
			}, func() int64 { return must[*manifestv1.Segment](t)(f.s.GetSegment(f.ctx, eref, "beta")).Revision }},
			{"segment delete", func() error { return f.s.DeleteSegment(f.ctx, meta, eref, "beta", 7) },
				func() int64 { return must[*manifestv1.Segment](t)(f.s.GetSegment(f.ctx, eref, "beta")).Revision }},
			{"project", func() error {
				_, err := f.s.UpdateProject(f.ctx, meta, org, &adminv1.Project{Key: project, Name: "x"}, 7)
				return err
			}, func() int64 { return must[*adminv1.Project](t)(f.s.GetProject(f.ctx, pref)).Revision }},
			{"project delete", func() error { return f.s.DeleteProject(f.ctx, meta, pref, 7) },
				func() int64 { return must[*adminv1.Project](t)(f.s.GetProject(f.ctx, pref)).Revision }},
			{"environment", func() error {
				_, err := f.s.UpdateEnvironment(f.ctx, meta, pref, &adminv1.Environment{Key: env, Name: "x"}, 7)
				return err
			}, func() int64 { return must[*adminv1.Environment](t)(f.s.GetEnvironment(f.ctx, eref)).Revision }},
			{"environment delete", func() error { return f.s.DeleteEnvironment(f.ctx, meta, eref, 7) },
				func() int64 { return must[*adminv1.Environment](t)(f.s.GetEnvironment(f.ctx, eref)).Revision }},
			{"organization", func() error {
				_, err := f.s.UpdateOrg(f.ctx, meta, &adminv1.Organization{Key: org, Name: "x"}, 7)
				return err
			}, func() int64 { return must[*adminv1.Organization](t)(f.s.GetOrg(f.ctx, org)).Revision }},
			{"organization delete", func() error { return f.s.DeleteOrg(f.ctx, meta, org, 7) },
				func() int64 { return must[*adminv1.Organization](t)(f.s.GetOrg(f.ctx, org)).Revision }},
			{"member", func() error {
				_, err := f.s.UpdateMember(f.ctx, meta, org, &adminv1.Member{Id: m.Id, Name: "x"}, 7)
				return err
			}, func() int64 { m, _, err := f.s.GetMember(f.ctx, org, m.Id); noErr(t, err); return m.Revision }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := c.check()
				f.unchanged(t, func() { wantKind(t, c.write(), errs.Aborted) })
				if after := c.check(); after != before {
					t.Errorf("revision changed from %d to %d", before, after)
				}
			})
		}
	}},

	{"an organization created with its owner has that owner bound as owner, written in one transaction", func(t *testing.T, f *fixture) {
		o := must[*adminv1.Organization](t)(f.s.CreateOrgWithOwner(f.ctx, meta, &adminv1.Organization{Key: "initech", Name: "Initech"},
			&adminv1.Member{Kind: adminv1.MemberKind_MEMBER_KIND_USER, Email: "peter@initech.test", Name: "Peter"}))
		if o.GetKey() != "initech" || o.GetRevision() != 1 {
			t.Fatalf("organization = %v", o)
		}
		ms, _, err := f.s.ListMembers(f.ctx, "initech", store.Page{})
		noErr(t, err)
		if len(ms) != 1 || ms[0].GetEmail() != "peter@initech.test" {
			t.Fatalf("members = %v", ms)
		}
		_, bs, err := f.s.GetMember(f.ctx, "initech", ms[0].GetId())
		noErr(t, err)
		if len(bs) != 1 || bs[0].GetRole() != adminv1.Role_ROLE_OWNER {
			t.Fatalf("bindings = %v", bs)
		}
		var actions []string
		for _, e := range f.audit(t, "initech") {
			actions = append(actions, e.GetAction())
		}
		if len(actions) != 2 {
			t.Fatalf("audit actions = %v, want organization.create and member.create", actions)
		}
		// An existing key writes neither the organization nor a member.
		f.unchanged(t, func() {
			_, err := f.s.CreateOrgWithOwner(f.ctx, meta, &adminv1.Organization{Key: "initech"}, &adminv1.Member{Email: "x@initech.test"})
			wantKind(t, err, errs.AlreadyExists)
		})
		ms, _, err = f.s.ListMembers(f.ctx, "initech", store.Page{})
		noErr(t, err)
		if len(ms) != 1 {
			t.Fatalf("a refused create added a member: %v", ms)
		}
	}},

	{"an idempotent create retried with the same key returns the first result and writes once", func(t *testing.T, f *fixture) {
		m := meta
		m.IdempotencyKey = "idem-1"
		first := must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, m, pref, boolFlag("a"), nil, nil))
		f.unchanged(t, func() {
			again := must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, m, pref, boolFlag("a"), nil, nil))
			if d := diff(first, again); d != "" {
				t.Errorf("retry (-first +retry):\n%s", d)
			}
		})
		p1, e1, err := f.s.CreateProject(f.ctx, m, org, &adminv1.Project{Key: "api"})
		noErr(t, err)
		f.unchanged(t, func() {
			p2, e2, err := f.s.CreateProject(f.ctx, m, org, &adminv1.Project{Key: "api"})
			noErr(t, err)
			if d := diff(p1, p2) + diff(e1, e2); d != "" {
				t.Errorf("project retry (-first +retry):\n%s", d)
			}
		})
		s1 := must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, m, eref, &manifestv1.Segment{Key: "beta"}, nil))
		s2 := must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, m, eref, &manifestv1.Segment{Key: "beta"}, nil))
		if d := diff(s1, s2); d != "" {
			t.Errorf("segment retry (-first +retry):\n%s", d)
		}
		m1 := must[*adminv1.Member](t)(f.s.CreateMember(f.ctx, m, org, &adminv1.Member{Email: "x@example.com"}, 0))
		m2 := must[*adminv1.Member](t)(f.s.CreateMember(f.ctx, m, org, &adminv1.Member{Email: "x@example.com"}, 0))
		if m1.Id != m2.Id {
			t.Errorf("member retry created a second member: %s and %s", m1.Id, m2.Id)
		}
		// Credentials: a retry carries a freshly generated secret, yet returns the
		// first token/key (whose secret is gone) instead of creating another.
		t1 := must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, m, org, &adminv1.ApiToken{Name: "ci", MemberId: m1.Id}, []byte("secret-1")))
		t2 := must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, m, org, &adminv1.ApiToken{Name: "ci", MemberId: m1.Id}, []byte("secret-2")))
		if t1.Id != t2.Id {
			t.Errorf("API token retry created a second token: %s and %s", t1.Id, t2.Id)
		}
		if _, err := f.s.Authenticate(f.ctx, []byte("secret-2"), time.Now()); !errors.Is(err, errs.Unauthenticated) {
			t.Errorf("the retry's secret authenticates (%v): a second token was stored", err)
		}
		k1 := must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, m, eref, &adminv1.SdkKey{Name: "k", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER, Prefix: "srv_aaaa"}, []byte("key-1")))
		k2 := must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, m, eref, &adminv1.SdkKey{Name: "k", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER, Prefix: "srv_bbbb"}, []byte("key-2")))
		if k1.Id != k2.Id || k2.Prefix != "srv_aaaa" {
			t.Errorf("SDK key retry: got %s (%s), want the first key %s (srv_aaaa)", k2.Id, k2.Prefix, k1.Id)
		}
	}},

	{"the same idempotency key with a different request is AlreadyExists", func(t *testing.T, f *fixture) {
		m := meta
		m.IdempotencyKey = "idem-2"
		must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, m, pref, boolFlag("a"), nil, nil))
		f.unchanged(t, func() {
			_, err := f.s.CreateFlag(f.ctx, m, pref, boolFlag("b"), nil, nil)
			wantKind(t, err, errs.AlreadyExists)
		})
		_, err := f.s.GetFlag(f.ctx, pref, "b")
		wantKind(t, err, errs.NotFound)
		// Another operation may use the same key.
		must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, m, eref, &manifestv1.Segment{Key: "beta"}, nil))
	}},

	{"a create with configs shares CreateFlag's idempotency keys and writes once", func(t *testing.T, f *fixture) {
		cw, ok := f.s.(interface {
			CreateFlagWithConfigs(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, f *adminv1.Flag, initial *manifestv1.FlagConfig, configs []store.BulkConfig, check func(env string) store.Check) (*adminv1.Flag, error)
		})
		if !ok {
			t.Skip("the store has no CreateFlagWithConfigs")
		}
		m := meta
		m.IdempotencyKey = "idem-3"
		cfgs := []store.BulkConfig{{Environment: env, Flag: "a", Config: onConfig()}}
		first := must[*adminv1.Flag](t)(cw.CreateFlagWithConfigs(f.ctx, m, pref, boolFlag("a"), nil, cfgs, nil))
		if c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); !c.GetConfig().GetOn() {
			t.Fatalf("the configuration was not written: %v", c)
		}
		f.unchanged(t, func() {
			again := must[*adminv1.Flag](t)(cw.CreateFlagWithConfigs(f.ctx, m, pref, boolFlag("a"), nil, cfgs, nil))
			if d := diff(first, again); d != "" {
				t.Errorf("retry (-first +retry):\n%s", d)
			}
			_, err := cw.CreateFlagWithConfigs(f.ctx, m, pref, boolFlag("a"), nil, nil, nil)
			wantKind(t, err, errs.AlreadyExists)
			_, err = f.s.CreateFlag(f.ctx, m, pref, boolFlag("a"), nil, nil)
			wantKind(t, err, errs.AlreadyExists)
			m.IdempotencyKey = ""
			_, err = cw.CreateFlagWithConfigs(f.ctx, m, pref, boolFlag("a"), nil, cfgs, nil)
			wantKind(t, err, errs.AlreadyExists)
		})
	}},

	{"a duplicate key is AlreadyExists and writes nothing", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		f.segment(t, "beta")
		f.member(t, "erin@example.com")
		cases := []struct {
			name  string
			write func() error
		}{
			{"organization", func() error {
				_, err := f.s.CreateOrg(f.ctx, meta, &adminv1.Organization{Key: org})
				return err
			}},
			{"project", func() error {
				_, _, err := f.s.CreateProject(f.ctx, meta, org, &adminv1.Project{Key: project})
				return err
			}},
			{"environment", func() error {
				_, err := f.s.CreateEnvironment(f.ctx, meta, pref, &adminv1.Environment{Key: env})
				return err
			}},
			{"flag", func() error {
				_, err := f.s.CreateFlag(f.ctx, meta, pref, boolFlag("a"), nil, nil)
				return err
			}},
			{"segment", func() error {
				_, err := f.s.CreateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "beta"}, nil)
				return err
			}},
			{"member email", func() error {
				_, err := f.s.CreateMember(f.ctx, meta, org, &adminv1.Member{Email: "erin@example.com"}, 0)
				return err
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f.unchanged(t, func() { wantKind(t, c.write(), errs.AlreadyExists) })
			})
		}
	}},

	{"a create under a missing parent is NotFound", func(t *testing.T, f *fixture) {
		missing := store.ProjectRef{Org: org, Project: "missing"}
		_, err := f.s.CreateFlag(f.ctx, meta, missing, boolFlag("a"), nil, nil)
		wantKind(t, err, errs.NotFound)
		_, err = f.s.CreateSegment(f.ctx, meta, store.EnvRef{Org: org, Project: project, Environment: "missing"}, &manifestv1.Segment{Key: "s"}, nil)
		wantKind(t, err, errs.NotFound)
		_, _, err = f.s.CreateProject(f.ctx, meta, "missing", &adminv1.Project{Key: "p"})
		wantKind(t, err, errs.NotFound)
		_, err = f.s.CreateEnvironment(f.ctx, meta, missing, &adminv1.Environment{Key: "e"})
		wantKind(t, err, errs.NotFound)
		_, err = f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "t", MemberId: "missing"}, []byte("h"))
		wantKind(t, err, errs.NotFound)
	}},

	{"a failing Check returns its error as is and writes nothing", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		f.segment(t, "beta")
		refuse := errs.Invalid("config.rules[0]", "refused")
		check := func(store.EnvView) error { return refuse }
		cases := []struct {
			name  string
			write func() error
		}{
			{"create flag", func() error {
				_, err := f.s.CreateFlag(f.ctx, meta, pref, boolFlag("b"), nil, check)
				return err
			}},
			{"update flag", func() error {
				_, err := f.s.UpdateFlag(f.ctx, meta, pref, boolFlag("a", "x"), 1, check)
				return err
			}},
			{"update flag configuration", func() error {
				_, err := f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, check)
				return err
			}},
			{"create segment", func() error {
				_, err := f.s.CreateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "gamma"}, check)
				return err
			}},
			{"update segment", func() error {
				_, err := f.s.UpdateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "beta", Included: []string{"z"}}, 1, check)
				return err
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f.unchanged(t, func() {
					if err := c.write(); err != refuse { //nolint:errorlint // the very error must come back
						t.Fatalf("got %v, want the Check's error itself", err)
					}
				})
			})
		}
		_, err := f.s.GetFlag(f.ctx, pref, "b")
		wantKind(t, err, errs.NotFound)
		if c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a")); c.Revision != 1 || c.Config.On {
			t.Errorf("config changed: %v", c)
		}
		if fl := must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, pref, "a")); fl.Revision != 1 {
			t.Errorf("flag changed: %v", fl)
		}
		if sg := must[*manifestv1.Segment](t)(f.s.GetSegment(f.ctx, eref, "beta")); sg.Revision != 1 {
			t.Errorf("segment changed: %v", sg)
		}
	}},

	{"Check sees the environment with the change in place", func(t *testing.T, f *fixture) {
		f.flag(t, "base", onConfig())
		f.segment(t, "beta")
		var seen *manifestv1.Flag
		var baseSeen, segSeen bool
		_, err := f.s.UpdateFlagConfig(f.ctx, meta, eref, "base", onConfig(), 1, func(v store.EnvView) error {
			seen, _ = v.Flag("base")
			_, segSeen = v.Segment("beta")
			return nil
		})
		noErr(t, err)
		if seen == nil || seen.Revision != 2 || !seen.Config.On || seen.Type != manifestv1.FlagType_FLAG_TYPE_BOOLEAN {
			t.Errorf("view of the changed flag = %v, want it at revision 2", seen)
		}
		if !segSeen {
			t.Error("view does not show segment beta")
		}
		_, err = f.s.CreateFlag(f.ctx, meta, pref, boolFlag("child"), onConfig("base"), func(v store.EnvView) error {
			c, ok := v.Flag("child")
			_, baseSeen = v.Flag("base")
			if !ok || len(c.Config.Prerequisites) != 1 {
				return errs.Invalid("flag", "child not visible")
			}
			if _, ok := v.Flag("missing"); ok {
				return errs.Invalid("flag", "missing flag visible")
			}
			return nil
		})
		noErr(t, err)
		if !baseSeen {
			t.Error("view does not show flag base")
		}
		// Archiving a prerequisite of another flag is refused, like deleting it.
		_, err = f.s.SetFlagArchived(f.ctx, meta, pref, "base", true, 1)
		wantKind(t, err, errs.FailedPrecondition)
		must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, meta, pref, boolFlag("gone"), nil, nil))
		_, err = f.s.SetFlagArchived(f.ctx, meta, pref, "gone", true, 1)
		noErr(t, err)
		_, err = f.s.UpdateFlagConfig(f.ctx, meta, eref, "child", onConfig("base"), 1, func(v store.EnvView) error {
			if _, ok := v.Flag("gone"); ok {
				return errs.Invalid("flag", "archived flag visible")
			}
			return nil
		})
		noErr(t, err)
	}},

	{"a flag that is a prerequisite of another cannot be deleted", func(t *testing.T, f *fixture) {
		f.flag(t, "parent", nil)
		f.flag(t, "child", nil)
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "child", onConfig("parent"), 1, nil))
		f.unchanged(t, func() { wantKind(t, f.s.DeleteFlag(f.ctx, meta, pref, "parent", 1), errs.FailedPrecondition) })
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "child", onConfig(), 2, nil))
		noErr(t, f.s.DeleteFlag(f.ctx, meta, pref, "parent", 1))
		_, err := f.s.GetFlagConfig(f.ctx, eref, "parent")
		wantKind(t, err, errs.NotFound)
	}},

	{"a segment referenced by a flag or a segment cannot be deleted", func(t *testing.T, f *fixture) {
		f.segment(t, "beta")
		f.segment(t, "gamma")
		f.flag(t, "a", nil)
		cfg := onConfig()
		cfg.Rules = []*manifestv1.Rule{segmentRule("beta")}
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", cfg, 1, nil))
		f.unchanged(t, func() { wantKind(t, f.s.DeleteSegment(f.ctx, meta, eref, "beta", 1), errs.FailedPrecondition) })
		must[*manifestv1.Segment](t)(f.s.UpdateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "beta",
			Rules: []*manifestv1.SegmentRule{{Id: "r", Clauses: segmentRule("gamma").Clauses}}}, 1, nil))
		f.unchanged(t, func() { wantKind(t, f.s.DeleteSegment(f.ctx, meta, eref, "gamma", 1), errs.FailedPrecondition) })
		// In another environment the same keys are unrelated.
		staging := store.EnvRef{Org: org, Project: project, Environment: "staging"}
		must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, meta, staging, &manifestv1.Segment{Key: "beta"}, nil))
		noErr(t, f.s.DeleteSegment(f.ctx, meta, staging, "beta", 1))
	}},

	{"an archived flag is listed only on request, leaves the manifest and can be restored", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		f.flag(t, "b", nil)
		a := must[*adminv1.Flag](t)(f.s.SetFlagArchived(f.ctx, meta, pref, "a", true, 1))
		if !a.Archived || a.Revision != 2 {
			t.Errorf("archived = %v", a)
		}
		list, _, err := f.s.ListFlags(f.ctx, pref, store.FlagFilter{}, store.Page{})
		noErr(t, err)
		if len(list) != 1 || list[0].Key != "b" {
			t.Errorf("ListFlags = %v, want only b", list)
		}
		list, _, err = f.s.ListFlags(f.ctx, pref, store.FlagFilter{IncludeArchived: true}, store.Page{})
		noErr(t, err)
		if len(list) != 2 {
			t.Errorf("ListFlags(include archived) = %d flags, want 2", len(list))
		}
		man := must[*manifestv1.Manifest](t)(f.s.EnvironmentManifest(f.ctx, eref, time.Now()))
		if len(man.Flags) != 1 || man.Flags[0].Key != "b" {
			t.Errorf("manifest flags = %v, want only b", man.Flags)
		}
		r := must[*adminv1.Flag](t)(f.s.SetFlagArchived(f.ctx, meta, pref, "a", false, 2))
		if r.Archived || r.Revision != 3 {
			t.Errorf("restored = %v", r)
		}
		if got := f.audit(t, org)[0].Action; got != "flag.restore" {
			t.Errorf("last action = %q, want flag.restore", got)
		}
	}},

	{"every write appends an audit entry with actor, action, resource, before and after", func(t *testing.T, f *fixture) {
		type w struct {
			do                 func()
			action, typ, res   string
			hasBefore, hasAfer bool
		}
		var mem *adminv1.Member
		var key *adminv1.SdkKey
		var tok *adminv1.ApiToken
		writes := []w{
			{func() { f.flag(t, "a", nil) }, "flag.create", "flag", "projects/web/flags/a", false, true},
			{func() { must[*adminv1.Flag](t)(f.s.UpdateFlag(f.ctx, meta, pref, boolFlag("a", "x"), 1, nil)) },
				"flag.update", "flag", "projects/web/flags/a", true, true},
			{func() {
				must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
			}, "flag_config.update", "flag_config", "projects/web/environments/production/flags/a", true, true},
			{func() { must[*adminv1.Flag](t)(f.s.SetFlagArchived(f.ctx, meta, pref, "a", true, 2)) },
				"flag.archive", "flag", "projects/web/flags/a", true, true},
			{func() { noErr(t, f.s.DeleteFlag(f.ctx, meta, pref, "a", 3)) }, "flag.delete", "flag", "projects/web/flags/a", true, false},
			{func() { f.segment(t, "beta") }, "segment.create", "segment", "projects/web/environments/production/segments/beta", false, true},
			{func() {
				must[*manifestv1.Segment](t)(f.s.UpdateSegment(f.ctx, meta, eref, &manifestv1.Segment{Key: "beta"}, 1, nil))
			}, "segment.update", "segment", "projects/web/environments/production/segments/beta", true, true},
			{func() { noErr(t, f.s.DeleteSegment(f.ctx, meta, eref, "beta", 2)) },
				"segment.delete", "segment", "projects/web/environments/production/segments/beta", true, false},
			{func() {
				must[*adminv1.Environment](t)(f.s.CreateEnvironment(f.ctx, meta, pref, &adminv1.Environment{Key: "qa"}))
			}, "environment.create", "environment", "projects/web/environments/qa", false, true},
			{func() {
				must[*adminv1.Project](t)(f.s.UpdateProject(f.ctx, meta, org, &adminv1.Project{Key: project, Name: "W"}, 1))
			}, "project.update", "project", "projects/web", true, true},
			{func() { mem = f.member(t, "fay@example.com") }, "member.create", "member", "", false, true},
			{func() {
				must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: mem.Id, Role: adminv1.Role_ROLE_ADMIN, Scope: &adminv1.Scope{}}))
			}, "member.role_grant", "role_binding", "", true, true},
			{func() {
				tok = must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "ci", MemberId: mem.Id}, []byte("tok-hash")))
			}, "api_token.create", "api_token", "", false, true},
			{func() { must[*adminv1.ApiToken](t)(f.s.RevokeAPIToken(f.ctx, meta, org, tok.Id)) }, "api_token.revoke", "api_token", "", true, true},
			{func() {
				key = must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: "k", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER}, []byte("k1")))
			}, "sdk_key.create", "sdk_key", "", false, true},
			{func() {
				_, _, err := f.s.RotateSDKKey(f.ctx, meta, eref, key.Id, time.Now().Add(time.Hour), &adminv1.SdkKey{Name: "k2"}, []byte("k2"))
				noErr(t, err)
			}, "sdk_key.rotate", "sdk_key", "", true, true},
			{func() { must[*adminv1.SdkKey](t)(f.s.RevokeSDKKey(f.ctx, meta, eref, key.Id)) }, "sdk_key.revoke", "sdk_key", "", true, true},
			{func() { noErr(t, f.s.DeleteMember(f.ctx, meta, org, mem.Id)) }, "member.delete", "member", "", true, false},
		}
		for i, w := range writes {
			n := len(f.audit(t, org))
			w.do()
			entries := f.audit(t, org)
			if len(entries) != n+1 {
				t.Fatalf("write %d (%s): %d new audit entries, want 1", i, w.action, len(entries)-n)
			}
			e := entries[0]
			if e.Action != w.action || e.ResourceType != w.typ || (w.res != "" && e.Resource != w.res) {
				t.Errorf("write %d: entry %s %s %s, want %s %s %s", i, e.Action, e.ResourceType, e.Resource, w.action, w.typ, w.res)
			}
			if (e.Before != nil) != w.hasBefore || (e.After != nil) != w.hasAfer {
				t.Errorf("%s: before set %v, after set %v; want %v, %v", w.action, e.Before != nil, e.After != nil, w.hasBefore, w.hasAfer)
			}
			if e.ActorId != meta.ActorID || e.ActorName != meta.ActorName || e.RequestId != meta.RequestID ||
				e.Comment != meta.Comment || e.Time == nil || e.Hash == "" || e.Id == "" {
				t.Errorf("%s: entry metadata = %v", w.action, e)
			}
			if e.Sequence != int64(len(entries)) {
				t.Errorf("%s: sequence %d, want %d", w.action, e.Sequence, len(entries))
			}
		}
		v := must[*store.AuditVerification](t)(f.s.VerifyAudit(f.ctx, org))
		if !v.OK || v.Checked != int64(len(f.audit(t, org))) {
			t.Errorf("VerifyAudit = %+v", v)
		}
	}},

	{"WriteMeta.Action overrides the audit action and names the outbox kind", func(t *testing.T, f *fixture) {
		f.flag(t, "a", onConfig())
		m := meta
		m.Action = "flag_config.emergency_off"
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, m, eref, "a", &manifestv1.FlagConfig{}, 1, nil))
		if got := f.audit(t, org)[0].Action; got != m.Action {
			t.Errorf("action = %q", got)
		}
		ob := f.outbox(t)
		if got := ob[len(ob)-1]; got.Kind != m.Action || got.Environment != env || got.Project != project || got.Org != org {
			t.Errorf("outbox = %+v", got)
		}
	}},

	{"audit entries chain by hash per organization and VerifyAudit accepts the chain", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		must[*adminv1.Organization](t)(f.s.CreateOrg(f.ctx, meta, &adminv1.Organization{Key: "globex"}))
		entries := f.audit(t, org)
		for i := 0; i < len(entries)-1; i++ {
			if entries[i].PreviousHash != entries[i+1].Hash {
				t.Errorf("entry %d previous_hash %q != hash of entry %d %q", entries[i].Sequence, entries[i].PreviousHash, entries[i+1].Sequence, entries[i+1].Hash)
			}
		}
		if last := entries[len(entries)-1]; last.Sequence != 1 || last.PreviousHash != "" {
			t.Errorf("first entry = seq %d prev %q", last.Sequence, last.PreviousHash)
		}
		g := f.audit(t, "globex")
		if len(g) != 1 || g[0].Sequence != 1 || g[0].PreviousHash != "" {
			t.Errorf("globex chain = %v, want its own chain from 1", g)
		}
		for _, o := range []string{org, "globex", "empty"} {
			v := must[*store.AuditVerification](t)(f.s.VerifyAudit(f.ctx, o))
			if !v.OK || v.FirstBroken != nil {
				t.Errorf("VerifyAudit(%s) = %+v", o, v)
			}
		}
		got := must[*adminv1.AuditEntry](t)(f.s.GetAudit(f.ctx, org, entries[0].Id))
		if d := diff(entries[0], got); d != "" {
			t.Errorf("GetAudit (-listed +got):\n%s", d)
		}
		_, err := f.s.GetAudit(f.ctx, "globex", entries[0].Id)
		wantKind(t, err, errs.NotFound)
	}},

	{"audit hashes cover any text and VerifyAudit accepts them", func(t *testing.T, f *fixture) {
		m := meta
		m.Comment = "<b>\"quoted\"</b> & café 😀 \\ \u2028 tab\t"
		m.ActorName = "Zoë <zoe@example.com>"
		fl := boolFlag("a")
		fl.Description = "ünïcödé </script>"
		must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, m, pref, fl, nil, nil))
		v := must[*store.AuditVerification](t)(f.s.VerifyAudit(f.ctx, org))
		if !v.OK {
			t.Fatalf("VerifyAudit = %+v", v)
		}
		if e := f.audit(t, org)[0]; e.Comment != m.Comment || e.ActorName != m.ActorName {
			t.Errorf("entry = %q %q", e.Comment, e.ActorName)
		}
	}},

	{"audit entries carry a JSON-pointer diff between before and after", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		e := f.audit(t, org)[0]
		ops := map[string]string{}
		for _, d := range e.Diff {
			ops[d.Path] = d.Op
		}
		want := map[string]string{"/on": "add", "/offVariant": "add", "/defaultServe": "add"}
		if d := cmp.Diff(want, ops); d != "" {
			t.Errorf("diff ops (-want +got):\n%s", d)
		}
		cfg := onConfig()
		cfg.On = false
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", cfg, 2, nil))
		e = f.audit(t, org)[0]
		if len(e.Diff) != 1 || e.Diff[0].Path != "/on" || e.Diff[0].Op != "remove" || !e.Diff[0].Before.GetBoolValue() {
			t.Errorf("diff = %v, want one removal of /on", e.Diff)
		}
	}},

	{"audit entries can be filtered and paged, newest first", func(t *testing.T, f *fixture) {
		t0 := time.Now().Add(-time.Second)
		f.flag(t, "a", nil)
		f.flag(t, "b", nil)
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		other := meta
		other.ActorID = "u-2"
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, other, eref, "b", onConfig(), 1, nil))
		count := func(fl store.AuditFilter) int {
			t.Helper()
			l, _, err := f.s.ListAudit(f.ctx, org, fl, store.Page{})
			noErr(t, err)
			return len(l)
		}
		cases := []struct {
			name string
			f    store.AuditFilter
			want int
		}{
			{"resource type", store.AuditFilter{ResourceType: "flag_config"}, 2},
			{"exact resource", store.AuditFilter{Resource: "projects/web/flags/a"}, 1},
			{"resource prefix", store.AuditFilter{Resource: "projects/web/environments/production/"}, 2},
			{"prefix needs the slash", store.AuditFilter{Resource: "projects/web/environments"}, 0},
			{"actor", store.AuditFilter{ActorID: "u-2"}, 1},
			{"action", store.AuditFilter{Action: "flag.create"}, 2},
			{"time window", store.AuditFilter{Start: t0, End: time.Now().Add(time.Minute)}, 6},
			{"window in the past", store.AuditFilter{End: t0}, 0},
		}
		for _, c := range cases {
			if got := count(c.f); got != c.want {
				t.Errorf("%s: %d entries, want %d", c.name, got, c.want)
			}
		}
		var seqs []int64
		tok := ""
		for {
			page, next, err := f.s.ListAudit(f.ctx, org, store.AuditFilter{}, store.Page{Size: 4, Token: tok})
			noErr(t, err)
			for _, e := range page {
				seqs = append(seqs, e.Sequence)
			}
			if next == "" {
				break
			}
			tok = next
		}
		if d := cmp.Diff([]int64{6, 5, 4, 3, 2, 1}, seqs); d != "" {
			t.Errorf("paged sequences (-want +got):\n%s", d)
		}
	}},

	{"an organization cannot read or change another organization's resources", func(t *testing.T, f *fixture) {
		// globex has a project with the same keys; acme's refs must never reach it.
		must[*adminv1.Organization](t)(f.s.CreateOrg(f.ctx, meta, &adminv1.Organization{Key: "globex"}))
		_, _, err := f.s.CreateProject(f.ctx, meta, "globex", &adminv1.Project{Key: "shop"})
		noErr(t, err)
		gp := store.ProjectRef{Org: "globex", Project: "shop"}
		ge := store.EnvRef{Org: "globex", Project: "shop", Environment: env}
		must[*adminv1.Flag](t)(f.s.CreateFlag(f.ctx, meta, gp, boolFlag("secret"), nil, nil))
		must[*manifestv1.Segment](t)(f.s.CreateSegment(f.ctx, meta, ge, &manifestv1.Segment{Key: "vip"}, nil))
		gm := must[*adminv1.Member](t)(f.s.CreateMember(f.ctx, meta, "globex", &adminv1.Member{Email: "g@example.com"}, adminv1.Role_ROLE_OWNER))
		gk := must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, ge, &adminv1.SdkKey{Name: "k"}, []byte("gk")))
		gt := must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, "globex", &adminv1.ApiToken{Name: "t", MemberId: gm.Id}, []byte("gt")))
		ap := store.ProjectRef{Org: org, Project: "shop"}
		ae := store.EnvRef{Org: org, Project: "shop", Environment: env}
		cases := []struct {
			name string
			op   func() error
		}{
			{"get project", func() error { _, err := f.s.GetProject(f.ctx, ap); return err }},
			{"get flag", func() error { _, err := f.s.GetFlag(f.ctx, ap, "secret"); return err }},
			{"get config", func() error { _, err := f.s.GetFlagConfig(f.ctx, ae, "secret"); return err }},
			{"get segment", func() error { _, err := f.s.GetSegment(f.ctx, ae, "vip"); return err }},
			{"get member", func() error { _, _, err := f.s.GetMember(f.ctx, org, gm.Id); return err }},
			{"manifest", func() error { _, err := f.s.EnvironmentManifest(f.ctx, ae, time.Now()); return err }},
			{"update flag", func() error { _, err := f.s.UpdateFlag(f.ctx, meta, ap, boolFlag("secret"), 1, nil); return err }},
			{"update config", func() error {
				_, err := f.s.UpdateFlagConfig(f.ctx, meta, ae, "secret", onConfig(), 1, nil)
				return err
			}},
			{"archive flag", func() error { _, err := f.s.SetFlagArchived(f.ctx, meta, ap, "secret", true, 1); return err }},
			{"delete flag", func() error { return f.s.DeleteFlag(f.ctx, meta, ap, "secret", 1) }},
			{"update segment", func() error {
				_, err := f.s.UpdateSegment(f.ctx, meta, ae, &manifestv1.Segment{Key: "vip"}, 1, nil)
				return err
			}},
			{"delete segment", func() error { return f.s.DeleteSegment(f.ctx, meta, ae, "vip", 1) }},
			{"delete project", func() error { return f.s.DeleteProject(f.ctx, meta, ap, 1) }},
			{"create flag in it", func() error { _, err := f.s.CreateFlag(f.ctx, meta, ap, boolFlag("x"), nil, nil); return err }},
			{"update member", func() error {
				_, err := f.s.UpdateMember(f.ctx, meta, org, &adminv1.Member{Id: gm.Id, Name: "x"}, 1)
				return err
			}},
			{"delete member", func() error { return f.s.DeleteMember(f.ctx, meta, org, gm.Id) }},
			{"grant role", func() error {
				_, err := f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: gm.Id, Role: adminv1.Role_ROLE_OWNER})
				return err
			}},
			{"revoke SDK key", func() error { _, err := f.s.RevokeSDKKey(f.ctx, meta, ae, gk.Id); return err }},
			{"revoke API token", func() error { _, err := f.s.RevokeAPIToken(f.ctx, meta, org, gt.Id); return err }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f.unchanged(t, func() { wantKind(t, c.op(), errs.NotFound) })
			})
		}
		lists := map[string]func() (int, error){
			"projects": func() (int, error) { l, _, err := f.s.ListProjects(f.ctx, org, store.Page{}); return len(l), err },
			"flags": func() (int, error) {
				l, _, err := f.s.ListFlags(f.ctx, ap, store.FlagFilter{}, store.Page{})
				return len(l), err
			},
			"segments": func() (int, error) { l, _, err := f.s.ListSegments(f.ctx, ae, store.Page{}); return len(l), err },
			"members":  func() (int, error) { l, _, err := f.s.ListMembers(f.ctx, org, store.Page{}); return len(l), err },
			"tokens":   func() (int, error) { l, _, err := f.s.ListAPITokens(f.ctx, org, store.Page{}); return len(l), err },
			"sdk keys": func() (int, error) { l, _, err := f.s.ListSDKKeys(f.ctx, ae, store.Page{}); return len(l), err },
			"bindings": func() (int, error) {
				l, _, err := f.s.ListRoleBindings(f.ctx, org, "", store.Page{})
				return len(l), err
			},
			"audit of globex resources": func() (int, error) {
				l, _, err := f.s.ListAudit(f.ctx, org, store.AuditFilter{Resource: "projects/shop/"}, store.Page{})
				return len(l), err
			},
		}
		want := map[string]int{"projects": 1}
		for name, l := range lists {
			n, err := l()
			noErr(t, err)
			if n != want[name] {
				t.Errorf("acme lists %d %s, want %d", n, name, want[name])
			}
		}
		// globex is untouched.
		if fl := must[*adminv1.Flag](t)(f.s.GetFlag(f.ctx, gp, "secret")); fl.Revision != 1 {
			t.Errorf("globex flag changed: %v", fl)
		}
	}},

	{"Authenticate accepts live tokens and refuses revoked, expired and unknown ones", func(t *testing.T, f *fixture) {
		m := f.member(t, "gil@example.com")
		now := time.Now().UTC()
		live := must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "live", MemberId: m.Id,
			ExpireTime: timestamppb.New(now.Add(time.Hour))}, []byte("h-live")))
		must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "forever", MemberId: m.Id}, []byte("h-forever")))
		must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "old", MemberId: m.Id,
			ExpireTime: timestamppb.New(now.Add(-time.Minute))}, []byte("h-expired")))
		rev := must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: "rev", MemberId: m.Id}, []byte("h-revoked")))
		r := must[*adminv1.ApiToken](t)(f.s.RevokeAPIToken(f.ctx, meta, org, rev.Id))
		if r.RevokeTime == nil {
			t.Errorf("revoked token = %v", r)
		}
		cases := []struct {
			name string
			hash string
			at   time.Time
			ok   bool
		}{
			{"valid", "h-live", now, true},
			{"valid without expiry", "h-forever", now.Add(1000 * time.Hour), true},
			{"valid token past its expiry", "h-live", now.Add(2 * time.Hour), false},
			{"expired", "h-expired", now, false},
			{"revoked", "h-revoked", now, false},
			{"unknown", "h-unknown", now, false},
		}
		for _, c := range cases {
			p, err := f.s.Authenticate(f.ctx, []byte(c.hash), c.at)
			if !c.ok {
				if !errors.Is(err, errs.Unauthenticated) {
					t.Errorf("%s: got %v, want Unauthenticated", c.name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if p.Org != org || p.Member.GetId() != m.Id || len(p.Bindings) != 1 || p.TokenID == "" {
				t.Errorf("%s: principal = %+v", c.name, p)
			}
		}
		toks, _, err := f.s.ListAPITokens(f.ctx, org, store.Page{})
		noErr(t, err)
		for _, tk := range toks {
			if tk.Id == live.Id && tk.LastUsedTime == nil {
				t.Error("Authenticate did not record last use")
			}
		}
	}},

	{"SDK keys: rotation gives the old key an expiry; the manifest carries only live keys", func(t *testing.T, f *fixture) {
		now := time.Now().UTC()
		k1 := must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: "server", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER, Prefix: "srv_"}, []byte("k1")))
		k2 := must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: "client", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT}, []byte("k2")))
		old, created, err := f.s.RotateSDKKey(f.ctx, meta, eref, k1.Id, now.Add(time.Hour), &adminv1.SdkKey{Name: "server 2", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER}, []byte("k3"))
		noErr(t, err)
		if old.Id != k1.Id || old.ExpireTime == nil || !old.ExpireTime.AsTime().Equal(now.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("old key = %v", old)
		}
		if created.Id == "" || created.Id == k1.Id || created.ExpireTime != nil {
			t.Errorf("new key = %v", created)
		}
		must[*adminv1.SdkKey](t)(f.s.RevokeSDKKey(f.ctx, meta, eref, k2.Id))
		_, _, err = f.s.RotateSDKKey(f.ctx, meta, eref, k2.Id, now, &adminv1.SdkKey{Name: "x"}, []byte("k4"))
		wantKind(t, err, errs.FailedPrecondition)
		_, err = f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: "dup"}, []byte("k1"))
		wantKind(t, err, errs.AlreadyExists)
		keys, _, err := f.s.ListSDKKeys(f.ctx, eref, store.Page{})
		noErr(t, err)
		if len(keys) != 3 {
			t.Errorf("ListSDKKeys = %d, want 3", len(keys))
		}
		ids := func(at time.Time) []string {
			m := must[*manifestv1.Manifest](t)(f.s.EnvironmentManifest(f.ctx, eref, at))
			var out []string
			for _, k := range m.SdkKeys {
				out = append(out, k.Id)
			}
			return out
		}
		if d := cmp.Diff([]string{k1.Id, created.Id}, ids(now)); d != "" {
			t.Errorf("keys during the overlap (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{created.Id}, ids(now.Add(2*time.Hour))); d != "" {
			t.Errorf("keys after the overlap (-want +got):\n%s", d)
		}
	}},

	{"the environment manifest carries non-archived flags with their configuration and the segments", func(t *testing.T, f *fixture) {
		f.flag(t, "b", nil)
		f.flag(t, "a", onConfig())
		f.flag(t, "gone", nil)
		must[*adminv1.Flag](t)(f.s.SetFlagArchived(f.ctx, meta, pref, "gone", true, 1))
		f.segment(t, "beta")
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "b", onConfig("a"), 1, nil))
		k := must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: "k", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER}, []byte("hash")))
		got := must[*manifestv1.Manifest](t)(f.s.EnvironmentManifest(f.ctx, eref, time.Now()))
		def := boolFlag("a")
		want := &manifestv1.Manifest{
			Org: org, Project: project, Environment: env, Bucketing: "murmur3-v1",
			Flags: []*manifestv1.Flag{
				{Key: "a", Type: def.Type, Variants: def.Variants, Config: onConfig(), Revision: 1},
				{Key: "b", Type: def.Type, Variants: def.Variants, Config: onConfig("a"), Revision: 2},
			},
			Segments: []*manifestv1.Segment{{Key: "beta", Included: []string{"user-1"}, Revision: 1}},
			SdkKeys:  []*manifestv1.SdkKey{{Id: k.Id, Hash: []byte("hash"), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER}},
		}
		if d := diff(want, got); d != "" {
			t.Errorf("manifest (-want +got):\n%s", d)
		}
		_, err := f.s.EnvironmentManifest(f.ctx, store.EnvRef{Org: org, Project: project, Environment: "missing"}, time.Now())
		wantKind(t, err, errs.NotFound)
	}},

	{"every write appends an outbox row naming the affected environment", func(t *testing.T, f *fixture) {
		n := len(f.outbox(t))
		f.flag(t, "a", nil)
		must[*adminv1.FlagEnvironmentConfig](t)(f.s.UpdateFlagConfig(f.ctx, meta, eref, "a", onConfig(), 1, nil))
		f.segment(t, "beta")
		ob := f.outbox(t)[n:]
		want := []store.OutboxEvent{
			{Org: org, Project: project, Kind: "flag.create", Resource: "projects/web/flags/a"},
			{Org: org, Project: project, Environment: env, Kind: "flag_config.update", Resource: "projects/web/environments/production/flags/a"},
			{Org: org, Project: project, Environment: env, Kind: "segment.create", Resource: "projects/web/environments/production/segments/beta"},
		}
		if d := cmp.Diff(want, ob, cmp.FilterPath(func(p cmp.Path) bool {
			s := p.Last().String()
			return s == ".ID" || s == ".Created"
		}, cmp.Ignore())); d != "" {
			t.Errorf("outbox (-want +got):\n%s", d)
		}
		for i := 1; i < len(ob); i++ {
			if ob[i].ID <= ob[i-1].ID || ob[i].Created.IsZero() {
				t.Errorf("outbox rows not in order: %+v", ob)
			}
		}
		if l := must[[]store.OutboxEvent](t)(f.s.PendingOutbox(f.ctx, 2)); len(l) != 2 {
			t.Errorf("PendingOutbox(limit 2) = %d rows", len(l))
		}
	}},

	{"usage: counts add up per minute and variant and a batch seen before is ignored", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		m0 := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
		counts := []store.UsageCount{
			{Flag: "a", Variant: "on", Minute: m0.Add(15 * time.Second), Count: 3},
			{Flag: "a", Variant: "off", Minute: m0, Count: 1},
			{Flag: "a", Variant: "on", Minute: m0.Add(time.Minute), Count: 2},
		}
		noErr(t, f.s.RecordUsage(f.ctx, eref, "batch-1", counts))
		noErr(t, f.s.RecordUsage(f.ctx, eref, "batch-1", counts))
		noErr(t, f.s.RecordUsage(f.ctx, eref, "batch-2", counts[:1]))
		got := must[[]*adminv1.UsageBucket](t)(f.s.FlagUsage(f.ctx, eref, "a", m0, m0.Add(time.Hour)))
		want := []*adminv1.UsageBucket{
			{Variant: "off", Minute: timestamppb.New(m0), Count: 1},
			{Variant: "on", Minute: timestamppb.New(m0), Count: 6},
			{Variant: "on", Minute: timestamppb.New(m0.Add(time.Minute)), Count: 2},
		}
		if d := diff(want, got); d != "" {
			t.Errorf("usage (-want +got):\n%s", d)
		}
		got = must[[]*adminv1.UsageBucket](t)(f.s.FlagUsage(f.ctx, eref, "a", m0.Add(time.Minute), m0.Add(time.Hour)))
		if len(got) != 1 {
			t.Errorf("usage from minute 1 = %v", got)
		}
		c := must[*adminv1.FlagEnvironmentConfig](t)(f.s.GetFlagConfig(f.ctx, eref, "a"))
		if c.LastEvaluated == nil || !c.LastEvaluated.AsTime().Equal(m0.Add(time.Minute)) || c.Revision != 1 {
			t.Errorf("config after usage = %v, want last evaluation at minute 1 and the revision unchanged", c)
		}
	}},

	{"usage: errors add up per variant next to the counts and VariantUsage sums a window", func(t *testing.T, f *fixture) {
		f.flag(t, "a", nil)
		m0 := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
		noErr(t, f.s.RecordUsage(f.ctx, eref, "b1", []store.UsageCount{
			{Flag: "a", Variant: "on", Minute: m0, Count: 10, Errors: 2},
			{Flag: "a", Variant: "off", Minute: m0, Count: 5},
			{Flag: "a", Variant: "", Minute: m0.Add(time.Minute), Count: 1, Errors: 1},
		}))
		noErr(t, f.s.RecordUsage(f.ctx, eref, "b2", []store.UsageCount{
			{Flag: "a", Variant: "on", Minute: m0.Add(time.Minute), Errors: 3}, // errors only
			{Flag: "a", Variant: "on", Minute: m0, Count: 4, Errors: 1},
		}))
		noErr(t, f.s.RecordUsage(f.ctx, eref, "b2", []store.UsageCount{{Flag: "a", Variant: "on", Minute: m0, Errors: 100}})) // seen batch
		got := must[[]store.VariantTotal](t)(f.s.VariantUsage(f.ctx, eref, "a", m0.Add(30*time.Second)))
		want := []store.VariantTotal{{Variant: "", Evaluations: 1, Errors: 1}, {Variant: "off", Evaluations: 5}, {Variant: "on", Evaluations: 14, Errors: 6}}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("VariantUsage from minute 0 (-want +got):\n%s", d)
		}
		got = must[[]store.VariantTotal](t)(f.s.VariantUsage(f.ctx, eref, "a", m0.Add(time.Minute)))
		want = []store.VariantTotal{{Variant: "", Evaluations: 1, Errors: 1}, {Variant: "on", Errors: 3}}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("VariantUsage from minute 1 (-want +got):\n%s", d)
		}
		if got := must[[]store.VariantTotal](t)(f.s.VariantUsage(f.ctx, eref, "b", m0)); len(got) != 0 {
			t.Errorf("VariantUsage of a flag never evaluated = %v", got)
		}
	}},

	{"every list pages with tokens and an invalid token is InvalidArgument", func(t *testing.T, f *fixture) {
		m := f.member(t, "hal@example.com")
		for i := range 5 {
			k := fmt.Sprintf("p%d", i)
			f.flag(t, "f"+k, nil)
			f.segment(t, "s"+k)
			must[*adminv1.Organization](t)(f.s.CreateOrg(f.ctx, meta, &adminv1.Organization{Key: "o" + k}))
			_, _, err := f.s.CreateProject(f.ctx, meta, org, &adminv1.Project{Key: k})
			noErr(t, err)
			must[*adminv1.Environment](t)(f.s.CreateEnvironment(f.ctx, meta, pref, &adminv1.Environment{Key: "e" + k}))
			f.member(t, k+"@example.com")
			must[*adminv1.ApiToken](t)(f.s.CreateAPIToken(f.ctx, meta, org, &adminv1.ApiToken{Name: k, MemberId: m.Id}, []byte("t"+k)))
			must[*adminv1.SdkKey](t)(f.s.CreateSDKKey(f.ctx, meta, eref, &adminv1.SdkKey{Name: k}, []byte("s"+k)))
			must[*adminv1.RoleBinding](t)(f.s.GrantRole(f.ctx, meta, org, &adminv1.RoleBinding{MemberId: m.Id, Role: adminv1.Role_ROLE_VIEWER, Scope: &adminv1.Scope{Project: k}}))
		}
		type lister func(p store.Page) ([]string, string, error)
		keysOf := func(n int, key func(i int) string) []string {
			out := make([]string, n)
			for i := range n {
				out[i] = key(i)
			}
			return out
		}
		lists := []struct {
			name string
			want int
			l    lister
		}{
			{"organizations", 6, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListOrgs(f.ctx, nil, p)
				return keysOf(len(l), func(i int) string { return l[i].Key }), n, err
			}},
			{"projects", 6, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListProjects(f.ctx, org, p)
				return keysOf(len(l), func(i int) string { return l[i].Key }), n, err
			}},
			{"environments", 8, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListEnvironments(f.ctx, pref, p)
				return keysOf(len(l), func(i int) string { return l[i].Key }), n, err
			}},
			{"flags", 5, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListFlags(f.ctx, pref, store.FlagFilter{}, p)
				return keysOf(len(l), func(i int) string { return l[i].Key }), n, err
			}},
			{"flag configurations", 5, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListFlagConfigs(f.ctx, eref, p)
				return keysOf(len(l), func(i int) string { return l[i].Flag }), n, err
			}},
			{"segments", 5, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListSegments(f.ctx, eref, p)
				return keysOf(len(l), func(i int) string { return l[i].Key }), n, err
			}},
			{"members", 6, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListMembers(f.ctx, org, p)
				return keysOf(len(l), func(i int) string { return l[i].Id }), n, err
			}},
			{"role bindings", 11, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListRoleBindings(f.ctx, org, "", p)
				return keysOf(len(l), func(i int) string { return l[i].MemberId + "/" + l[i].Scope.GetProject() }), n, err
			}},
			{"API tokens", 5, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListAPITokens(f.ctx, org, p)
				return keysOf(len(l), func(i int) string { return l[i].Id }), n, err
			}},
			{"SDK keys", 5, func(p store.Page) ([]string, string, error) {
				l, n, err := f.s.ListSDKKeys(f.ctx, eref, p)
				return keysOf(len(l), func(i int) string { return l[i].Id }), n, err
			}},
		}
		for _, l := range lists {
			t.Run(l.name, func(t *testing.T) {
				all, next, err := l.l(store.Page{})
				noErr(t, err)
				if len(all) != l.want || next != "" {
					t.Fatalf("one page: %d items (next %q), want %d", len(all), next, l.want)
				}
				var paged []string
				tok := ""
				for pages := 0; ; pages++ {
					if pages > l.want {
						t.Fatal("paging does not end")
					}
					page, next, err := l.l(store.Page{Size: 2, Token: tok})
					noErr(t, err)
					if len(page) > 2 {
						t.Fatalf("page of %d items, want at most 2", len(page))
					}
					paged = append(paged, page...)
					if next == "" {
						break
					}
					tok = next
				}
				if d := cmp.Diff(all, paged); d != "" {
					t.Errorf("paged (-one page +pages):\n%s", d)
				}
				_, _, err = l.l(store.Page{Token: "!!not a token"})
				wantKind(t, err, errs.InvalidArgument)
			})
		}
	}},
}
