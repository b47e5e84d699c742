package eval

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// fuzzDefault is the caller's default in FuzzEvaluate, recognisable in results.
const fuzzDefault = "fuzz-default"

// FuzzEvaluate feeds arbitrary manifests (protojson or binary protobuf) and contexts
// (JSON) to Compile, Evaluate, ValidateManifest and ApplyDelta: nothing may panic,
// and results must be well-formed and deterministic.
func FuzzEvaluate(f *testing.F) {
	ctx := []byte(`{"targetingKey":"user-1","email":"a@example.com","plan":"pro","age":34,
		"app":{"version":"2.4.1"},"ip":"10.1.2.3","beta":true,"tags":["x",1,null],"t":"2025-01-01T00:00:00Z"}`)
	seeds := []string{reasonsManifest, targetingManifest, deltaBase, reasonsManifestValidPart,
		clauseManifest(`{"attribute":"a.b","operator":"OPERATOR_IN","values":["x",1,true],"caseInsensitive":true}`, "")}
	if data, err := os.ReadFile("testdata/vectors.json"); err == nil {
		var v vectorFile
		if json.Unmarshal(data, &v) == nil {
			for _, s := range v.Suites {
				seeds = append(seeds, string(s.Manifest))
				for i, c := range s.Cases {
					if i%4 == 0 {
						cj, _ := json.Marshal(c.Context)
						f.Add([]byte(s.Manifest), cj)
					}
				}
			}
		}
	}
	for _, s := range seeds {
		f.Add([]byte(s), ctx)
		var m manifestv1.Manifest
		if protojson.Unmarshal([]byte(s), &m) == nil {
			if bin, err := proto.Marshal(&m); err == nil {
				f.Add(bin, ctx)
			}
		}
	}
	f.Fuzz(func(t *testing.T, manifest, context []byte) {
		var pm manifestv1.Manifest
		if protojson.Unmarshal(manifest, &pm) != nil {
			pm.Reset()
			if proto.Unmarshal(manifest, &pm) != nil {
				return
			}
		}
		var attrs map[string]any
		_ = json.Unmarshal(context, &attrs)
		ectx, err := NewContext(attrs)
		if err != nil {
			ectx = nil
		}
		if s, err := structpb.NewStruct(attrs); err == nil {
			if c2, err := ContextFromStruct(s); err == nil && ectx != nil && !cmp.Equal(c2.Attributes(), ectx.Attributes(), cmpopts.EquateEmpty()) {
				t.Fatalf("ContextFromStruct and NewContext disagree")
			}
		}
		verr := ValidateManifest(&pm)
		m, err := Compile(&pm)
		if err != nil {
			return
		}
		for _, key := range append(m.FlagKeys(), "no-such-flag") {
			for _, vt := range []ValueType{Any, Bool, String, Number, JSON} {
				r := m.Evaluate(key, ectx, vt, fuzzDefault)
				checkResult(t, r)
				if again := m.Evaluate(key, ectx, vt, fuzzDefault); !sameResult(r, again) {
					t.Fatalf("%s: not deterministic: %+v vs %+v", key, r, again)
				}
				if verr == nil && r.ErrorCode == ErrorParse {
					t.Fatalf("%s: valid manifest but PARSE_ERROR: %s", key, r.ErrorMessage)
				}
			}
		}
		d := &manifestv1.ManifestDelta{FromVersion: m.Version(), ToVersion: m.Version() + 1, DeletedFlags: []string{"a", "b"}}
		if fl := pm.GetFlags(); len(fl) > 0 {
			d.UpsertedFlags = fl[len(fl)-1:]
		}
		if segs := pm.GetSegments(); len(segs) > 0 {
			d.DeletedSegments = []string{segs[0].GetKey()}
		}
		if next, err := m.ApplyDelta(d); err == nil {
			for _, key := range next.FlagKeys() {
				checkResult(t, next.Evaluate(key, ectx, Any, fuzzDefault))
			}
		}
	})
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	switch r.Reason {
	case ReasonStatic, ReasonDefault, ReasonTargetingMatch, ReasonSplit, ReasonDisabled, ReasonPrerequisiteFailed:
		if r.ErrorCode != "" {
			t.Fatalf("error code with reason %s: %+v", r.Reason, r)
		}
	case ReasonError:
		switch r.ErrorCode {
		case ErrorFlagNotFound, ErrorTypeMismatch, ErrorTargetingKeyMissing, ErrorParse, ErrorGeneral:
		default:
			t.Fatalf("reason ERROR with error code %q", r.ErrorCode)
		}
		if r.Variant != "" {
			t.Fatalf("ERROR with a variant: %+v", r)
		}
	default:
		t.Fatalf("unknown reason %q", r.Reason)
	}
	if r.Variant == "" && (r.Value != fuzzDefault || r.ProtoValue != nil) {
		t.Fatalf("no variant but value %v / %v", r.Value, r.ProtoValue)
	}
	if r.Variant != "" && r.ProtoValue == nil {
		t.Fatalf("variant %q without ProtoValue", r.Variant)
	}
	if r.RuleID != "" && r.Reason != ReasonTargetingMatch && r.Reason != ReasonSplit {
		t.Fatalf("rule id with reason %s", r.Reason)
	}
}

func sameResult(a, b Result) bool {
	return reflect.DeepEqual(a.Value, b.Value) && a.ProtoValue == b.ProtoValue && a.Variant == b.Variant &&
		a.Reason == b.Reason && a.RuleID == b.RuleID && a.ErrorCode == b.ErrorCode &&
		a.ErrorMessage == b.ErrorMessage && a.FlagKey == b.FlagKey && a.ManifestVersion == b.ManifestVersion
}
