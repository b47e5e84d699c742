package sdk_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

func mustContext(t testing.TB, attrs map[string]any) *sdk.Context {
	t.Helper()
	ctx, err := sdk.NewContext(attrs)
	must(t, err)
	return ctx
}

func TestNewRefusesAnInvalidConfiguration(t *testing.T) {
	_, err := sdk.New(sdk.Config{Address: "127.0.0.1:1", HTTPURL: "ftp://x", Backoff: sdk.Backoff{Min: time.Second, Max: time.Millisecond}})
	if err == nil {
		t.Fatal("New accepted a configuration without trusted keys, SDK key, a bad URL and bad backoff")
	}
	for _, want := range []string{"TrustedKeys", "SDKKey", "HTTPURL", "Backoff"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

func TestBootstrapFromAFileServesItsManifestOffline(t *testing.T) {
	c := offline(t)
	if err := c.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.State != sdk.StateReady || st.ManifestVersion != 7 || st.Mode != sdk.ModeOffline {
		t.Fatalf("status %+v, want READY at version 7 offline", st)
	}
	if got := c.String("banner", nil, "default"); got != "Welcome!" {
		t.Errorf("banner = %q", got)
	}
}

func TestBeforeTheFirstManifestCallsAnswerDefaultsWithProviderNotReady(t *testing.T) {
	c, err := sdk.New(sdk.Config{TrustedKeys: trustedKeys(t)})
	must(t, err)
	defer func() { _ = c.Close() }()
	d := c.BoolDetail("new-ui", nil, true)
	want := sdk.Detail[bool]{Value: true, Reason: sdk.ReasonError, ErrorCode: sdk.ErrorProviderNotReady, ErrorMessage: "no manifest yet", FlagKey: "new-ui"}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("BoolDetail (-want +got):\n%s", diff)
	}
	if got := c.JSON("theme", nil, "x"); got != "x" {
		t.Errorf("JSON = %v", got)
	}
	if st := c.Status(); st.State != sdk.StateNotReady {
		t.Errorf("state %v, want NOT_READY", st.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady = %v, want deadline exceeded", err)
	}
	must(t, c.ApplySignedManifest(sign(t, exampleManifest(t, 1))))
	if err := c.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := c.BoolDetail("new-ui", nil, true); d.Value || d.Reason != sdk.ReasonDefault || d.ManifestVersion != 1 {
		t.Errorf("after the first manifest: %+v", d)
	}
}

func TestTypedCallsReturnValueVariantReasonAndRule(t *testing.T) {
	c := offline(t)
	east := mustContext(t, map[string]any{"targetingKey": "u1", "region": "us-east-1"})
	pro := mustContext(t, map[string]any{"targetingKey": "u1", "plan": "pro"})
	type row struct {
		name string
		got  any
		want any
	}
	for _, r := range []row{
		{"bool rule match", c.BoolDetail("new-ui", east, false), sdk.Detail[bool]{Value: true, Variant: "on", Reason: sdk.ReasonTargetingMatch, RuleID: "east", FlagKey: "new-ui", ManifestVersion: 7}},
		{"bool default", c.BoolDetail("new-ui", nil, true), sdk.Detail[bool]{Value: false, Variant: "off", Reason: sdk.ReasonDefault, FlagKey: "new-ui", ManifestVersion: 7}},
		{"string static", c.StringDetail("banner", nil, ""), sdk.Detail[string]{Value: "Welcome!", Variant: "hello", Reason: sdk.ReasonStatic, FlagKey: "banner", ManifestVersion: 7}},
		{"float rule", c.FloatDetail("max-items", pro, 0), sdk.Detail[float64]{Value: 25, Variant: "many", Reason: sdk.ReasonTargetingMatch, RuleID: "pro", FlagKey: "max-items", ManifestVersion: 7}},
		{"int default serve", c.IntDetail("max-items", nil, 0), sdk.Detail[int64]{Value: 10, Variant: "few", Reason: sdk.ReasonDefault, FlagKey: "max-items", ManifestVersion: 7}},
		{"json", c.JSONDetail("theme", nil, nil), sdk.Detail[any]{Value: map[string]any{"color": "blue", "dark": false}, Variant: "blue", Reason: sdk.ReasonStatic, FlagKey: "theme", ManifestVersion: 7}},
		{"plain bool", c.Bool("new-ui", east, false), true},
		{"plain string", c.String("banner", nil, ""), "Welcome!"},
		{"plain float", c.Float("max-items", pro, 0), 25.0},
		{"plain int", c.Int("max-items", pro, 0), int64(25)},
	} {
		if diff := cmp.Diff(r.want, r.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", r.name, diff)
		}
	}
}

func TestWrongTypeOrMissingFlagServesTheDefaultWithAnErrorCode(t *testing.T) {
	c := offline(t)
	for _, tc := range []struct {
		name string
		d    sdk.Detail[any]
		code sdk.ErrorCode
	}{
		{"bool of a string flag", asAny(c.BoolDetail("banner", nil, true)), sdk.ErrorTypeMismatch},
		{"string of a bool flag", asAny(c.StringDetail("new-ui", nil, "d")), sdk.ErrorTypeMismatch},
		{"float of a json flag", asAny(c.FloatDetail("theme", nil, 1)), sdk.ErrorTypeMismatch},
		{"json of a number flag", c.JSONDetail("max-items", nil, "d"), sdk.ErrorTypeMismatch},
		{"missing flag", asAny(c.BoolDetail("nope", nil, true)), sdk.ErrorFlagNotFound},
	} {
		if tc.d.Reason != sdk.ReasonError || tc.d.ErrorCode != tc.code || tc.d.Variant != "" {
			t.Errorf("%s: %+v, want ERROR %s", tc.name, tc.d, tc.code)
		}
	}
	if d := c.BoolDetail("banner", nil, true); !d.Value {
		t.Errorf("the default was not served: %+v", d)
	}
	// A number that is not an integer does not fit Int.
	m := exampleManifest(t, 8)
	m.Flags[1].Config.DefaultServe.Kind = &manifestv1.Serve_Variant{Variant: "half"}
	must(t, c.ApplySignedManifest(sign(t, m)))
	if d := c.IntDetail("max-items", nil, 3); d.Value != 3 || d.ErrorCode != sdk.ErrorTypeMismatch {
		t.Errorf("Int of 2.5: %+v, want the default with TYPE_MISMATCH", d)
	}
	if got := c.Float("max-items", nil, 0); got != 2.5 {
		t.Errorf("Float of 2.5 = %v", got)
	}
}

func asAny[T any](d sdk.Detail[T]) sdk.Detail[any] {
	return sdk.Detail[any]{Value: d.Value, Variant: d.Variant, Reason: d.Reason, RuleID: d.RuleID, ErrorCode: d.ErrorCode,
		ErrorMessage: d.ErrorMessage, FlagKey: d.FlagKey, ManifestVersion: d.ManifestVersion}
}

func TestRefusedManifestsLeaveTheLastGoodOneServing(t *testing.T) {
	c := offline(t)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, err := manifest.NewSigner(otherPriv)
	must(t, err)

	tampered := sign(t, exampleManifest(t, 8))
	tampered.Payload = append([]byte(nil), tampered.Payload...)
	tampered.Payload[len(tampered.Payload)/2] ^= 0x01
	foreign, err := other.Manifest(exampleManifest(t, 9))
	must(t, err)
	expired := exampleManifest(t, 10)
	expired.ExpiresAt = timestamppb.New(time.Now().Add(-time.Minute))
	otherEnv := exampleManifest(t, 11)
	otherEnv.Environment = "staging"
	for _, tc := range []struct {
		name string
		sm   *manifestv1.SignedManifest
		want error
	}{
		{"tampered payload", tampered, manifest.ErrBadSignature},
		{"unknown signing key", foreign, manifest.ErrUnknownKey},
		{"expired", sign(t, expired), manifest.ErrExpired},
		{"older version", sign(t, exampleManifest(t, 6)), manifest.ErrStale},
		{"another environment", sign(t, otherEnv), manifest.ErrWrongTarget},
	} {
		if err := c.ApplySignedManifest(tc.sm); !errors.Is(err, tc.want) {
			t.Errorf("%s: ApplySignedManifest = %v, want %v", tc.name, err, tc.want)
		}
		if st := c.Status(); st.ManifestVersion != 7 {
			t.Errorf("%s: version %d is served, want 7 (the last good one)", tc.name, st.ManifestVersion)
		}
	}
	if got := c.String("banner", nil, ""); got != "Welcome!" {
		t.Errorf("banner = %q after refusals", got)
	}
}

func TestATamperedBootstrapFileIsRefusedAndTheClientStartsNotReady(t *testing.T) {
	b, err := os.ReadFile(testdataManifest)
	must(t, err)
	sm, err := sdk.ReadSignedManifest(b)
	must(t, err)
	sm.Payload[10] ^= 0x01
	bad, err := proto.Marshal(sm)
	must(t, err)
	c, err := sdk.New(sdk.Config{TrustedKeys: trustedKeys(t), Bootstrap: bad})
	must(t, err)
	defer func() { _ = c.Close() }()
	st := c.Status()
	if st.State != sdk.StateNotReady || !errors.Is(st.LastError, manifest.ErrBadSignature) {
		t.Fatalf("status %+v, want NOT_READY with a bad signature error", st)
	}
	if d := c.BoolDetail("new-ui", nil, true); d.ErrorCode != sdk.ErrorProviderNotReady {
		t.Errorf("%+v", d)
	}
}

func TestChangeListenersGetTheOldAndNewDetailOfTheFlagsThatChanged(t *testing.T) {
	c := offline(t)
	east := mustContext(t, map[string]any{"region": "us-east-1"})
	var mu sync.Mutex
	var changes []sdk.Change
	var events []sdk.Event
	removeUI := c.OnChange("new-ui", east, func(ch sdk.Change) { mu.Lock(); changes = append(changes, ch); mu.Unlock() })
	c.OnChange("banner", nil, func(ch sdk.Change) { mu.Lock(); changes = append(changes, ch); mu.Unlock() })
	c.OnEvent(func(e sdk.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })

	m := exampleManifest(t, 8)
	for _, f := range m.Flags {
		if f.Key == "new-ui" {
			f.Config.On = false
		}
	}
	must(t, c.ApplySignedManifest(sign(t, m)))
	waitFor(t, "the change to be delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(changes) == 1 && len(events) == 1 })
	mu.Lock()
	want := sdk.Change{FlagKey: "new-ui",
		Old: sdk.Detail[any]{Value: true, Variant: "on", Reason: sdk.ReasonTargetingMatch, RuleID: "east", FlagKey: "new-ui", ManifestVersion: 7},
		New: sdk.Detail[any]{Value: false, Variant: "off", Reason: sdk.ReasonDisabled, FlagKey: "new-ui", ManifestVersion: 8}}
	if diff := cmp.Diff(want, changes[0]); diff != "" {
		t.Errorf("change (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sdk.Event{Type: sdk.EventConfigurationChanged, FlagKeys: []string{"new-ui"}, Version: 8}, events[0]); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	mu.Unlock()

	removeUI()
	m = exampleManifest(t, 9) // new-ui back on; banner unchanged
	must(t, c.ApplySignedManifest(sign(t, m)))
	waitFor(t, "the second event", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 })
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 1 {
		t.Errorf("a removed or unchanged listener was called: %+v", changes[1:])
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func TestStatusTurnsStaleWithoutContactAndReadyAgainOnTheNextManifest(t *testing.T) {
	clk := newClock()
	var mu sync.Mutex
	var events []sdk.EventType
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys, cfg.Now, cfg.StaleAfter = trustedKeys(t), clk.Now, time.Minute
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	c.OnEvent(func(e sdk.Event) { mu.Lock(); events = append(events, e.Type); mu.Unlock() })
	// Caught up on the first stream, which then ends; every later stream fails.
	s := f.next(t)
	must(t, s.send(startMsg(7)))
	must(t, s.send(snapshotMsg(sign(t, exampleManifest(t, 7)))))
	must(t, c.WaitReady(context.Background()))
	if st := c.Status(); st.State != sdk.StateReady {
		t.Fatalf("state %v once caught up, want READY", st.State)
	}
	s.end <- status.Error(codes.Unavailable, "going away")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case s := <-f.streams:
				s.end <- status.Error(codes.Unavailable, "down")
			case <-stop:
				return
			}
		}
	}()
	waitFor(t, "a failed connection", func() bool { return c.Status().LastError != nil })
	clk.Add(2 * time.Minute)
	waitFor(t, "the STALE event", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 })
	st := c.Status()
	if st.LastError == nil || st.LastSync.IsZero() {
		t.Errorf("status %+v: want the last connection error and the last sync time", st)
	}
	if got := c.String("banner", nil, ""); got != "Welcome!" {
		t.Errorf("a stale client must keep serving its manifest, got %q", got)
	}
	must(t, c.ApplySignedManifest(sign(t, exampleManifest(t, 8))))
	if st := c.Status(); st.State != sdk.StateReady || st.ManifestVersion != 8 {
		t.Errorf("status %+v after a new manifest, want READY at 8", st)
	}
	waitFor(t, "the events", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) >= 4 })
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]sdk.EventType{sdk.EventReady, sdk.EventStale, sdk.EventConfigurationChanged, sdk.EventReady}, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// A networked client started from a bootstrap manifest serves it at once but is
// not ready until the evaluator says which version is current.
func TestABootstrappedNetworkedClientIsNotReadyBeforeReachingItsEvaluator(t *testing.T) {
	c := offline(t, func(cfg *sdk.Config) {
		cfg.Address, cfg.SDKKey = "127.0.0.1:1", "k" // nothing listens there
		cfg.Backoff = sdk.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}
		cfg.DisableUsage = true
	})
	if st := c.Status(); st.State != sdk.StateNotReady || st.ManifestVersion == 0 {
		t.Fatalf("status %+v, want NOT_READY with the bootstrap manifest held", st)
	}
	if got := c.String("banner", nil, ""); got != "Welcome!" {
		t.Errorf("the bootstrap manifest must answer meanwhile, got %q", got)
	}
}

