package server

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/governance"
	"github.com/flagforge/flagforge/services/controlplane/internal/release"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// releasePlans is the storage the release plan service needs.
type releasePlans interface {
	GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
	GetFlag(ctx context.Context, ref store.ProjectRef, key string) (*adminv1.Flag, error)
	GetFlagConfig(ctx context.Context, ref store.EnvRef, flag string) (*adminv1.FlagEnvironmentConfig, error)
	CreateReleasePlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, p *adminv1.ReleasePlan, cr *adminv1.ChangeRequest) (*adminv1.ReleasePlan, error)
	GetReleasePlan(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ReleasePlan, error)
	ListReleasePlans(ctx context.Context, ref store.EnvRef, flag string, state adminv1.ReleasePlanState, p store.Page) ([]*adminv1.ReleasePlan, string, error)
	ReplaceReleasePlanContent(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, revision int64, edit func(p *adminv1.ReleasePlan) error, cr *adminv1.ChangeRequest) (*adminv1.ReleasePlan, error)
	ChangeReleasePlan(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, t *store.PlanTransition, check store.Check) (*adminv1.ReleasePlan, error)
}

// ReleasePlanService implements adminv1.ReleasePlanServiceServer. Steps and
// guardrails are run by package release's Runner; this service validates plans,
// opens their change requests where approvals are required, and makes the
// transitions people ask for.
type ReleasePlanService struct {
	adminv1.UnimplementedReleasePlanServiceServer
	store releasePlans
	now   func() time.Time
	// promql: a Prometheus is configured, so PromQL guardrails can be evaluated.
	promql bool
}

// Limits of a plan.
const (
	maxSteps       = 50
	maxGuardrails  = 10
	maxStepHold    = 30 * 24 * time.Hour
	maxQuery       = 2000
	minWindow      = time.Second
	maxWindow      = 24 * time.Hour
	maxRolloutSums = math.MaxInt32
	// An sdk_errors guardrail's minimum sample.
	maxMinEvaluations = 1_000_000_000
)

// planContent validates a plan's steps, guardrails and breach action against the
// flag's variants.
func (s *ReleasePlanService) planContent(c *checks, f *adminv1.Flag, steps []*adminv1.ReleaseStep, guards []*adminv1.Guardrail, ba adminv1.BreachAction) {
	variants := map[string]bool{}
	for _, v := range f.GetVariants() {
		variants[v.GetKey()] = true
	}
	if len(steps) == 0 {
		c.fail("steps", "is required: at least one step")
	}
	if len(steps) > maxSteps {
		c.fail("steps", "must have at most %d steps", maxSteps)
	}
	for i, st := range steps {
		p := idx("steps", i)
		if len(st.GetWeights()) == 0 {
			c.fail(p+".weights", "is required: the distribution this step serves")
		}
		var total int64
		seen := map[string]bool{}
		for j, w := range st.GetWeights() {
			wp := idx(p+".weights", j)
			switch {
			case w.GetVariant() == "":
				c.fail(wp+".variant", "is required")
			case !variants[w.GetVariant()]:
				c.fail(wp+".variant", "%q is not a variant of flag %q", w.GetVariant(), f.GetKey())
			case seen[w.GetVariant()]:
				c.fail(wp+".variant", "%q appears twice", w.GetVariant())
			}
			seen[w.GetVariant()] = true
			if w.GetWeight() < 0 {
				c.fail(wp+".weight", "must be >= 0")
			}
			total += int64(w.GetWeight())
		}
		if len(st.GetWeights()) > 0 && (total < 1 || total > maxRolloutSums) {
			c.fail(p+".weights", "must total between 1 and %d", maxRolloutSums)
		}
		if d := st.GetMinDuration(); d != nil {
			if d.CheckValid() != nil || d.AsDuration() < 0 || d.AsDuration() > maxStepHold {
				c.fail(p+".min_duration", "must be between 0s and %s", maxStepHold)
			}
		}
	}
	if len(guards) > maxGuardrails {
		c.fail("guardrails", "must have at most %d guardrails", maxGuardrails)
	}
	names := map[string]bool{}
	for i, g := range guards {
		p := idx("guardrails", i)
		c.key(p+".name", g.GetName())
		if names[g.GetName()] {
			c.fail(p+".name", "%q appears twice", g.GetName())
		}
		names[g.GetName()] = true
		switch ch := g.GetCheck().(type) {
		case *adminv1.Guardrail_Promql:
			c.text(p+".promql.query", ch.Promql.GetQuery(), maxQuery, true)
			if !s.promql {
				c.fail(p+".promql", "%v: PromQL guardrails cannot be evaluated", release.ErrNoPrometheus)
			}
		case *adminv1.Guardrail_SdkErrors:
			e := ch.SdkErrors
			if v := e.GetVariant(); v != "" && !variants[v] {
				c.fail(p+".sdk_errors.variant", "%q is not a variant of flag %q (\"\" measures every variant)", v, f.GetKey())
			}
			if _, ok := adminv1.SdkErrorsMeasure_name[int32(e.GetMeasure())]; !ok {
				c.fail(p+".sdk_errors.measure", "must be SDK_ERRORS_MEASURE_RATIO or SDK_ERRORS_MEASURE_COUNT")
			}
			if n := e.GetMinEvaluations(); n < 0 || n > maxMinEvaluations {
				c.fail(p+".sdk_errors.min_evaluations", "must be between 0 and %d", maxMinEvaluations)
			}
			if g.GetThreshold() < 0 {
				c.fail(p+".threshold", "must be >= 0 for sdk_errors (a ratio or a count of errors)")
			}
		default:
			c.fail(p, "needs a check: promql or sdk_errors")
		}
		if t := g.GetThreshold(); math.IsNaN(t) || math.IsInf(t, 0) {
			c.fail(p+".threshold", "must be a finite number")
		}
		w := g.GetWindow()
		switch {
		case w == nil:
			c.fail(p+".window", "is required (e.g. \"300s\")")
		case w.CheckValid() != nil || w.AsDuration() < minWindow || w.AsDuration() > maxWindow:
			c.fail(p+".window", "must be between %s and %s", minWindow, maxWindow)
		}
	}
	if _, ok := adminv1.BreachAction_name[int32(ba)]; !ok {
		c.fail("breach_action", "unknown breach action")
	}
}

