package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// The bypass tests play issue 11's attacker: one account of each role against a
// production that requires approvals and forbids emergency off, over REST and
// gRPC. Each path must end in a change request or a refusal, and production must
// still serve what it served before (its manifest content is unchanged).

const (
	colorFlag = "/v1/orgs/acme/projects/web/flags/color"
	prodEnv   = "/v1/orgs/acme/projects/web/environments/production"
)

var prodRef = store.EnvRef{Org: "acme", Project: "web", Environment: "production"}

// attack is the fixture of a bypass test: production serves variant "b" (blue)
// of string flag "color" and requires one approval without emergency off; admin
// and editor are org-wide members with their own tokens.
type attack struct {
	*cp
	admin, admin2, editor string // tokens (all minted by the owner)
	adminID, editorID     string
	served                *manifestv1.Manifest
}

// newAttack builds the fixture on a fresh SQLite control plane.
func newAttack(t *testing.T) *attack {
	t.Helper()
	c := start(t, ratelimit.Config{})
	c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "web", "name": "Web"}}).want(t, 200)
	c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "color", "type": "FLAG_TYPE_STRING",
		"variants": []any{map[string]any{"key": "a", "value": "red"}, map[string]any{"key": "b", "value": "blue"}}}}).want(t, 200)
	c.call("PUT", prodEnv+"/flags/color", c.owner, map[string]any{"config": map[string]any{"on": true, "offVariant": "a",
		"defaultServe": map[string]any{"variant": "b"}}, "revision": 1}).want(t, 200)
	e := c.call("GET", prodEnv, c.owner, nil).want(t, 200)
	c.call("PATCH", prodEnv, c.owner, map[string]any{"settings": map[string]any{"approvalsRequired": true, "requiredApprovals": 1,
		"emergencyOffAllowed": false}, "revision": e.get("environment", "revision")}).want(t, 200)
	a := &attack{cp: c}
	a.adminID, a.admin = c.member(c.owner, "acme", "adm@acme.test", adminv1.Role_ROLE_ADMIN, nil)
	a.editorID, a.editor = c.member(c.owner, "acme", "editor@acme.test", adminv1.Role_ROLE_EDITOR, nil)
	_, a.admin2 = c.member(c.owner, "acme", "admin2@acme.test", adminv1.Role_ROLE_ADMIN, nil)
	a.served = a.production(t)
	return a
}

