package sdk

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/eval"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

func boolFlag(key, seg string, on bool) *manifestv1.Flag {
	serve := func(v string) *manifestv1.Serve {
		return &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: v}}
	}
	return &manifestv1.Flag{
		Key: key, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN,
		Variants: []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}},
		Config: &manifestv1.FlagConfig{On: on, OffVariant: "off", DefaultServe: serve("off"), Rules: []*manifestv1.Rule{{
			Id: "members", Serve: serve("on"), Clauses: []*manifestv1.Clause{{
				Operator: manifestv1.Operator_OPERATOR_SEGMENT_MATCH, Values: []*structpb.Value{structpb.NewStringValue(seg)},
			}},
		}}},
	}
}

// Property: the server SDK applying a random sequence of format-2 deltas holds
// exactly the manifest a full rebuild gives (same content digest) and evaluates
// every flag as the full rebuild compiled from scratch does.
func TestFormat2DeltasMatchAFullRebuild(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	flags := map[string]*manifestv1.Flag{}
	segs := map[string]*manifestv1.Segment{}
	for i := range 20 {
		k := fmt.Sprintf("f%02d", i)
		flags[k] = boolFlag(k, fmt.Sprintf("s%d", i%3), true)
	}
	build := func(version uint64) *manifestv1.Manifest {
		m := &manifestv1.Manifest{Org: "acme", Project: "web", Environment: "prod", Version: version, Bucketing: manifest.Bucketing,
			IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(time.Hour))}
		for _, f := range flags {
			m.Flags = append(m.Flags, f)
		}
		for _, sg := range segs {
			m.Segments = append(m.Segments, sg)
		}
		manifest.Canonicalize(m)
		return m
	}
	pub, err := s.First(build(1))
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := pub.Signed()
	boot, err := proto.Marshal(sm)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{TrustedKeys: []ed25519.PublicKey{s.PublicKey()}, Bootstrap: boot, DisableUsage: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rng := rand.New(rand.NewPCG(19, 3))
	for version := uint64(2); version <= 100; version++ {
		d := &manifestv1.ManifestDelta{ToVersion: version, IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(time.Hour))}
		if rng.IntN(3) == 0 {
			k := fmt.Sprintf("s%d", rng.IntN(3))
			if _, ok := segs[k]; ok && rng.IntN(3) == 0 {
				delete(segs, k)
				d.DeletedSegments = []string{k}
			} else {
				segs[k] = &manifestv1.Segment{Key: k, Included: []string{fmt.Sprintf("u%d", rng.IntN(3))}}
				d.UpsertedSegments = []*manifestv1.Segment{segs[k]}
			}
		} else {
			k := fmt.Sprintf("f%02d", rng.IntN(25))
			if _, ok := flags[k]; ok && rng.IntN(4) == 0 {
				delete(flags, k)
				d.DeletedFlags = []string{k}
			} else {
				flags[k] = boolFlag(k, fmt.Sprintf("s%d", rng.IntN(3)), rng.IntN(3) > 0)
				d.UpsertedFlags = []*manifestv1.Flag{flags[k]}
			}
		}
		var sd *manifestv1.SignedDelta
		if pub, sd, err = s.Next(pub, d); err != nil {
			t.Fatal(err)
		}
		if err := c.applyDelta(sd); err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		held := c.state.Load()
		full := build(version)
		full.PreviousDigest = held.src.GetPreviousDigest()
		if !proto.Equal(full, held.src) {
			t.Fatalf("version %d: the applied manifest differs from the full rebuild", version)
		}
		content, err := manifest.NewContent(full)
		if err != nil {
			t.Fatal(err)
		}
		var h manifestv1.ManifestHeader
		if err := proto.Unmarshal(held.ver.Header().GetHeader(), &h); err != nil || string(h.GetContentDigest()) != string(content.Digest()) {
			t.Fatalf("version %d: the content digest differs from the full rebuild's (%v)", version, err)
		}
		scratch, err := eval.Compile(full)
		if err != nil {
			t.Fatal(err)
		}
		for u := range 3 {
			ctx, err := eval.NewContext(map[string]any{"targetingKey": fmt.Sprintf("u%d", u)})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range scratch.FlagKeys() {
				want, got := scratch.Evaluate(k, ctx, eval.Bool, false), held.m.Evaluate(k, ctx, eval.Bool, false)
				if want.Value != got.Value || want.Reason != got.Reason {
					t.Fatalf("version %d, flag %s, u%d: incremental %+v, full %+v", version, k, u, got, want)
				}
			}
		}
	}
}
