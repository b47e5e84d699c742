package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
	"github.com/flagforge/flagforge/services/controlplane/internal/webhook"
)

// verifyFlagForgeSignature is the receiver recipe of docs/governance.md, verbatim.
func verifyFlagForgeSignature(secret, header string, body []byte, now time.Time) bool {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := time.Parse(time.RFC3339, "1970-01-01T00:00:00Z")
	if err != nil || ts == "" {
		return false
	}
	var unix int64
	if err := json.Unmarshal([]byte(ts), &unix); err != nil {
		return false
	}
	if d := now.Sub(sec.Add(time.Duration(unix) * time.Second)); d > 5*time.Minute || d < -5*time.Minute {
		return false // too old (or from the future): a replay
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	return hmac.Equal([]byte(sig), []byte(hex.EncodeToString(mac.Sum(nil))))
}

type govStore interface {
	store.Store
	store.Governance
}

var (
	meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com"}
	pref = store.ProjectRef{Org: "acme", Project: "web"}
	eref = store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
)

var backends = []struct {
	name string
	open func(t *testing.T) govStore
}{
	{"sqlite", func(t *testing.T) govStore {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ff.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) govStore {
		s, err := postgres.Open(t.Context(), testpg.AppURL(t, testpg.New(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

// fakeClock is an injected clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// receiver records deliveries; down makes it answer 503.
type receiver struct {
	mu     sync.Mutex
	down   bool
	calls  int
	events []webhook.Event
	bodies [][]byte
	sigs   []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev webhook.Event
	_ = json.Unmarshal(body, &ev)
	r.events, r.bodies, r.sigs = append(r.events, ev), append(r.bodies, body), append(r.sigs, req.Header.Get(webhook.SignatureHeader))
}

func (r *receiver) setDown(d bool) { r.mu.Lock(); r.down = d; r.mu.Unlock() }

func setup(t *testing.T, s govStore, url string, maxFailures int32) (*adminv1.Webhook, string) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.CreateOrg(ctx, meta, &adminv1.Organization{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateProject(ctx, meta, "acme", &adminv1.Project{Key: "web"}); err != nil {
		t.Fatal(err)
	}
	w, secret, err := s.CreateWebhook(ctx, meta, pref, &adminv1.Webhook{Url: url, MaxFailures: maxFailures}, "whsec_test")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a", "b"} {
		if _, err := s.CreateFlag(ctx, meta, pref, &adminv1.Flag{Key: f, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return w, secret
}

// toggle changes flag f's configuration in production n times.
func toggle(t *testing.T, s govStore, f string, n int) {
	t.Helper()
	for range n {
		fc, err := s.GetFlagConfig(t.Context(), eref, f)
		if err != nil {
			t.Fatal(err)
		}
		c := fc.GetConfig()
		c.On = !c.On
		if _, err := s.UpdateFlagConfig(t.Context(), meta, eref, f, c, fc.GetRevision(), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func cfg() webhook.Config {
	c := webhook.Defaults()
	c.MaxAttempts, c.BaseBackoff, c.MaxBackoff = 8, time.Second, 8*time.Second
	return c
}

// TestWebhookSignatureVerifiesWithTheDocumentedRecipe: every real delivery's
// FlagForge-Signature verifies with the recipe of docs/governance.md (and with
// webhook.Verify); a tampered body does not.
func TestWebhookSignatureVerifiesWithTheDocumentedRecipe(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rec := &receiver{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			s := b.open(t)
			clk := &fakeClock{now: time.Now()}
			_, secret := setup(t, s, srv.URL, 10)
			toggle(t, s, "a", 1)
			d := webhook.NewDispatcher(s, cfg(), clk.Now, nil, nil)
			for range 5 {
				if err := d.Tick(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.bodies) != 4 { // webhook.created, flag.created x2, flag.config.updated
				t.Fatalf("%d deliveries: %v", len(rec.bodies), rec.events)
			}
			for i, body := range rec.bodies {
				if !verifyFlagForgeSignature(secret, rec.sigs[i], body, clk.Now()) {
					t.Errorf("delivery %d: signature %q does not verify with the recipe", i, rec.sigs[i])
				}
				if err := webhook.Verify(secret, rec.sigs[i], body, clk.Now(), 5*time.Minute); err != nil {
					t.Errorf("delivery %d: %v", i, err)
				}
				if verifyFlagForgeSignature(secret, rec.sigs[i], append([]byte(" "), body...), clk.Now()) {
					t.Errorf("delivery %d: a tampered body verifies", i)
				}
			}
			last := rec.events[3]
			if last.Type != "flag.config.updated" || last.Environment != "production" || string(last.Before) == "null" || string(last.After) == "null" || last.Actor.Name != "alice@example.com" {
				t.Fatalf("event: %+v", last)
			}
		})
	}
}

// TestDeadReceiverIsRetriedThenDisabledAndNothingIsLostWhenItComesBack: a failing
// endpoint is retried with backoff and disabled after max_failures consecutive
// failures; changes keep queueing; once it is back and re-enabled, every event
// arrives exactly once, in order per flag.
func TestDeadReceiverIsRetriedThenDisabledAndNothingIsLostWhenItComesBack(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rec := &receiver{down: true}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			s := b.open(t)
			clk := &fakeClock{now: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
			w, _ := setup(t, s, srv.URL, 4)
			d := webhook.NewDispatcher(s, cfg(), clk.Now, nil, nil)
			tick := func() {
				t.Helper()
				if err := d.Tick(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			toggle(t, s, "a", 3)
			toggle(t, s, "b", 2)
			// Retries with backoff: 1s, 2s, 4s... each tick attempts the due heads.
			for range 10 {
				tick()
				clk.Advance(10 * time.Second)
			}
			hook, err := s.GetWebhook(t.Context(), pref, w.GetId())
			if err != nil {
				t.Fatal(err)
			}
			if hook.GetEnabled() || hook.GetFailureCount() < 4 || hook.GetDisabledReason() == "" {
				t.Fatalf("after repeated failures the webhook is disabled: %v", hook)
			}
			rec.mu.Lock()
			callsWhileDisabled := rec.calls
			rec.mu.Unlock()
			toggle(t, s, "a", 1) // more changes while disabled: queued, not sent
			tick()
			rec.mu.Lock()
			if rec.calls != callsWhileDisabled {
				t.Fatalf("a disabled webhook was called")
			}
			rec.mu.Unlock()
			log, _, err := s.ListWebhookDeliveries(t.Context(), pref, w.GetId(), store.Page{Size: 100})
			if err != nil {
				t.Fatal(err)
			}
			retrying := 0
			for _, dl := range log {
				if dl.GetState() == adminv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_RETRYING && dl.GetAttempts() > 0 {
					retrying++
				}
			}
			if retrying == 0 {
				t.Fatalf("the delivery log shows the retries: %v", log)
			}

			rec.setDown(false)
			if _, err := s.EnableWebhook(t.Context(), meta, pref, w.GetId()); err != nil {
				t.Fatal(err)
			}
			for range 30 {
				tick()
				clk.Advance(10 * time.Second)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			ids := map[string]bool{}
			var order = map[string][]int64{}
			for _, ev := range rec.events {
				if ids[ev.ID] {
					t.Errorf("event %s delivered twice", ev.ID)
				}
				ids[ev.ID] = true
				k := webhook.OrderKey(ev.Resource)
				order[k] = append(order[k], ev.Sequence)
			}
			// webhook.created, 2 flag.created, 4 updates of a, 2 of b, webhook.disabled, webhook.enabled.
			if len(rec.events) != 11 {
				var types []string
				for _, ev := range rec.events {
					types = append(types, ev.Type)
				}
				t.Fatalf("%d events arrived, want 11: %v", len(rec.events), types)
			}
			for k, seqs := range order {
				for i := 1; i < len(seqs); i++ {
					if seqs[i] < seqs[i-1] {
						t.Errorf("%s: out of order %v", k, seqs)
					}
				}
			}
			if len(order["flag:a"]) != 5 || len(order["flag:b"]) != 3 {
				t.Fatalf("per flag: %v", order)
			}
		})
	}
}
