// Command setup prepares the evaluator load harness (bench/evaluator-load.sh): it
// publishes a signed manifest of 1,000 flags to Redis exactly as the control plane
// does (internal/fixture), writes the trusted public key, the SDK keys and the
// gRPC request frames h2load sends, and can publish a new version later (-bump).
//
//	setup -redis redis://127.0.0.1:6390/0 -out DIR            # version 1
//	setup -redis ... -out DIR -bump 2                         # version 2
//
// The manifest's "targeted" flag has a rule with an ends_with clause on "email"
// (serving "on") and a 25/75 rollout on targetingKey by default; the 999 others are
// boolean flags with a rule on "region"; 200 of the 1,000 (targeted and every fifth)
// are client-visible, the browser-shaped bulk evaluation of issue 18.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

// Target is the environment the harness serves.
const Target = "bench/load/production"

func main() {
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	out := flag.String("out", ".", "directory for keys and frames")
	flags := flag.Int("flags", 1000, "number of flags")
	bump := flag.Uint64("bump", 0, "publish this version (reusing the signing key in -out) instead of version 1")
	flag.Parse()
	if err := run(*redisURL, *out, *flags, *bump); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
}

func run(redisURL, out string, n int, bump uint64) error {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	client := redis.NewClient(opts)
	defer func() { _ = client.Close() }()
	if err := os.MkdirAll(out, 0o750); err != nil {
		return err
	}
	signer, err := loadOrCreateSigner(filepath.Join(out, "signing.pem"))
	if err != nil {
		return err
	}
	version := uint64(1)
	if bump > 0 {
		version = bump
	}
	m := fixture.Manifest(Target, version, time.Now().UTC(), flagsOf(n, version)...)
	pub := &fixture.Publisher{Client: client, Prefix: "ff:", Signer: signer}
	if _, err := pub.Publish(context.Background(), m); err != nil {
		return err
	}
	files := map[string][]byte{
		"trusted.pem": []byte(fixture.PublicPEM(signer)),
		"server.key":  []byte(fixture.ServerKey(Target)),
		"client.key":  []byte(fixture.ClientKey(Target)),
	}
	for i := range 4 {
		f, err := grpcFrame(fmt.Sprintf("user-%d", i))
		if err != nil {
			return err
		}
		files[fmt.Sprintf("evaluate-%d.bin", i)] = f
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("published %s version %d with %d flags\n", Target, version, len(m.GetFlags()))
	return nil
}

// flagsOf builds the manifest's flags; version changes flag-0001 so each version
// differs by one flag (a small delta).
func flagsOf(n int, version uint64) []*manifestv1.Flag {
	out := []*manifestv1.Flag{targeted()}
	for i := 1; i < n; i++ {
		out = append(out, fixture.BoolFlag(fmt.Sprintf("flag-%04d", i), i != 1 || version%2 == 1, i%5 == 0))
	}
	return out
}

func targeted() *manifestv1.Flag {
	return &manifestv1.Flag{
		Key: "targeted", Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN, ClientVisible: true,
		Variants: []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}},
		Config: &manifestv1.FlagConfig{
			On: true, OffVariant: "off",
			Rules: []*manifestv1.Rule{{
				Id: "staff",
				Clauses: []*manifestv1.Clause{{Attribute: "email", Operator: manifestv1.Operator_OPERATOR_ENDS_WITH,
					Values: []*structpb.Value{structpb.NewStringValue("@flagforge.dev")}}},
				Serve: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}},
			}},
			DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{Rollout: &manifestv1.Rollout{
				Weights: []*manifestv1.WeightedVariant{{Variant: "on", Weight: 25}, {Variant: "off", Weight: 75}},
			}}},
		},
	}
}

// grpcFrame is one length-prefixed gRPC message: Evaluate of "targeted" for a
// context with targetingKey key (h2load sends it as the request body).
func grpcFrame(key string) ([]byte, error) {
	c, err := structpb.NewStruct(map[string]any{"targetingKey": key, "email": key + "@example.com", "region": "eu-west-1"})
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(&evaluationv1.EvaluateRequest{FlagKey: "targeted", Context: c})
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b))) //nolint:gosec // a request of a few hundred bytes
	return append(frame, b...), nil
}

func loadOrCreateSigner(path string) (*manifest.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := manifest.ParsePrivateKey(b)
		if err != nil {
			return nil, err
		}
		return manifest.NewSigner(k)
	}
	privPEM, _, err := manifest.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, privPEM, 0o600); err != nil {
		return nil, err
	}
	k, err := manifest.ParsePrivateKey(privPEM)
	if err != nil {
		return nil, err
	}
	return manifest.NewSigner(k)
}
