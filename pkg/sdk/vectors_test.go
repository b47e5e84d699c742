package sdk_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/eval"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/sdk"
)

type vectorFile struct {
	Suites []struct {
		Name     string          `json:"name"`
		Manifest json.RawMessage `json:"manifest"`
		Cases    []struct {
			Name         string         `json:"name"`
			FlagKey      string         `json:"flagKey"`
			Context      map[string]any `json:"context"`
			ValueType    string         `json:"valueType"`
			DefaultValue any            `json:"defaultValue"`
			Expected     struct {
				Value     any    `json:"value"`
				Variant   string `json:"variant"`
				Reason    string `json:"reason"`
				RuleID    string `json:"ruleId"`
				ErrorCode string `json:"errorCode"`
			} `json:"expected"`
		} `json:"cases"`
	} `json:"suites"`
}

// TestSharedVectorsThroughTheSDK runs pkg/eval/testdata/vectors.json through the
// client: each suite's manifest is signed with the test key and bootstrapped as
// protobuf bytes (the path a manifest from GET /v1/manifest takes), and each case
// goes through the typed call matching its valueType (ValueDetail when the default
// does not fit the type, or with no type).
func TestSharedVectorsThroughTheSDK(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../eval/testdata/vectors.json")
	must(t, err)
	var vf vectorFile
	must(t, json.Unmarshal(b, &vf))
	if len(vf.Suites) == 0 {
		t.Fatal("no suites")
	}
	for _, suite := range vf.Suites {
		t.Run(suite.Name, func(t *testing.T) {
			m := &manifestv1.Manifest{}
			must(t, protojson.Unmarshal(suite.Manifest, m))
			now := time.Now()
			m.IssuedAt, m.ExpiresAt = timestamppb.New(now), timestamppb.New(now.Add(24*time.Hour))
			raw, err := proto.Marshal(sign(t, m))
			must(t, err)
			c, err := sdk.New(sdk.Config{TrustedKeys: trustedKeys(t), Bootstrap: raw})
			must(t, err)
			defer func() { _ = c.Close() }()
			if st := c.Status(); st.State != sdk.StateReady {
				t.Fatalf("bootstrap: %+v", st)
			}
			for _, tc := range suite.Cases {
				ctx, err := sdk.NewContext(tc.Context)
				if err != nil {
					t.Errorf("%s: context: %v", tc.Name, err)
					continue
				}
				var got sdk.Detail[any]
				switch def := tc.DefaultValue; {
				case tc.ValueType == "boolean" && isType[bool](def):
					got = asAny(c.BoolDetail(tc.FlagKey, ctx, def.(bool)))
				case tc.ValueType == "string" && isType[string](def):
					got = asAny(c.StringDetail(tc.FlagKey, ctx, def.(string)))
				case tc.ValueType == "number" && isType[float64](def):
					got = asAny(c.FloatDetail(tc.FlagKey, ctx, def.(float64)))
				case tc.ValueType == "json":
					got = c.JSONDetail(tc.FlagKey, ctx, def)
				default:
					vt, err := eval.ParseValueType(tc.ValueType)
					must(t, err)
					got = c.ValueDetail(tc.FlagKey, ctx, vt, def)
				}
				gotCmp := map[string]any{"value": got.Value, "variant": got.Variant, "reason": string(got.Reason), "ruleId": got.RuleID, "errorCode": string(got.ErrorCode)}
				e := tc.Expected
				want := map[string]any{"value": e.Value, "variant": e.Variant, "reason": e.Reason, "ruleId": e.RuleID, "errorCode": e.ErrorCode}
				if diff := cmp.Diff(want, gotCmp); diff != "" {
					t.Errorf("%s / %s (-want +got):\n%s", suite.Name, tc.Name, diff)
				}
			}
		})
	}
}

func isType[T any](v any) bool { _, ok := v.(T); return ok }
