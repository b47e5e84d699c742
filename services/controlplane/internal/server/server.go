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
	"github.com/flagforge/flagforge/services/controlplane/internal/lifecycle"
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

// GovernanceStorer is a Storer that also stores change requests, schedules and
// webhooks (store.Governance).
type GovernanceStorer interface {
	Storer
	store.Governance
}

// Option configures Register.
type Option func(*options)

type options struct {
	life   lifecycle.Config
	promql bool
	impact Previewer
}

// WithPrometheus says a Prometheus is configured for PromQL guardrails (without
// it, plans with PromQL guardrails are refused naming the field).
func WithPrometheus(configured bool) Option { return func(o *options) { o.promql = configured } }

// ReleasePlanStorer is a GovernanceStorer that also stores release plans.
type ReleasePlanStorer interface {
	GovernanceStorer
	store.ReleasePlans
}

// WithLifecycle sets the thresholds of flag lifecycle statuses (default
// lifecycle.Defaults()).
func WithLifecycle(c lifecycle.Config) Option { return func(o *options) { o.life = c } }

// Register registers every implemented admin service on s. When st also
// implements store.Governance (GovernanceStorer), ChangeRequestService,
// ScheduleService and WebhookService are registered and environments requiring
// approvals turn flag configuration and segment updates into change requests;
// otherwise those services answer UNIMPLEMENTED (the gateway 501) and such updates
// are refused; ReleasePlanService is registered when st also stores release
// plans (ReleasePlanStorer). ManifestService is registered elsewhere. now is the clock (nil:
// time.Now).
func Register(s grpc.ServiceRegistrar, st Storer, now func() time.Time, opts ...Option) {
	if now == nil {
		now = time.Now
	}
	o := options{life: lifecycle.Defaults()}
	for _, opt := range opts {
		opt(&o)
	}
	fs := &FlagService{store: st, now: now, life: o.life, impact: o.impact}
	ss := &SegmentService{store: st, impact: o.impact}
	es := &EnvironmentService{store: st}
	hs, hasHistory := st.(historyStorer)
	history := &HistoryService{store: hs, now: now}
	if g, ok := st.(GovernanceStorer); ok {
		fs.gov, ss.gov, es.gov, history.gov = g, g, g, g
		if rp, ok := st.(ReleasePlanStorer); ok {
			adminv1.RegisterReleasePlanServiceServer(s, &ReleasePlanService{store: rp, now: now, promql: o.promql})
		} else {
			adminv1.RegisterReleasePlanServiceServer(s, adminv1.UnimplementedReleasePlanServiceServer{})
		}
		adminv1.RegisterChangeRequestServiceServer(s, &ChangeRequestService{store: g, now: now})
		adminv1.RegisterScheduleServiceServer(s, &ScheduleService{store: g, now: now})
		adminv1.RegisterWebhookServiceServer(s, &WebhookService{store: g, now: now})
	} else {
		adminv1.RegisterReleasePlanServiceServer(s, adminv1.UnimplementedReleasePlanServiceServer{})
		adminv1.RegisterChangeRequestServiceServer(s, adminv1.UnimplementedChangeRequestServiceServer{})
		adminv1.RegisterScheduleServiceServer(s, adminv1.UnimplementedScheduleServiceServer{})
		adminv1.RegisterWebhookServiceServer(s, adminv1.UnimplementedWebhookServiceServer{})
	}
	adminv1.RegisterOrganizationServiceServer(s, &OrganizationService{store: st})
	adminv1.RegisterProjectServiceServer(s, &ProjectService{store: st})
	adminv1.RegisterEnvironmentServiceServer(s, es)
	adminv1.RegisterFlagServiceServer(s, fs)
	adminv1.RegisterSegmentServiceServer(s, ss)
	adminv1.RegisterMemberServiceServer(s, &MemberService{store: st})
	adminv1.RegisterApiTokenServiceServer(s, &APITokenService{store: st, now: now})
	adminv1.RegisterSdkKeyServiceServer(s, &SDKKeyService{store: st, now: now})
	if hasHistory {
		adminv1.RegisterHistoryServiceServer(s, history)
	} else {
		adminv1.RegisterHistoryServiceServer(s, adminv1.UnimplementedHistoryServiceServer{})
	}
	adminv1.RegisterAuditServiceServer(s, &AuditService{store: st})
	adminv1.RegisterUsageServiceServer(s, &UsageService{store: st, now: now})
	adminv1.RegisterPermissionServiceServer(s, &PermissionService{})
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
