// Package server implements the control plane's admin gRPC services over the
// store: it validates every request field (errs.Invalid naming the field), turns
// requests into store calls with the caller's audit metadata, and runs the
// engine's validation inside the store's write transaction (Check callbacks).
// Authentication, authorization, rate limits and error mapping happen before and
// after, in package rpc; services only make the decisions that need data (for
// example who may touch an owner).
package server

import (
	"context"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/grpc"
)

// Storer is the storage the services use (all of it, split by service below).
type Storer interface {
	store.Orgs
	store.Projects
	store.Flags
	store.Segments
	store.Members
	store.Credentials
	store.Audit
	store.Usage
}

// Register registers every implemented admin service on s. ChangeRequestService,
// ScheduleService, WebhookService and ManifestService are not registered yet (the
// server answers UNIMPLEMENTED, the gateway 501). now is the clock (nil: time.Now).
func Register(s grpc.ServiceRegistrar, st Storer, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	adminv1.RegisterOrganizationServiceServer(s, &OrganizationService{store: st})
	adminv1.RegisterProjectServiceServer(s, &ProjectService{store: st})
	adminv1.RegisterEnvironmentServiceServer(s, &EnvironmentService{store: st})
	adminv1.RegisterFlagServiceServer(s, &FlagService{store: st})
	adminv1.RegisterSegmentServiceServer(s, &SegmentService{store: st})
	adminv1.RegisterMemberServiceServer(s, &MemberService{store: st})
	adminv1.RegisterApiTokenServiceServer(s, &APITokenService{store: st, now: now})
	adminv1.RegisterSdkKeyServiceServer(s, &SDKKeyService{store: st, now: now})
	adminv1.RegisterAuditServiceServer(s, &AuditService{store: st})
	adminv1.RegisterUsageServiceServer(s, &UsageService{store: st, now: now})
}

// ownerGuard refuses a caller who is not an owner of the organization when the
// member touched holds the owner role anywhere: admins manage everyone but owners.
func ownerGuard(ctx context.Context, org string, bindings []*adminv1.RoleBinding) error {
	for _, b := range bindings {
		if b.GetRole() == adminv1.Role_ROLE_OWNER {
			return authz.Check(actor.PrincipalFrom(ctx), authz.Scope{Org: org}, authz.Member, authz.ManageOwners)
		}
	}
	return nil
}

// retryStale runs f up to three times while it fails with a stale revision; for
// server-side read-modify-write operations (emergency off, kill) that must not
// lose to a concurrent edit.
func retryStale(f func() error) error {
	var err error
	for range 3 {
		if err = f(); errs.KindOf(err) != errs.Aborted {
			return err
		}
	}
	return err
}
