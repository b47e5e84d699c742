package authz

import (
	"strings"
	"testing"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

const (
	owner  = adminv1.Role_ROLE_OWNER
	admin  = adminv1.Role_ROLE_ADMIN
	editor = adminv1.Role_ROLE_EDITOR
	viewer = adminv1.Role_ROLE_VIEWER
	none   = adminv1.Role_ROLE_UNSPECIFIED
)

// TestRoleActionMatrix is the whole permission matrix: every role x kind x action.
func TestRoleActionMatrix(t *testing.T) {
	t.Parallel()
	// want[kind][action] lists the roles allowed, from the permission text.
	all := []adminv1.Role{owner, admin, editor, viewer}
	adminUp := []adminv1.Role{owner, admin}
	editorUp := []adminv1.Role{owner, admin, editor}
	ownerOnly := []adminv1.Role{owner}
	want := map[Kind]map[Action][]adminv1.Role{
		Organization: {Read: all, Write: ownerOnly, ManageOwners: ownerOnly},
		Project:      {Read: all, Write: adminUp},
		Environment:  {Read: all, Write: adminUp},
		Flag:         {Read: all, Write: editorUp},
		FlagConfig:   {Read: all, Write: editorUp},
		Segment:      {Read: all, Write: editorUp},
		Member:       {Read: all, Write: adminUp, ManageOwners: ownerOnly},
		RoleBinding:  {Read: all, Write: adminUp, ManageOwners: ownerOnly},
		APIToken:     {Read: adminUp, Write: adminUp, ManageOwners: ownerOnly},
		SDKKey:       {Read: adminUp, Write: adminUp},
		Audit:        {Read: adminUp},
		Usage:        {Read: all},
		// Four-eyes: any editor may approve (never the author: the service's rule).
		ChangeRequest: {Read: all, Write: editorUp},
		Schedule:      {Read: all, Write: editorUp},
		ReleasePlan:   {Read: all, Write: editorUp},
		Webhook:       {Read: adminUp, Write: adminUp},
	}
	for _, kind := range Kinds {
		for _, action := range Actions {
			for _, role := range append(all, none) {
				allowed := false
				for _, r := range want[kind][action] {
					allowed = allowed || r == role
				}
				if got := Allows(role, kind, action); got != allowed {
					t.Errorf("Allows(%s, %s, %s) = %v, want %v", role, kind, action, got, allowed)
				}
			}
		}
	}
}

func binding(role adminv1.Role, project, env string) *adminv1.RoleBinding {
	return &adminv1.RoleBinding{MemberId: "m", Role: role, Scope: &adminv1.Scope{Project: project, Environment: env}}
}

func TestRoleAtMostSpecificGrantWins(t *testing.T) {
	t.Parallel()
	bs := []*adminv1.RoleBinding{
		binding(admin, "", ""),
		binding(viewer, "web", "production"),
		binding(editor, "api", ""),
		binding(owner, "api", "staging"),
	}
	tests := []struct {
		name  string
		scope Scope
		want  adminv1.Role
	}{
		{"org-level resource uses the org grant", Scope{Org: "a"}, admin},
		{"project without its own grant falls back to the org grant", Scope{Org: "a", Project: "web"}, admin},
		{"environment grant downgrades even an admin", Scope{Org: "a", Project: "web", Environment: "production"}, viewer},
		{"other environment of the project uses the org grant", Scope{Org: "a", Project: "web", Environment: "staging"}, admin},
		{"project grant beats the org grant", Scope{Org: "a", Project: "api"}, editor},
		{"project grant covers its environments", Scope{Org: "a", Project: "api", Environment: "production"}, editor},
		{"environment grant beats the project grant", Scope{Org: "a", Project: "api", Environment: "staging"}, owner},
	}
	for _, tt := range tests {
		if got := RoleAt(bs, tt.scope); got != tt.want {
			t.Errorf("%s: RoleAt(%+v) = %s, want %s", tt.name, tt.scope, got, tt.want)
		}
	}
	if got := RoleAt([]*adminv1.RoleBinding{binding(editor, "web", "")}, Scope{Org: "a"}); got != none {
		t.Errorf("a project grant must not cover the organization, got %s", got)
	}
}

func TestCheckRefusesOtherOrganizations(t *testing.T) {
	t.Parallel()
	p := &actor.Principal{Org: "a", Member: &adminv1.Member{Id: "m"}, Bindings: []*adminv1.RoleBinding{binding(owner, "", "")}}
	if err := Check(p, Scope{Org: "a", Project: "web"}, Flag, Write); err != nil {
		t.Fatalf("owner of a on a: %v", err)
	}
	if err := Check(p, Scope{Org: "b", Project: "web"}, Flag, Read); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("owner of a on b: got %v, want NotFound", err)
	}
	v := &actor.Principal{Org: "a", Member: &adminv1.Member{Id: "v"}, Bindings: []*adminv1.RoleBinding{binding(viewer, "", "")}}
	if err := Check(v, Scope{Org: "a", Project: "web"}, Flag, Write); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("viewer writing: got %v, want PermissionDenied", err)
	}
	if err := Check(nil, Scope{Org: "a"}, Flag, Read); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("nobody: got %v, want Unauthenticated", err)
	}
}

// TestTableLevelsMatchRequests checks each rule against its request message: the
// fields its level reads exist and are strings.
func TestTableLevelsMatchRequests(t *testing.T) {
	t.Parallel()
	for method, rule := range Table {
		parts := strings.Split(strings.TrimPrefix(method, "/"), "/")
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(parts[0]))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(parts[1]))
		if md == nil {
			t.Fatalf("%s: no such method", method)
		}
		if rule.ScopeOf != nil {
			continue
		}
		in := md.Input()
		need := map[Level][]string{LevelOrg: {"org"}, LevelProject: {"org", "project"}, LevelEnvironment: {"org", "project", "environment"}}[rule.Level]
		for _, f := range need {
			fd := in.Fields().ByName(protoreflect.Name(f))
			if fd == nil || fd.Kind() != protoreflect.StringKind {
				t.Errorf("%s: level %d needs string field %q in %s", method, rule.Level, f, in.FullName())
			}
		}
		if rule.Level == LevelCaller && in.Fields().ByName("org") != nil {
			t.Errorf("%s: has an org field but reads the caller's", method)
		}
	}
}

func TestGrantingOwnerNeedsOwner(t *testing.T) {
	t.Parallel()
	rule, ok := Lookup(adminv1.MemberService_GrantRole_FullMethodName)
	if !ok {
		t.Fatal("GrantRole missing from the table")
	}
	req := &adminv1.GrantRoleRequest{Org: "a", Binding: &adminv1.RoleBinding{Role: owner, Scope: &adminv1.Scope{Project: "web"}}}
	if got := rule.ActionFor(req); got != ManageOwners {
		t.Fatalf("action = %s, want %s", got, ManageOwners)
	}
	if got := rule.Scope(req, "x"); got != (Scope{Org: "a", Project: "web"}) {
		t.Fatalf("scope = %+v", got)
	}
	adm := &actor.Principal{Org: "a", Member: &adminv1.Member{Id: "m"}, Bindings: []*adminv1.RoleBinding{binding(admin, "", "")}}
	if err := Check(adm, rule.Scope(req, "a"), rule.Kind, rule.ActionFor(req)); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("admin granting owner: %v", err)
	}
	req.Binding.Role = editor
	if err := Check(adm, rule.Scope(req, "a"), rule.Kind, rule.ActionFor(req)); err != nil {
		t.Fatalf("admin granting editor: %v", err)
	}
}
