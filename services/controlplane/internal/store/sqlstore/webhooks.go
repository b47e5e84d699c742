package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// --- webhooks ---

func webhookPath(project, id string) string { return projectPath(project) + "/webhooks/" + id }

const webhookColumns = `id, url, event_types, enabled, failure_count, max_failures, disabled_reason, revision, created_at`

func scanWebhook(sc interface{ Scan(...any) error }) (*adminv1.Webhook, error) {
	var w adminv1.Webhook
	var types string
	var c int64
	if err := sc.Scan(&w.Id, &w.Url, &types, &w.Enabled, &w.FailureCount, &w.MaxFailures, &w.DisabledReason, &w.Revision, &c); err != nil {
		return nil, err
	}
	if types != "" {
		w.EventTypes = strings.Split(strings.Trim(types, ","), ",")
	}
	w.CreateTime = ts(c)
	return &w, nil
}

func (s *Store) loadWebhook(ctx context.Context, x q, ref store.ProjectRef, id string, lock bool) (*adminv1.Webhook, error) {
	query := `SELECT ` + webhookColumns + ` FROM webhooks WHERE org = ? AND project = ? AND id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	w, err := scanWebhook(x.row(ctx, query, ref.Org, ref.Project, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook", id)
	}
	return w, err
}

func whChange(ref store.ProjectRef, action string, before, after *adminv1.Webhook) change {
	id := after.GetId()
	if id == "" {
		id = before.GetId()
	}
	return change{org: ref.Org, project: ref.Project, action: action, resourceType: "webhook",
		resource: webhookPath(ref.Project, id), before: before, after: after}
}

// CreateWebhook stores a webhook and its secret. It only receives changes
// committed after it. An idempotent retry returns the first webhook and secret.
func (s *Store) CreateWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, w *adminv1.Webhook, secret string) (*adminv1.Webhook, string, error) {
	res, err := create(ctx, s, m, ref.Org, "webhook.create", requestHash(ref.Project, w),
		func() *adminv1.CreateWebhookResponse { return &adminv1.CreateWebhookResponse{} },
		func(t *Tx) (*adminv1.CreateWebhookResponse, error) {
			if _, err := s.loadProject(ctx, t.q(), ref, false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			var head int64
			if err := t.q().row(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_entries WHERE org = ?`, ref.Org).Scan(&head); err != nil {
				return nil, err
			}
			if _, err := t.q().exec(ctx, `INSERT INTO webhook_cursors (org, seq) VALUES (?, ?) ON CONFLICT (org) DO NOTHING`, ref.Org, head); err != nil {
				return nil, err
			}
			out := proto.CloneOf(w)
			out.Id, out.Enabled, out.FailureCount, out.DisabledReason, out.Revision = id, true, 0, "", 1
			out.CreateTime = timestamppb.New(t.now)
			now := micros(t.now)
			if _, err := t.q().exec(ctx, `INSERT INTO webhooks (org, project, id, url, secret, event_types, enabled, failure_count,
				max_failures, disabled_reason, start_seq, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, '', ?, 1, ?, ?)`, ref.Org, ref.Project, id, out.Url, secret,
				tagsColumn(out.EventTypes), true, out.MaxFailures, head, now, now); err != nil {
				return nil, err
			}
			return &adminv1.CreateWebhookResponse{Webhook: out, Secret: secret}, t.record(ctx, m, whChange(ref, "webhook.create", nil, out))
		})
	if err != nil {
		return nil, "", err
	}
	return res.GetWebhook(), res.GetSecret(), nil
}

// GetWebhook returns a webhook (never its secret).
func (s *Store) GetWebhook(ctx context.Context, ref store.ProjectRef, id string) (*adminv1.Webhook, error) {
	w, err := s.loadWebhook(ctx, s.r(), ref, id, false)
	return w, s.translate(err)
}

