// Package manifestsvc implements flagforge.admin.v1.ManifestService: download of a
// signed manifest (the latest, or a version still in the stored history) for SDK
// offline bootstrap and export. Authentication and authorization are the admin
// API's interceptors' (resource: the environment; action: read).
package manifestsvc

import (
	"context"
	"errors"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Store is what the service reads.
type Store interface {
	LatestManifest(ctx context.Context, ref store.EnvRef) (*store.StoredManifest, error)
	GetManifest(ctx context.Context, ref store.EnvRef, version uint64) (*store.StoredManifest, error)
}

// Server implements adminv1.ManifestServiceServer.
type Server struct {
	adminv1.UnimplementedManifestServiceServer
	st Store
}

var _ adminv1.ManifestServiceServer = (*Server)(nil)

// New returns the service.
func New(st Store) (*Server, error) {
	if st == nil {
		return nil, errors.New("manifestsvc: a store is required")
	}
	return &Server{st: st}, nil
}

// GetSignedManifest returns the latest version (version 0) or the one asked for.
// Errors are pkg/errs errors (NotFound: none published, or pruned from history).
func (s *Server) GetSignedManifest(ctx context.Context, req *adminv1.GetSignedManifestRequest) (*adminv1.GetSignedManifestResponse, error) {
	for _, f := range []struct{ name, v string }{{"org", req.GetOrg()}, {"project", req.GetProject()}, {"environment", req.GetEnvironment()}} {
		if f.v == "" {
			return nil, errs.Invalid(f.name, "required")
		}
	}
	ref := store.EnvRef{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()}
	var sm *store.StoredManifest
	var err error
	if req.GetVersion() == 0 {
		sm, err = s.st.LatestManifest(ctx, ref)
	} else {
		sm, err = s.st.GetManifest(ctx, ref, req.GetVersion())
	}
	if err != nil {
		return nil, err
	}
	return &adminv1.GetSignedManifestResponse{Manifest: sm.Signed, Version: sm.Version}, nil
}
