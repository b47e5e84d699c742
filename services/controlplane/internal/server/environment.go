package server

import (
	"context"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/governance"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/protobuf/proto"
)

// maxApprovals bounds EnvironmentSettings.required_approvals.
const maxApprovals = 10

// EnvironmentService implements adminv1.EnvironmentServiceServer.
type EnvironmentService struct {
	adminv1.UnimplementedEnvironmentServiceServer
	store store.Projects
	// gov opens the change requests of weakening settings updates (nil: they are
	// refused).
	gov changeRequests
}

func (c *checks) settings(field string, s *adminv1.EnvironmentSettings) {
	if s == nil {
		return
	}
	if n := s.GetRequiredApprovals(); n < 0 || n > maxApprovals {
		c.fail(field+".required_approvals", "must be between 0 and %d", maxApprovals)
	}
}

// CreateEnvironment adds an environment to a project (every flag starts off there).
func (s *EnvironmentService) CreateEnvironment(ctx context.Context, req *adminv1.CreateEnvironmentRequest) (*adminv1.CreateEnvironmentResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.present("environment", req.GetEnvironment() == nil)
	c.key("environment.key", req.GetEnvironment().GetKey())
	c.text("environment.name", req.GetEnvironment().GetName(), maxName, false)
	c.settings("environment.settings", req.GetEnvironment().GetSettings())
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	in := req.GetEnvironment()
	e := &adminv1.Environment{Key: in.GetKey(), Name: in.GetName(), Settings: in.GetSettings()}
	if e.Name == "" {
		e.Name = e.Key
	}
	// Unset settings take their defaults in the store.
	out, err := s.store.CreateEnvironment(ctx, meta(ctx, idem, "", ""), store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, e)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateEnvironmentResponse{Environment: out}, nil
}

// GetEnvironment reads an environment.
func (s *EnvironmentService) GetEnvironment(ctx context.Context, req *adminv1.GetEnvironmentRequest) (*adminv1.GetEnvironmentResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("environment", req.GetEnvironment())
	if c.err != nil {
		return nil, c.err
	}
	e, err := s.store.GetEnvironment(ctx, store.EnvRef{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()})
	if err != nil {
		return nil, err
	}
	return &adminv1.GetEnvironmentResponse{Environment: e}, nil
}

// ListEnvironments lists a project's environments.
func (s *EnvironmentService) ListEnvironments(ctx context.Context, req *adminv1.ListEnvironmentsRequest) (*adminv1.ListEnvironmentsResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	es, next, err := s.store.ListEnvironments(ctx, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListEnvironmentsResponse{Environments: es, NextPageToken: next}, nil
}

// UpdateEnvironment changes the name (empty keeps it) and, when given, the
// settings. Stricter settings apply at once; settings that weaken the governance
// of an environment requiring approvals (approvals off, fewer approvals, emergency
// off allowed) save nothing and open a change request (returned in
// change_request) that only another admin of the environment may approve.
func (s *EnvironmentService) UpdateEnvironment(ctx context.Context, req *adminv1.UpdateEnvironmentRequest) (*adminv1.UpdateEnvironmentResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("environment", req.GetEnvironment())
	c.text("name", req.GetName(), maxName, false)
	c.settings("settings", req.GetSettings())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	ref := store.EnvRef{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()}
	cur, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	e := proto.CloneOf(cur)
	if req.GetName() != "" {
		e.Name = req.GetName()
	}
	e.Settings = mergeSettings(e.GetSettings(), req.GetSettings())
	if governance.Weakens(cur.GetSettings(), e.GetSettings()) {
		// Weakening the four-eyes rule is itself a four-eyes change: another admin
		// of the environment must approve it.
		if s.gov == nil {
			return nil, errs.E(errs.FailedPrecondition, "environment %q requires approvals: weakening its settings needs another admin's approval", ref.Environment)
		}
		if req.GetName() != "" && req.GetName() != cur.GetName() {
			return nil, errs.Invalid("name", "change the name in a separate update: weakening the settings becomes a change request")
		}
		cr, err := propose(ctx, s.gov, ref, cur, governance.SettingsChange(e.GetSettings()), req.GetRevision(),
			"weaken the governance settings of "+ref.Environment, "")
		if err != nil {
			return nil, err
		}
		return &adminv1.UpdateEnvironmentResponse{ChangeRequest: cr}, nil
	}
	out, err := s.store.UpdateEnvironment(ctx, meta(ctx, "", "", ""), store.ProjectRef{Org: ref.Org, Project: ref.Project}, e, req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateEnvironmentResponse{Environment: out}, nil
}

// DeleteEnvironment deletes an environment with its flag configurations and segments.
func (s *EnvironmentService) DeleteEnvironment(ctx context.Context, req *adminv1.DeleteEnvironmentRequest) (*adminv1.DeleteEnvironmentResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("environment", req.GetEnvironment())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	if err := s.store.DeleteEnvironment(ctx, meta(ctx, "", "", ""), store.EnvRef{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()}, req.GetRevision()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteEnvironmentResponse{}, nil
}

// mergeSettings applies the fields an update sets onto the current settings;
// fields it leaves unset keep their current values (so enabling approvals never
// silently disables emergency off).
func mergeSettings(cur, upd *adminv1.EnvironmentSettings) *adminv1.EnvironmentSettings {
	out := proto.CloneOf(cur)
	if out == nil {
		out = &adminv1.EnvironmentSettings{}
	}
	if upd.ApprovalsRequired != nil {
		out.ApprovalsRequired = proto.Bool(upd.GetApprovalsRequired())
	}
	if upd.RequiredApprovals != nil {
		out.RequiredApprovals = proto.Int32(upd.GetRequiredApprovals())
	}
	if upd.EmergencyOffAllowed != nil {
		out.EmergencyOffAllowed = proto.Bool(upd.GetEmergencyOffAllowed())
	}
	return out
}