// ListWebhooks lists a project's webhooks oldest first.
func (s *Store) ListWebhooks(ctx context.Context, ref store.ProjectRef, p store.Page) ([]*adminv1.Webhook, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE org = ? AND project = ? AND id > ?
		ORDER BY id LIMIT ?`, ref.Org, ref.Project, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanWebhook)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.Webhook).GetId)
	return out, next, nil
}

func (s *Store) writeWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id, action string, edit func(before, after *adminv1.Webhook) error) (*adminv1.Webhook, error) {
	var out *adminv1.Webhook
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadWebhook(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		after := proto.CloneOf(before)
		if err := edit(before, after); err != nil {
			return err
		}
		after.Revision = before.Revision + 1
		if _, err := t.q().exec(ctx, `UPDATE webhooks SET url = ?, event_types = ?, enabled = ?, failure_count = ?,
			max_failures = ?, disabled_reason = ?, revision = ?, updated_at = ? WHERE id = ?`,
			after.Url, tagsColumn(after.EventTypes), after.Enabled, after.FailureCount, after.MaxFailures,
			after.DisabledReason, after.Revision, micros(t.now), id); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, whChange(ref, action, before, after))
	})
	return out, err
}

// UpdateWebhook replaces a webhook's url, event types and failure limit.
func (s *Store) UpdateWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, w *adminv1.Webhook, revision int64) (*adminv1.Webhook, error) {
	return s.writeWebhook(ctx, m, ref, w.GetId(), "webhook.update", func(before, after *adminv1.Webhook) error {
		if err := checkRevision("webhook", before.Id, before.Revision, revision); err != nil {
			return err
		}
		after.Url, after.EventTypes, after.MaxFailures = w.GetUrl(), w.GetEventTypes(), w.GetMaxFailures()
		return nil
	})
}

// EnableWebhook re-enables a webhook.
func (s *Store) EnableWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id string) (*adminv1.Webhook, error) {
	return s.writeWebhook(ctx, m, ref, id, "webhook.enable", func(_, after *adminv1.Webhook) error {
		after.Enabled, after.FailureCount, after.DisabledReason = true, 0, ""
		return nil
	})
}

// DeleteWebhook deletes a webhook with its deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id string) error {
	return s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadWebhook(ctx, t.q(), ref, id, true)
		if err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = ?`, id); err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `DELETE FROM webhooks WHERE id = ?`, id); err != nil {
			return err
		}
		return t.record(ctx, m, whChange(ref, "webhook.delete", before, nil))
	})
}

const deliveryColumns = `id, webhook_id, event_type, event_id, state, attempts, last_status_code, last_error,
	created_at, next_attempt_at, delivered_at`

func scanDelivery(sc interface{ Scan(...any) error }) (*adminv1.WebhookDelivery, error) {
	var d adminv1.WebhookDelivery
	var state int32
	var c, n, dl int64
	if err := sc.Scan(&d.Id, &d.WebhookId, &d.EventType, &d.EventId, &state, &d.Attempts, &d.LastStatusCode,
		&d.LastError, &c, &n, &dl); err != nil {
		return nil, err
	}
	d.State, d.CreateTime, d.DeliveredTime = adminv1.WebhookDeliveryState(state), ts(c), ts(dl)
	if d.State == adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING || d.State == adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING {
		d.NextAttemptTime = ts(n)
	}
	return &d, nil
}

// ListWebhookDeliveries lists a webhook's deliveries, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, ref store.ProjectRef, id string, p store.Page) ([]*adminv1.WebhookDelivery, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.loadWebhook(ctx, s.r(), ref, id, false); err != nil {
		return nil, "", s.translate(err)
	}
	query := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE webhook_id = ?`
	args := []any{id}
	if after != "" {
		query += ` AND id < ?`
		args = append(args, after)
	}
	rows, err := s.r().query(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.WebhookDelivery).GetId)
	return out, next, nil
}

type hookRow struct {
	id, project string
	types       []string
	startSeq    int64
}

// EnqueueWebhookDeliveries advances every organization's cursor over its audit
// chain, creating the deliveries of the entries it passes, in one transaction per
// organization. The cursor row is locked, so concurrent dispatchers take turns.
func (s *Store) EnqueueWebhookDeliveries(ctx context.Context, limit int, render func(e *adminv1.AuditEntry, org string) (string, string, []byte, bool)) (int, error) {
	rows, err := s.r().query(ctx, `SELECT org FROM webhook_cursors ORDER BY org`)
	if err != nil {
		return 0, s.translate(err)
	}
	orgs, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var o string
		return o, sc.Scan(&o)
	})
	if err != nil {
		return 0, s.translate(err)
	}
	total := 0
	for _, org := range orgs {
		n := 0
		err := s.inTx(ctx, func(t *Tx) error {
			n = 0
			var cursor int64
			if err := t.q().row(ctx, `SELECT seq FROM webhook_cursors WHERE org = ?`+s.d.ForUpdate, org).Scan(&cursor); err != nil {
				return err
			}
			rows, err := t.q().query(ctx, `SELECT `+auditColumns+` FROM audit_entries WHERE org = ? AND seq > ? ORDER BY seq LIMIT ?`,
				org, cursor, limit)
			if err != nil {
				return err
			}
			entries, err := collect(rows, scanAudit)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				return nil
			}
			hrows, err := t.q().query(ctx, `SELECT id, project, event_types, start_seq FROM webhooks WHERE org = ?`, org)
			if err != nil {
				return err
			}
			hooks, err := collect(hrows, func(sc interface{ Scan(...any) error }) (hookRow, error) {
				var h hookRow
				var types string
				err := sc.Scan(&h.id, &h.project, &types, &h.startSeq)
				if types != "" {
					h.types = strings.Split(strings.Trim(types, ","), ",")
				}
				return h, err
			})
			if err != nil {
				return err
			}
			for _, e := range entries {
				entry := e.proto()
				typ, orderKey, payload, ok := render(entry, org)
				if !ok {
					continue
				}
				for _, h := range hooks {
					inScope := strings.HasPrefix(e.Resource, projectPath(h.project)+"/") || orgWide(e.Resource)
					if e.Seq <= h.startSeq || !inScope || !subscribed(h.types, typ) {
						continue
					}
					id, err := newID()
					if err != nil {
						return err
					}
					if _, err := t.q().exec(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, org, seq, order_key, event_type,
						event_id, payload, state, attempts, last_status_code, last_error, next_attempt_at, lease_until,
						delivered_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0, 0, 0, ?)`,
						id, h.id, org, e.Seq, orderKey, typ, e.ID, string(payload),
						int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING), micros(t.now)); err != nil {
						return err
					}
				}
			}
			n = len(entries)
			_, err = t.q().exec(ctx, `UPDATE webhook_cursors SET seq = ? WHERE org = ?`, entries[len(entries)-1].Seq, org)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func subscribed(types []string, typ string) bool {
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if t == typ {
			return true
		}
	}
	return false
}