// planChangeRequest is the change request approving a plan's content, where the
// environment requires approvals (nil otherwise).
func planChangeRequest(ctx context.Context, env *adminv1.Environment, p *adminv1.ReleasePlan, verb string) *adminv1.ChangeRequest {
	if !env.GetSettings().GetApprovalsRequired() {
		return nil
	}
	pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_ReleasePlan{ReleasePlan: &adminv1.ReleasePlanChange{
		Flag: p.GetFlag(), Steps: p.GetSteps(), Guardrails: p.GetGuardrails(), BreachAction: p.GetBreachAction()}}}
	var steps []string
	for _, st := range p.GetSteps() {
		steps = append(steps, describeStep(st))
	}
	desc := fmt.Sprintf("%s release plan of flag %q: %s", verb, p.GetFlag(), strings.Join(steps, ", "))
	if len(p.GetGuardrails()) > 0 {
		var gs []string
		for _, g := range p.GetGuardrails() {
			gs = append(gs, fmt.Sprintf("%s > %g", g.GetName(), g.GetThreshold()))
		}
		desc += "; rolls back when " + strings.Join(gs, " or ")
	}
	if p.GetDescription() != "" {
		desc += ": " + p.GetDescription()
	}
	if len([]rune(desc)) > maxDescription {
		desc = string([]rune(desc)[:maxDescription])
	}
	a := actor.PrincipalFrom(ctx)
	return &adminv1.ChangeRequest{Change: pc, Description: desc, AuthorId: a.ID(), AuthorIssuerId: foreignIssuer(a),
		RequiredApprovals: requiredApprovals(env), ContentDigest: governance.Digest(pc, 0)}
}

// describeStep is a step as people write it: "5% on 4h0m0s".
func describeStep(st *adminv1.ReleaseStep) string {
	var total int64
	for _, w := range st.GetWeights() {
		total += int64(w.GetWeight())
	}
	var parts []string
	for _, w := range st.GetWeights() {
		if w.GetWeight() == 0 || total == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s", percent(w.GetWeight(), total), w.GetVariant()))
	}
	s := strings.Join(parts, "/")
	if d := st.GetMinDuration().AsDuration(); d > 0 {
		s += " for " + d.String()
	}
	return s
}

func percent(w int32, total int64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", float64(w)*100/float64(total)), "0"), ".") + "%"
}

func planRef(c *checks, org, project, env, id string) store.EnvRef {
	return crRef(c, org, project, env, id)
}

