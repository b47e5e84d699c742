package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"time"

	"github.com/google/uuid"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/webhook"
)

// defaultMaxFailures disables a webhook after this many consecutive failures.
const defaultMaxFailures = 10

// webhooks is the storage the webhook service needs.
type webhooks interface {
	CreateWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, w *adminv1.Webhook, secret string) (*adminv1.Webhook, string, error)
	GetWebhook(ctx context.Context, ref store.ProjectRef, id string) (*adminv1.Webhook, error)
	ListWebhooks(ctx context.Context, ref store.ProjectRef, p store.Page) ([]*adminv1.Webhook, string, error)
	UpdateWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, w *adminv1.Webhook, revision int64) (*adminv1.Webhook, error)
	DeleteWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id string) error
	EnableWebhook(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, id string) (*adminv1.Webhook, error)
	ListWebhookDeliveries(ctx context.Context, ref store.ProjectRef, id string, p store.Page) ([]*adminv1.WebhookDelivery, string, error)
	EnqueueTestDelivery(ctx context.Context, ref store.ProjectRef, webhookID, eventType, eventID string, payload []byte) (*adminv1.WebhookDelivery, error)
	RedeliverWebhookDelivery(ctx context.Context, ref store.ProjectRef, webhookID, deliveryID string, now time.Time) (*adminv1.WebhookDelivery, error)
}

// WebhookService implements adminv1.WebhookServiceServer. Deliveries are made by
// package webhook's Dispatcher.
type WebhookService struct {
	adminv1.UnimplementedWebhookServiceServer
	store webhooks
	now   func() time.Time
}

func (c *checks) webhookURL(field, v string) {
	u, err := url.Parse(v)
	switch {
	case v == "":
		c.fail(field, "is required")
	case len(v) > 2000:
		c.fail(field, "must be at most 2000 characters")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		c.fail(field, "must be an absolute http:// or https:// URL")
	case u.User != nil:
		c.fail(field, "must not carry credentials")
	}
}

func (c *checks) eventTypes(field string, types []string) {
	if len(types) > 50 {
		c.fail(field, "at most 50 event types")
	}
	for i, t := range types {
		c.text(idx(field, i), t, 100, true)
	}
}

func (c *checks) maxFailures(field string, n int32) {
	if n < 0 || n > 1000 {
		c.fail(field, "must be between 0 (default %d) and 1000", defaultMaxFailures)
	}
}

// newSecret returns a webhook signing secret.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

// CreateWebhook subscribes a URL to the project's changes; the signing secret is
// in this response only.
func (s *WebhookService) CreateWebhook(ctx context.Context, req *adminv1.CreateWebhookRequest) (*adminv1.CreateWebhookResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.present("webhook", req.GetWebhook() == nil)
	c.webhookURL("webhook.url", req.GetWebhook().GetUrl())
	c.eventTypes("webhook.event_types", req.GetWebhook().GetEventTypes())
	c.maxFailures("webhook.max_failures", req.GetWebhook().GetMaxFailures())
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	w := &adminv1.Webhook{Url: req.GetWebhook().GetUrl(), EventTypes: req.GetWebhook().GetEventTypes(), MaxFailures: req.GetWebhook().GetMaxFailures()}
	if w.MaxFailures == 0 {
		w.MaxFailures = defaultMaxFailures
	}
	out, secret, err := s.store.CreateWebhook(ctx, meta(ctx, idem, "", ""), store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, w, newSecret())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateWebhookResponse{Webhook: out, Secret: secret}, nil
}

func hookRef(c *checks, org, project, id string) store.ProjectRef {
	c.key("org", org)
	c.key("project", project)
	c.text("id", id, 100, true)
	return store.ProjectRef{Org: org, Project: project}
}

