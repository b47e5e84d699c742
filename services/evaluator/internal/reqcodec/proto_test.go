package reqcodec_test

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
)

// checkEvaluateProto is the contract for one message: when the fast decoder
// accepts it, proto.Unmarshal accepts it too, with the same request, and the two
// contexts agree (both built with the same attributes, or both refused).
func checkEvaluateProto(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	var got reqcodec.Evaluate
	if !reqcodec.DecodeEvaluateProto(b, &got) {
		return false
	}
	var want evaluationv1.EvaluateRequest
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatalf("%x: the fast decoder accepted what proto refuses: %v", b, err)
	}
	if got.FlagKey != want.GetFlagKey() || got.Type != want.GetType() || !proto.Equal(got.Default, want.GetDefaultValue()) {
		t.Fatalf("%x: fast %q %v %v, proto %q %v %v", b, got.FlagKey, got.Type, got.Default, want.GetFlagKey(), want.GetType(), want.GetDefaultValue())
	}
	fc, ferr := engine.ContextFromAttrs(got.Attrs)
	sc, serr := engine.NewContext(want.GetContext())
	if (ferr == nil) != (serr == nil) {
		t.Fatalf("%x: context errors differ: fast %v, general %v", b, ferr, serr)
	}
	if ferr == nil && !sameAttrs(fc.Attributes(), sc.Attributes()) {
		t.Fatalf("%x: contexts differ:\nfast    %#v\ngeneral %#v", b, fc.Attributes(), sc.Attributes())
	}
	return true
}

// wireMutate breaks a message at the wire level now and then: truncation, a
// flipped byte, an unknown or repeated field appended (proto merges a repeated
// message field), fields of the wrong wire type.
func (g gen) wireMutate(b []byte) []byte {
	if len(b) == 0 || g.r.IntN(3) != 0 {
		return b
	}
	b = append([]byte(nil), b...)
	i := g.r.IntN(len(b))
	switch g.r.IntN(7) {
	case 0:
		return b[:i]
	case 1:
		b[i] ^= byte(1 << g.r.IntN(8))
		return b
	case 2:
		return protowire.AppendVarint(protowire.AppendTag(b, protowire.Number(5+g.r.IntN(100)), protowire.VarintType), 7)
	case 3:
		return protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), g.str())
	case 4:
		return protowire.AppendVarint(protowire.AppendTag(b, protowire.Number(1+g.r.IntN(4)), protowire.VarintType), 1)
	case 5:
		c, _ := proto.Marshal(&evaluationv1.EvaluateRequest{Context: &structpb.Struct{Fields: map[string]*structpb.Value{g.str(): g.protoValue(1)}}})
		return append(b, c...)
	}
	return protowire.AppendVarint(protowire.AppendTag(b, protowire.Number(g.r.IntN(3)), protowire.StartGroupType), 0)
}

func TestDecodeEvaluateProtoAgreesWithProtoUnmarshal(t *testing.T) {
	t.Parallel()
	g := gen{rand.New(rand.NewPCG(5, 6))}
	fast := 0
	const n = 2000
	for range n {
		req := &evaluationv1.EvaluateRequest{FlagKey: g.str(), Type: manifestv1.FlagType(g.r.IntN(6))}
		if g.r.IntN(8) != 0 {
			req.Context = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			for range g.r.IntN(6) {
				req.Context.Fields[g.str()] = g.protoValue(3)
			}
		}
		if g.r.IntN(5) == 0 {
			req.DefaultValue = g.protoValue(2)
		}
		b, err := proto.MarshalOptions{Deterministic: g.r.IntN(2) == 0}.Marshal(req)
		if err != nil {
			continue // invalid UTF-8 the generator made: proto refuses to write it
		}
		if checkEvaluateProto(t, g.wireMutate(b)) {
			fast++
		}
	}
	t.Logf("fast path taken: %d/%d", fast, n)
	if fast < n/4 {
		t.Fatalf("the generator rarely reaches the fast path (%d of %d): the test checks little", fast, n)
	}
}

func TestDecodeEvaluateProtoTakesTheFastPathForOrdinaryRequests(t *testing.T) {
	t.Parallel()
	c, _ := structpb.NewStruct(map[string]any{"targetingKey": "123", "region": "us-east-1", "n": 1.5, "l": []any{true, nil, "x"}, "o": map[string]any{}})
	b, _ := proto.Marshal(&evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: c, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN, DefaultValue: structpb.NewBoolValue(false)})
	if !checkEvaluateProto(t, b) {
		t.Fatal("took the general path")
	}
}

func FuzzDecodeEvaluateProto(f *testing.F) {
	c, _ := structpb.NewStruct(map[string]any{"targetingKey": "123", "l": []any{1.0, map[string]any{"a": nil}}})
	b, _ := proto.Marshal(&evaluationv1.EvaluateRequest{FlagKey: "f", Context: c, DefaultValue: structpb.NewStringValue("d")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { checkEvaluateProto(t, b) })
}
