package impact

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/eval"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Store is what the service reads.
type Store interface {
	EnvironmentManifest(ctx context.Context, ref store.EnvRef, now time.Time) (*manifestv1.Manifest, error)
}

// ChangeRequests reads change requests (a store with store.Governance).
type ChangeRequests interface {
	GetChangeRequest(ctx context.Context, ref store.EnvRef, id string) (*adminv1.ChangeRequest, error)
}

// Contexts supplies an environment's seen contexts (seencontexts.Service).
type Contexts interface {
	Contexts(ctx context.Context, ref store.EnvRef) ([]*adminv1.SeenContext, error)
}

// Limits of a preview request.
const (
	MaxChanges  = 100
	MaxExamples = 20
)

// Service implements adminv1.ImpactServiceServer. Authentication and
// authorization are the admin API's interceptors' (reading flag configurations).
type Service struct {
	adminv1.UnimplementedImpactServiceServer
	st       Store
	crs      ChangeRequests
	contexts Contexts
}

var _ adminv1.ImpactServiceServer = (*Service)(nil)

// NewService returns the service. crs nil: GetChangeRequestImpact answers
// FAILED_PRECONDITION (the store has no change requests).
func NewService(st Store, crs ChangeRequests, contexts Contexts) *Service {
	return &Service{st: st, crs: crs, contexts: contexts}
}

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

type violations []errs.Violation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, errs.Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (v *violations) key(field, s string) {
	switch {
	case s == "":
		v.add(field, "is required")
	case !keyRE.MatchString(s):
		v.add(field, "must be a lowercase slug matching ^[a-z0-9][a-z0-9_.-]{0,63}$")
	}
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return errs.InvalidAll(v)
}

func envRef(v *violations, org, project, env string) store.EnvRef {
	v.key("org", org)
	v.key("project", project)
	v.key("environment", env)
	return store.EnvRef{Org: org, Project: project, Environment: env}
}

func (v *violations) examples(n int32) {
	if n < 0 || n > MaxExamples {
		v.add("max_examples", "must be between 0 and %d", MaxExamples)
	}
}

// PreviewImpact evaluates proposed changes over the environment's seen contexts.
func (s *Service) PreviewImpact(ctx context.Context, req *adminv1.PreviewImpactRequest) (*adminv1.PreviewImpactResponse, error) {
	var v violations
	ref := envRef(&v, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	v.examples(req.GetMaxExamples())
	switch n := len(req.GetChanges()); {
	case n == 0:
		v.add("changes", "is required: at least one flag_config or segment")
	case n > MaxChanges:
		v.add("changes", "at most %d changes", MaxChanges)
	}
	for i, c := range req.GetChanges() {
		field := fmt.Sprintf("changes[%d]", i)
		switch ch := c.GetChange().(type) {
		case *adminv1.ProposedChange_FlagConfig:
			v.key(field+".flag_config.flag", ch.FlagConfig.GetFlag())
			if ch.FlagConfig.GetConfig() == nil {
				v.add(field+".flag_config.config", "is required")
			}
		case *adminv1.ProposedChange_Segment:
			v.key(field+".segment.key", ch.Segment.GetKey())
		case *adminv1.ProposedChange_EnvironmentSettings:
			v.add(field+".environment_settings", "governance settings change no decision: nothing to preview")
		default:
			v.add(field, "is required: flag_config or segment")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	im, err := s.preview(ctx, ref, req.GetChanges(), int(req.GetMaxExamples()), "changes")
	if err != nil {
		return nil, err
	}
	return &adminv1.PreviewImpactResponse{Impact: im}, nil
}

// GetChangeRequestImpact previews a change request's proposal against the
// environment's current configuration (a proposal of governance settings
// changes no decision: an empty impact).
func (s *Service) GetChangeRequestImpact(ctx context.Context, req *adminv1.GetChangeRequestImpactRequest) (*adminv1.GetChangeRequestImpactResponse, error) {
	var v violations
	ref := envRef(&v, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	if req.GetId() == "" {
		v.add("id", "is required")
	}
	v.examples(req.GetMaxExamples())
	if err := v.err(); err != nil {
		return nil, err
	}
	if s.crs == nil {
		return nil, errs.E(errs.FailedPrecondition, "this control plane's store keeps no change requests")
	}
	cr, err := s.crs.GetChangeRequest(ctx, ref, req.GetId())
	if err != nil {
		return nil, err
	}
	var changes []*adminv1.ProposedChange
	if _, settings := cr.GetChange().GetChange().(*adminv1.ProposedChange_EnvironmentSettings); !settings {
		changes = append(changes, cr.GetChange())
	}
	im, err := s.preview(ctx, ref, changes, int(req.GetMaxExamples()), "change")
	if err != nil {
		return nil, err
	}
	return &adminv1.GetChangeRequestImpactResponse{Impact: im}, nil
}

// preview validates changes with the engine against the proposed environment
// (field names under prefix) and evaluates them.
func (s *Service) preview(ctx context.Context, ref store.EnvRef, changes []*adminv1.ProposedChange, examples int, prefix string) (*adminv1.Impact, error) {
	cur, err := s.st.EnvironmentManifest(ctx, ref, time.Now())
	if err != nil {
		return nil, err
	}
	proposed, _, _, err := Apply(cur, changes)
	var unknown *UnknownFlagError
	if errors.As(err, &unknown) {
		return nil, errs.Invalid(field(prefix, len(changes), unknown.Index)+".flag_config.flag", "no flag %q in environment %q", unknown.Flag, ref.Environment)
	}
	if err != nil {
		return nil, err
	}
	lookup := eval.NewLookup(proposed.GetFlags(), proposed.GetSegments())
	for i, c := range changes {
		f := field(prefix, len(changes), i)
		switch ch := c.GetChange().(type) {
		case *adminv1.ProposedChange_FlagConfig:
			fl, _ := lookup.Flag(ch.FlagConfig.GetFlag())
			if err := invalid(eval.ValidateFlag(fl, lookup), f+".flag_config"); err != nil {
				return nil, err
			}
		case *adminv1.ProposedChange_Segment:
			sg, _ := lookup.Segment(ch.Segment.GetKey())
			if err := invalid(eval.ValidateSegment(sg, lookup), f+".segment"); err != nil {
				return nil, err
			}
		}
	}
	seen, err := s.contexts.Contexts(ctx, ref)
	if err != nil {
		return nil, err
	}
	cs := make([]*structpb.Struct, len(seen))
	for i, c := range seen {
		cs[i] = c.GetAttributes()
	}
	return Preview(cur, changes, cs, examples)
}

// field names change i: "changes[i]" or, for a change request's single
// proposal, "change".
func field(prefix string, n, i int) string {
	if prefix == "change" && n == 1 {
		return prefix
	}
	return fmt.Sprintf("%s[%d]", prefix, i)
}

// invalid turns the engine's validation error into InvalidArgument naming the
// request fields under prefix (a flag's "config.rules[0]" becomes
// "<prefix>.config.rules[0]").
func invalid(err error, prefix string) error {
	if err == nil {
		return nil
	}
	var ve *eval.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) == 0 {
		return errs.Wrap(errs.InvalidArgument, err, "invalid proposal")
	}
	vs := make([]errs.Violation, len(ve.Errors))
	for i, fe := range ve.Errors {
		p := prefix
		if fe.Path != "" {
			p += "." + strings.TrimPrefix(fe.Path, ".")
		}
		vs[i] = errs.Violation{Field: p, Description: fe.Message}
	}
	return errs.InvalidAll(vs)
}