// production is what production serves: its manifest content as the publisher
// would sign it now.
func (a *attack) production(t *testing.T) *manifestv1.Manifest {
	t.Helper()
	m, err := a.st.EnvironmentManifest(context.Background(), prodRef, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &manifestv1.Manifest{Flags: m.GetFlags(), Segments: m.GetSegments()}
}

// stillServesOld fails unless production serves exactly what it did at the start
// and the color flag still evaluates to "blue".
func (a *attack) stillServesOld(t *testing.T) {
	t.Helper()
	now := a.production(t)
	if !proto.Equal(now, a.served) {
		t.Fatalf("production serves something else:\nbefore %v\nnow    %v", a.served, now)
	}
	for _, f := range now.GetFlags() {
		if f.GetKey() == "color" {
			for _, v := range f.GetVariants() {
				if v.GetKey() == f.GetConfig().GetDefaultServe().GetVariant() && v.GetValue().GetStringValue() == "blue" && f.GetConfig().GetOn() {
					return
				}
			}
		}
	}
	t.Fatalf("production no longer serves blue: %v", now)
}

// grpcCode returns the gRPC status code of err.
func grpcCode(err error) codes.Code { return status.Code(err) }

// wantGRPC fails unless err has code want and (when set) mentions hint.
func wantGRPC(t *testing.T, err error, want codes.Code, hint string) {
	t.Helper()
	if grpcCode(err) != want || !strings.Contains(fmt.Sprint(err), hint) {
		t.Fatalf("got %v, want %s mentioning %q", err, want, hint)
	}
}

// wantRefused fails unless r is a 400 FAILED_PRECONDITION mentioning hint.
func wantRefused(t *testing.T, r resp, hint string) {
	t.Helper()
	if r.status != 400 || !strings.Contains(r.raw, hint) {
		t.Fatalf("status %d, want 400 mentioning %q: %s", r.status, hint, r.raw)
	}
}

func colorDef(b string, extra ...*manifestv1.Variant) *adminv1.Flag {
	return &adminv1.Flag{Variants: append([]*manifestv1.Variant{
		{Key: "a", Value: structpb.NewStringValue("red")}, {Key: "b", Value: structpb.NewStringValue(b)}}, extra...)}
}

// Path 1: a definition edit that changes a served value (or removes or renames a
// served variant, or client visibility) is refused; the same edit that only adds
// a variant goes through. A segment used by the flag becomes a change request.
func TestBypassFlagDefinitionEdit(t *testing.T) {
	t.Parallel()
	t.Run("rest", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		for name, vars := range map[string][]any{
			"value of b":  {map[string]any{"key": "a", "value": "red"}, map[string]any{"key": "b", "value": "PWNED"}},
			"remove b":    {map[string]any{"key": "a", "value": "red"}},
			"rename b->c": {map[string]any{"key": "a", "value": "red"}, map[string]any{"key": "c", "value": "blue"}},
		} {
			r := a.call("PATCH", colorFlag, a.editor, map[string]any{"definition": map[string]any{"variants": vars}, "revision": 1})
			if r.status != 400 || !strings.Contains(r.raw, `environment \"production\" requires approvals`) || !strings.Contains(r.raw, "change request") {
				t.Fatalf("%s: %d %s", name, r.status, r.raw)
			}
		}
		wantRefused(t, a.call("PATCH", colorFlag, a.admin, map[string]any{"definition": map[string]any{"clientVisible": true}, "revision": 1}), "requires approvals")
		a.stillServesOld(t)
		// Adding a variant changes nothing production serves: allowed.
		a.call("PATCH", colorFlag, a.editor, map[string]any{"definition": map[string]any{"description": "colours", "variants": []any{
			map[string]any{"key": "a", "value": "red"}, map[string]any{"key": "b", "value": "blue"}, map[string]any{"key": "c", "value": "PWNED"}}},
			"revision": 1}).want(t, 200)
	})
	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		fs := adminv1.NewFlagServiceClient(a.conn)
		_, err := fs.UpdateFlag(as(a.editor), &adminv1.UpdateFlagRequest{Org: "acme", Project: "web", Flag: "color", Definition: colorDef("PWNED"), Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, `environment "production" requires approvals`)
		_, err = fs.UpdateFlag(as(a.admin), &adminv1.UpdateFlagRequest{Org: "acme", Project: "web", Flag: "color",
			Definition: &adminv1.Flag{Variants: colorDef("blue").GetVariants()[:1]}, Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, "requires approvals")
		// The segment class: a segment of production changes by change request only.
		ss := adminv1.NewSegmentServiceClient(a.conn)
		sg, err := ss.CreateSegment(as(a.editor), &adminv1.CreateSegmentRequest{Org: "acme", Project: "web", Environment: "production",
			Segment: &manifestv1.Segment{Key: "beta", Included: []string{"u1"}}})
		if err != nil {
			t.Fatalf("a segment nothing uses serves nothing: %v", err)
		}
		a.served = a.production(t)
		su, err := ss.UpdateSegment(as(a.editor), &adminv1.UpdateSegmentRequest{Org: "acme", Project: "web", Environment: "production", Segment: "beta",
			Definition: &manifestv1.Segment{Included: []string{"u1", "attacker"}}, Revision: sg.GetSegment().GetRevision()})
		if err != nil || su.GetChangeRequest() == nil || su.GetSegment() != nil {
			t.Fatalf("a segment update is a change request: %v %v", su, err)
		}
		a.stillServesOld(t)
		if _, err := fs.UpdateFlag(as(a.editor), &adminv1.UpdateFlagRequest{Org: "acme", Project: "web", Flag: "color",
			Definition: colorDef("blue", &manifestv1.Variant{Key: "c", Value: structpb.NewStringValue("green")}), Revision: 1}); err != nil {
			t.Fatalf("adding a variant: %v", err)
		}
	})
}

