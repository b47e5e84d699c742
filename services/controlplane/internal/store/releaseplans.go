package store

import (
	"context"
	"errors"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// ReleasePlans stores release plans (progressive rollouts). The package contract
// holds: every write is one transaction with its audit entry and outbox row.
// What a transition does is decided by the caller (package release); the store
// makes it atomic and exclusive.
//
// Further contracts:
//   - ChangeReleasePlan locks the plan and the flag's configuration for the whole
//     transaction, so two replicas racing over the same due step serialize: the
//     second sees the first one's result (a new revision) and its transition
//     declines with ErrNoTransition, writing nothing. That is how each step is
//     applied exactly once.
//   - A plan's change request (approvals required) is linked to it: applying the
//     request moves the plan out of AWAITING_APPROVAL (ApplyChangeRequest), and
//     the request cannot be edited, only replaced by editing the plan.
//   - RecordGuardrailStates is telemetry (like usage): no audit entry, no outbox
//     row, no revision change; it is dropped when the plan's revision moved on.
type ReleasePlans interface {
	// CreateReleasePlan stores p (id, times, revision 1 set by the store); with cr
	// non-nil the plan awaits the approval of cr, created in the same transaction.
	CreateReleasePlan(ctx context.Context, m WriteMeta, ref EnvRef, p *adminv1.ReleasePlan, cr *adminv1.ChangeRequest) (*adminv1.ReleasePlan, error)
	GetReleasePlan(ctx context.Context, ref EnvRef, id string) (*adminv1.ReleasePlan, error)
	// ListReleasePlans lists plans oldest first; flag "" and state UNSPECIFIED: all.
	ListReleasePlans(ctx context.Context, ref EnvRef, flag string, state adminv1.ReleasePlanState, p Page) ([]*adminv1.ReleasePlan, string, error)
	// ChangeReleasePlan runs t on the locked plan and flag configuration and saves
	// the result (revision + 1) with one audit entry (action t.Action), plus the
	// flag configuration t returns (validated by check) with its own. t returning
	// ErrNoTransition writes nothing and returns nil, nil.
	ChangeReleasePlan(ctx context.Context, m WriteMeta, ref EnvRef, id string, t *PlanTransition, check Check) (*adminv1.ReleasePlan, error)
	// ReplaceReleasePlanContent checks revision and runs edit on the locked plan
	// (its content: steps, guardrails, breach action, description); with cr
	// non-nil (approvals required) the plan awaits cr, opened in the same
	// transaction, and its previous open request is withdrawn.
	ReplaceReleasePlanContent(ctx context.Context, m WriteMeta, ref EnvRef, id string, revision int64, edit func(p *adminv1.ReleasePlan) error, cr *adminv1.ChangeRequest) (*adminv1.ReleasePlan, error)
	// DueReleasePlans lists RUNNING plans whose next step or guardrail check is
	// due at now (at most limit).
	DueReleasePlans(ctx context.Context, now time.Time, limit int) ([]DuePlan, error)
	// ClaimGuardrailCheck moves a RUNNING plan's next check time from at or
	// before now to next; false when another replica claimed it first.
	ClaimGuardrailCheck(ctx context.Context, ref EnvRef, id string, now, next time.Time) (bool, error)
	// RecordGuardrailStates saves the latest guardrail evaluations of a plan still
	// at revision.
	RecordGuardrailStates(ctx context.Context, ref EnvRef, id string, revision int64, states []*adminv1.GuardrailState) error
}

// DuePlan is a running plan that needs the runner.
type DuePlan struct {
	Ref  EnvRef
	Plan *adminv1.ReleasePlan
	// StepDue: the next step's time has come; otherwise only a check is due.
	StepDue bool
}

// PlanTransition is one change of a plan's state.
type PlanTransition struct {
	// Action is the audit action, e.g. "release_plan.advance"; Apply may change
	// it (read after Apply returns).
	Action string
	// Apply changes plan in place given the flag's current configuration (nil:
	// the flag no longer exists) and environment; it returns the configuration
	// to write (nil: none), ErrNoTransition to decline, or an error to abort.
	Apply func(plan *adminv1.ReleasePlan, cur *adminv1.FlagEnvironmentConfig, env *adminv1.Environment) (*manifestv1.FlagConfig, error)
}

// ErrNoTransition is returned by a PlanTransition that does not apply any more
// (another replica already made it, or the plan moved on).
var ErrNoTransition = errors.New("release plan: transition no longer applies")
