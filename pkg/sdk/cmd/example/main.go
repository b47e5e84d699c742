// Command example evaluates a flag with the FlagForge Go SDK and prints every
// change and status event until interrupted.
//
//	go run ./sdk/cmd/example -trusted-keys manifest-signing.pub.pem \
//	    -sdk-key "$SDK_KEY" -addr 127.0.0.1:9091 -http http://127.0.0.1:8081 -flag new-ui
//
// Offline, from a signed manifest file (as GET /v1/manifest serves it):
//
//	go run ./sdk/cmd/example -trusted-keys sdk/testdata/signing.pub.pem \
//	    -bootstrap sdk/testdata/manifest.pb -flag new-ui -attr region=us-east-1 -once
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

type attrs map[string]any

func (a attrs) String() string { return fmt.Sprint(map[string]any(a)) }

func (a attrs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want name=value")
	}
	a[k] = v
	return nil
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	keysPath := fs.String("trusted-keys", "", "manifest signing public key(s): PEM file or inline PEM (required)")
	sdkKey := fs.String("sdk-key", os.Getenv("FLAGFORGE_SDK_KEY"), "server SDK key (default $FLAGFORGE_SDK_KEY)")
	addr := fs.String("addr", "", "evaluator gRPC address, e.g. 127.0.0.1:9091")
	httpURL := fs.String("http", "", "evaluator HTTP base URL for the polling fallback, e.g. http://127.0.0.1:8081")
	bootstrap := fs.String("bootstrap", "", "signed manifest file to start from")
	flagKey := fs.String("flag", "new-ui", "flag to evaluate")
	targeting := fs.String("targeting-key", "user-1", "targeting key of the subject")
	once := fs.Bool("once", false, "evaluate once and exit")
	a := attrs{}
	fs.Var(a, "attr", "context attribute name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pem, err := manifest.LoadPEM(*keysPath)
	if err != nil {
		return err
	}
	keys, err := manifest.ParsePublicKeys(pem)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := sdk.New(sdk.Config{SDKKey: *sdkKey, Address: *addr, HTTPURL: *httpURL,
		TrustedKeys: keys, BootstrapFile: *bootstrap, Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()

	a[sdk.TargetingKey] = *targeting
	subject, err := sdk.NewContext(a)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = client.WaitReady(wctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "not ready (%v); answering defaults until a manifest arrives\n", err)
	}
	show := func(d sdk.Detail[any]) {
		fmt.Printf("%s = %v (variant %q, reason %s, rule %q, error %s, version %d)\n",
			*flagKey, d.Value, d.Variant, d.Reason, d.RuleID, d.ErrorCode, d.ManifestVersion)
	}
	show(client.ValueDetail(*flagKey, subject, 0, nil))
	if *once {
		return nil
	}
	client.OnChange(*flagKey, subject, func(c sdk.Change) { show(c.New) })
	client.OnEvent(func(e sdk.Event) {
		fmt.Printf("event %s version=%d flags=%v err=%v\n", e.Type, e.Version, e.FlagKeys, e.Err)
	})
	<-ctx.Done()
	return nil
}
