package server

import (
	"context"
	"fmt"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/usage"
)

// MaxReportedCounts bounds one ReportEvaluations batch.
const MaxReportedCounts = 10_000

// MaxReportedContexts bounds the sampled contexts of one ReportEvaluations batch.
const MaxReportedContexts = 1_000

// ReportEvaluations merges counts (and the errors reported with them) from SDKs that evaluate locally into the
// evaluator's usage counters (reported to the control plane with its own counts).
// Minutes are truncated to the minute and must lie within the last 24 hours (or up
// to 5 minutes ahead, for clock skew); counts of flags a client key may not see are
// ignored, and so are errors reported with a client key (public: they could stop
// any rollout guarded by SDK-reported errors). accepted is the number of counts
// merged. Sampled contexts join the
// evaluator's own sample of the key's environment (same bound per minute, the
// manifest's private attributes removed again).
func (s *Service) ReportEvaluations(ctx context.Context, req *evaluationv1.ReportEvaluationsRequest) (*evaluationv1.ReportEvaluationsResponse, error) {
	now := s.now()
	g, env, err := s.authenticate(ctx, now)
	if err != nil {
		return nil, err
	}
	counts := req.GetCounts()
	if len(counts) > MaxReportedCounts {
		return nil, errs.Invalid("counts", "at most %d counts per batch", MaxReportedCounts)
	}
	for i, c := range counts {
		field := fmt.Sprintf("counts[%d]", i)
		switch {
		case c.GetFlagKey() == "":
			return nil, errs.Invalid(field+".flagKey", "is required")
		case c.GetCount() < 0:
			return nil, errs.Invalid(field+".count", "must be >= 0")
		case c.GetErrors() < 0:
			return nil, errs.Invalid(field+".errors", "must be >= 0")
		case c.GetCount() == 0 && c.GetErrors() == 0:
			return nil, errs.Invalid(field+".count", "must be positive when errors is 0")
		case c.GetMinute() == nil:
			return nil, errs.Invalid(field+".minute", "is required")
		}
		m := c.GetMinute().AsTime()
		if m.Before(now.Add(-24*time.Hour)) || m.After(now.Add(5*time.Minute)) {
			return nil, errs.Invalid(field+".minute", "must be within the last 24 hours")
		}
	}
	if len(req.GetContexts()) > MaxReportedContexts {
		return nil, errs.Invalid("contexts", "at most %d contexts per batch", MaxReportedContexts)
	}
	for i, c := range req.GetContexts() {
		if c.GetAttributes() == nil {
			return nil, errs.Invalid(fmt.Sprintf("contexts[%d].attributes", i), "is required")
		}
	}
	minute := usage.Minute(now)
	private := env.Compiled.PrivateAttributes()
	for _, c := range req.GetContexts() {
		if !s.usage.WantContext(g.Environment, minute) {
			break
		}
		s.usage.SampleContext(g.Environment, minute, now, private, c.GetAttributes().AsMap())
	}
	var accepted int64
	for _, c := range counts {
		if g.Kind == auth.Client && !env.Compiled.ClientVisible(c.GetFlagKey()) {
			continue
		}
		errors := c.GetErrors()
		if g.Kind == auth.Client {
			// A client key is public: its errors could stop any rollout guarded by
			// sdk_errors (docs/governance.md). Its evaluations still count.
			errors = 0
		}
		s.usage.AddWithErrors(g.Environment, c.GetFlagKey(), c.GetVariant(), usage.Minute(c.GetMinute().AsTime()), c.GetCount(), errors)
		accepted++
	}
	return &evaluationv1.ReportEvaluationsResponse{Accepted: accepted}, nil
}
