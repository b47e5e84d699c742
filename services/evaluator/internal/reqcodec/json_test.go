package reqcodec_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/strictjson"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
)

// sameAttrs compares two contexts' attributes (nil and empty are the same).
func sameAttrs(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// checkEvaluateJSON is the contract for one body: when the fast decoder accepts
// it, strictjson accepts it too, with the same request, and the two contexts
// agree (both built, with the same attributes, or both refused).
func checkEvaluateJSON(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	var got reqcodec.Evaluate
	if !reqcodec.DecodeEvaluateJSON(body, &got) {
		return false
	}
	var want evaluationv1.EvaluateRequest
	if err := strictjson.Unmarshal(body, &want); err != nil {
		t.Fatalf("%q: the fast decoder accepted what strictjson refuses: %v", body, err)
	}
	if got.FlagKey != want.GetFlagKey() || got.Type != want.GetType() || !proto.Equal(got.Default, want.GetDefaultValue()) {
		t.Fatalf("%q: fast %q %v %v, strictjson %q %v %v", body, got.FlagKey, got.Type, got.Default, want.GetFlagKey(), want.GetType(), want.GetDefaultValue())
	}
	fc, ferr := engine.ContextFromAttrs(got.Attrs)
	sc, serr := engine.NewContext(want.GetContext())
	if (ferr == nil) != (serr == nil) {
		t.Fatalf("%q: context errors differ: fast %v, general %v", body, ferr, serr)
	}
	if ferr == nil && !sameAttrs(fc.Attributes(), sc.Attributes()) {
		t.Fatalf("%q: contexts differ:\nfast    %#v\ngeneral %#v", body, fc.Attributes(), sc.Attributes())
	}
	return true
}

// ofrepGeneral is the general path of an OFREP body (server.ofrepContext):
// encoding/json for the envelope, protojson for the context.
func ofrepGeneral(body []byte) (map[string]any, bool) {
	var st *structpb.Struct
	if len(bytes.TrimSpace(body)) > 0 {
		var req struct {
			Context json.RawMessage `json:"context"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, false
		}
		if raw := bytes.TrimSpace(req.Context); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			st = &structpb.Struct{}
			if err := protojson.Unmarshal(raw, st); err != nil {
				return nil, false
			}
		}
	}
	c, err := engine.NewContext(st)
	if err != nil {
		return nil, false
	}
	return c.Attributes(), true
}

func checkOFREPJSON(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	attrs, ok := reqcodec.DecodeOFREPJSON(body)
	if !ok {
		return false
	}
	want, wok := ofrepGeneral(body)
	c, err := engine.ContextFromAttrs(attrs)
	if (err == nil) != wok {
		t.Fatalf("%q: fast context error %v, general path ok=%v", body, err, wok)
	}
	if err == nil && !sameAttrs(c.Attributes(), want) {
		t.Fatalf("%q: contexts differ:\nfast    %#v\ngeneral %#v", body, c.Attributes(), want)
	}
	return true
}

var jsonSeeds = []string{
	`{"flagKey":"new-ui","context":{"targetingKey":"123","region":"us-east-1"}}`,
	`{"flag_key":"f","type":"boolean","defaultValue":false,"context":{"n":1.5,"l":[1,"a",true,null],"o":{"x":{}}}}`,
	`{"flagKey":"f","type":"FLAG_TYPE_JSON","default_value":{"a":[1,2]}}`,
	` { "flagKey" : "f" , "context" : { } } `,
	`{"flagKey":"f","context":{"s":"caf\u00e9 \"q\" \\ \/ \n"}}`,
	`{"flagKey":"f","type":" Number "}`,
	`{"flagKey":"f","type":"nope"}`,
	`{"flagKey":"f","type":2}`,
	`{"flagKey":"f","context":null}`,
	`{"flagKey":"f","flag_key":"g"}`,
	`{"flagKey":"f","context":{"a":1,"a":2}}`,
	`{"flagKey":"f","context":{"n":1e400}}`,
	`{"flagKey":"f","context":{"s":"\ud800"}}`,
	`{"flagKey":"f","context":{"s":"` + "\xff" + `"}}`,
	`{"flagKey":"f","contxt":{}}`,
	`{"flagKey":"f"} x`,
	`[]`, ``, `{`, `{"flagKey":"f","context":{"a":[[[[[[[[[1]]]]]]]]]}}`,
}

// The decoders accept the bodies clients send: the fast path is taken.
func TestDecodeEvaluateJSONTakesTheFastPathForOrdinaryBodies(t *testing.T) {
	t.Parallel()
	for _, body := range jsonSeeds[:6] {
		if !checkEvaluateJSON(t, []byte(body)) {
			t.Errorf("%s: took the general path", body)
		}
	}
	for _, body := range []string{``, ` `, `{}`, `{"context":null}`, `{"context":{"targetingKey":"u1","email":"a@b.c"}}`} {
		if !checkOFREPJSON(t, []byte(body)) {
			t.Errorf("OFREP %q: took the general path", body)
		}
	}
}

// Random bodies, valid and broken: whatever the fast decoders accept, the
// general decoders accept with the same result.
func TestDecodeJSONAgreesWithTheGeneralDecoders(t *testing.T) {
	t.Parallel()
	g := gen{rand.New(rand.NewPCG(1, 2))}
	fastEval, fastOFREP := 0, 0
	const n = 2000
	for range n {
		ctx := g.object(3, g.r.IntN(6))
		if g.r.IntN(10) == 0 {
			ctx = g.value(2)
		}
		body := `{` + g.ws() + `"flagKey":` + g.quote(g.str()) + `,"context":` + ctx
		switch g.r.IntN(5) {
		case 0:
			body += `,"type":` + g.quote([...]string{"boolean", "STRING", "flag_type_json", "x", " number"}[g.r.IntN(5)])
		case 1:
			body += `,"defaultValue":` + g.value(2)
		}
		body = g.mutate(body + g.ws() + `}`)
		if checkEvaluateJSON(t, []byte(body)) {
			fastEval++
		}
		ob := g.mutate(`{"context":` + ctx + `}`)
		if checkOFREPJSON(t, []byte(ob)) {
			fastOFREP++
		}
	}
	t.Logf("fast path taken: /v1/evaluate %d/%d, OFREP %d/%d", fastEval, n, fastOFREP, n)
	if fastEval < n/4 || fastOFREP < n/4 {
		t.Fatalf("the generator rarely reaches the fast path (%d, %d of %d): the test checks little", fastEval, fastOFREP, n)
	}
}

func FuzzDecodeEvaluateJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkEvaluateJSON(t, body)
		checkOFREPJSON(t, body)
	})
}

func checkEvaluateAllJSON(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	var got reqcodec.EvaluateAll
	if !reqcodec.DecodeEvaluateAllJSON(body, &got) {
		return false
	}
	var want evaluationv1.EvaluateAllRequest
	if err := strictjson.Unmarshal(body, &want); err != nil {
		t.Fatalf("%q: the fast decoder accepted what strictjson refuses: %v", body, err)
	}
	if len(got.FlagKeys) != len(want.GetFlagKeys()) || (len(got.FlagKeys) > 0 && !reflect.DeepEqual(got.FlagKeys, want.GetFlagKeys())) {
		t.Fatalf("%q: flag keys: fast %q, strictjson %q", body, got.FlagKeys, want.GetFlagKeys())
	}
	fc, ferr := engine.ContextFromAttrs(got.Attrs)
	sc, serr := engine.NewContext(want.GetContext())
	if (ferr == nil) != (serr == nil) {
		t.Fatalf("%q: context errors differ: fast %v, general %v", body, ferr, serr)
	}
	if ferr == nil && !sameAttrs(fc.Attributes(), sc.Attributes()) {
		t.Fatalf("%q: contexts differ:\nfast    %#v\ngeneral %#v", body, fc.Attributes(), sc.Attributes())
	}
	return true
}

func TestDecodeEvaluateAllJSONAgreesWithStrictjson(t *testing.T) {
	t.Parallel()
	g := gen{rand.New(rand.NewPCG(7, 8))}
	fast := 0
	const n = 1500
	for range n {
		body := `{"context":` + g.object(3, g.r.IntN(5))
		switch g.r.IntN(4) {
		case 0:
			body += `,"flagKeys":[` + g.quote(g.str()) + `,` + g.quote(g.str()) + `]`
		case 1:
			body += `,"flag_keys":[` + g.value(0) + `]`
		case 2:
			body += `,"flagKeys":[]`
		}
		if checkEvaluateAllJSON(t, []byte(g.mutate(body+`}`))) {
			fast++
		}
	}
	t.Logf("fast path taken: %d/%d", fast, n)
	if fast < n/4 {
		t.Fatalf("the generator rarely reaches the fast path (%d of %d)", fast, n)
	}
	for _, body := range []string{`{"context":{"targetingKey":"u1"}}`, `{}`, `{"flagKeys":["a","b"],"context":{}}`} {
		if !checkEvaluateAllJSON(t, []byte(body)) {
			t.Errorf("%s: took the general path", body)
		}
	}
}
