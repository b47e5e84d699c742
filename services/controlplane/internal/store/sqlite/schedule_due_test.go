package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

// TestUnapprovedScheduleFailsWhenDue: a schedule made without a change request
// is checked again when it is due. Settings that became protected without going
// through UpdateEnvironment (a restored backup, a manual fix) still stop it.
func TestUnapprovedScheduleFailsWhenDue(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "flagforge.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	m := store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com"}
	ctx := t.Context()
	if _, err := s.CreateOrg(ctx, m, &adminv1.Organization{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateProject(ctx, m, "acme", &adminv1.Project{Key: "web"}); err != nil {
		t.Fatal(err)
	}
	pref := store.ProjectRef{Org: "acme", Project: "web"}
	ref := store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	if _, err := s.CreateFlag(ctx, m, pref, &adminv1.Flag{Key: "a", Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN}, nil, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	sc, err := s.CreateScheduledChange(ctx, m, ref, &adminv1.ScheduledChange{Flag: "a",
		Action: adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON, RunTime: timestamppb.New(now)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := proto.Marshal(&adminv1.EnvironmentSettings{ApprovalsRequired: proto.Bool(true), RequiredApprovals: proto.Int32(1), EmergencyOffAllowed: proto.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.Exec(`UPDATE environments SET settings = ? WHERE org = 'acme' AND project = 'web' AND key = 'production'`, settings); err != nil {
		t.Fatal(err)
	}
	out, err := s.RunDueScheduledChange(ctx, m, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.GetId() != sc.GetId() || out.GetState() != adminv1.ScheduledChangeState_SCHEDULED_CHANGE_STATE_FAILED || !strings.Contains(out.GetFailureReason(), "requires approvals") {
		t.Fatalf("due schedule in a protected environment: %v", out)
	}
	if c, err := s.GetFlagConfig(ctx, ref, "a"); err != nil || c.GetConfig().GetOn() {
		t.Fatalf("the flag changed: %v %v", c, err)
	}
}