// GetWebhook reads a webhook (never its secret).
func (s *WebhookService) GetWebhook(ctx context.Context, req *adminv1.GetWebhookRequest) (*adminv1.GetWebhookResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	w, err := s.store.GetWebhook(ctx, ref, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetWebhookResponse{Webhook: w}, nil
}

// ListWebhooks lists a project's webhooks.
func (s *WebhookService) ListWebhooks(ctx context.Context, req *adminv1.ListWebhooksRequest) (*adminv1.ListWebhooksResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ws, next, err := s.store.ListWebhooks(ctx, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListWebhooksResponse{Webhooks: ws, NextPageToken: next}, nil
}

// UpdateWebhook replaces url, event types and max_failures (0: default).
func (s *WebhookService) UpdateWebhook(ctx context.Context, req *adminv1.UpdateWebhookRequest) (*adminv1.UpdateWebhookResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	c.webhookURL("url", req.GetUrl())
	c.eventTypes("event_types", req.GetEventTypes())
	c.maxFailures("max_failures", req.GetMaxFailures())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	w := &adminv1.Webhook{Id: req.GetId(), Url: req.GetUrl(), EventTypes: req.GetEventTypes(), MaxFailures: req.GetMaxFailures()}
	if w.MaxFailures == 0 {
		w.MaxFailures = defaultMaxFailures
	}
	out, err := s.store.UpdateWebhook(ctx, meta(ctx, "", "", ""), ref, w, req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateWebhookResponse{Webhook: out}, nil
}

// DeleteWebhook deletes a webhook and its delivery log.
func (s *WebhookService) DeleteWebhook(ctx context.Context, req *adminv1.DeleteWebhookRequest) (*adminv1.DeleteWebhookResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	if err := s.store.DeleteWebhook(ctx, meta(ctx, "", "", ""), ref, req.GetId()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteWebhookResponse{}, nil
}

// EnableWebhook re-enables a webhook disabled after failures; its pending
// deliveries resume, in order.
func (s *WebhookService) EnableWebhook(ctx context.Context, req *adminv1.EnableWebhookRequest) (*adminv1.EnableWebhookResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	w, err := s.store.EnableWebhook(ctx, meta(ctx, "", "", ""), ref, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.EnableWebhookResponse{Webhook: w}, nil
}

// ListWebhookDeliveries is the delivery log, newest first.
func (s *WebhookService) ListWebhookDeliveries(ctx context.Context, req *adminv1.ListWebhookDeliveriesRequest) (*adminv1.ListWebhookDeliveriesResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ds, next, err := s.store.ListWebhookDeliveries(ctx, ref, req.GetId(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListWebhookDeliveriesResponse{Deliveries: ds, NextPageToken: next}, nil
}

// SendTestWebhook queues a "webhook.test" delivery, sent at once.
func (s *WebhookService) SendTestWebhook(ctx context.Context, req *adminv1.SendTestWebhookRequest) (*adminv1.SendTestWebhookResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	if c.err != nil {
		return nil, c.err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	p := actor.PrincipalFrom(ctx)
	body, err := webhook.TestEvent(id.String(), req.GetOrg(), req.GetProject(), webhook.Actor{ID: p.ID(), Name: p.Name()}, s.now())
	if err != nil {
		return nil, err
	}
	d, err := s.store.EnqueueTestDelivery(ctx, ref, req.GetId(), webhook.TestEventType, id.String(), body)
	if err != nil {
		return nil, err
	}
	return &adminv1.SendTestWebhookResponse{Delivery: d}, nil
}

// RedeliverWebhookDelivery sends a delivery's event again, now.
func (s *WebhookService) RedeliverWebhookDelivery(ctx context.Context, req *adminv1.RedeliverWebhookDeliveryRequest) (*adminv1.RedeliverWebhookDeliveryResponse, error) {
	var c checks
	ref := hookRef(&c, req.GetOrg(), req.GetProject(), req.GetId())
	c.text("delivery_id", req.GetDeliveryId(), 100, true)
	if c.err != nil {
		return nil, c.err
	}
	d, err := s.store.RedeliverWebhookDelivery(ctx, ref, req.GetId(), req.GetDeliveryId(), s.now())
	if err != nil {
		return nil, err
	}
	return &adminv1.RedeliverWebhookDeliveryResponse{Delivery: d}, nil
}