// CreateReleasePlan stores a plan for a flag in an environment.
func (s *ReleasePlanService) CreateReleasePlan(ctx context.Context, req *adminv1.CreateReleasePlanRequest) (*adminv1.CreateReleasePlanResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.text("description", req.GetDescription(), maxDescription, false)
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	f, err := s.store.GetFlag(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag())
	if err != nil {
		return nil, err
	}
	s.planContent(&c, f, req.GetSteps(), req.GetGuardrails(), req.GetBreachAction())
	if c.err != nil {
		return nil, c.err
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	p := &adminv1.ReleasePlan{Flag: req.GetFlag(), Steps: req.GetSteps(), Guardrails: req.GetGuardrails(),
		BreachAction: breachAction(req.GetBreachAction()), Description: req.GetDescription(), AuthorId: actor.PrincipalFrom(ctx).ID()}
	cr := planChangeRequest(ctx, env, p, "new")
	out, err := s.store.CreateReleasePlan(ctx, meta(ctx, idem, req.GetDescription(), ""), ref, p, cr)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateReleasePlanResponse{ReleasePlan: out, ChangeRequest: crRefOf(out, cr)}, nil
}

func breachAction(b adminv1.BreachAction) adminv1.BreachAction {
	if b == adminv1.BreachAction_BREACH_ACTION_UNSPECIFIED {
		return adminv1.BreachAction_BREACH_ACTION_LAST_SAFE_STEP
	}
	return b
}

func crRefOf(p *adminv1.ReleasePlan, cr *adminv1.ChangeRequest) *adminv1.ChangeRequestRef {
	if cr == nil {
		return nil
	}
	return &adminv1.ChangeRequestRef{Id: p.GetChangeRequestId(), ContentDigest: cr.GetContentDigest()}
}

// GetReleasePlan reads a plan.
func (s *ReleasePlanService) GetReleasePlan(ctx context.Context, req *adminv1.GetReleasePlanRequest) (*adminv1.GetReleasePlanResponse, error) {
	var c checks
	ref := planRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	p, err := s.store.GetReleasePlan(ctx, ref, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetReleasePlanResponse{ReleasePlan: p}, nil
}

// ListReleasePlans lists an environment's plans, optionally of one flag or state.
func (s *ReleasePlanService) ListReleasePlans(ctx context.Context, req *adminv1.ListReleasePlansRequest) (*adminv1.ListReleasePlansResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.optKey("flag", req.GetFlag())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if _, ok := adminv1.ReleasePlanState_name[int32(req.GetState())]; !ok {
		c.fail("state", "unknown state")
	}
	if c.err != nil {
		return nil, c.err
	}
	out, next, err := s.store.ListReleasePlans(ctx, ref, req.GetFlag(), req.GetState(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListReleasePlansResponse{ReleasePlans: out, NextPageToken: next}, nil
}

// UpdateReleasePlan replaces the content of a plan that is not running; where
// approvals are required the plan waits for a new change request.
func (s *ReleasePlanService) UpdateReleasePlan(ctx context.Context, req *adminv1.UpdateReleasePlanRequest) (*adminv1.UpdateReleasePlanResponse, error) {
	var c checks
	ref := planRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId())
	c.text("description", req.GetDescription(), maxDescription, false)
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	cur, err := s.store.GetReleasePlan(ctx, ref, req.GetId())
	if err != nil {
		return nil, err
	}
	f, err := s.store.GetFlag(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, cur.GetFlag())
	if err != nil {
		return nil, err
	}
	s.planContent(&c, f, req.GetSteps(), req.GetGuardrails(), req.GetBreachAction())
	if c.err != nil {
		return nil, c.err
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(cur)
	next.Steps, next.Guardrails, next.BreachAction, next.Description = req.GetSteps(), req.GetGuardrails(), breachAction(req.GetBreachAction()), req.GetDescription()
	cr := planChangeRequest(ctx, env, next, "edited")
	out, err := s.store.ReplaceReleasePlanContent(ctx, meta(ctx, "", req.GetDescription(), ""), ref, req.GetId(), req.GetRevision(), func(p *adminv1.ReleasePlan) error {
		switch p.GetState() {
		case adminv1.ReleasePlanState_RELEASE_PLAN_STATE_READY, adminv1.ReleasePlanState_RELEASE_PLAN_STATE_PAUSED,
			adminv1.ReleasePlanState_RELEASE_PLAN_STATE_AWAITING_APPROVAL:
		default:
			return errs.E(errs.FailedPrecondition, "release plan %q is %s: only a ready, paused or unapproved plan can be edited (pause a running one first)", p.GetId(), p.GetState())
		}
		if int(p.GetAppliedSteps()) > len(req.GetSteps()) {
			return errs.Invalid("steps", "the plan has applied %d steps: keep at least that many", p.GetAppliedSteps())
		}
		p.Steps, p.Guardrails, p.BreachAction, p.Description = next.Steps, next.Guardrails, next.BreachAction, next.Description
		if int(p.GetLastSafeStep()) >= len(p.Steps) {
			p.LastSafeStep = int32(len(p.Steps)) - 1
		}
		p.GuardrailStates = nil
		return nil
	}, cr)
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateReleasePlanResponse{ReleasePlan: out, ChangeRequest: crRefOf(out, cr)}, nil
}

// transition runs one transition a person asked for.
func (s *ReleasePlanService) transition(ctx context.Context, org, project, env, id, comment string, t func(now time.Time, comment string) *store.PlanTransition) (*adminv1.ReleasePlan, error) {
	var c checks
	ref := planRef(&c, org, project, env, id)
	c.text("comment", comment, maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	p, err := s.store.GetReleasePlan(ctx, ref, id)
	if err != nil {
		return nil, err
	}
	return s.store.ChangeReleasePlan(ctx, meta(ctx, "", comment, ""), ref, id, t(s.now().UTC(), comment), FlagConfigCheck(p.GetFlag()))
}

// StartReleasePlan starts a ready plan.
func (s *ReleasePlanService) StartReleasePlan(ctx context.Context, req *adminv1.StartReleasePlanRequest) (*adminv1.StartReleasePlanResponse, error) {
	p, err := s.transition(ctx, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId(), req.GetComment(),
		func(now time.Time, _ string) *store.PlanTransition { return release.Start(now) })
	if err != nil {
		return nil, err
	}
	return &adminv1.StartReleasePlanResponse{ReleasePlan: p}, nil
}

// PauseReleasePlan pauses a running plan.
func (s *ReleasePlanService) PauseReleasePlan(ctx context.Context, req *adminv1.PauseReleasePlanRequest) (*adminv1.PauseReleasePlanResponse, error) {
	p, err := s.transition(ctx, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId(), req.GetComment(),
		func(_ time.Time, comment string) *store.PlanTransition { return release.Pause(comment) })
	if err != nil {
		return nil, err
	}
	return &adminv1.PauseReleasePlanResponse{ReleasePlan: p}, nil
}

// ResumeReleasePlan resumes a paused plan.
func (s *ReleasePlanService) ResumeReleasePlan(ctx context.Context, req *adminv1.ResumeReleasePlanRequest) (*adminv1.ResumeReleasePlanResponse, error) {
	p, err := s.transition(ctx, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId(), req.GetComment(),
		func(now time.Time, _ string) *store.PlanTransition { return release.Resume(now) })
	if err != nil {
		return nil, err
	}
	return &adminv1.ResumeReleasePlanResponse{ReleasePlan: p}, nil
}

// RollbackReleasePlan rolls a plan's flag back and ends the plan.
func (s *ReleasePlanService) RollbackReleasePlan(ctx context.Context, req *adminv1.RollbackReleasePlanRequest) (*adminv1.RollbackReleasePlanResponse, error) {
	p, err := s.transition(ctx, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId(), req.GetComment(),
		func(_ time.Time, comment string) *store.PlanTransition { return release.Rollback(comment) })
	if err != nil {
		return nil, err
	}
	return &adminv1.RollbackReleasePlanResponse{ReleasePlan: p}, nil
}

// CancelReleasePlan cancels a plan that is not running.
func (s *ReleasePlanService) CancelReleasePlan(ctx context.Context, req *adminv1.CancelReleasePlanRequest) (*adminv1.CancelReleasePlanResponse, error) {
	p, err := s.transition(ctx, req.GetOrg(), req.GetProject(), req.GetEnvironment(), req.GetId(), req.GetComment(),
		func(_ time.Time, comment string) *store.PlanTransition { return release.Cancel(comment) })
	if err != nil {
		return nil, err
	}
	return &adminv1.CancelReleasePlanResponse{ReleasePlan: p}, nil
}
