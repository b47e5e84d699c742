// Package gen_test checks that the generated contracts carry a representative
// manifest losslessly through both wire forms clients use: protobuf binary (gRPC,
// signed envelopes) and protojson (REST, test vectors, files).
package gen_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// representativeManifest uses every clause operator, a rollout, prerequisites,
// targets, segments (one nesting another), every flag type and SDK keys.
func representativeManifest(t *testing.T) *manifestv1.Manifest {
	t.Helper()
	v := func(x any) *structpb.Value {
		val, err := structpb.NewValue(x)
		if err != nil {
			t.Fatal(err)
		}
		return val
	}
	clause := func(attr string, op manifestv1.Operator, vals ...any) *manifestv1.Clause {
		c := &manifestv1.Clause{Attribute: attr, Operator: op}
		for _, x := range vals {
			c.Values = append(c.Values, v(x))
		}
		return c
	}
	var clauses []*manifestv1.Clause
	for op := range manifestv1.Operator_name {
		if op == 0 {
			continue
		}
		c := clause("attr", manifestv1.Operator(op), "x", 1.5)
		c.Negate = op%2 == 0
		c.CaseInsensitive = op%3 == 0
		clauses = append(clauses, c)
	}
	issued := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	return &manifestv1.Manifest{
		Org: "acme", Project: "web", Environment: "production", Version: 42,
		Bucketing: "murmur3-v1", IssuedAt: timestamppb.New(issued),
		ExpiresAt: timestamppb.New(issued.Add(7 * 24 * time.Hour)), PreviousDigest: []byte{1, 2, 3},
		PublisherEpoch: 7,
		Flags: []*manifestv1.Flag{
			{
				Key: "new-ui", Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN, ClientVisible: true, Revision: 3,
				Variants: []*manifestv1.Variant{{Key: "on", Value: v(true)}, {Key: "off", Value: v(false)}},
				Config: &manifestv1.FlagConfig{
					On: true, OffVariant: "off",
					Prerequisites: []*manifestv1.Prerequisite{{FlagKey: "checkout-v2", Variants: []string{"blue", "green"}}},
					Targets:       []*manifestv1.Target{{Variant: "on", Values: []string{"user-1", "user-2"}}},
					Rules: []*manifestv1.Rule{
						{Id: "every-operator", Clauses: clauses, Serve: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}},
						{Id: "beta", Clauses: []*manifestv1.Clause{clause("", manifestv1.Operator_OPERATOR_SEGMENT_MATCH, "beta-users")},
							Serve: &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{Rollout: &manifestv1.Rollout{
								BucketBy: "org.id", Seed: "shared",
								Weights: []*manifestv1.WeightedVariant{{Variant: "on", Weight: 25}, {Variant: "off", Weight: 75}},
							}}}},
					},
					DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "off"}},
				},
			},
			{Key: "checkout-v2", Type: manifestv1.FlagType_FLAG_TYPE_STRING,
				Variants: []*manifestv1.Variant{{Key: "blue", Value: v("blue")}, {Key: "green", Value: v("green")}},
				Config:   &manifestv1.FlagConfig{On: true, DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "blue"}}}},
			{Key: "max-items", Type: manifestv1.FlagType_FLAG_TYPE_NUMBER,
				Variants: []*manifestv1.Variant{{Key: "small", Value: v(10)}, {Key: "large", Value: v(1e6)}}},
			{Key: "theme", Type: manifestv1.FlagType_FLAG_TYPE_JSON,
				Variants: []*manifestv1.Variant{{Key: "dark", Value: v(map[string]any{"bg": "#000", "sizes": []any{1.0, 2.0}, "on": true, "none": nil})}}},
		},
		Segments: []*manifestv1.Segment{
			{Key: "beta-users", Included: []string{"user-9"}, Excluded: []string{"user-3"},
				Rules: []*manifestv1.SegmentRule{{Id: "internal", Clauses: []*manifestv1.Clause{
					clause("email", manifestv1.Operator_OPERATOR_ENDS_WITH, "@acme.test"),
					clause("", manifestv1.Operator_OPERATOR_SEGMENT_MATCH, "employees"),
				}}}},
			{Key: "employees", Rules: []*manifestv1.SegmentRule{{Id: "ip", Clauses: []*manifestv1.Clause{
				clause("ip", manifestv1.Operator_OPERATOR_IP_IN_CIDR, "10.0.0.0/8", "2001:db8::/32"),
			}}}},
		},
		SdkKeys: []*manifestv1.SdkKey{
			{Id: "k1", Hash: make([]byte, 32), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER},
			{Id: "k2", Hash: []byte("0123456789abcdef0123456789abcdef"), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT, ExpiresAt: timestamppb.New(issued)},
		},
	}
}

func TestManifestRoundTripsThroughProtobufBinary(t *testing.T) {
	t.Parallel()
	m := representativeManifest(t)
	if n := len(m.GetFlags()[0].GetConfig().GetRules()[0].GetClauses()); n != len(manifestv1.Operator_name)-1 {
		t.Fatalf("rule covers %d operators, want every one (%d)", n, len(manifestv1.Operator_name)-1)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got manifestv1.Manifest
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, &got, protocmp.Transform()); diff != "" {
		t.Fatalf("binary round trip changed the manifest (-want +got):\n%s", diff)
	}
	b2, err := proto.MarshalOptions{Deterministic: true}.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Fatal("deterministic serialization differs after a round trip (signatures would break)")
	}
}

func TestManifestRoundTripsThroughProtoJSON(t *testing.T) {
	t.Parallel()
	m := representativeManifest(t)
	js, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got manifestv1.Manifest
	if err := protojson.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, &got, protocmp.Transform()); diff != "" {
		t.Fatalf("protojson round trip changed the manifest (-want +got):\n%s", diff)
	}
}

func TestManifestJSONUsesLowerCamelCaseAndEnumNames(t *testing.T) {
	t.Parallel()
	js, err := protojson.Marshal(representativeManifest(t))
	if err != nil {
		t.Fatal(err)
	}
	s := string(js)
	for _, want := range []string{`"previousDigest"`, `"offVariant"`, `"defaultServe"`, `"caseInsensitive"`, `"bucketBy"`,
		`"OPERATOR_SEGMENT_MATCH"`, `"FLAG_TYPE_BOOLEAN"`, `"clientVisible"`, `"sdkKeys"`} {
		if !strings.Contains(s, want) {
			t.Errorf("protojson lacks %s", want)
		}
	}
}
