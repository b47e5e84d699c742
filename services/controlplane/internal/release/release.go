// Package release runs release plans: progressive rollouts of one flag in one
// environment, step by step, guarded by checks that roll the flag back when they
// breach.
//
// The package decides; the store (store.ReleasePlans) makes each decision
// atomic. Every transition here is a store.PlanTransition run on the locked plan
// and flag configuration, so replicas racing over the same due step serialize and
// the loser's transition declines (store.ErrNoTransition): each step is applied
// exactly once. The Runner (one per control-plane replica) applies due steps and
// evaluates guardrails; the admin API (package server) starts, pauses, resumes,
// rolls back and cancels plans with the same transitions.
//
// What a step writes: the flag is turned on and its default rule serves the
// step's distribution (the bucketing attribute and seed of the current default
// rollout are kept, so a context stays in its bucket as the percentage grows).
// Nothing else of the configuration is touched.
package release

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Plan states, shortened.
const (
	awaiting   = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_AWAITING_APPROVAL
	ready      = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_READY
	running    = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_RUNNING
	paused     = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_PAUSED
	completed  = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_COMPLETED
	rolledBack = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_ROLLED_BACK
	cancelled  = adminv1.ReleasePlanState_RELEASE_PLAN_STATE_CANCELLED
)

// StepConfig is the configuration step s writes over cur: on, with the default
// rule serving s's distribution.
func StepConfig(cur *manifestv1.FlagConfig, s *adminv1.ReleaseStep) *manifestv1.FlagConfig {
	c := proto.CloneOf(cur)
	if c == nil {
		c = &manifestv1.FlagConfig{}
	}
	c.On = true
	ro := &manifestv1.Rollout{}
	if old := cur.GetDefaultServe().GetRollout(); old != nil {
		ro.BucketBy, ro.Seed = old.GetBucketBy(), old.GetSeed()
	}
	for _, w := range s.GetWeights() {
		ro.Weights = append(ro.Weights, proto.CloneOf(w))
	}
	c.DefaultServe = &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{Rollout: ro}}
	return c
}

// RollbackConfig is what a rollback of p writes over cur: off (BREACH_ACTION_OFF),
// else the last safe step, else the flag's state before the plan started (its
// on/off and default rule; rules edited meanwhile are kept).
func RollbackConfig(p *adminv1.ReleasePlan, cur *manifestv1.FlagConfig) *manifestv1.FlagConfig {
	c := proto.CloneOf(cur)
	if c == nil {
		c = &manifestv1.FlagConfig{}
	}
	switch {
	case p.GetBreachAction() == adminv1.BreachAction_BREACH_ACTION_OFF:
		c.On = false
	case p.GetLastSafeStep() >= 0 && int(p.GetLastSafeStep()) < len(p.GetSteps()):
		return StepConfig(cur, p.GetSteps()[p.GetLastSafeStep()])
	default:
		c.On = p.GetStartConfig().GetOn()
		c.DefaultServe = proto.CloneOf(p.GetStartConfig().GetDefaultServe())
	}
	return c
}

// approved refuses to run a plan without approval where approvals are required
// (the environment may have been protected after the plan was made).
func approved(p *adminv1.ReleasePlan, env *adminv1.Environment) error {
	if env.GetSettings().GetApprovalsRequired() && p.GetChangeRequestId() == "" {
		return errs.E(errs.FailedPrecondition, "environment %q requires approvals and release plan %q was not approved: "+
			"edit the plan (UpdateReleasePlan) to open its change request", env.GetKey(), p.GetId())
	}
	return nil
}

// unapproved is why p may not run in env ("" when it may).
func unapproved(p *adminv1.ReleasePlan, env *adminv1.Environment) string {
	if err := approved(p, env); err != nil {
		return err.Error()
	}
	return ""
}

func state(p *adminv1.ReleasePlan, want ...adminv1.ReleasePlanState) error {
	for _, w := range want {
		if p.GetState() == w {
			return nil
		}
	}
	return errs.E(errs.FailedPrecondition, "release plan %q is %s", p.GetId(), p.GetState())
}

func flagGone(p *adminv1.ReleasePlan, cur *adminv1.FlagEnvironmentConfig) error {
	if cur == nil {
		return errs.E(errs.NotFound, "flag %q of release plan %q not found", p.GetFlag(), p.GetId())
	}
	return nil
}

