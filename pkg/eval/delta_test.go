package eval

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

const deltaBase = `{"org":"o","project":"p","environment":"prod","version":"5","bucketing":"murmur3-v1",
 "sdkKeys":[{"id":"k1"}],
 "flags":[
  {"key":"a","type":"FLAG_TYPE_STRING","variants":[{"key":"x","value":"X"}],"config":{"on":true,"defaultServe":{"variant":"x"}}},
  {"key":"b","type":"FLAG_TYPE_BOOLEAN","variants":[{"key":"on","value":true},{"key":"off","value":false}],
   "config":{"on":true,"rules":[{"id":"beta","clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["beta"]}],"serve":{"variant":"on"}}],
   "defaultServe":{"variant":"off"}}},
  {"key":"c","type":"FLAG_TYPE_STRING","variants":[{"key":"x","value":"X"}],"config":{"on":true,"defaultServe":{"variant":"x"}}}],
 "segments":[{"key":"beta","included":["u1"]},{"key":"gone"}]}`

const deltaJSON = `{"org":"o","project":"p","environment":"prod","fromVersion":"5","toVersion":"6","publisherEpoch":"3",
 "previousDigest":"AQID",
 "upsertedFlags":[
  {"key":"a","type":"FLAG_TYPE_STRING","variants":[{"key":"y","value":"Y"}],"config":{"on":true,"defaultServe":{"variant":"y"}}},
  {"key":"d","type":"FLAG_TYPE_NUMBER","variants":[{"key":"n","value":1}],"config":{"on":true,"defaultServe":{"variant":"n"}}}],
 "deletedFlags":["c"],
 "upsertedSegments":[{"key":"beta","included":["u2"]}],
 "deletedSegments":["gone"],
 "sdkKeysChanged":true,"sdkKeys":[{"id":"k2"}]}`

func parseDelta(t *testing.T, js string) *manifestv1.ManifestDelta {
	t.Helper()
	var d manifestv1.ManifestDelta
	if err := protojsonUnmarshal([]byte(js), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestApplyDelta(t *testing.T) {
	t.Parallel()
	src := parseManifest(t, deltaBase)
	before := proto.Clone(src)
	old, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	u1 := mustContext(t, map[string]any{"targetingKey": "u1"})
	u2 := mustContext(t, map[string]any{"targetingKey": "u2"})

	next, err := old.ApplyDelta(parseDelta(t, deltaJSON))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the old manifest is untouched", func(t *testing.T) {
		if diff := cmp.Diff(before, old.Proto(), protocmp.Transform()); diff != "" {
			t.Errorf("old proto changed (-before +after):\n%s", diff)
		}
		if old.Version() != 5 || old.Evaluate("a", nil, Any, nil).Value != "X" || !old.HasFlag("c") || old.HasFlag("d") {
			t.Error("old manifest evaluates differently")
		}
		if old.Evaluate("b", u1, Bool, nil).Value != true || old.Evaluate("b", u2, Bool, nil).Value != false {
			t.Error("old segment changed")
		}
	})
	t.Run("the new manifest has the delta applied", func(t *testing.T) {
		if next.Version() != 6 {
			t.Errorf("version %d", next.Version())
		}
		if r := next.Evaluate("a", nil, Any, nil); r.Value != "Y" || r.ManifestVersion != 6 {
			t.Errorf("a: %+v", r)
		}
		if r := next.Evaluate("c", nil, Any, nil); r.ErrorCode != ErrorFlagNotFound {
			t.Errorf("deleted flag c: %+v", r)
		}
		if r := next.Evaluate("d", nil, Number, nil); r.Value != 1.0 {
			t.Errorf("d: %+v", r)
		}
		if diff := cmp.Diff([]string{"a", "b", "d"}, next.FlagKeys()); diff != "" {
			t.Errorf("order: upserts in place, new flags appended (-want +got):\n%s", diff)
		}
	})
	t.Run("an unchanged flag sees a changed segment", func(t *testing.T) {
		nb, _ := next.flags.get("b")
		ob, _ := old.flags.get("b")
		if nb != ob {
			t.Error("unchanged flag b was recompiled")
		}
		if next.Evaluate("b", u1, Bool, nil).Value != false || next.Evaluate("b", u2, Bool, nil).Value != true {
			t.Error("flag b does not see the new segment")
		}
	})
	t.Run("the proto header comes from the delta", func(t *testing.T) {
		p := next.Proto()
		if p.GetVersion() != 6 || p.GetPublisherEpoch() != 3 || string(p.GetPreviousDigest()) != "\x01\x02\x03" ||
			p.GetBucketing() != "murmur3-v1" || p.GetOrg() != "o" || len(p.GetSdkKeys()) != 1 || p.GetSdkKeys()[0].GetId() != "k2" {
			t.Errorf("header: %v", p)
		}
		var segs []string
		for _, s := range p.GetSegments() {
			segs = append(segs, s.GetKey())
		}
		if diff := cmp.Diff([]string{"beta"}, segs); diff != "" {
			t.Error(diff)
		}
	})
}

func TestApplyDeltaProtoKeepsSDKKeysUnlessChanged(t *testing.T) {
	t.Parallel()
	m := parseManifest(t, deltaBase)
	out, err := ApplyDeltaProto(m, parseDelta(t, `{"fromVersion":"5","toVersion":"9"}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.GetVersion() != 9 || len(out.GetSdkKeys()) != 1 || out.GetSdkKeys()[0].GetId() != "k1" || len(out.GetFlags()) != 3 {
		t.Errorf("got %v", out)
	}
}

func TestApplyDeltaRefusals(t *testing.T) {
	t.Parallel()
	old, err := Compile(parseManifest(t, deltaBase))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		delta string
		want  error
	}{
		{"a delta from another version is refused", `{"fromVersion":"4","toVersion":"6"}`, ErrDeltaBaseMismatch},
		{"a delta from a later version is refused", `{"fromVersion":"6","toVersion":"7"}`, ErrDeltaBaseMismatch},
		{"a delta that does not move forward is refused", `{"fromVersion":"5","toVersion":"5"}`, ErrDeltaNotForward},
		{"a delta going back is refused", `{"fromVersion":"5","toVersion":"4"}`, ErrDeltaNotForward},
		{"a delta for another environment is refused", `{"environment":"dev","fromVersion":"5","toVersion":"6"}`, ErrDeltaEnvironment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := parseDelta(t, tt.delta)
			if _, err := old.ApplyDelta(d); !errors.Is(err, tt.want) {
				t.Errorf("ApplyDelta: %v, want %v", err, tt.want)
			}
			var de *DeltaError
			if _, err := ApplyDeltaProto(old.Proto(), d); !errors.Is(err, tt.want) || !errors.As(err, &de) {
				t.Errorf("ApplyDeltaProto: %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := old.ApplyDelta(nil); !errors.Is(err, ErrNilDelta) {
		t.Errorf("nil delta: %v", err)
	}
}

func TestApplyDeltaUpsertWinsOverDelete(t *testing.T) {
	t.Parallel()
	m := parseManifest(t, deltaBase)
	out, err := ApplyDeltaProto(m, parseDelta(t, `{"fromVersion":"5","toVersion":"6","deletedFlags":["a"],
		"upsertedFlags":[{"key":"a","type":"FLAG_TYPE_STRING"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.GetFlags()[0]; got.GetKey() != "a" || len(got.GetVariants()) != 0 {
		t.Errorf("first flag %v", got)
	}
}