// ClaimWebhookDeliveries leases due deliveries, at most one per (webhook, order
// key) and only the earliest unfinished one of each, so deliveries for a flag are
// attempted in order.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.PendingDelivery, error) {
	var out []store.PendingDelivery
	pending := int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING)
	retrying := int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING)
	err := s.inTx(ctx, func(t *Tx) error {
		out = nil
		// The head of each (webhook, order key) queue: no earlier unfinished delivery.
		rows, err := t.q().query(ctx, `SELECT d.id, d.webhook_id, w.org, w.project, w.url, w.secret, d.event_type, d.event_id,
			d.payload, d.attempts FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.state IN (?, ?) AND d.next_attempt_at <= ? AND d.lease_until <= ? AND w.enabled = ?
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id
				AND e.order_key = d.order_key AND e.seq < d.seq AND e.state IN (?, ?))
			ORDER BY d.seq LIMIT ?`, pending, retrying, micros(now), micros(now), true, pending, retrying, limit)
		if err != nil {
			return err
		}
		cands, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.PendingDelivery, error) {
			var d store.PendingDelivery
			var payload string
			err := sc.Scan(&d.ID, &d.WebhookID, &d.Org, &d.Project, &d.URL, &d.Secret, &d.EventType, &d.EventID, &payload, &d.Attempts)
			d.Payload = []byte(payload)
			return d, err
		})
		if err != nil {
			return err
		}
		for _, d := range cands {
			res, err := t.q().exec(ctx, `UPDATE webhook_deliveries SET lease_until = ? WHERE id = ? AND lease_until <= ?`,
				micros(now.Add(lease)), d.ID, micros(now))
			if err != nil {
				return err
			}
			if n, err := affected(res); err != nil {
				return err
			} else if n == 1 {
				out = append(out, d)
			}
		}
		return nil
	})
	return out, err
}

