package app_test

import (
	"fmt"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// wantCode fails unless err has code.
func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// TestLifecycle walks every service's read, update and delete calls over gRPC.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		ctx := as(c.owner)
		orgs := adminv1.NewOrganizationServiceClient(c.conn)
		projects := adminv1.NewProjectServiceClient(c.conn)
		envs := adminv1.NewEnvironmentServiceClient(c.conn)
		flags := adminv1.NewFlagServiceClient(c.conn)
		members := adminv1.NewMemberServiceClient(c.conn)
		tokens := adminv1.NewApiTokenServiceClient(c.conn)
		keys := adminv1.NewSdkKeyServiceClient(c.conn)
		audit := adminv1.NewAuditServiceClient(c.conn)
		usage := adminv1.NewUsageServiceClient(c.conn)

		// Organizations: a caller lists only its own.
		l := must[*adminv1.ListOrganizationsResponse](t, "list orgs")(orgs.ListOrganizations(ctx, &adminv1.ListOrganizationsRequest{}))
		if len(l.GetOrganizations()) != 1 || l.GetOrganizations()[0].GetKey() != "acme" {
			t.Fatalf("orgs: %v", l)
		}
		o := must[*adminv1.UpdateOrganizationResponse](t, "update org")(orgs.UpdateOrganization(ctx, &adminv1.UpdateOrganizationRequest{Org: "acme", Name: "Acme Inc", Revision: 1}))
		if o.GetOrganization().GetName() != "Acme Inc" || o.GetOrganization().GetRevision() != 2 {
			t.Fatalf("org: %v", o)
		}
		created := must[*adminv1.CreateOrganizationResponse](t, "create org")(orgs.CreateOrganization(ctx, &adminv1.CreateOrganizationRequest{Organization: &adminv1.Organization{Key: "acme-labs", Name: "Labs"}}))
		if created.GetOrganization().GetKey() != "acme-labs" {
			t.Fatalf("created: %v", created)
		}
		// The caller's token belongs to acme: the new organization is another tenant.
		_, err := orgs.GetOrganization(ctx, &adminv1.GetOrganizationRequest{Org: "acme-labs"})
		wantCode(t, "get the new org with an acme token", err, codes.NotFound)

		// Projects and environments.
		must[*adminv1.CreateProjectResponse](t, "create project")(projects.CreateProject(ctx, &adminv1.CreateProjectRequest{Org: "acme", Project: &adminv1.Project{Key: "web"}}))
		p := must[*adminv1.UpdateProjectResponse](t, "update project")(projects.UpdateProject(ctx, &adminv1.UpdateProjectRequest{Org: "acme", Project: "web", Description: "shop", Revision: 1}))
		if p.GetProject().GetDescription() != "shop" || p.GetProject().GetName() != "web" {
			t.Fatalf("project: %v", p)
		}
		e := must[*adminv1.CreateEnvironmentResponse](t, "create env")(envs.CreateEnvironment(ctx, &adminv1.CreateEnvironmentRequest{Org: "acme", Project: "web", Environment: &adminv1.Environment{Key: "qa"}}))
		if !e.GetEnvironment().GetSettings().GetEmergencyOffAllowed() {
			t.Fatalf("new environments allow emergency off: %v", e)
		}
		ue := must[*adminv1.UpdateEnvironmentResponse](t, "update env")(envs.UpdateEnvironment(ctx, &adminv1.UpdateEnvironmentRequest{Org: "acme", Project: "web", Environment: "qa",
			Settings: &adminv1.EnvironmentSettings{ApprovalsRequired: proto.Bool(true), RequiredApprovals: proto.Int32(1)}, Revision: e.GetEnvironment().GetRevision()}))
		le := must[*adminv1.ListEnvironmentsResponse](t, "list envs")(envs.ListEnvironments(ctx, &adminv1.ListEnvironmentsRequest{Org: "acme", Project: "web"}))
		if len(le.GetEnvironments()) != 4 {
			t.Fatalf("environments: %v", le)
		}

		// Flags: definition updates keep key and type; archive, restore, delete.
		f := must[*adminv1.CreateFlagResponse](t, "create flag")(flags.CreateFlag(ctx, &adminv1.CreateFlagRequest{Org: "acme", Project: "web", Flag: &adminv1.Flag{Key: "banner", Type: manifestv1.FlagType_FLAG_TYPE_STRING,
			Variants: []*manifestv1.Variant{{Key: "a", Value: structpb.NewStringValue("A")}, {Key: "b", Value: structpb.NewStringValue("B")}}}}))
		qa := must[*adminv1.GetFlagConfigResponse](t, "flag config in qa")(flags.GetFlagConfig(ctx, &adminv1.GetFlagConfigRequest{Org: "acme", Project: "web", Environment: "qa", Flag: "banner"}))
		proposed := must[*adminv1.UpdateFlagConfigResponse](t, "update where approvals are required")(flags.UpdateFlagConfig(ctx, &adminv1.UpdateFlagConfigRequest{Org: "acme", Project: "web", Environment: "qa", Flag: "banner",
			Config: &manifestv1.FlagConfig{On: true, OffVariant: "a", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "b"}}}, Revision: qa.GetConfig().GetRevision()}))
		if proposed.GetConfig() != nil || proposed.GetChangeRequest().GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN {
			t.Fatalf("where approvals are required an update becomes a change request: %v", proposed)
		}
		_, err = flags.UpdateFlag(ctx, &adminv1.UpdateFlagRequest{Org: "acme", Project: "web", Flag: "banner", Definition: &adminv1.Flag{Type: manifestv1.FlagType_FLAG_TYPE_NUMBER}, Revision: 1})
		wantCode(t, "change type", err, codes.InvalidArgument)
		uf := must[*adminv1.UpdateFlagResponse](t, "update flag")(flags.UpdateFlag(ctx, &adminv1.UpdateFlagRequest{Org: "acme", Project: "web", Flag: "banner",
			Definition: &adminv1.Flag{Name: "Banner", Tags: []string{"ui"}, Variants: f.GetFlag().GetVariants()}, Revision: 1}))
		if uf.GetFlag().GetName() != "Banner" || uf.GetFlag().GetRevision() != 2 {
			t.Fatalf("updated flag: %v", uf)
		}
		lf := must[*adminv1.ListFlagsResponse](t, "list by tag")(flags.ListFlags(ctx, &adminv1.ListFlagsRequest{Org: "acme", Project: "web", Tag: "ui"}))
		if len(lf.GetFlags()) != 1 {
			t.Fatalf("flags tagged ui: %v", lf)
		}
		_, err = flags.ArchiveFlag(ctx, &adminv1.ArchiveFlagRequest{Org: "acme", Project: "web", Flag: "banner", Revision: 2})
		wantCode(t, "archive a flag a protected environment serves", err, codes.FailedPrecondition)
		// Lowering qa's protection is a change request: one admin proposes, another approves.
		var admins [2]string
		for i := range admins {
			am := must[*adminv1.CreateMemberResponse](t, "create admin")(members.CreateMember(ctx, &adminv1.CreateMemberRequest{Org: "acme",
				Member: &adminv1.Member{Email: fmt.Sprintf("ops%d@acme.test", i)}, Role: adminv1.Role_ROLE_ADMIN}))
			admins[i] = must[*adminv1.CreateApiTokenResponse](t, "admin token")(tokens.CreateApiToken(ctx, &adminv1.CreateApiTokenRequest{Org: "acme",
				Name: "ops", MemberId: am.GetMember().GetId()})).GetSecret()
		}
		low := must[*adminv1.UpdateEnvironmentResponse](t, "lower qa")(envs.UpdateEnvironment(as(admins[0]), &adminv1.UpdateEnvironmentRequest{Org: "acme", Project: "web", Environment: "qa",
			Settings: &adminv1.EnvironmentSettings{ApprovalsRequired: proto.Bool(false)}, Revision: ue.GetEnvironment().GetRevision()}))
		crs := adminv1.NewChangeRequestServiceClient(c.conn)
		must[*adminv1.ApproveChangeRequestResponse](t, "approve lowering")(crs.ApproveChangeRequest(as(admins[1]), &adminv1.ApproveChangeRequestRequest{Org: "acme", Project: "web", Environment: "qa",
			Id: low.GetChangeRequest().GetId(), ContentDigest: low.GetChangeRequest().GetContentDigest()}))
		must[*adminv1.ApplyChangeRequestResponse](t, "apply lowering")(crs.ApplyChangeRequest(as(admins[0]), &adminv1.ApplyChangeRequestRequest{Org: "acme", Project: "web", Environment: "qa",
			Id: low.GetChangeRequest().GetId()}))
		af := must[*adminv1.ArchiveFlagResponse](t, "archive")(flags.ArchiveFlag(ctx, &adminv1.ArchiveFlagRequest{Org: "acme", Project: "web", Flag: "banner", Revision: 2}))
		if !af.GetFlag().GetArchived() {
			t.Fatalf("archived: %v", af)
		}
		pc := must[*adminv1.GetFlagConfigResponse](t, "archived flag config")(flags.GetFlagConfig(ctx, &adminv1.GetFlagConfigRequest{Org: "acme", Project: "web", Environment: "production", Flag: "banner"}))
		_, err = flags.UpdateFlagConfig(ctx, &adminv1.UpdateFlagConfigRequest{Org: "acme", Project: "web", Environment: "production", Flag: "banner",
			Config: pc.GetConfig().GetConfig(), Revision: pc.GetConfig().GetRevision()})
		wantCode(t, "configure an archived flag", err, codes.FailedPrecondition)
		lf = must[*adminv1.ListFlagsResponse](t, "list")(flags.ListFlags(ctx, &adminv1.ListFlagsRequest{Org: "acme", Project: "web"}))
		if len(lf.GetFlags()) != 0 {
			t.Fatalf("archived flags are hidden by default: %v", lf)
		}
		rf := must[*adminv1.RestoreFlagResponse](t, "restore")(flags.RestoreFlag(ctx, &adminv1.RestoreFlagRequest{Org: "acme", Project: "web", Flag: "banner", Revision: 3}))
		must[*adminv1.DeleteFlagResponse](t, "delete flag")(flags.DeleteFlag(ctx, &adminv1.DeleteFlagRequest{Org: "acme", Project: "web", Flag: "banner", Revision: rf.GetFlag().GetRevision()}))
		_, err = flags.GetFlag(ctx, &adminv1.GetFlagRequest{Org: "acme", Project: "web", Flag: "banner"})
		wantCode(t, "deleted flag", err, codes.NotFound)
		must[*adminv1.ListStaleFlagsResponse](t, "stale flags")(flags.ListStaleFlags(ctx, &adminv1.ListStaleFlagsRequest{Org: "acme", Project: "web", Environment: "production"}))

		qaEnv := must[*adminv1.GetEnvironmentResponse](t, "get env")(envs.GetEnvironment(ctx, &adminv1.GetEnvironmentRequest{Org: "acme", Project: "web", Environment: "qa"}))
		must[*adminv1.DeleteEnvironmentResponse](t, "delete env")(envs.DeleteEnvironment(ctx, &adminv1.DeleteEnvironmentRequest{Org: "acme", Project: "web", Environment: "qa", Revision: qaEnv.GetEnvironment().GetRevision()}))

		// Members and roles.
		m := must[*adminv1.CreateMemberResponse](t, "create member")(members.CreateMember(ctx, &adminv1.CreateMemberRequest{Org: "acme", Member: &adminv1.Member{Email: "dev@acme.test", Name: "Dev"}, Role: adminv1.Role_ROLE_EDITOR}))
		_, err = members.CreateMember(ctx, &adminv1.CreateMemberRequest{Org: "acme", Member: &adminv1.Member{Email: "not-an-email"}})
		wantCode(t, "bad email", err, codes.InvalidArgument)
		um := must[*adminv1.UpdateMemberResponse](t, "update member")(members.UpdateMember(ctx, &adminv1.UpdateMemberRequest{Org: "acme", MemberId: m.GetMember().GetId(), OidcSubject: "https://idp|dev", Revision: m.GetMember().GetRevision()}))
		if um.GetMember().GetOidcSubject() != "https://idp|dev" || um.GetMember().GetName() != "Dev" {
			t.Fatalf("member: %v", um)
		}
		must[*adminv1.GrantRoleResponse](t, "grant")(members.GrantRole(ctx, &adminv1.GrantRoleRequest{Org: "acme", Binding: &adminv1.RoleBinding{MemberId: m.GetMember().GetId(), Role: adminv1.Role_ROLE_VIEWER, Scope: &adminv1.Scope{Project: "web", Environment: "production"}}}))
		_, err = members.GrantRole(ctx, &adminv1.GrantRoleRequest{Org: "acme", Binding: &adminv1.RoleBinding{MemberId: m.GetMember().GetId(), Role: adminv1.Role_ROLE_VIEWER, Scope: &adminv1.Scope{Environment: "production"}}})
		wantCode(t, "environment without project", err, codes.InvalidArgument)
		gm := must[*adminv1.GetMemberResponse](t, "get member")(members.GetMember(ctx, &adminv1.GetMemberRequest{Org: "acme", MemberId: m.GetMember().GetId()}))
		if len(gm.GetBindings()) != 2 {
			t.Fatalf("bindings: %v", gm.GetBindings())
		}
		must[*adminv1.RevokeRoleResponse](t, "revoke")(members.RevokeRole(ctx, &adminv1.RevokeRoleRequest{Org: "acme", MemberId: m.GetMember().GetId(), Scope: &adminv1.Scope{Project: "web", Environment: "production"}}))
		lb := must[*adminv1.ListRoleBindingsResponse](t, "list bindings")(members.ListRoleBindings(ctx, &adminv1.ListRoleBindingsRequest{Org: "acme", MemberId: m.GetMember().GetId()}))
		if len(lb.GetBindings()) != 1 {
			t.Fatalf("bindings after revoke: %v", lb)
		}

		// Tokens: an expired one is refused; listing never shows secrets.
		_, err = tokens.CreateApiToken(ctx, &adminv1.CreateApiTokenRequest{Org: "acme", Name: "old", ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))})
		wantCode(t, "token expiring in the past", err, codes.InvalidArgument)
		short := must[*adminv1.CreateApiTokenResponse](t, "token")(tokens.CreateApiToken(ctx, &adminv1.CreateApiTokenRequest{Org: "acme", Name: "short", MemberId: m.GetMember().GetId(), ExpireTime: timestamppb.New(time.Now().Add(1500 * time.Millisecond))}))
		must[*adminv1.ListProjectsResponse](t, "fresh token")(projects.ListProjects(as(short.GetSecret()), &adminv1.ListProjectsRequest{Org: "acme"}))
		time.Sleep(1600 * time.Millisecond)
		_, err = projects.ListProjects(as(short.GetSecret()), &adminv1.ListProjectsRequest{Org: "acme"})
		wantCode(t, "expired token", err, codes.Unauthenticated)
		lt := must[*adminv1.ListApiTokensResponse](t, "list tokens")(tokens.ListApiTokens(ctx, &adminv1.ListApiTokensRequest{Org: "acme"}))
		if len(lt.GetTokens()) < 2 {
			t.Fatalf("tokens: %v", lt)
		}
		must[*adminv1.DeleteMemberResponse](t, "delete member")(members.DeleteMember(ctx, &adminv1.DeleteMemberRequest{Org: "acme", MemberId: m.GetMember().GetId()}))

		// SDK keys.
		k := must[*adminv1.CreateSdkKeyResponse](t, "sdk key")(keys.CreateSdkKey(ctx, &adminv1.CreateSdkKeyRequest{Org: "acme", Project: "web", Environment: "production", Name: "browser", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT}))
		rk := must[*adminv1.RevokeSdkKeyResponse](t, "revoke sdk key")(keys.RevokeSdkKey(ctx, &adminv1.RevokeSdkKeyRequest{Org: "acme", Project: "web", Environment: "production", KeyId: k.GetKey().GetId()}))
		if rk.GetKey().GetRevokeTime() == nil {
			t.Fatalf("revoked key: %v", rk)
		}
		_, err = keys.RotateSdkKey(ctx, &adminv1.RotateSdkKeyRequest{Org: "acme", Project: "web", Environment: "production", KeyId: k.GetKey().GetId()})
		wantCode(t, "rotate a revoked key", err, codes.FailedPrecondition)

		// Audit and usage.
		la := must[*adminv1.ListAuditEntriesResponse](t, "audit")(audit.ListAuditEntries(ctx, &adminv1.ListAuditEntriesRequest{Org: "acme", PageSize: 2}))
		if len(la.GetEntries()) != 2 || la.GetNextPageToken() == "" {
			t.Fatalf("audit page: %v", la)
		}
		ga := must[*adminv1.GetAuditEntryResponse](t, "audit entry")(audit.GetAuditEntry(ctx, &adminv1.GetAuditEntryRequest{Org: "acme", Id: la.GetEntries()[0].GetId()}))
		if ga.GetEntry().GetHash() == "" || ga.GetEntry().GetActorName() != "admin@acme.test" {
			t.Fatalf("entry: %v", ga)
		}
		_, err = audit.ListAuditEntries(ctx, &adminv1.ListAuditEntriesRequest{Org: "acme", StartTime: timestamppb.Now(), EndTime: timestamppb.New(time.Now().Add(-time.Hour))})
		wantCode(t, "end before start", err, codes.InvalidArgument)
		must[*adminv1.GetFlagUsageResponse](t, "usage")(usage.GetFlagUsage(ctx, &adminv1.GetFlagUsageRequest{Org: "acme", Project: "web", Environment: "production", Flag: "x"}))

		// Deleting: a project, then the organization itself.
		must[*adminv1.DeleteProjectResponse](t, "delete project")(projects.DeleteProject(ctx, &adminv1.DeleteProjectRequest{Org: "acme", Project: "web", Revision: 2}))
		must[*adminv1.DeleteOrganizationResponse](t, "delete org")(orgs.DeleteOrganization(ctx, &adminv1.DeleteOrganizationRequest{Org: "acme", Revision: 2}))
		_, err = orgs.GetOrganization(ctx, &adminv1.GetOrganizationRequest{Org: "acme"})
		if c := status.Code(err); c != codes.Unauthenticated && c != codes.NotFound {
			t.Fatalf("after deleting the organization: %v", err)
		}
	})
}
