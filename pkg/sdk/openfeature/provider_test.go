package openfeature_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"sync"
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/pkg/sdk/openfeature"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func keys(t testing.TB) ([]ed25519.PublicKey, *manifest.Signer) {
	pem, err := manifest.LoadPEM("../testdata/signing.pub.pem")
	must(t, err)
	pub, err := manifest.ParsePublicKeys(pem)
	must(t, err)
	b, err := os.ReadFile("../testdata/signing.pem")
	must(t, err)
	priv, err := manifest.ParsePrivateKey(b)
	must(t, err)
	s, err := manifest.NewSigner(priv)
	must(t, err)
	return pub, s
}

// v2 adds to testdata's manifest a flag with a prerequisite on new-ui.
const prereqFlag = `{"key":"checkout","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
 "config":{"on":true,"offVariant":"off","prerequisites":[{"flagKey":"new-ui","variants":["on"]}],"defaultServe":{"variant":"on"}}}`

func TestProviderThroughTheOpenFeatureSDK(t *testing.T) {
	pub, signer := keys(t)
	c, err := sdk.New(sdk.Config{TrustedKeys: pub, BootstrapFile: "../testdata/manifest.pb"})
	must(t, err)
	p := openfeature.New(c)
	must(t, of.SetNamedProviderAndWait("sdk-test", p))
	defer of.Shutdown()
	client := of.NewClient("sdk-test")
	if client.State() != of.ReadyState {
		t.Fatalf("state %v", client.State())
	}
	var mu sync.Mutex
	var changed []string
	onChange := func(d of.EventDetails) { mu.Lock(); changed = append(changed, d.FlagChanges...); mu.Unlock() }
	client.AddHandler(of.ProviderConfigChange, &onChange)

	ctx := context.Background()
	east := of.NewEvaluationContext("user-1", map[string]any{"region": "us-east-1", "plan": "pro", "signup": time.Now()})
	b, err := client.BooleanValueDetails(ctx, "new-ui", false, east)
	must(t, err)
	if !b.Value || b.Variant != "on" || b.Reason != of.TargetingMatchReason || b.FlagMetadata["ruleId"] != "east" {
		t.Errorf("boolean: %+v", b)
	}
	s, err := client.StringValueDetails(ctx, "banner", "", of.EvaluationContext{})
	must(t, err)
	if s.Value != "Welcome!" || s.Reason != of.StaticReason {
		t.Errorf("string: %+v", s)
	}
	f, err := client.FloatValueDetails(ctx, "max-items", 0, east)
	must(t, err)
	if f.Value != 25 || f.Reason != of.TargetingMatchReason {
		t.Errorf("float: %+v", f)
	}
	i, err := client.IntValueDetails(ctx, "max-items", 0, of.EvaluationContext{})
	must(t, err)
	if i.Value != 10 || i.Reason != of.DefaultReason || i.Variant != "few" {
		t.Errorf("int: %+v", i)
	}
	o, err := client.ObjectValueDetails(ctx, "theme", nil, of.EvaluationContext{})
	must(t, err)
	if m, _ := o.Value.(map[string]any); m["color"] != "blue" {
		t.Errorf("object: %+v", o)
	}

	for _, tc := range []struct {
		name string
		run  func() (of.ResolutionDetail, error)
		code of.ErrorCode
	}{
		{"type mismatch", func() (of.ResolutionDetail, error) {
			d, err := client.BooleanValueDetails(ctx, "banner", true, of.EvaluationContext{})
			return d.ResolutionDetail, err
		}, of.TypeMismatchCode},
		{"flag not found", func() (of.ResolutionDetail, error) {
			d, err := client.StringValueDetails(ctx, "nope", "d", of.EvaluationContext{})
			return d.ResolutionDetail, err
		}, of.FlagNotFoundCode},
		{"invalid context", func() (of.ResolutionDetail, error) {
			d, err := client.BooleanValueDetails(ctx, "new-ui", true, of.NewTargetlessEvaluationContext(map[string]any{"x": struct{}{}}))
			return d.ResolutionDetail, err
		}, of.InvalidContextCode},
	} {
		d, err := tc.run()
		if err == nil || d.ErrorCode != tc.code || d.Reason != of.ErrorReason {
			t.Errorf("%s: %+v, %v; want %s", tc.name, d, err, tc.code)
		}
	}

	// A new manifest: configuration changed with the flag keys, and a custom
	// PREREQUISITE_FAILED reason passed through.
	m := &manifestv1.Manifest{}
	must(t, protojson.Unmarshal(mustRead(t, "../testdata/manifest.json"), m))
	var pf manifestv1.Flag
	must(t, protojson.Unmarshal([]byte(prereqFlag), &pf))
	m.Flags = append(m.Flags, &pf)
	m.Version, m.IssuedAt = 8, timestamppb.Now()
	manifest.Canonicalize(m)
	sm, err := signer.Manifest(m)
	must(t, err)
	must(t, c.ApplySignedManifest(sm))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(changed)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if len(changed) != 1 || changed[0] != "checkout" {
		t.Errorf("configuration changed for %v, want [checkout]", changed)
	}
	mu.Unlock()
	pd, err := client.BooleanValueDetails(ctx, "checkout", true, of.EvaluationContext{})
	must(t, err)
	if pd.Reason != of.Reason("PREREQUISITE_FAILED") || pd.Value {
		t.Errorf("prerequisite: %+v", pd)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}

func TestProviderNotReadyUntilTheFirstManifestThenReady(t *testing.T) {
	pub, signer := keys(t)
	c, err := sdk.New(sdk.Config{TrustedKeys: pub})
	must(t, err)
	p := openfeature.New(c, openfeature.WithInitTimeout(20*time.Millisecond))
	if err := of.SetNamedProviderAndWait("not-ready", p); err == nil {
		t.Fatal("Init succeeded without a manifest")
	}
	defer of.Shutdown()
	client := of.NewClient("not-ready")
	ready := make(chan struct{}, 1)
	onReady := func(of.EventDetails) {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	client.AddHandler(of.ProviderReady, &onReady)
	d := p.BooleanEvaluation(context.Background(), "new-ui", true, of.FlattenedContext{})
	if d.Value != true || d.ResolutionDetail().ErrorCode != of.ProviderNotReadyCode || d.Reason != of.ErrorReason {
		t.Errorf("before the first manifest: %+v", d)
	}
	m := &manifestv1.Manifest{}
	must(t, protojson.Unmarshal(mustRead(t, "../testdata/manifest.json"), m))
	m.IssuedAt = timestamppb.Now()
	sm, err := signer.Manifest(m)
	must(t, err)
	must(t, c.ApplySignedManifest(sm))
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("no PROVIDER_READY after the first manifest")
	}
	if got, _ := client.StringValue(context.Background(), "banner", "", of.EvaluationContext{}); got != "Welcome!" {
		t.Errorf("banner = %q", got)
	}
}
