package sdk_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// Offline start: bootstrap from a signed manifest file (as served by GET
// /v1/manifest), verified against the trusted key, and evaluate locally.
func Example_bootstrap() {
	pem, err := manifest.LoadPEM("testdata/signing.pub.pem")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pem)
	if err != nil {
		log.Fatal(err)
	}
	client, err := sdk.New(sdk.Config{TrustedKeys: keys, BootstrapFile: "testdata/manifest.pb"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Close() }()

	// Build the context once per subject and reuse it: evaluations then do not allocate.
	user, err := sdk.NewContext(map[string]any{"targetingKey": "user-1", "region": "us-east-1", "plan": "pro"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.Bool("new-ui", user, false))
	fmt.Println(client.String("banner", user, "Hello"))
	fmt.Println(client.Int("max-items", user, 5))
	fmt.Println(client.JSON("theme", user, nil))
	// Output:
	// true
	// Welcome!
	// 25
	// map[color:blue dark:false]
}

// Detail variants say why a value was served.
func ExampleClient_BoolDetail() {
	keys := mustKeys()
	client, err := sdk.New(sdk.Config{TrustedKeys: keys, BootstrapFile: "testdata/manifest.pb"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	user, _ := sdk.NewContext(map[string]any{"targetingKey": "user-1", "region": "us-east-1"})

	d := client.BoolDetail("new-ui", user, false)
	fmt.Println(d.Value, d.Variant, d.Reason, d.RuleID, d.ManifestVersion)
	d = client.BoolDetail("banner", user, false) // a string flag
	fmt.Println(d.Value, d.Reason, d.ErrorCode)
	d = client.BoolDetail("no-such-flag", user, true)
	fmt.Println(d.Value, d.Reason, d.ErrorCode)
	// Output:
	// true on TARGETING_MATCH east 7
	// false ERROR TYPE_MISMATCH
	// true ERROR FLAG_NOT_FOUND
}

// Before the first manifest every call answers the caller's default with
// PROVIDER_NOT_READY; New never waits for the network.
func ExampleClient_WaitReady() {
	client, err := sdk.New(sdk.Config{
		SDKKey:      "srv-...",
		Address:     "127.0.0.1:1", // nothing listens here in this example
		TrustedKeys: mustKeys(),
		Logger:      discard,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	d := client.StringDetail("banner", nil, "Hello")
	fmt.Println(d.Value, d.Reason, d.ErrorCode)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	fmt.Println(client.WaitReady(ctx))
	// Output:
	// Hello ERROR PROVIDER_NOT_READY
	// context deadline exceeded
}

// Change listeners are called with the flag's detail for a context under the
// old and the new manifest.
func ExampleClient_OnChange() {
	client, err := sdk.New(sdk.Config{TrustedKeys: mustKeys(), BootstrapFile: "testdata/manifest.pb"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	user, _ := sdk.NewContext(map[string]any{"targetingKey": "user-1", "region": "us-east-1"})
	done := make(chan struct{})
	client.OnChange("new-ui", user, func(c sdk.Change) {
		fmt.Println(c.FlagKey, c.Old.Value, "->", c.New.Value, c.New.Reason)
		close(done)
	})
	// Normally the evaluator's stream delivers new manifests; here one is applied
	// by hand (it is verified the same way).
	if err := client.ApplySignedManifest(newUIOff()); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// new-ui true -> false DISABLED
}