// Path 2: a token an admin mints for another member never approves or applies
// the admin's change request, nor does the admin approve a request written with
// it; a member added, or raised to editor, after a request was opened cannot
// approve it.
func TestBypassTokenMintedForAnotherMember(t *testing.T) {
	t.Parallel()
	t.Run("rest", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		tok := a.call("POST", "/v1/orgs/acme/api-tokens", a.admin, map[string]any{"name": "for editor", "memberId": a.editorID}).want(t, 200)
		if tok.get("token", "issuerId") != a.adminID {
			t.Fatalf("the token records its issuer: %s", tok.raw)
		}
		minted, _ := tok.get("secret").(string)
		cr := a.call("PUT", prodEnv+"/flags/color", a.admin, map[string]any{"config": map[string]any{"on": true, "offVariant": "a",
			"defaultServe": map[string]any{"variant": "a"}}, "revision": 2}).want(t, 200)
		id, _ := cr.get("changeRequest", "id").(string)
		digest, _ := cr.get("changeRequest", "contentDigest").(string)
		r := a.call("POST", prodEnv+"/change-requests/"+id+":approve", minted, map[string]any{"contentDigest": digest})
		if r.status != 403 || !strings.Contains(r.raw, "issued by the author") {
			t.Fatalf("approving with a token the author minted: %d %s", r.status, r.raw)
		}
		a.call("POST", prodEnv+"/change-requests/"+id+":apply", minted, map[string]any{}).want(t, 403)
		// A member who joins after the request was opened cannot approve it.
		_, late := a.member(a.owner, "acme", "late@acme.test", adminv1.Role_ROLE_EDITOR, nil)
		r = a.call("POST", prodEnv+"/change-requests/"+id+":approve", late, map[string]any{"contentDigest": digest})
		if r.status != 403 || !strings.Contains(r.raw, "after this change request was opened") {
			t.Fatalf("late member approving: %d %s", r.status, r.raw)
		}
		a.stillServesOld(t)
		// The editor's own token approves: a second person.
		a.call("POST", prodEnv+"/change-requests/"+id+":approve", a.editor, map[string]any{"contentDigest": digest}).want(t, 200)
		a.call("POST", prodEnv+"/change-requests/"+id+":apply", a.admin, map[string]any{}).want(t, 200)
	})
	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		ms := adminv1.NewMemberServiceClient(a.conn)
		viewer, err := ms.CreateMember(as(a.admin), &adminv1.CreateMemberRequest{Org: "acme", Member: &adminv1.Member{Email: "viewer@acme.test"}, Role: adminv1.Role_ROLE_VIEWER})
		if err != nil {
			t.Fatal(err)
		}
		ts := adminv1.NewApiTokenServiceClient(a.conn)
		vt, err := ts.CreateApiToken(as(a.owner), &adminv1.CreateApiTokenRequest{Org: "acme", Name: "viewer", MemberId: viewer.GetMember().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		minted, err := ts.CreateApiToken(as(a.admin), &adminv1.CreateApiTokenRequest{Org: "acme", Name: "for editor", MemberId: a.editorID})
		if err != nil {
			t.Fatal(err)
		}
		// The admin writes the request AS the editor, then approves it as themselves.
		fs := adminv1.NewFlagServiceClient(a.conn)
		up, err := fs.UpdateFlagConfig(as(minted.GetSecret()), &adminv1.UpdateFlagConfigRequest{Org: "acme", Project: "web", Environment: "production",
			Flag: "color", Revision: 2, Config: &manifestv1.FlagConfig{On: true, OffVariant: "a", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "a"}}}})
		if err != nil {
			t.Fatal(err)
		}
		cr := up.GetChangeRequest()
		if cr.GetAuthorIssuerId() != a.adminID {
			t.Fatalf("the request records who minted its author's token: %v", cr)
		}
		crs := adminv1.NewChangeRequestServiceClient(a.conn)
		approve := func(tok string) error {
			_, err := crs.ApproveChangeRequest(as(tok), &adminv1.ApproveChangeRequestRequest{Org: "acme", Project: "web", Environment: "production",
				Id: cr.GetId(), ContentDigest: cr.GetContentDigest()})
			return err
		}
		wantGRPC(t, approve(a.admin), codes.PermissionDenied, "minted the API token")
		// Raised to editor after the request was opened: cannot approve it.
		if _, err := ms.GrantRole(as(a.admin), &adminv1.GrantRoleRequest{Org: "acme", Binding: &adminv1.RoleBinding{
			MemberId: viewer.GetMember().GetId(), Role: adminv1.Role_ROLE_EDITOR, Scope: &adminv1.Scope{}}}); err != nil {
			t.Fatal(err)
		}
		wantGRPC(t, approve(vt.GetSecret()), codes.PermissionDenied, "after this change request was opened")
		_, err = crs.ApplyChangeRequest(as(a.admin), &adminv1.ApplyChangeRequestRequest{Org: "acme", Project: "web", Environment: "production", Id: cr.GetId()})
		wantGRPC(t, err, codes.FailedPrecondition, "0 of 1 required approvals")
		a.stillServesOld(t)
	})
}

