// Package release drives release plans from the command line (`flagforge
// release ...`): it parses the step notation people write ("1%/1h,5%/4h,25%/1d,100%"),
// calls the control plane's ReleasePlanService over gRPC, and renders a plan as
// text (steps, state, guardrail state).
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// ParseSteps reads "1%/1h,5%/4h,25%/1d,100%": each step serves variant to that
// percentage of contexts (and rest to the others) for at least the duration
// (h, m, s, or d for days; none: 0). Percentages may have up to two decimals.
func ParseSteps(spec, variant, rest string) ([]*adminv1.ReleaseStep, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("--steps is required, e.g. 1%%/1h,5%%/4h,25%%/1d,100%%")
	}
	var out []*adminv1.ReleaseStep
	for i, part := range strings.Split(spec, ",") {
		pct, dur, _ := strings.Cut(strings.TrimSpace(part), "/")
		p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(pct), "%"), 64)
		if err != nil || p < 0 || p > 100 {
			return nil, fmt.Errorf("--steps: step %d %q: want a percentage between 0%% and 100%%", i+1, part)
		}
		on := int32(p*100 + 0.5) // weights in hundredths of a percent
		st := &adminv1.ReleaseStep{Weights: []*manifestv1.WeightedVariant{{Variant: variant, Weight: on}}}
		if on < 10000 {
			st.Weights = append(st.Weights, &manifestv1.WeightedVariant{Variant: rest, Weight: 10000 - on})
		}
		if dur = strings.TrimSpace(dur); dur != "" {
			d, err := ParseDuration(dur)
			if err != nil {
				return nil, fmt.Errorf("--steps: step %d %q: %w", i+1, part, err)
			}
			st.MinDuration = durationpb.New(d)
		}
		out = append(out, st)
	}
	return out, nil
}

// ParseDuration is time.ParseDuration that also takes days ("1d", "2d12h").
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if d, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want e.g. 30m, 4h or 1d", s)
		}
		days, s = time.Duration(n)*24*time.Hour, rest
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 30m, 4h or 1d", s)
	}
	return days + d, nil
}

// Client calls ReleasePlanService for one environment with one API token.
type Client struct {
	rp                adminv1.ReleasePlanServiceClient
	token             string
	Org, Project, Env string
}

// New returns a client over conn.
func New(conn grpc.ClientConnInterface, token, org, project, env string) *Client {
	return &Client{rp: adminv1.NewReleasePlanServiceClient(conn), token: token, Org: org, Project: project, Env: env}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// Create stores a plan; cr is the change request to approve, where approvals
// are required (nil otherwise).
func (c *Client) Create(ctx context.Context, flag string, steps []*adminv1.ReleaseStep, guards []*adminv1.Guardrail, ba adminv1.BreachAction, desc string) (*adminv1.ReleasePlan, *adminv1.ChangeRequestRef, error) {
	r, err := c.rp.CreateReleasePlan(c.ctx(ctx), &adminv1.CreateReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env,
		Flag: flag, Steps: steps, Guardrails: guards, BreachAction: ba, Description: desc})
	return r.GetReleasePlan(), r.GetChangeRequest(), err
}

// Get reads a plan.
func (c *Client) Get(ctx context.Context, id string) (*adminv1.ReleasePlan, error) {
	r, err := c.rp.GetReleasePlan(c.ctx(ctx), &adminv1.GetReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env, Id: id})
	return r.GetReleasePlan(), err
}

// List lists the environment's plans (of flag, when set), oldest first.
func (c *Client) List(ctx context.Context, flag string) ([]*adminv1.ReleasePlan, error) {
	var out []*adminv1.ReleasePlan
	token := ""
	for {
		r, err := c.rp.ListReleasePlans(c.ctx(ctx), &adminv1.ListReleasePlansRequest{Org: c.Org, Project: c.Project, Environment: c.Env,
			Flag: flag, PageSize: 200, PageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, r.GetReleasePlans()...)
		if token = r.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// Act starts, pauses, resumes, rolls back or cancels a plan.
func (c *Client) Act(ctx context.Context, action, id, comment string) (*adminv1.ReleasePlan, error) {
	ctx = c.ctx(ctx)
	switch action {
	case "start":
		r, err := c.rp.StartReleasePlan(ctx, &adminv1.StartReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env, Id: id, Comment: comment})
		return r.GetReleasePlan(), err
	case "pause":
		r, err := c.rp.PauseReleasePlan(ctx, &adminv1.PauseReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env, Id: id, Comment: comment})
		return r.GetReleasePlan(), err
	case "resume":
		r, err := c.rp.ResumeReleasePlan(ctx, &adminv1.ResumeReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env, Id: id, Comment: comment})
		return r.GetReleasePlan(), err
	case "rollback":
		r, err := c.rp.RollbackReleasePlan(ctx, &adminv1.RollbackReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env, Id: id, Comment: comment})
		return r.GetReleasePlan(), err
	case "cancel":
		r, err := c.rp.CancelReleasePlan(ctx, &adminv1.CancelReleasePlanRequest{Org: c.Org, Project: c.Project, Environment: c.Env, Id: id, Comment: comment})
		return r.GetReleasePlan(), err
	}
	return nil, fmt.Errorf("unknown action %q: start, pause, resume, rollback or cancel", action)
}

