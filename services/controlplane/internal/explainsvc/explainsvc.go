// Package explainsvc implements flagforge.admin.v1.ExplainService: it evaluates a
// flag for a context with the shared engine (pkg/eval) on an environment's latest
// published manifest — the very manifest and code path the evaluators use — and
// returns the decision with the path the evaluation took (eval.Explanation).
// Authentication and authorization are the admin API's interceptors' (resource: the
// flag configuration; action: read).
package explainsvc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/eval"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Store is what the service reads.
type Store interface {
	LatestManifest(ctx context.Context, ref store.EnvRef) (*store.StoredManifest, error)
}

// cacheSize bounds the compiled manifests kept (one per environment).
const cacheSize = 64

// Server implements adminv1.ExplainServiceServer.
type Server struct {
	adminv1.UnimplementedExplainServiceServer
	st Store

	mu       sync.Mutex
	compiled map[store.EnvRef]*eval.Manifest
}

var _ adminv1.ExplainServiceServer = (*Server)(nil)

// New returns the service.
func New(st Store) (*Server, error) {
	if st == nil {
		return nil, errors.New("explainsvc: a store is required")
	}
	return &Server{st: st, compiled: map[store.EnvRef]*eval.Manifest{}}, nil
}

// ExplainFlag evaluates req.flag for req.context on the latest manifest of the
// environment. Errors are pkg/errs errors: InvalidArgument naming the field
// (org, project, environment, flag, context.<attribute>), NotFound when the
// environment has no published manifest yet. An unknown flag is not an error: the
// decision says FLAG_NOT_FOUND, as the evaluation API does.
func (s *Server) ExplainFlag(ctx context.Context, req *adminv1.ExplainFlagRequest) (*adminv1.ExplainFlagResponse, error) {
	for _, f := range []struct{ name, v string }{{"org", req.GetOrg()}, {"project", req.GetProject()}, {"environment", req.GetEnvironment()}, {"flag", req.GetFlag()}} {
		if f.v == "" {
			return nil, errs.Invalid(f.name, "is required")
		}
	}
	ectx, err := eval.ContextFromStruct(req.GetContext())
	if err != nil {
		var ice *eval.InvalidContextError
		if errors.As(err, &ice) {
			field := "context"
			if ice.Attribute != "" {
				field += "." + ice.Attribute
			}
			return nil, errs.Invalid(field, "%s", ice.Problem)
		}
		return nil, errs.Wrap(errs.InvalidArgument, err, "invalid context")
	}
	ref := store.EnvRef{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()}
	m, err := s.manifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	r, tr := m.Explain(req.GetFlag(), ectx, eval.Any, nil)
	resp := &adminv1.ExplainFlagResponse{
		Value: r.ProtoValue, Variant: r.Variant, Reason: string(r.Reason), RuleId: r.RuleID,
		ErrorCode: string(r.ErrorCode), ErrorMessage: r.ErrorMessage, FlagKey: req.GetFlag(),
		ManifestVersion: r.ManifestVersion,
	}
	if resp.Value == nil {
		resp.Value = req.GetDefaultValue()
	}
	resp.Explanation, err = toProto(tr)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// manifest returns the environment's latest manifest, compiled (cached per
// environment and version).
func (s *Server) manifest(ctx context.Context, ref store.EnvRef) (*eval.Manifest, error) {
	sm, err := s.st.LatestManifest(ctx, ref)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, errs.E(errs.NotFound, "environment %s/%s/%s has no published manifest yet", ref.Org, ref.Project, ref.Environment)
		}
		return nil, err
	}
	s.mu.Lock()
	c := s.compiled[ref]
	s.mu.Unlock()
	if c != nil && c.Version() == sm.Version {
		return c, nil
	}
	var pm manifestv1.Manifest
	if err := proto.Unmarshal(sm.Signed.GetPayload(), &pm); err != nil {
		return nil, fmt.Errorf("explainsvc: decoding manifest %d: %w", sm.Version, err)
	}
	c, err = eval.Compile(&pm)
	if err != nil {
		return nil, fmt.Errorf("explainsvc: compiling manifest %d: %w", sm.Version, err)
	}
	s.mu.Lock()
	if len(s.compiled) >= cacheSize {
		clear(s.compiled)
	}
	s.compiled[ref] = c
	s.mu.Unlock()
	return c, nil
}

func toProto(tr *eval.Explanation) (*adminv1.Explanation, error) {
	out := &adminv1.Explanation{
		On: tr.On, TargetsChecked: tr.TargetsChecked, TargetingKey: tr.TargetingKey,
		TargetVariant: tr.TargetVariant, DefaultReached: tr.DefaultReached,
		DefaultRollout: rolloutProto(tr.DefaultRollout),
	}
	for _, p := range tr.Prerequisites {
		out.Prerequisites = append(out.Prerequisites, &adminv1.PrerequisiteStep{
			FlagKey: p.FlagKey, Variants: p.Variants, Missing: p.Missing, Variant: p.Variant, Reason: string(p.Reason), Met: p.Met,
		})
	}
	for _, r := range tr.Rules {
		rs := &adminv1.RuleStep{Id: r.ID, Disabled: r.Disabled, Evaluated: r.Evaluated, Matched: r.Matched, Rollout: rolloutProto(r.Rollout)}
		for _, c := range r.Clauses {
			cs := &adminv1.ClauseStep{Attribute: c.Attribute, Operator: c.Operator, Negate: c.Negate, Evaluated: c.Evaluated, Present: c.Present, Matched: c.Matched}
			if c.Present {
				v, err := structpb.NewValue(c.Value)
				if err != nil {
					return nil, fmt.Errorf("explainsvc: attribute %q: %w", c.Attribute, err)
				}
				cs.Value = v
			}
			rs.Clauses = append(rs.Clauses, cs)
		}
		out.Rules = append(out.Rules, rs)
	}
	return out, nil
}

func rolloutProto(r *eval.RolloutStep) *adminv1.RolloutStep {
	if r == nil {
		return nil
	}
	return &adminv1.RolloutStep{BucketBy: r.BucketBy, Seed: r.Seed, Missing: r.Missing, BucketValue: r.BucketValue,
		Bucket: r.Bucket, TotalWeight: r.TotalWeight, Variant: r.Variant}
}
