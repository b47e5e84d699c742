package app_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

func TestOFREPBulkPointsClientProvidersAtAnEventStreamThatSaysWhenToRefetch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)

	bulk := func(key string) map[string]any {
		t.Helper()
		code, body := post(t, e, "/ofrep/v1/evaluate/flags", key, `{"context":{"targetingKey":"u1"}}`)
		if code != http.StatusOK {
			t.Fatalf("bulk: %d %v", code, body)
		}
		return body
	}
	streams, _ := json.Marshal(bulk(fixture.ClientKey(env))["eventStreams"])
	want := `[{"endpoint":{"requestUri":"/ofrep/v1/events?key=` + url.QueryEscape(fixture.ClientKey(env)) + `"},"type":"sse"}]`
	if string(streams) != want {
		t.Fatalf("eventStreams %s\nwant %s", streams, want)
	}
	if s := bulk(fixture.ServerKey(env))["eventStreams"]; s != nil {
		t.Fatalf("a server key got eventStreams %v", s)
	}

	resp, err := http.Get("http://" + e.app.HTTPAddr() + "/ofrep/v1/events?key=" + url.QueryEscape(fixture.ClientKey(env)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, ct)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		br := bufio.NewReader(resp.Body)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimRight(l, "\n")
		}
	}()
	r.publish(t, fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, true)))
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < 2 || got[len(got)-1] != `data: {"type":"refetchEvaluation"}` {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended: %q", got)
			}
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		case <-deadline:
			t.Fatalf("no refetchEvaluation within 5s: %q", got)
		}
	}
	if got[len(got)-2] != "id: 2" {
		t.Fatalf("event %q, want id: 2", got)
	}

	resp2, err := http.Get("http://" + e.app.HTTPAddr() + "/ofrep/v1/events?key=" + url.QueryEscape(fixture.ServerKey(env)))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp2.Body.Close()
	if resp2.StatusCode != http.StatusForbidden {
		t.Fatalf("server key on /ofrep/v1/events: %d, want 403", resp2.StatusCode)
	}
}
