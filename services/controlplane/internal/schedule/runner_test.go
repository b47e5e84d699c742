package schedule_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/schedule"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

type govStore interface {
	store.Store
	store.Governance
}

var (
	meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com"}
	eref = store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	due  = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
)

// seed creates acme/web, flag "a" and n schedules of it due at due, alternating
// turn on and turn off, without base revision (each one applies).
func seed(t *testing.T, s govStore, n int) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.CreateOrg(ctx, meta, &adminv1.Organization{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateProject(ctx, meta, "acme", &adminv1.Project{Key: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFlag(ctx, meta, store.ProjectRef{Org: "acme", Project: "web"}, &adminv1.Flag{Key: "a", Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		action := adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_ON
		if i%2 == 1 {
			action = adminv1.ScheduledAction_SCHEDULED_ACTION_TURN_OFF
		}
		if _, err := s.CreateScheduledChange(ctx, meta, eref, &adminv1.ScheduledChange{Flag: "a", Action: action,
			RunTime: timestamppb.New(due.Add(time.Duration(i) * time.Millisecond))}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// race runs the runners' ticks concurrently, the clock at due + 1s, and checks
// that every schedule was applied exactly once.
func race(t *testing.T, check store.Store, runners []*schedule.Runner, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				ran, err := r.Tick(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, sc := range ran {
					seen[sc.GetId()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d schedules ran, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("schedule %s ran %d times", id, k)
		}
	}
	fc, err := check.GetFlagConfig(t.Context(), eref, "a")
	if err != nil {
		t.Fatal(err)
	}
	if fc.GetRevision() != int64(1+n) {
		t.Fatalf("flag configuration revision %d, want %d (one write per schedule)", fc.GetRevision(), 1+n)
	}
	es, _, err := check.ListAudit(t.Context(), "acme", store.AuditFilter{Action: "schedule.run"}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != n {
		t.Fatalf("%d schedule.run audit entries, want %d", len(es), n)
	}
}

func clock() time.Time { return due.Add(time.Second) }

// TestScheduleRunsExactlyOnceWithTwoControlPlanesOnPostgres: two runners, each
// with its own connection pool (two control-plane replicas) on one database,
// race over the same due schedules with an injected clock.
func TestScheduleRunsExactlyOnceWithTwoControlPlanesOnPostgres(t *testing.T) {
	t.Parallel()
	url := testpg.AppURL(t, testpg.New(t))
	var stores []*postgres.Store
	for range 2 {
		s, err := postgres.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	const n = 20
	seed(t, stores[0], n)
	runners := []*schedule.Runner{
		schedule.NewRunner(stores[0], schedule.Config{PollInterval: time.Second}, clock, nil, nil),
		schedule.NewRunner(stores[1], schedule.Config{PollInterval: time.Second}, clock, nil, nil),
	}
	race(t, stores[0], runners, n)
}

// TestScheduleRunsExactlyOnceWithTwoRunnersOnSQLite: the same race on the
// embedded store (two runners in one process share the single writer).
func TestScheduleRunsExactlyOnceWithTwoRunnersOnSQLite(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const n = 10
	seed(t, s, n)
	runners := []*schedule.Runner{
		schedule.NewRunner(s, schedule.Config{PollInterval: time.Second}, clock, nil, nil),
		schedule.NewRunner(s, schedule.Config{PollInterval: time.Second}, clock, nil, nil),
	}
	race(t, s, runners, n)
}

// TestScheduleDoesNotRunBeforeItsTime: with the clock before the due time the
// runner applies nothing; once the clock passes it, the schedule runs.
func TestScheduleDoesNotRunBeforeItsTime(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	seed(t, s, 1)
	now := due.Add(-time.Millisecond)
	var mu sync.Mutex
	r := schedule.NewRunner(s, schedule.Config{PollInterval: time.Second}, func() time.Time { mu.Lock(); defer mu.Unlock(); return now }, nil, nil)
	if ran, err := r.Tick(t.Context()); err != nil || len(ran) != 0 {
		t.Fatalf("early: %v %v", ran, err)
	}
	mu.Lock()
	now = due
	mu.Unlock()
	if ran, err := r.Tick(t.Context()); err != nil || len(ran) != 1 {
		t.Fatalf("due: %v %v", ran, err)
	}
}