// Path 3: a schedule made while approvals were off fails when approvals turn on,
// and never runs.
func TestBypassScheduleMadeBeforeApprovals(t *testing.T) {
	t.Parallel()
	for _, api := range []string{"rest", "grpc"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			a := newAttack(t)
			e := a.call("GET", prodEnv, a.owner, nil).want(t, 200)
			// An admin turns approvals off with another admin's approval (the only
			// way), the editor schedules a change, approvals come back on.
			off := a.call("PATCH", prodEnv, a.admin, map[string]any{"settings": map[string]any{"approvalsRequired": false}, "revision": e.get("environment", "revision")}).want(t, 200)
			id, _ := off.get("changeRequest", "id").(string)
			digest, _ := off.get("changeRequest", "contentDigest").(string)
			a.call("POST", prodEnv+"/change-requests/"+id+":approve", a.admin2, map[string]any{"contentDigest": digest}).want(t, 200)
			a.call("POST", prodEnv+"/change-requests/"+id+":apply", a.admin, map[string]any{}).want(t, 200)
			run := time.Now().Add(700 * time.Millisecond)
			var schedID string
			if api == "rest" {
				s := a.call("POST", prodEnv+"/scheduled-changes", a.editor, map[string]any{"flag": "color", "action": "SCHEDULED_ACTION_SET_CONFIG",
					"config": map[string]any{"on": true, "offVariant": "a", "defaultServe": map[string]any{"variant": "a"}}, "baseRevision": 2,
					"runTime": run.UTC().Format(time.RFC3339Nano)}).want(t, 200)
				schedID, _ = s.get("scheduledChange", "id").(string)
			} else {
				s, err := adminv1.NewScheduleServiceClient(a.conn).CreateScheduledChange(as(a.editor), &adminv1.CreateScheduledChangeRequest{
					Org: "acme", Project: "web", Environment: "production", Flag: "color", Action: adminv1.ScheduledAction_SCHEDULED_ACTION_SET_CONFIG,
					Config:       &manifestv1.FlagConfig{On: true, OffVariant: "a", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "a"}}},
					BaseRevision: 2, RunTime: timestamppb.New(run)})
				if err != nil {
					t.Fatal(err)
				}
				schedID = s.GetScheduledChange().GetId()
			}
			e = a.call("GET", prodEnv, a.owner, nil).want(t, 200)
			a.call("PATCH", prodEnv, a.admin, map[string]any{"settings": map[string]any{"approvalsRequired": true}, "revision": e.get("environment", "revision")}).want(t, 200)
			time.Sleep(time.Until(run) + 1500*time.Millisecond) // past its time, and a runner poll
			s := a.call("GET", prodEnv+"/scheduled-changes/"+schedID, a.owner, nil).want(t, 200)
			if s.get("scheduledChange", "state") != "SCHEDULED_CHANGE_STATE_FAILED" || !strings.Contains(s.raw, "requires approvals") {
				t.Fatalf("the unapproved schedule must fail: %s", s.raw)
			}
			a.stillServesOld(t)
		})
	}
}

