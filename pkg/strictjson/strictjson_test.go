package strictjson

import (
	"errors"
	"testing"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

func TestEnumNames(t *testing.T) {
	t.Parallel()
	ed := manifestv1.Operator(0).Descriptor()
	for in, want := range map[string]string{
		"in": "OPERATOR_IN", "IN": "OPERATOR_IN", "semver_gt": "OPERATOR_SEMVER_GT",
		"OPERATOR_SEMVER_GT": "OPERATOR_SEMVER_GT", "operator_ip_in_cidr": "OPERATOR_IP_IN_CIDR",
	} {
		if got, ok := EnumValue(ed, in); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
	if _, ok := EnumValue(ed, "semvr_gt"); ok {
		t.Error("a misspelt operator was accepted")
	}
	if got := EnumPrefix(manifestv1.FlagType(0).Descriptor()); got != "FLAG_TYPE_" {
		t.Errorf("prefix %q", got)
	}
	if got := EnumNames(manifestv1.FlagType(0).Descriptor()); len(got) != 4 || got[0] != "boolean" {
		t.Errorf("names %v", got)
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"offVarient", "offVariant"}, {"bucketby", "bucketBy"}, {"bucket_by", "bucketBy"},
		{"tgas", "tags"}, {"contxt", "context"}, {"colour", ""}, {"zzz", ""},
	} {
		if got := closest(tt.in, []string{"offVariant", "bucketBy", "tags", "context", "on", "rules"}); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	var c manifestv1.FlagConfig
	if err := Unmarshal([]byte(`{"on":true,"rules":[{"id":"r","clauses":[{"operator":"semver_gt","values":["1.0.0"]}]}],"default_serve":{"variant":"on"}}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.GetRules()[0].GetClauses()[0].GetOperator() != manifestv1.Operator_OPERATOR_SEMVER_GT || c.GetDefaultServe().GetVariant() != "on" {
		t.Fatalf("decoded %v", &c)
	}
	err := Unmarshal([]byte(`{"on":"yes","defaultServe":{"variant":"a","rollout":{}},"rules":{}}`), &c)
	got := map[string]bool{}
	for _, v := range errs.ViolationsOf(err) {
		got[v.Field] = true
	}
	if !errors.Is(err, errs.InvalidArgument) || !got["on"] || !got["defaultServe.variant"] || !got["rules"] || len(got) != 3 {
		t.Fatalf("violations %v (%v)", got, err)
	}
	if err := Unmarshal([]byte(`{"on":true`), &c); !errors.Is(err, errs.InvalidArgument) {
		t.Fatalf("truncated body: %v", err)
	}
	if err := Unmarshal([]byte(`{"on":true} {}`), &c); !errors.Is(err, errs.InvalidArgument) {
		t.Fatalf("two values: %v", err)
	}
}