// CompleteWebhookDelivery records an attempt: success resets the webhook's failure
// count; a failure counts, and at max_failures disables the webhook (audited as
// webhook.disable); its deliveries then wait, pending, for EnableWebhook.
func (s *Store) CompleteWebhookDelivery(ctx context.Context, r store.DeliveryResult) error {
	return s.inTx(ctx, func(t *Tx) error {
		state := adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_SUCCEEDED
		next, delivered := int64(0), micros(r.Now)
		if !r.OK {
			delivered = 0
			state = adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING
			next = micros(r.NextAttempt)
			if r.NextAttempt.IsZero() {
				state = adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_FAILED
			}
		}
		if _, err := t.q().exec(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_status_code = ?,
			last_error = ?, next_attempt_at = ?, lease_until = 0, delivered_at = ? WHERE id = ?`,
			int32(state), r.StatusCode, r.Error, next, delivered, r.ID); err != nil {
			return err
		}
		var org, project string
		err := t.q().row(ctx, `SELECT org, project FROM webhooks WHERE id = ?`, r.WebhookID).Scan(&org, &project)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		ref := store.ProjectRef{Org: org, Project: project}
		before, err := s.loadWebhook(ctx, t.q(), ref, r.WebhookID, true)
		if err != nil {
			return err
		}
		if r.OK {
			if before.FailureCount != 0 {
				_, err = t.q().exec(ctx, `UPDATE webhooks SET failure_count = 0 WHERE id = ?`, r.WebhookID)
			}
			return err
		}
		after := proto.CloneOf(before)
		after.FailureCount++
		if !after.Enabled || after.FailureCount < max(after.MaxFailures, 1) {
			_, err = t.q().exec(ctx, `UPDATE webhooks SET failure_count = ? WHERE id = ?`, after.FailureCount, r.WebhookID)
			return err
		}
		after.Enabled, after.Revision = false, before.Revision+1
		after.DisabledReason = "disabled after " + strconv.Itoa(int(after.FailureCount)) + " consecutive failed deliveries; last: " + r.Error
		if _, err := t.q().exec(ctx, `UPDATE webhooks SET enabled = ?, failure_count = ?, disabled_reason = ?, revision = ?,
			updated_at = ? WHERE id = ?`, false, after.FailureCount, after.DisabledReason, after.Revision, micros(t.now), r.WebhookID); err != nil {
			return err
		}
		m := store.WriteMeta{ActorID: "system:webhooks", ActorName: "webhook dispatcher", Comment: after.DisabledReason}
		return t.record(ctx, m, whChange(ref, "webhook.disable", before, after))
	})
}

// orgWide reports whether an audit entry concerns every project of its
// organization: membership (members, role bindings, API tokens), announced to
// every webhook of the organization (webhook.Membership is the same rule).
func orgWide(resource string) bool {
	return strings.HasPrefix(resource, "members/") || strings.HasPrefix(resource, "api_tokens/")
}

func (s *Store) loadDelivery(ctx context.Context, x q, webhookID, id string) (*adminv1.WebhookDelivery, error) {
	d, err := scanDelivery(x.row(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE webhook_id = ? AND id = ?`, webhookID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("delivery", id)
	}
	return d, err
}

func enabledHook(w *adminv1.Webhook) error {
	if !w.GetEnabled() {
		return errs.E(errs.FailedPrecondition, "webhook %q is disabled (%s): enable it first", w.GetId(), w.GetDisabledReason())
	}
	return nil
}

// EnqueueTestDelivery queues a delivery of payload, due now, outside any ordering
// queue (its order key is its own). It is not audited: it changes nothing but
// the delivery log.
func (s *Store) EnqueueTestDelivery(ctx context.Context, ref store.ProjectRef, webhookID, eventType, eventID string, payload []byte) (*adminv1.WebhookDelivery, error) {
	var out *adminv1.WebhookDelivery
	err := s.inTx(ctx, func(t *Tx) error {
		w, err := s.loadWebhook(ctx, t.q(), ref, webhookID, true)
		if err != nil {
			return err
		}
		if err := enabledHook(w); err != nil {
			return err
		}
		id, err := newID()
		if err != nil {
			return err
		}
		var head int64
		if err := t.q().row(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_entries WHERE org = ?`, ref.Org).Scan(&head); err != nil {
			return err
		}
		if _, err := t.q().exec(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, org, seq, order_key, event_type,
			event_id, payload, state, attempts, last_status_code, last_error, next_attempt_at, lease_until,
			delivered_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0, 0, 0, ?)`,
			id, webhookID, ref.Org, head, "test:"+id, eventType, eventID, string(payload),
			int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING), micros(t.now)); err != nil {
			return err
		}
		out, err = s.loadDelivery(ctx, t.q(), webhookID, id)
		return err
	})
	return out, s.translate(err)
}

// RedeliverWebhookDelivery puts a finished (or retrying, not in flight)
// delivery back to pending, due now, with its own order key so it neither
// waits for nor holds up its flag's later deliveries. Not audited, like a retry.
func (s *Store) RedeliverWebhookDelivery(ctx context.Context, ref store.ProjectRef, webhookID, deliveryID string, now time.Time) (*adminv1.WebhookDelivery, error) {
	var out *adminv1.WebhookDelivery
	err := s.inTx(ctx, func(t *Tx) error {
		w, err := s.loadWebhook(ctx, t.q(), ref, webhookID, true)
		if err != nil {
			return err
		}
		if err := enabledHook(w); err != nil {
			return err
		}
		d, err := s.loadDelivery(ctx, t.q(), webhookID, deliveryID)
		if err != nil {
			return err
		}
		if d.GetState() == adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING {
			return errs.E(errs.FailedPrecondition, "delivery %q is pending: it has not been attempted yet", deliveryID)
		}
		res, err := t.q().exec(ctx, `UPDATE webhook_deliveries SET state = ?, order_key = ?, next_attempt_at = ?, lease_until = 0
			WHERE id = ? AND lease_until <= ?`, int32(adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING),
			"redelivery:"+deliveryID, micros(now), deliveryID, micros(now))
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil {
			return err
		} else if n != 1 {
			return errs.E(errs.FailedPrecondition, "delivery %q is being attempted right now: look at the log again in a moment", deliveryID)
		}
		out, err = s.loadDelivery(ctx, t.q(), webhookID, deliveryID)
		return err
	})
	return out, s.translate(err)
}