// Path 4: kill honours emergency_off_allowed=false: refused as a whole, nothing
// turned off anywhere.
func TestBypassKillWhereEmergencyOffIsForbidden(t *testing.T) {
	t.Parallel()
	t.Run("rest", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		wantRefused(t, a.call("POST", colorFlag+":kill", a.owner, map[string]any{"reason": "incident"}), "does not allow emergency off")
		wantRefused(t, a.call("POST", prodEnv+"/flags/color:emergencyOff", a.owner, map[string]any{"reason": "incident"}), "does not allow emergency off")
		a.stillServesOld(t)
	})
	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		_, err := adminv1.NewFlagServiceClient(a.conn).KillFlag(as(a.editor), &adminv1.KillFlagRequest{Org: "acme", Project: "web", Flag: "color", Reason: "incident"})
		wantGRPC(t, err, codes.FailedPrecondition, "nothing was killed")
		a.stillServesOld(t)
	})
}

// Path 5: archive, delete and restore of a flag production serves are refused;
// archiving a prerequisite of another flag is refused like deleting it.
func TestBypassArchiveDeleteRestore(t *testing.T) {
	t.Parallel()
	t.Run("rest", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		wantRefused(t, a.call("POST", colorFlag+":archive", a.editor, map[string]any{"revision": 1}), `archiving flag \"color\"`)
		wantRefused(t, a.call("DELETE", colorFlag+"?revision=1", a.admin, nil), `deleting flag \"color\"`)
		// Restore: a flag archived while production was unprotected stays archived.
		a.call("POST", "/v1/orgs/acme/projects/web/flags", a.owner, map[string]any{"flag": map[string]any{"key": "old", "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 200)
		a.served = a.production(t)
		e := a.call("GET", prodEnv, a.owner, nil).want(t, 200)
		off := a.call("PATCH", prodEnv, a.admin, map[string]any{"settings": map[string]any{"approvalsRequired": false}, "revision": e.get("environment", "revision")}).want(t, 200)
		id, _ := off.get("changeRequest", "id").(string)
		digest, _ := off.get("changeRequest", "contentDigest").(string)
		a.call("POST", prodEnv+"/change-requests/"+id+":approve", a.admin2, map[string]any{"contentDigest": digest}).want(t, 200)
		a.call("POST", prodEnv+"/change-requests/"+id+":apply", a.admin, map[string]any{}).want(t, 200)
		a.call("POST", "/v1/orgs/acme/projects/web/flags/old:archive", a.editor, map[string]any{"revision": 1}).want(t, 200)
		e = a.call("GET", prodEnv, a.owner, nil).want(t, 200)
		a.call("PATCH", prodEnv, a.admin, map[string]any{"settings": map[string]any{"approvalsRequired": true}, "revision": e.get("environment", "revision")}).want(t, 200)
		a.served = a.production(t)
		wantRefused(t, a.call("POST", "/v1/orgs/acme/projects/web/flags/old:restore", a.editor, map[string]any{"revision": 2}), `restoring flag \"old\"`)
		a.stillServesOld(t)
	})
	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		fs := adminv1.NewFlagServiceClient(a.conn)
		_, err := fs.ArchiveFlag(as(a.admin), &adminv1.ArchiveFlagRequest{Org: "acme", Project: "web", Flag: "color", Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, `archiving flag "color"`)
		_, err = fs.DeleteFlag(as(a.owner), &adminv1.DeleteFlagRequest{Org: "acme", Project: "web", Flag: "color", Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, `deleting flag "color"`)
		// Prerequisites, in an unprotected project: archiving one is refused like deleting it.
		ps := adminv1.NewProjectServiceClient(a.conn)
		if _, err := ps.CreateProject(as(a.owner), &adminv1.CreateProjectRequest{Org: "acme", Project: &adminv1.Project{Key: "api"}}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"base", "dep"} {
			if _, err := fs.CreateFlag(as(a.owner), &adminv1.CreateFlagRequest{Org: "acme", Project: "api", Flag: &adminv1.Flag{Key: k, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fs.UpdateFlagConfig(as(a.owner), &adminv1.UpdateFlagConfigRequest{Org: "acme", Project: "api", Environment: "staging", Flag: "dep", Revision: 1,
			Config: &manifestv1.FlagConfig{On: true, OffVariant: "off", Prerequisites: []*manifestv1.Prerequisite{{FlagKey: "base", Variants: []string{"on"}}},
				DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}}); err != nil {
			t.Fatal(err)
		}
		_, err = fs.ArchiveFlag(as(a.owner), &adminv1.ArchiveFlagRequest{Org: "acme", Project: "api", Flag: "base", Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, `prerequisite of flag "dep" in environment "staging"`)
		_, err = fs.DeleteFlag(as(a.owner), &adminv1.DeleteFlagRequest{Org: "acme", Project: "api", Flag: "base", Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, "prerequisite")
		// Deleting the protected environment or its project is refused too.
		_, err = adminv1.NewEnvironmentServiceClient(a.conn).DeleteEnvironment(as(a.owner), &adminv1.DeleteEnvironmentRequest{Org: "acme", Project: "web", Environment: "production", Revision: 2})
		wantGRPC(t, err, codes.FailedPrecondition, "requires approvals")
		_, err = ps.DeleteProject(as(a.owner), &adminv1.DeleteProjectRequest{Org: "acme", Project: "web", Revision: 1})
		wantGRPC(t, err, codes.FailedPrecondition, "requires approvals")
		a.stillServesOld(t)
	})
}

// Path 6: weakening production's settings is a change request only another admin
// may approve; stricter settings apply at once.
func TestBypassWeakeningEnvironmentSettings(t *testing.T) {
	t.Parallel()
	t.Run("rest", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		e := a.call("GET", prodEnv, a.owner, nil).want(t, 200)
		rev := e.get("environment", "revision")
		for name, settings := range map[string]map[string]any{
			"approvals off":         {"approvalsRequired": false},
			"emergency off allowed": {"emergencyOffAllowed": true},
		} {
			r := a.call("PATCH", prodEnv, a.admin, map[string]any{"settings": settings, "revision": rev}).want(t, 200)
			if r.get("environment") != nil || r.get("changeRequest", "state") != "CHANGE_REQUEST_STATE_OPEN" {
				t.Fatalf("%s: %s", name, r.raw)
			}
			id, _ := r.get("changeRequest", "id").(string)
			digest, _ := r.get("changeRequest", "contentDigest").(string)
			a.call("POST", prodEnv+"/change-requests/"+id+":approve", a.admin, map[string]any{"contentDigest": digest}).want(t, 403)
			if r := a.call("POST", prodEnv+"/change-requests/"+id+":approve", a.editor, map[string]any{"contentDigest": digest}); r.status != 403 || !strings.Contains(r.raw, "only another admin") {
				t.Fatalf("%s: an editor approving: %d %s", name, r.status, r.raw)
			}
			a.call("POST", prodEnv+"/change-requests/"+id+":apply", a.admin, map[string]any{}).want(t, 400)
			a.call("POST", prodEnv+"/change-requests/"+id+":withdraw", a.admin, map[string]any{}).want(t, 200)
		}
		if g := a.call("GET", prodEnv, a.owner, nil).want(t, 200); g.get("environment", "settings", "approvalsRequired") != true || g.get("environment", "settings", "emergencyOffAllowed") != false {
			t.Fatalf("settings unchanged: %s", g.raw)
		}
		// Still protected: the direct PUT is a change request.
		a.call("PUT", prodEnv+"/flags/color", a.admin, map[string]any{"config": map[string]any{"on": false, "offVariant": "a"}, "revision": 2}).want(t, 200)
		a.stillServesOld(t)
		// Stricter settings apply at once.
		a.call("PATCH", prodEnv, a.admin, map[string]any{"settings": map[string]any{"requiredApprovals": 2}, "revision": rev}).want(t, 200)
	})
	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		a := newAttack(t)
		es := adminv1.NewEnvironmentServiceClient(a.conn)
		e, err := es.GetEnvironment(as(a.owner), &adminv1.GetEnvironmentRequest{Org: "acme", Project: "web", Environment: "production"})
		if err != nil {
			t.Fatal(err)
		}
		up, err := es.UpdateEnvironment(as(a.admin), &adminv1.UpdateEnvironmentRequest{Org: "acme", Project: "web", Environment: "production",
			Settings: &adminv1.EnvironmentSettings{RequiredApprovals: proto.Int32(2)}, Revision: e.GetEnvironment().GetRevision()})
		if err != nil || up.GetEnvironment().GetSettings().GetRequiredApprovals() != 2 {
			t.Fatalf("more approvals apply at once: %v %v", up, err)
		}
		low, err := es.UpdateEnvironment(as(a.admin), &adminv1.UpdateEnvironmentRequest{Org: "acme", Project: "web", Environment: "production",
			Settings: &adminv1.EnvironmentSettings{RequiredApprovals: proto.Int32(1)}, Revision: up.GetEnvironment().GetRevision()})
		if err != nil || low.GetChangeRequest() == nil || low.GetEnvironment() != nil {
			t.Fatalf("fewer approvals is a change request: %v %v", low, err)
		}
		cr := low.GetChangeRequest()
		if cr.GetRequiredApprovals() != 2 {
			t.Fatalf("the request needs the current number of approvals: %v", cr)
		}
		crs := adminv1.NewChangeRequestServiceClient(a.conn)
		_, err = crs.ApproveChangeRequest(as(a.editor), &adminv1.ApproveChangeRequestRequest{Org: "acme", Project: "web", Environment: "production", Id: cr.GetId(), ContentDigest: cr.GetContentDigest()})
		wantGRPC(t, err, codes.PermissionDenied, "only another admin")
		if _, err := crs.ApproveChangeRequest(as(a.admin2), &adminv1.ApproveChangeRequestRequest{Org: "acme", Project: "web", Environment: "production", Id: cr.GetId(), ContentDigest: cr.GetContentDigest()}); err != nil {
			t.Fatal(err)
		}
		_, err = crs.ApplyChangeRequest(as(a.admin), &adminv1.ApplyChangeRequestRequest{Org: "acme", Project: "web", Environment: "production", Id: cr.GetId()})
		wantGRPC(t, err, codes.FailedPrecondition, "1 of 2 required approvals")
		a.stillServesOld(t)
		_, second := a.member(a.owner, "acme", "admin3@acme.test", adminv1.Role_ROLE_ADMIN, nil)
		_, err = crs.ApproveChangeRequest(as(second), &adminv1.ApproveChangeRequestRequest{Org: "acme", Project: "web", Environment: "production", Id: cr.GetId(), ContentDigest: cr.GetContentDigest()})
		wantGRPC(t, err, codes.PermissionDenied, "after this change request was opened")
	})
}
