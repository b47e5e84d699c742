package release_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/release"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

type planStore interface {
	store.Store
	store.Governance
	store.ReleasePlans
}

var (
	meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com"}
	eref = store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	t0   = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
)

// clock is the injected clock the racing runners share.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func step(pct int32, d time.Duration) *adminv1.ReleaseStep {
	return &adminv1.ReleaseStep{Weights: []*manifestv1.WeightedVariant{{Variant: "on", Weight: pct}, {Variant: "off", Weight: 100 - pct}},
		MinDuration: durationpb.New(d)}
}

// plan is the example: 1% for 1h, 5% for 4h, 25% for a day, then 100%.
var plan = []*adminv1.ReleaseStep{step(1, time.Hour), step(5, 4*time.Hour), step(25, 24*time.Hour), step(100, 0)}

// seed creates acme/web with boolean flag "a" and a started plan for it.
func seed(t *testing.T, s planStore) *adminv1.ReleasePlan {
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
	p, err := s.CreateReleasePlan(ctx, meta, eref, &adminv1.ReleasePlan{Flag: "a", Steps: plan}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err = s.ChangeReleasePlan(ctx, meta, eref, p.GetId(), release.Start(t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.GetState() != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING {
		t.Fatalf("started plan is %s", p.GetState())
	}
	return p
}

// race ticks every runner concurrently, several times each, and returns how many
// plan changes they reported in total.
func race(t *testing.T, runners []*release.Runner) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				ch, err := r.Tick(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				n += len(ch)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n
}

func onWeight(t *testing.T, s store.Store) int32 {
	t.Helper()
	fc, err := s.GetFlagConfig(t.Context(), eref, "a")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range fc.GetConfig().GetDefaultServe().GetRollout().GetWeights() {
		if w.GetVariant() == "on" {
			return w.GetWeight()
		}
	}
	return -1
}

// walk moves the shared clock through the plan: just before each step is due
// nothing happens; once due, the racing runners apply it exactly once.
func walk(t *testing.T, s planStore, runners []*release.Runner, c *clock) {
	t.Helper()
	p := seed(t, s)
	due := t0
	for i, st := range plan {
		if i > 0 {
			c.Set(due.Add(-time.Millisecond))
			if n := race(t, runners); n != 0 {
				t.Fatalf("step %d: %d changes before it was due", i, n)
			}
		}
		c.Set(due)
		if n := race(t, runners); n != 1 {
			t.Fatalf("step %d: %d changes reported by the racing runners, want exactly 1", i, n)
		}
		if got, want := onWeight(t, s), st.GetWeights()[0].GetWeight(); got != want {
			t.Fatalf("after step %d the flag serves on to %d%%, want %d%%", i, got, want)
		}
		due = due.Add(st.GetMinDuration().AsDuration())
	}
	got, err := s.GetReleasePlan(t.Context(), eref, p.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_COMPLETED || got.GetAppliedSteps() != int32(len(plan)) {
		t.Fatalf("plan %s with %d steps applied, want COMPLETED with %d", got.GetState(), got.GetAppliedSteps(), len(plan))
	}
	fc, err := s.GetFlagConfig(t.Context(), eref, "a")
	if err != nil {
		t.Fatal(err)
	}
	if fc.GetRevision() != int64(1+len(plan)) || !fc.GetConfig().GetOn() {
		t.Fatalf("flag configuration revision %d (on %v), want %d: one write per step", fc.GetRevision(), fc.GetConfig().GetOn(), 1+len(plan))
	}
	for action, want := range map[string]int{"release_plan.advance": len(plan) - 1, "release_plan.complete": 1} {
		es, _, err := s.ListAudit(t.Context(), "acme", store.AuditFilter{Action: action}, store.Page{Size: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != want {
			t.Errorf("%d %s audit entries, want %d", len(es), action, want)
		}
		for _, e := range es {
			if e.GetActorId() != release.Actor.ActorID {
				t.Errorf("%s by %q, want the scheduler %q", action, e.GetActorId(), release.Actor.ActorID)
			}
		}
	}
	es, _, err := s.ListAudit(t.Context(), "acme", store.AuditFilter{Action: "flag_config.update", ActorID: release.Actor.ActorID}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(plan) {
		t.Errorf("%d flag_config.update entries by the scheduler, want %d", len(es), len(plan))
	}
}

func runners(c *clock, stores ...release.Store) []*release.Runner {
	var out []*release.Runner
	for _, s := range stores {
		out = append(out, release.NewRunner(s, release.Guardrails{}, release.Config{PollInterval: time.Second, CheckInterval: time.Minute}, c.Now, nil, nil))
	}
	return out
}

// TestPlanStepsRunExactlyOnceWithTwoControlPlanesOnPostgres: two runners, each
// with its own connection pool (two control-plane replicas) on one database,
// race over every step of a plan with an injected clock.
func TestPlanStepsRunExactlyOnceWithTwoControlPlanesOnPostgres(t *testing.T) {
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
	c := &clock{now: t0}
	walk(t, stores[0], runners(c, stores[0], stores[1]), c)
}

// TestPlanStepsRunExactlyOnceWithTwoRunnersOnSQLite: the same race on the
// embedded store.
func TestPlanStepsRunExactlyOnceWithTwoRunnersOnSQLite(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := &clock{now: t0}
	walk(t, s, runners(c, s, s), c)
}

// TestAKillSwitchOutranksThePlan: a flag turned off while its plan runs is not
// turned back on by the next step: the plan pauses instead, and resuming serves
// the current step again.
func TestAKillSwitchOutranksThePlan(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := &clock{now: t0}
	p := seed(t, s)
	rs := runners(c, s)
	if n := race(t, rs); n != 1 {
		t.Fatalf("first step: %d changes", n)
	}
	fc, err := s.GetFlagConfig(t.Context(), eref, "a")
	if err != nil {
		t.Fatal(err)
	}
	off := fc.GetConfig()
	off.On = false
	if _, err := s.UpdateFlagConfig(t.Context(), meta, eref, "a", off, fc.GetRevision(), nil); err != nil {
		t.Fatal(err)
	}
	c.Set(t0.Add(time.Hour))
	race(t, rs)
	got, err := s.GetReleasePlan(t.Context(), eref, p.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != adminv1.ReleasePlanState_RELEASE_PLAN_STATE_PAUSED || got.GetAppliedSteps() != 1 {
		t.Fatalf("plan %s at %d steps after a kill, want PAUSED at 1", got.GetState(), got.GetAppliedSteps())
	}
	if fc, _ := s.GetFlagConfig(t.Context(), eref, "a"); fc.GetConfig().GetOn() {
		t.Fatal("the plan turned a killed flag back on")
	}
	if _, err := s.ChangeReleasePlan(t.Context(), meta, eref, p.GetId(), release.Resume(c.Now()), nil); err != nil {
		t.Fatal(err)
	}
	if fc, _ := s.GetFlagConfig(t.Context(), eref, "a"); !fc.GetConfig().GetOn() || onWeight(t, s) != 1 {
		t.Fatalf("resume serves the current step again: on %v, weight %d", fc.GetConfig().GetOn(), onWeight(t, s))
	}
}
