package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Config tunes the dispatcher.
type Config struct {
	// PollInterval is how often the queue is polled (default 1s).
	PollInterval time.Duration `env:"WEBHOOK_POLL_INTERVAL, default=1s"`
	// Timeout bounds one HTTP attempt (default 10s).
	Timeout time.Duration `env:"WEBHOOK_TIMEOUT, default=10s"`
	// MaxAttempts per delivery before it is given up (default 12: with the
	// default backoff, about 34 minutes of retrying).
	MaxAttempts int32 `env:"WEBHOOK_MAX_ATTEMPTS, default=12"`
	// BaseBackoff is the first retry delay, doubled each attempt up to MaxBackoff.
	BaseBackoff time.Duration `env:"WEBHOOK_BASE_BACKOFF, default=1s"`
	MaxBackoff  time.Duration `env:"WEBHOOK_MAX_BACKOFF, default=10m"`
	// Lease is how long a claimed delivery is reserved for one dispatcher.
	Lease time.Duration `env:"WEBHOOK_LEASE, default=1m"`
	// Batch bounds the entries and deliveries handled per poll.
	Batch int `env:"WEBHOOK_BATCH, default=100"`
}

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{PollInterval: time.Second, Timeout: 10 * time.Second, MaxAttempts: 12,
		BaseBackoff: time.Second, MaxBackoff: 10 * time.Minute, Lease: time.Minute, Batch: 100}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.PollInterval <= 0 || c.Timeout <= 0 || c.MaxAttempts <= 0 || c.BaseBackoff <= 0 || c.MaxBackoff < c.BaseBackoff || c.Lease <= c.Timeout || c.Batch <= 0 {
		return errors.New("webhook: invalid dispatcher configuration (intervals > 0, max backoff >= base, lease > timeout, batch > 0)")
	}
	return nil
}

// Store is what the dispatcher needs.
type Store interface {
	EnqueueWebhookDeliveries(ctx context.Context, limit int, render func(e *adminv1.AuditEntry, org string) (string, string, []byte, bool)) (int, error)
	ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.PendingDelivery, error)
	CompleteWebhookDelivery(ctx context.Context, r store.DeliveryResult) error
}

// Dispatcher turns committed changes into deliveries and sends them. Several
// replicas may run one each: the store serializes the cursor and leases
// deliveries.
type Dispatcher struct {
	st     Store
	cfg    Config
	now    func() time.Time
	client *http.Client
	log    *slog.Logger
}

// NewDispatcher returns a dispatcher; now is the clock (nil: time.Now), client
// the HTTP client (nil: one with cfg.Timeout).
func NewDispatcher(st Store, cfg Config, now func() time.Time, client *http.Client, log *slog.Logger) *Dispatcher {
	if now == nil {
		now = time.Now
	}
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{st: st, cfg: cfg, now: now, client: client, log: log}
}

// Run polls until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.log.WarnContext(ctx, "webhook dispatch", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick enqueues every committed change not yet enqueued, then attempts every
// delivery that is due (each queue head once).
func (d *Dispatcher) Tick(ctx context.Context) error {
	for {
		n, err := d.st.EnqueueWebhookDeliveries(ctx, d.cfg.Batch, Render)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	ds, err := d.st.ClaimWebhookDeliveries(ctx, d.now(), d.cfg.Lease, d.cfg.Batch)
	if err != nil {
		return err
	}
	for _, dl := range ds {
		if err := d.st.CompleteWebhookDelivery(ctx, d.attempt(ctx, dl)); err != nil {
			return err
		}
	}
	return nil
}

// Backoff is the delay before retry number attempt (1-based).
func (c Config) Backoff(attempt int32) time.Duration {
	b := c.BaseBackoff
	for i := int32(1); i < attempt && b < c.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, c.MaxBackoff)
}

func (d *Dispatcher) attempt(ctx context.Context, dl store.PendingDelivery) store.DeliveryResult {
	res := store.DeliveryResult{ID: dl.ID, WebhookID: dl.WebhookID}
	code, err := d.send(ctx, dl)
	res.Now, res.StatusCode = d.now(), int32(code)
	if err == nil {
		res.OK = true
		return res
	}
	res.Error = err.Error()
	if n := dl.Attempts + 1; n < d.cfg.MaxAttempts {
		res.NextAttempt = res.Now.Add(d.cfg.Backoff(n))
	}
	d.log.InfoContext(ctx, "webhook delivery failed", slog.String("org", dl.Org), slog.String("webhook_id", dl.WebhookID),
		slog.String("delivery_id", dl.ID), slog.Int("status", code), slog.Any("error", err))
	return res
}

func (d *Dispatcher) send(ctx context.Context, dl store.PendingDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "FlagForge-Webhooks/1")
	req.Header.Set("FlagForge-Event", dl.EventType)
	req.Header.Set("FlagForge-Delivery", dl.ID)
	req.Header.Set(SignatureHeader, Sign(dl.Secret, d.now(), dl.Payload))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