func TestAManifestCloseToExpiryIsStale(t *testing.T) {
	c := offline(t, func(cfg *sdk.Config) { cfg.ExpiryMargin = 100 * 365 * 24 * time.Hour })
	if st := c.Status(); st.State != sdk.StateStale {
		t.Errorf("state %v, want STALE (expires within the margin)", st.State)
	}
}

func TestBackoffDelayStaysWithinItsBoundsAndGrows(t *testing.T) {
	b := sdk.Backoff{Min: time.Second, Max: 30 * time.Second}
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, time.Second}, {0, 0.999999999, 2 * time.Second}, {1, 1, 4 * time.Second},
		{2, 0.5, 4500 * time.Millisecond}, {3, 1, 16 * time.Second}, {4, 1, 30 * time.Second},
		{10, 1, 30 * time.Second}, {100, 1, 30 * time.Second}, {10, 0, time.Second}, {-1, 1, 2 * time.Second},
	} {
		if got := b.Delay(tc.attempt, tc.r); (got - tc.want).Abs() > time.Millisecond {
			t.Errorf("Delay(%d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
	for attempt := range 70 {
		for _, r := range []float64{0, 0.1, 0.5, 0.9, 1} {
			if d := b.Delay(attempt, r); d < b.Min || d > b.Max {
				t.Fatalf("Delay(%d, %v) = %v outside [%v, %v]", attempt, r, d, b.Min, b.Max)
			}
		}
	}
}