func pendingStates(p *adminv1.ReleasePlan) []*adminv1.GuardrailState {
	out := make([]*adminv1.GuardrailState, 0, len(p.GetGuardrails()))
	for _, g := range p.GetGuardrails() {
		out = append(out, &adminv1.GuardrailState{Name: g.GetName(), Status: adminv1.GuardrailStatus_GUARDRAIL_STATUS_PENDING})
	}
	return out
}

// Start starts a READY plan: its first step falls due at now (after its
// guardrails pass). The flag's configuration now is the plan's safe state
// before its first step.
func Start(now time.Time) *store.PlanTransition {
	return &store.PlanTransition{Action: "release_plan.start", Apply: func(p *adminv1.ReleasePlan, cur *adminv1.FlagEnvironmentConfig, env *adminv1.Environment) (*manifestv1.FlagConfig, error) {
		if err := firstErr(state(p, ready), flagGone(p, cur), approved(p, env)); err != nil {
			return nil, err
		}
		p.State, p.AppliedSteps, p.LastSafeStep, p.PauseReason = running, 0, -1, ""
		p.StartConfig = proto.CloneOf(cur.GetConfig())
		p.NextStepTime, p.StepApplyTime = timestamppb.New(now), nil
		p.GuardrailStates = pendingStates(p)
		return nil, nil
	}}
}

// Pause stops a running plan where it is.
func Pause(reason string) *store.PlanTransition {
	return &store.PlanTransition{Action: "release_plan.pause", Apply: func(p *adminv1.ReleasePlan, _ *adminv1.FlagEnvironmentConfig, _ *adminv1.Environment) (*manifestv1.FlagConfig, error) {
		if err := state(p, running); err != nil {
			return nil, err
		}
		p.State, p.PauseReason, p.NextStepTime = paused, pauseReason(reason, "paused by a person"), nil
		return nil, nil
	}}
}

func pauseReason(reason, def string) string {
	if reason == "" {
		return def
	}
	return reason
}

// Resume continues a paused plan: the next step is due once the current one has
// been held for its minimum duration (at once when none was applied).
func Resume(now time.Time) *store.PlanTransition {
	return &store.PlanTransition{Action: "release_plan.resume", Apply: func(p *adminv1.ReleasePlan, cur *adminv1.FlagEnvironmentConfig, env *adminv1.Environment) (*manifestv1.FlagConfig, error) {
		if err := firstErr(state(p, paused), flagGone(p, cur), approved(p, env)); err != nil {
			return nil, err
		}
		p.State, p.PauseReason = running, ""
		p.GuardrailStates = pendingStates(p)
		if n := p.GetAppliedSteps(); n > 0 && !cur.GetConfig().GetOn() {
			// Turned off meanwhile (a breach with BREACH_ACTION_OFF, a kill):
			// resuming is the decision to serve the current step again.
			p.StepApplyTime = timestamppb.New(now)
			p.NextStepTime = timestamppb.New(nextStepTime(p, now))
			return StepConfig(cur.GetConfig(), p.GetSteps()[n-1]), nil
		}
		p.NextStepTime = timestamppb.New(nextStepTime(p, now))
		return nil, nil
	}}
}

// nextStepTime is when the step after the current one falls due.
func nextStepTime(p *adminv1.ReleasePlan, now time.Time) time.Time {
	n := int(p.GetAppliedSteps())
	if n == 0 || p.GetStepApplyTime() == nil {
		return now
	}
	due := p.GetStepApplyTime().AsTime().Add(p.GetSteps()[n-1].GetMinDuration().AsDuration())
	if due.Before(now) {
		return now
	}
	return due
}

// Rollback rolls the flag back (the plan's breach action) and ends the plan.
func Rollback(reason string) *store.PlanTransition {
	return &store.PlanTransition{Action: "release_plan.rollback", Apply: func(p *adminv1.ReleasePlan, cur *adminv1.FlagEnvironmentConfig, _ *adminv1.Environment) (*manifestv1.FlagConfig, error) {
		if err := firstErr(state(p, running, paused), flagGone(p, cur)); err != nil {
			return nil, err
		}
		p.State, p.PauseReason, p.NextStepTime = rolledBack, pauseReason(reason, "rolled back by a person"), nil
		return RollbackConfig(p, cur.GetConfig()), nil
	}}
}

