package app_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// sseEvent is one server-sent event.
type sseEvent struct{ name, id, data string }

// readEvents parses a text/event-stream into ch until the body ends.
func readEvents(body *bufio.Reader, ch chan<- sseEvent) {
	defer close(ch)
	var ev sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				ch <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// TestEventsStreamEveryChangeOfTheOrganization: the console's live stream starts
// with "ready", then carries each committed change (from the audit log, in order)
// as a "change" event naming the action, resource and actor; callers without a
// valid token are refused before it starts.
func TestEventsStreamEveryChangeOfTheOrganization(t *testing.T) {
	t.Parallel()
	c := start(t, ratelimit.Config{})
	c.project()

	c.call("GET", "/v1/orgs/acme/events", "", nil).want(t, 401)
	c.call("GET", "/v1/orgs/acme/events", "ffat_wrong", nil).want(t, 401)

	req, err := http.NewRequestWithContext(t.Context(), "GET", c.base+"/v1/orgs/acme/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.owner)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 16)
	go readEvents(bufio.NewReader(res.Body), ch)
	next := func() sseEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
		return sseEvent{}
	}
	if ev := next(); ev.name != "ready" {
		t.Fatalf("first event %+v, want ready", ev)
	}

	c.call("PUT", prodFlag, c.owner, onBody).want(t, 200)
	c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "second", "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 200)
	var got []map[string]string
	var ids []string
	for len(got) < 2 {
		ev := next()
		if ev.name != "change" {
			t.Fatalf("event %+v, want change", ev)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
		ids = append(ids, ev.id)
	}
	if got[0]["action"] != "flag_config.update" || got[0]["resource"] != "projects/web/environments/production/flags/new-ui" ||
		got[1]["action"] != "flag.create" || got[1]["resource"] != "projects/web/flags/second" {
		t.Fatalf("changes %v", got)
	}
	if got[0]["actorName"] == "" || ids[0] != got[0]["sequence"] || ids[0] >= ids[1] && len(ids[0]) == len(ids[1]) {
		t.Fatalf("actor %q, ids %v", got[0]["actorName"], ids)
	}
}
