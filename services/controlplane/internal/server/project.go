package server

import (
	"context"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// ProjectService implements adminv1.ProjectServiceServer.
type ProjectService struct {
	adminv1.UnimplementedProjectServiceServer
	store store.Projects
}

// CreateProject creates a project with its development, staging and production
// environments.
func (s *ProjectService) CreateProject(ctx context.Context, req *adminv1.CreateProjectRequest) (*adminv1.CreateProjectResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.present("project", req.GetProject() == nil)
	c.key("project.key", req.GetProject().GetKey())
	c.text("project.name", req.GetProject().GetName(), maxName, false)
	c.text("project.description", req.GetProject().GetDescription(), maxDescription, false)
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	in := req.GetProject()
	p := &adminv1.Project{Key: in.GetKey(), Name: in.GetName(), Description: in.GetDescription()}
	if p.Name == "" {
		p.Name = p.Key
	}
	proj, envs, err := s.store.CreateProject(ctx, meta(ctx, idem, "", ""), req.GetOrg(), p)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateProjectResponse{Project: proj, Environments: envs}, nil
}

// GetProject reads a project.
func (s *ProjectService) GetProject(ctx context.Context, req *adminv1.GetProjectRequest) (*adminv1.GetProjectResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	if c.err != nil {
		return nil, c.err
	}
	p, err := s.store.GetProject(ctx, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()})
	if err != nil {
		return nil, err
	}
	return &adminv1.GetProjectResponse{Project: p}, nil
}

// ListProjects lists an organization's projects.
func (s *ProjectService) ListProjects(ctx context.Context, req *adminv1.ListProjectsRequest) (*adminv1.ListProjectsResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ps, next, err := s.store.ListProjects(ctx, req.GetOrg(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListProjectsResponse{Projects: ps, NextPageToken: next}, nil
}

// UpdateProject changes a project's name and description; an empty field keeps
// its current value.
func (s *ProjectService) UpdateProject(ctx context.Context, req *adminv1.UpdateProjectRequest) (*adminv1.UpdateProjectResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.text("name", req.GetName(), maxName, false)
	c.text("description", req.GetDescription(), maxDescription, false)
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	cur, err := s.store.GetProject(ctx, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()})
	if err != nil {
		return nil, err
	}
	p := &adminv1.Project{Key: cur.GetKey(), Name: cur.GetName(), Description: cur.GetDescription()}
	if req.GetName() != "" {
		p.Name = req.GetName()
	}
	if req.GetDescription() != "" {
		p.Description = req.GetDescription()
	}
	out, err := s.store.UpdateProject(ctx, meta(ctx, "", "", ""), req.GetOrg(), p, req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateProjectResponse{Project: out}, nil
}

// DeleteProject deletes a project with its environments, flags and segments.
func (s *ProjectService) DeleteProject(ctx context.Context, req *adminv1.DeleteProjectRequest) (*adminv1.DeleteProjectResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	if err := s.store.DeleteProject(ctx, meta(ctx, "", "", ""), store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, req.GetRevision()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteProjectResponse{}, nil
}