// Cancel ends a plan that is not running, changing nothing it applied.
func Cancel(reason string) *store.PlanTransition {
	return &store.PlanTransition{Action: "release_plan.cancel", Apply: func(p *adminv1.ReleasePlan, _ *adminv1.FlagEnvironmentConfig, _ *adminv1.Environment) (*manifestv1.FlagConfig, error) {
		if p.GetState() == awaiting {
			return nil, errs.E(errs.FailedPrecondition, "release plan %q awaits change request %q: withdraw that request to cancel the plan",
				p.GetId(), p.GetChangeRequestId())
		}
		if err := state(p, ready, paused); err != nil {
			return nil, errs.E(errs.FailedPrecondition, "release plan %q is %s: only a ready or paused plan can be cancelled (pause a running one first)", p.GetId(), p.GetState())
		}
		p.State, p.PauseReason, p.NextStepTime = cancelled, pauseReason(reason, "cancelled"), nil
		return nil, nil
	}}
}

// Outcome is what one evaluation of a plan's guardrails found.
type Outcome int

const (
	// Held: every guardrail is at or below its threshold (or the plan has none).
	Held Outcome = iota
	// Breached: at least one guardrail is above its threshold.
	Breached
	// Unknown: at least one guardrail could not be evaluated (and none breached).
	Unknown
)

// Observe is the runner's transition for a plan it read at revision seen, with
// its guardrails just evaluated (states, outcome): a breach pauses the plan and
// rolls the flag back (audited as release_plan.auto_rollback); a check that could
// not be evaluated pauses it (release_plan.auto_pause); otherwise, when stepDue,
// the next step is applied (release_plan.advance, or release_plan.complete for
// the last). Anything else (the plan changed since seen) declines.
func Observe(seen int64, now time.Time, stepDue bool, states []*adminv1.GuardrailState, o Outcome, why string) *store.PlanTransition {
	action := "release_plan.advance"
	switch o {
	case Breached:
		action = "release_plan.auto_rollback"
	case Unknown:
		action = "release_plan.auto_pause"
	}
	tr := &store.PlanTransition{Action: action}
	tr.Apply = func(p *adminv1.ReleasePlan, cur *adminv1.FlagEnvironmentConfig, env *adminv1.Environment) (*manifestv1.FlagConfig, error) {
		if p.GetState() != running || p.GetRevision() != seen {
			return nil, store.ErrNoTransition
		}
		p.GuardrailStates = states
		if cur == nil {
			tr.Action = "release_plan.cancel"
			p.State, p.PauseReason, p.NextStepTime = cancelled, "the flag no longer exists", nil
			return nil, nil
		}
		if reason := unapproved(p, env); reason != "" {
			tr.Action = "release_plan.auto_pause"
			p.State, p.PauseReason, p.NextStepTime = paused, reason, nil
			return nil, nil
		}
		switch o {
		case Breached:
			cfg := RollbackConfig(p, cur.GetConfig())
			p.State, p.PauseReason, p.NextStepTime = paused, why, nil
			p.AppliedSteps, p.StepApplyTime = p.GetLastSafeStep()+1, timestamppb.New(now)
			return cfg, nil
		case Unknown:
			p.State, p.PauseReason, p.NextStepTime = paused, why, nil
			return nil, nil
		}
		if !stepDue || int(p.GetAppliedSteps()) >= len(p.GetSteps()) {
			return nil, store.ErrNoTransition
		}
		if p.GetAppliedSteps() > 0 && !cur.GetConfig().GetOn() {
			// A kill switch or emergency off outranks the plan: never turn the
			// flag back on behind it.
			tr.Action = "release_plan.auto_pause"
			p.State, p.NextStepTime = paused, nil
			p.PauseReason = "the flag was turned off outside the plan (kill switch or emergency off): resume to serve the current step again"
			return nil, nil
		}
		n := p.GetAppliedSteps()
		cfg := StepConfig(cur.GetConfig(), p.GetSteps()[n])
		p.LastSafeStep = n - 1 // the step held until now: safe
		p.AppliedSteps, p.StepApplyTime = n+1, timestamppb.New(now)
		if int(p.AppliedSteps) == len(p.GetSteps()) {
			tr.Action = "release_plan.complete"
			p.State, p.NextStepTime, p.LastSafeStep = completed, nil, p.AppliedSteps-1
			return cfg, nil
		}
		p.NextStepTime = timestamppb.New(now.Add(p.GetSteps()[n].GetMinDuration().AsDuration()))
		return cfg, nil
	}
	return tr
}

func firstErr(es ...error) error {
	for _, e := range es {
		if e != nil {
			return e
		}
	}
	return nil
}
