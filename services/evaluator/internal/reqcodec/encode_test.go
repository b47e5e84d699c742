package reqcodec_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
)

func (g gen) protoValue(depth int) *structpb.Value {
	k := g.r.IntN(8)
	if depth <= 0 && k >= 6 {
		k = g.r.IntN(6)
	}
	switch k {
	case 0:
		return structpb.NewNullValue()
	case 1:
		return structpb.NewBoolValue(g.r.IntN(2) == 0)
	case 2:
		switch g.r.IntN(20) {
		case 0:
			return structpb.NewNumberValue(math.NaN())
		case 1:
			return structpb.NewNumberValue(math.Inf(-1))
		case 2:
			return structpb.NewNumberValue(1e-7)
		case 3:
			return structpb.NewNumberValue(1e21)
		}
		return structpb.NewNumberValue(g.r.NormFloat64() * 1000)
	case 3, 4:
		return structpb.NewStringValue(g.str())
	case 5:
		if g.r.IntN(30) == 0 {
			return &structpb.Value{}
		}
		return structpb.NewNumberValue(float64(g.r.IntN(100)))
	case 6:
		l := &structpb.ListValue{}
		for range g.r.IntN(4) {
			l.Values = append(l.Values, g.protoValue(depth-1))
		}
		return structpb.NewListValue(l)
	}
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for range g.r.IntN(4) {
		s.Fields[g.str()] = g.protoValue(depth - 1)
	}
	return structpb.NewStructValue(s)
}

// The hand-written response encoder writes what protojson writes (the same
// message once read back) and refuses what protojson refuses.
func TestAppendEvaluateResponseAgreesWithProtojson(t *testing.T) {
	t.Parallel()
	g := gen{rand.New(rand.NewPCG(3, 4))}
	for range 2000 {
		res := &evaluationv1.EvaluateResponse{Variant: g.str(), Reason: "TARGETING_MATCH", FlagKey: g.str(),
			ManifestVersion: uint64(g.r.IntN(3)) * math.MaxUint64 / 2}
		if g.r.IntN(4) != 0 {
			res.Value = g.protoValue(3)
		}
		if g.r.IntN(3) == 0 {
			res.RuleId, res.ErrorCode, res.ErrorMessage = g.str(), "TYPE_MISMATCH", g.str()
		}
		got, ok := reqcodec.AppendEvaluateResponse(nil, res)
		want, err := protojson.Marshal(res)
		if ok != (err == nil) {
			t.Fatalf("%v: fast ok=%v, protojson %v", res, ok, err)
		}
		if !ok {
			continue
		}
		var back evaluationv1.EvaluateResponse
		if err := protojson.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: %v (protojson wrote %s)", got, err, want)
		}
		if !proto.Equal(&back, res) {
			t.Fatalf("fast %s\nprotojson %s", got, want)
		}
	}
}

func TestAppendEvaluateResponseIsCompactProtojson(t *testing.T) {
	t.Parallel()
	res := &evaluationv1.EvaluateResponse{Value: structpb.NewBoolValue(true), Variant: "on", Reason: "TARGETING_MATCH",
		RuleId: "east", FlagKey: "new-ui", ManifestVersion: 1}
	got, _ := reqcodec.AppendEvaluateResponse(nil, res)
	const want = `{"value":true,"variant":"on","reason":"TARGETING_MATCH","ruleId":"east","flagKey":"new-ui","manifestVersion":"1"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
