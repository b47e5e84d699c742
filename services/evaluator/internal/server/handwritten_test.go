package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/server"
)

// The hand-written POST /v1/evaluate and /v1/evaluate/all (fast decoders, bodies
// written by hand) answer exactly what the generated gateway answers: the same
// status, the same JSON (errors included), for valid, invalid and over-limit
// bodies, with server, client and unknown keys.
func TestHandWrittenEndpointsAnswerAsTheGateway(t *testing.T) {
	t.Parallel()
	svc := newService(t)
	gw, err := server.NewGateway(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	fast := server.NewHTTP(server.HTTPConfig{Gateway: gw, Service: svc, Ready: func() bool { return true }, Gatherer: prometheus.NewRegistry()})
	gateway := server.NewHTTP(server.HTTPConfig{Gateway: gw, Ready: func() bool { return true }, Gatherer: prometheus.NewRegistry()})
	bodies := map[string][]string{
		"/v1/evaluate": {
			`{"flagKey":"new-ui","context":{"targetingKey":"123","region":"us-east-1"}}`,
			`{"flagKey":"new-ui","context":{"region":"eu-west-1","nested":{"a":[1,2.5,null,"x"]}}}`,
			`{"flag_key":"other","type":"boolean","defaultValue":false}`,
			`{"flagKey":"new-ui","type":"string","defaultValue":"d"}`,
			`{"flagKey":"nope","defaultValue":{"a":[1,{"b":null}]}}`,
			`{"flagKey":"new-ui","context":{"big":"` + strings.Repeat("x", 9000) + `"}}`,
			`{"flagKey":"new-ui","context":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}}`,
			`{"flagKey":"new-ui","context":{"a":1,"a":2}}`,
			`{"flagKey":"new-ui","context":{"s":"\ud800"}}`,
			`{"flagKey":"new-ui","contxt":{}}`,
			`{"flagKey":"new-ui","type":"bool"}`,
			`{"flagKey":"new-ui","type":7}`,
			`{"flagKey":"new-ui","context":[]}`,
			`{"flagKey":""}`,
			`{"flagKey":"new-ui"`,
			``,
		},
		"/v1/evaluate/all": {
			`{"context":{"targetingKey":"123","region":"us-east-1"}}`,
			`{}`,
			`{"flagKeys":["other","new-ui","other","nope"],"context":{"region":"us-east-1"}}`,
			`{"flag_keys":[],"context":{"n":1e400}}`,
			`{"flagKeys":[null]}`,
			`{"flagKyes":["new-ui"]}`,
			`{"context":{"big":"` + strings.Repeat("x", 9000) + `"}}`,
			`{"context":5}`,
			``,
		},
	}
	keys := []string{fixture.ServerKey(env), fixture.ClientKey(env), "nope", ""}
	call := func(h http.Handler, path, body, key string) (int, any, string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: not JSON: %s", path, body, w.Body)
		}
		return w.Code, v, w.Header().Get("Content-Type")
	}
	for path, list := range bodies {
		for _, body := range list {
			for _, key := range keys {
				gc, gv, gt := call(gateway, path, body, key)
				fc, fv, ft := call(fast, path, body, key)
				if gc != fc || !reflect.DeepEqual(gv, fv) || gt != ft {
					t.Errorf("%s %.80s (key %.12s):\ngateway %d %s %v\nhand    %d %s %v", path, body, key, gc, gt, gv, fc, ft, fv)
				}
			}
		}
	}
}
