package store

import (
	"context"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// ChangeRequestFilter narrows ListChangeRequests; the zero value lists all.
type ChangeRequestFilter struct {
	// State: only requests in this state (UNSPECIFIED: any).
	State adminv1.ChangeRequestState
	// Author: only requests by this member; NotAuthor: none by this member.
	Author, NotAuthor string
	// Keep, when set, decides on each request the SQL filters let through (what
	// the caller may do with it); a page still holds up to its size of kept ones.
	Keep func(*adminv1.ChangeRequest) bool
}

// Governance stores change requests (four-eyes approvals), scheduled changes and
// webhooks with their durable delivery queue. The package contract holds: every
// write is one transaction with its audit entry and outbox row.
//
// Further contracts:
//   - EditChangeRequest and ApplyChangeRequest lock the request for the whole
//     transaction, so two approvals, or an approval and an edit, never interleave.
//   - ApplyChangeRequest performs the proposed change, the request's state change
//     and both audit entries in ONE transaction; a target whose revision is no
//     longer the request's base revision is errs.Aborted and changes nothing.
//   - RunDueScheduledChange claims a due PENDING schedule in the same transaction
//     that applies it (FOR UPDATE SKIP LOCKED on PostgreSQL, the single writer on
//     SQLite, and an UPDATE ... WHERE state = PENDING either way), so a schedule is
//     applied exactly once however many runners poll.
//   - Webhook deliveries are derived from the audit chain, whose per-organization
//     sequence is gapless and in commit order: EnqueueWebhookDeliveries advances a
//     per-organization cursor, so nothing committed is skipped and nothing
//     uncommitted is ever seen.
type Governance interface {
	// CreateChangeRequest stores cr (id, state, revision, times and diff are set
	// by the store; the diff is against the target's current state).
	CreateChangeRequest(ctx context.Context, m WriteMeta, ref EnvRef, cr *adminv1.ChangeRequest) (*adminv1.ChangeRequest, error)
	GetChangeRequest(ctx context.Context, ref EnvRef, id string) (*adminv1.ChangeRequest, error)
	// ListChangeRequests lists requests oldest first, narrowed by f.
	ListChangeRequests(ctx context.Context, ref EnvRef, f ChangeRequestFilter, p Page) ([]*adminv1.ChangeRequest, string, error)
	// EditChangeRequest runs edit on the locked request and saves the result
	// (revision + 1, diff recomputed), audited as action.
	EditChangeRequest(ctx context.Context, m WriteMeta, ref EnvRef, id, action string, edit func(cr *adminv1.ChangeRequest) error) (*adminv1.ChangeRequest, error)
	// ApplyChangeRequest checks ready on the locked request, then performs its
	// change (validated by check), or, for a schedule's request, moves the schedule
	// to PENDING; the request becomes APPLIED.
	ApplyChangeRequest(ctx context.Context, m WriteMeta, ref EnvRef, id string, ready func(cr *adminv1.ChangeRequest) error, check func(c *adminv1.ProposedChange) Check) (*adminv1.ChangeRequest, error)

	// CreateScheduledChange stores sc; with cr non-nil (approvals required) the
	// schedule awaits the approval of cr, created in the same transaction.
	CreateScheduledChange(ctx context.Context, m WriteMeta, ref EnvRef, sc *adminv1.ScheduledChange, cr *adminv1.ChangeRequest) (*adminv1.ScheduledChange, error)
	GetScheduledChange(ctx context.Context, ref EnvRef, id string) (*adminv1.ScheduledChange, error)
	ListScheduledChanges(ctx context.Context, ref EnvRef, state adminv1.ScheduledChangeState, p Page) ([]*adminv1.ScheduledChange, string, error)
	// CancelScheduledChange cancels a schedule that has not run (and withdraws its
	// open change request).
	CancelScheduledChange(ctx context.Context, m WriteMeta, ref EnvRef, id string) (*adminv1.ScheduledChange, error)
	// RunDueScheduledChange applies one schedule due at now, or marks it FAILED
	// (stale base revision, invalid change) with the reason, audited either way.
	// It returns nil, nil when nothing is due.
	RunDueScheduledChange(ctx context.Context, m WriteMeta, now time.Time, check func(flag string) Check) (*adminv1.ScheduledChange, error)

	// KillFlag turns the flag off in every environment of the project in ONE
	// transaction (one audit entry per environment it changed) and returns every
	// environment's configuration.
	KillFlag(ctx context.Context, m WriteMeta, ref ProjectRef, flag string) ([]*adminv1.FlagEnvironmentConfig, error)

	// CreateWebhook stores w with its signing secret and returns both (a retry
	// with the same idempotency key: the first webhook and its secret).
	CreateWebhook(ctx context.Context, m WriteMeta, ref ProjectRef, w *adminv1.Webhook, secret string) (*adminv1.Webhook, string, error)
	GetWebhook(ctx context.Context, ref ProjectRef, id string) (*adminv1.Webhook, error)
	ListWebhooks(ctx context.Context, ref ProjectRef, p Page) ([]*adminv1.Webhook, string, error)
	// UpdateWebhook replaces url, event_types and max_failures.
	UpdateWebhook(ctx context.Context, m WriteMeta, ref ProjectRef, w *adminv1.Webhook, revision int64) (*adminv1.Webhook, error)
	DeleteWebhook(ctx context.Context, m WriteMeta, ref ProjectRef, id string) error
	// EnableWebhook re-enables a webhook and resets its failure count; its pending
	// deliveries resume.
	EnableWebhook(ctx context.Context, m WriteMeta, ref ProjectRef, id string) (*adminv1.Webhook, error)
	// ListWebhookDeliveries lists a webhook's deliveries, newest first.
	ListWebhookDeliveries(ctx context.Context, ref ProjectRef, id string, p Page) ([]*adminv1.WebhookDelivery, string, error)
	// EnqueueTestDelivery queues a delivery of payload to an enabled webhook, due
	// at once and ordered after nothing (FailedPrecondition when disabled).
	EnqueueTestDelivery(ctx context.Context, ref ProjectRef, webhookID, eventType, eventID string, payload []byte) (*adminv1.WebhookDelivery, error)
	// RedeliverWebhookDelivery sets a delivery that was attempted back to pending,
	// due at now and ordered after nothing (FailedPrecondition when the webhook
	// is disabled or the delivery is pending or leased).
	RedeliverWebhookDelivery(ctx context.Context, ref ProjectRef, webhookID, deliveryID string, now time.Time) (*adminv1.WebhookDelivery, error)

	// EnqueueWebhookDeliveries turns up to limit audit entries past the cursors
	// into deliveries (payload built by render) and returns how many entries it
	// consumed.
	EnqueueWebhookDeliveries(ctx context.Context, limit int, render func(e *adminv1.AuditEntry, org string) (eventType, orderKey string, payload []byte, ok bool)) (int, error)
	// ClaimWebhookDeliveries leases up to limit deliveries due at now whose webhook
	// is enabled and that have no earlier unfinished delivery with the same webhook
	// and order key.
	ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]PendingDelivery, error)
	// CompleteWebhookDelivery records an attempt's outcome (see DeliveryResult).
	CompleteWebhookDelivery(ctx context.Context, r DeliveryResult) error
}

// PendingDelivery is a leased delivery with what sending it needs.
type PendingDelivery struct {
	ID, WebhookID, Org, Project string
	URL, Secret                 string
	EventType, EventID          string
	Payload                     []byte
	// Attempts made before this one.
	Attempts int32
}

// DeliveryResult is the outcome of one attempt.
type DeliveryResult struct {
	ID, WebhookID string
	// OK: the endpoint answered 2xx.
	OK         bool
	StatusCode int32
	Error      string
	// Now is when the attempt finished.
	Now time.Time
	// NextAttempt is when to retry (failures only); zero: give up (FAILED).
	NextAttempt time.Time
}