// Render writes a plan as text: its state, each step (applied ones marked), and
// each guardrail with its latest evaluation.
func Render(w io.Writer, p *adminv1.ReleasePlan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "release plan %s  flag %s  %s  (%d/%d steps applied)\n", p.GetId(), p.GetFlag(),
		strings.TrimPrefix(p.GetState().String(), "RELEASE_PLAN_STATE_"), p.GetAppliedSteps(), len(p.GetSteps()))
	if r := p.GetPauseReason(); r != "" {
		fmt.Fprintf(&b, "  reason: %s\n", r)
	}
	if cr := p.GetChangeRequestId(); cr != "" {
		fmt.Fprintf(&b, "  change request: %s\n", cr)
	}
	for i, st := range p.GetSteps() {
		mark := " "
		switch {
		case int32(i) < p.GetAppliedSteps()-1:
			mark = "x"
		case int32(i) == p.GetAppliedSteps()-1:
			mark = ">"
		}
		fmt.Fprintf(&b, "  [%s] step %d: %s", mark, i+1, Step(st))
		if d := st.GetMinDuration().AsDuration(); d > 0 {
			fmt.Fprintf(&b, " for %s", d)
		}
		b.WriteString("\n")
	}
	if t := p.GetNextStepTime(); t != nil {
		fmt.Fprintf(&b, "  next step due %s\n", t.AsTime().UTC().Format(time.RFC3339))
	}
	states := map[string]*adminv1.GuardrailState{}
	for _, s := range p.GetGuardrailStates() {
		states[s.GetName()] = s
	}
	for _, g := range p.GetGuardrails() {
		fmt.Fprintf(&b, "  guardrail %s: %s > %g over %s", g.GetName(), CheckText(g), g.GetThreshold(), g.GetWindow().AsDuration())
		if s := states[g.GetName()]; s != nil {
			fmt.Fprintf(&b, "  [%s", strings.TrimPrefix(s.GetStatus().String(), "GUARDRAIL_STATUS_"))
			if s.GetLastEvaluateTime() != nil {
				fmt.Fprintf(&b, " %g at %s", s.GetLastValue(), s.GetLastEvaluateTime().AsTime().UTC().Format(time.RFC3339))
			}
			if s.GetError() != "" {
				fmt.Fprintf(&b, ": %s", s.GetError())
			}
			b.WriteString("]")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  on breach: %s\n", strings.ToLower(strings.TrimPrefix(p.GetBreachAction().String(), "BREACH_ACTION_")))
	_, err := io.WriteString(w, b.String())
	return err
}

// Step is a step's distribution as percentages ("5% on / 95% off").
func Step(st *adminv1.ReleaseStep) string {
	var total int64
	for _, w := range st.GetWeights() {
		total += int64(w.GetWeight())
	}
	var parts []string
	for _, w := range st.GetWeights() {
		if total == 0 {
			break
		}
		pct := strconv.FormatFloat(float64(w.GetWeight())*100/float64(total), 'f', -1, 64)
		parts = append(parts, pct+"% "+w.GetVariant())
	}
	return strings.Join(parts, " / ")
}

// CheckText describes a guardrail's check in one line.
func CheckText(g *adminv1.Guardrail) string {
	e := g.GetSdkErrors()
	if e == nil {
		return g.GetPromql().GetQuery()
	}
	what := "error ratio"
	if e.GetMeasure() == adminv1.SdkErrorsMeasure_SDK_ERRORS_MEASURE_COUNT {
		what = "errors"
	}
	v := "every variant"
	if e.GetVariant() != "" {
		v = "variant " + strconv.Quote(e.GetVariant())
	}
	s := "SDK-reported " + what + " of " + v
	if n := e.GetMinEvaluations(); n > 0 {
		s += fmt.Sprintf(" (at least %d evaluations)", n)
	}
	return s
}

// SDKErrorsCheck is the sdk_errors check of the CLI's --sdk-errors VARIANT
// ("*": every variant), --measure ratio|count and --min-evaluations N.
func SDKErrorsCheck(variant, measure string, minEvaluations int64) (*adminv1.SdkErrorsCheck, error) {
	c := &adminv1.SdkErrorsCheck{Variant: variant, MinEvaluations: minEvaluations}
	if variant == "*" {
		c.Variant = ""
	}
	switch measure {
	case "", "ratio":
		c.Measure = adminv1.SdkErrorsMeasure_SDK_ERRORS_MEASURE_RATIO
	case "count":
		c.Measure = adminv1.SdkErrorsMeasure_SDK_ERRORS_MEASURE_COUNT
	default:
		return nil, fmt.Errorf("--measure %q: ratio or count", measure)
	}
	if minEvaluations < 0 {
		return nil, errors.New("--min-evaluations must be >= 0")
	}
	return c, nil
}
