package app_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
)

// streamed is what a test stream received: messages, and the final error.
type streamed struct {
	msgs chan *evaluationv1.StreamManifestResponse
	err  chan error
	head atomic.Uint64 // the StreamStart's head version
}

func openStream(t *testing.T, client evaluationv1.EvaluationServiceClient, key string, from uint64) *streamed {
	t.Helper()
	ctx, cancel := context.WithCancel(withKey(key))
	t.Cleanup(cancel)
	st, err := client.StreamManifest(ctx, &evaluationv1.StreamManifestRequest{FromVersion: from})
	if err != nil {
		t.Fatal(err)
	}
	s := &streamed{msgs: make(chan *evaluationv1.StreamManifestResponse, 1024), err: make(chan error, 1)}
	go func() {
		first := true
		for {
			m, err := st.Recv()
			if err != nil {
				s.err <- err
				return
			}
			if first {
				// Every stream opens with the head version it brings the caller to.
				first = false
				if m.GetStart() == nil {
					s.err <- fmt.Errorf("first message %v is not a StreamStart", m)
					return
				}
				s.head.Store(m.GetStart().GetHeadVersion())
				continue
			}
			s.msgs <- m
		}
	}()
	return s
}

// next returns the next message, failing after 5 s.
func (s *streamed) next(t *testing.T) *evaluationv1.StreamManifestResponse {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.err:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no stream message within 5s")
	}
	return nil
}

// end waits for the stream's final error (io.EOF for a normal end).
func (s *streamed) end(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-s.err:
		return err
	case <-time.After(within):
		t.Fatalf("stream did not end within %s", within)
	}
	return nil
}

func deltaVersions(t *testing.T, sd *manifestv1.SignedDelta) (from, to uint64) {
	t.Helper()
	var d manifestv1.ManifestDelta
	if err := proto.Unmarshal(sd.GetPayload(), &d); err != nil {
		t.Fatal(err)
	}
	return d.GetFromVersion(), d.GetToVersion()
}

func snapshotVersion(t *testing.T, sm *manifestv1.SignedManifest) uint64 {
	t.Helper()
	var m manifestv1.Manifest
	if err := proto.Unmarshal(sm.GetPayload(), &m); err != nil {
		t.Fatal(err)
	}
	return m.GetVersion()
}

// publishVersions publishes versions from..to of env (flag "new-ui" toggling) and
// waits until each is served and its signed copy held.
func publishVersions(t *testing.T, r *rig, e *evaluator, from, to uint64) {
	t.Helper()
	for v := from; v <= to; v++ {
		r.publish(t, fixture.Manifest(env, v, now(), fixture.BoolFlag("new-ui", v%2 == 1, true)))
		eventually(t, "version "+strconv.FormatUint(v, 10)+" is served with its signed copy", func() bool {
			en := e.app.Holder.State().Env(env)
			return en != nil && en.Version() == v && en.Signed() != nil
		})
	}
}

func TestStreamSendsASnapshotThenDeltasThenHeartbeats(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	cfg := r.cfg
	cfg.StreamHeartbeat = 200 * time.Millisecond
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)

	s := openStream(t, e.grpc, fixture.ServerKey(env), 0)
	m := s.next(t)
	if m.GetSnapshot() == nil || snapshotVersion(t, m.GetSnapshot()) != 1 {
		t.Fatalf("first message: got %v, want the snapshot of version 1", m)
	}
	// The snapshot is the signed manifest as published, and it verifies.
	s0 := fixture.PublicPEM(r.pub.Signer)
	keys, _ := manifest.ParsePublicKeys([]byte(s0))
	v, _ := manifest.NewVerifier(nil, keys...)
	if _, err := v.Manifest(m.GetSnapshot()); err != nil {
		t.Fatalf("snapshot does not verify: %v", err)
	}
	r.publish(t, fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, true)))
	for {
		m = s.next(t)
		if m.GetHeartbeat() == nil {
			break
		}
	}
	if m.GetDelta() == nil {
		t.Fatalf("after a publish: got %v, want a delta", m)
	}
	if from, to := deltaVersions(t, m.GetDelta()); from != 1 || to != 2 {
		t.Fatalf("delta %d->%d, want 1->2", from, to)
	}
	m = s.next(t)
	if m.GetHeartbeat() == nil || m.GetHeartbeat().GetVersion() != 2 {
		t.Fatalf("then: got %v, want a heartbeat at version 2", m)
	}
}

func TestStreamResumesFromTheCallersVersionWithDeltas(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)
	publishVersions(t, r, e, 2, 4)

	s := openStream(t, e.grpc, fixture.ServerKey(env), 2)
	for _, want := range [][2]uint64{{2, 3}, {3, 4}} {
		m := s.next(t)
		if m.GetDelta() == nil {
			t.Fatalf("got %v, want delta %d->%d", m, want[0], want[1])
		}
		if from, to := deltaVersions(t, m.GetDelta()); from != want[0] || to != want[1] {
			t.Fatalf("delta %d->%d, want %d->%d", from, to, want[0], want[1])
		}
	}
	// A caller already current gets a heartbeat saying so.
	cur := openStream(t, e.grpc, fixture.ServerKey(env), 4)
	if m := cur.next(t); m.GetHeartbeat().GetVersion() != 4 {
		t.Fatalf("current caller: got %v, want a heartbeat at version 4", m)
	}
}

func TestStreamResumingFromAVersionNoLongerInTheRingGetsASnapshot(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	cfg := r.cfg
	cfg.StreamRing = 2
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)
	publishVersions(t, r, e, 2, 5)

	s := openStream(t, e.grpc, fixture.ServerKey(env), 1)
	m := s.next(t)
	if m.GetSnapshot() == nil || snapshotVersion(t, m.GetSnapshot()) != 5 {
		t.Fatalf("got %v, want the snapshot of version 5", m)
	}
}

func TestClientKeyIsRefusedOnStreamManifest(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	s := openStream(t, e.grpc, fixture.ClientKey(env), 0)
	if err := s.end(t, 5*time.Second); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want PERMISSION_DENIED", err)
	}
}

// bigFlag is a string flag whose variant is about size bytes (to fill transport
// windows quickly).
func bigFlag(version uint64, size int) *manifestv1.Flag {
	v := strings.Repeat("x", size) + strconv.FormatUint(version, 10)
	return &manifestv1.Flag{
		Key: "big", Type: manifestv1.FlagType_FLAG_TYPE_STRING,
		Variants: []*manifestv1.Variant{{Key: "a", Value: structpb.NewStringValue(v)}},
		Config:   &manifestv1.FlagConfig{On: true, OffVariant: "a", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "a"}}},
	}
}

func TestSlowSubscriberIsDroppedWhileAFastOneKeepsReceiving(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), bigFlag(1, 100)))
	cfg := r.cfg
	cfg.StreamBuffer = 2
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)

	// The slow subscriber never reads; small fixed windows (no BDP growth) make the
	// server's sends block after ~128 KiB, and then its queue of 2 fills.
	slowConn, err := grpc.NewClient(e.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slowConn.Close() })
	ctx, cancel := context.WithCancel(withKey(fixture.ServerKey(env)))
	t.Cleanup(cancel)
	slow, err := evaluationv1.NewEvaluationServiceClient(slowConn).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{FromVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Header(); err != nil {
		t.Fatal(err)
	}
	fast := openStream(t, e.grpc, fixture.ServerKey(env), 1)
	if m := fast.next(t); m.GetHeartbeat() == nil {
		t.Fatalf("fast subscriber: got %v, want a heartbeat", m)
	}
	eventually(t, "both streams are open", func() bool {
		return metric(t, e, `flagforge_evaluator_streams_open{kind="manifest"}`) == 2
	})

	const last = 12
	for v := uint64(2); v <= last; v++ {
		r.publish(t, fixture.Manifest(env, v, now(), bigFlag(v, 60<<10)))
		eventually(t, "the version is served", func() bool { return e.app.Holder.Version(env) >= v })
		for {
			m := fast.next(t)
			if d := m.GetDelta(); d != nil {
				if _, to := deltaVersions(t, d); to == v {
					break
				}
			}
			if sn := m.GetSnapshot(); sn != nil && snapshotVersion(t, sn) == v {
				break
			}
		}
	}
	eventually(t, "the slow subscriber is dropped", func() bool {
		return metric(t, e, `flagforge_evaluator_stream_closed_by_server_total{reason="slow_consumer"}`) == 1
	})
	// Reading now drains what was in flight, then the closing status.
	var err2 error
	for {
		if _, err2 = slow.Recv(); err2 != nil {
			break
		}
	}
	if status.Code(err2) != codes.ResourceExhausted && status.Code(err2) != codes.Canceled {
		t.Fatalf("slow subscriber ended with %v, want RESOURCE_EXHAUSTED", err2)
	}
}

func TestRevokedKeyClosesItsStreamWithin5s(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)
	s := openStream(t, e.grpc, fixture.ServerKey(env), 1)
	s.next(t) // heartbeat: current

	m := fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", true, true))
	serverHash := sha256.Sum256([]byte(fixture.ServerKey(env)))
	var kept []*manifestv1.SdkKey
	for _, k := range m.SdkKeys {
		if string(k.GetHash()) != string(serverHash[:]) {
			kept = append(kept, k)
		}
	}
	m.SdkKeys = kept
	published := time.Now()
	r.publish(t, m)
	var closing *evaluationv1.StreamClosing
	for closing == nil {
		closing = s.next(t).GetClosing()
	}
	if closing.GetReason() != "key_revoked" {
		t.Fatalf("closing reason %q, want key_revoked", closing.GetReason())
	}
	if err := s.end(t, 5*time.Second); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream ended with %v, want UNAUTHENTICATED", err)
	}
	if d := time.Since(published); d > 5*time.Second {
		t.Fatalf("closed %s after the publish, want within 5s", d)
	}
}

func TestDrainTellsStreamsDrainingAndEndsThem(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	// A connection of its own: stop closes the evaluator's test connection.
	conn, err := grpc.NewClient(e.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s := openStream(t, evaluationv1.NewEvaluationServiceClient(conn), fixture.ServerKey(env), 1)
	s.next(t)
	go e.stop()
	var closing *evaluationv1.StreamClosing
	for closing == nil {
		closing = s.next(t).GetClosing()
	}
	if closing.GetReason() != "draining" {
		t.Fatalf("closing reason %q, want draining", closing.GetReason())
	}
	if err := s.end(t, 5*time.Second); !errors.Is(err, io.EOF) && status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want a normal end", err)
	}
}

func TestStreamCapRefusesStreamsBeyondThePerKeyLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	cfg := r.cfg
	cfg.MaxStreamsPerKey = 1
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	first := openStream(t, e.grpc, fixture.ServerKey(env), 1)
	first.next(t)
	second := openStream(t, e.grpc, fixture.ServerKey(env), 1)
	if err := second.end(t, 5*time.Second); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second stream: got %v, want RESOURCE_EXHAUSTED", err)
	}
	// SSE counts against the same cap (the client key is another key: it may open one).
	resp, err := http.Get("http://" + e.app.HTTPAddr() + "/v1/sse?key=" + url.QueryEscape(fixture.ClientKey(env)))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE with another key: %d, want 200", resp.StatusCode)
	}
}

func TestStreamOverRESTIsNDJSON(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.app.HTTPAddr()+"/v1/stream?fromVersion=0", nil)
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(line) != `{"result":{"start":{"headVersion":"1"}}}` {
		t.Fatalf("first line %q, want the start naming head version 1", line)
	}
	if line, err = br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, `{"result":{"snapshot":{"payload":`) {
		t.Fatalf("second line %q, want a snapshot result", line)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

func readEvents(t *testing.T, body io.Reader) <-chan sseEvent {
	t.Helper()
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		br := bufio.NewReader(body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, evs <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-evs:
		if !ok {
			t.Fatal("SSE stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no SSE event within 5s")
	}
	return sseEvent{}
}

func TestSSESendsAllClientFlagsThenOnlyTheFlagsWhoseValueChanged(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	flags := func(bOn bool) []*manifestv1.Flag {
		return []*manifestv1.Flag{fixture.BoolFlag("a", true, true), fixture.BoolFlag("b", bOn, true), fixture.BoolFlag("secret", true, false)}
	}
	r.publish(t, fixture.Manifest(env, 1, now(), flags(true)...))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)

	q := url.Values{"key": {fixture.ClientKey(env)}, "context": {`{"targetingKey":"u1","region":"us-east-1"}`}}
	resp, err := http.Get("http://" + e.app.HTTPAddr() + "/v1/sse?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, ct)
	}
	evs := readEvents(t, resp.Body)
	first := nextEvent(t, evs)
	want := `{"a":{"value":true,"variant":"on","reason":"TARGETING_MATCH"},"b":{"value":true,"variant":"on","reason":"TARGETING_MATCH"}}`
	if first.name != "flags" || first.data != want {
		t.Fatalf("first event %s %s\nwant flags %s", first.name, first.data, want)
	}
	// Version 2 changes nothing visible: no event. Version 3 turns b off.
	m2 := fixture.Manifest(env, 2, now(), flags(true)...)
	m2.Flags[2].Revision = 2 // "secret" changes, but is not client-visible
	r.publish(t, m2)
	r.publish(t, fixture.Manifest(env, 3, now(), flags(false)...))
	ev := nextEvent(t, evs)
	if want := `{"b":{"value":false,"variant":"off","reason":"DISABLED"}}`; ev.name != "changes" || ev.data != want {
		t.Fatalf("changes event %s %s\nwant changes %s", ev.name, ev.data, want)
	}
	// A server key is refused on SSE.
	resp2, err := http.Get("http://" + e.app.HTTPAddr() + "/v1/sse?key=" + url.QueryEscape(fixture.ServerKey(env)))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp2.Body.Close()
	if resp2.StatusCode != http.StatusForbidden {
		t.Fatalf("server key on SSE: %d, want 403", resp2.StatusCode)
	}
}

func TestCORSPreflightAllowsOnlyConfiguredOrigins(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	cfg := r.cfg
	cfg.CORSOrigins = "https://app.example.com"
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	for _, path := range []string{"/v1/evaluate", "/v1/evaluate/all", "/v1/sse"} {
		for _, tc := range []struct {
			origin string
			want   int
		}{{"https://app.example.com", http.StatusNoContent}, {"https://evil.example.com", http.StatusForbidden}} {
			req, _ := http.NewRequest(http.MethodOptions, "http://"+e.app.HTTPAddr()+path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s preflight from %s: %d, want %d", path, tc.origin, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusNoContent && (resp.Header.Get("Access-Control-Allow-Origin") != tc.origin ||
				!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")) {
				t.Fatalf("%s preflight headers: %v", path, resp.Header)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.app.HTTPAddr()+"/v1/evaluate", strings.NewReader(`{"flagKey":"new-ui"}`))
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Authorization", "Bearer "+fixture.ClientKey(env))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("actual request: %d %v", resp.StatusCode, resp.Header)
	}
}

// getManifest calls GET /v1/manifest.
// polled is the answer of one GET /v1/manifest.
type polled struct {
	StatusCode int
	Header     http.Header
}

func getManifest(t *testing.T, e *evaluator, query, inm, accept string) (polled, []byte, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.app.HTTPAddr()+"/v1/manifest"+query, nil)
	req.Header.Set("Authorization", "Bearer "+fixture.ServerKey(env))
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return polled{resp.StatusCode, resp.Header}, b, time.Since(t0)
}

func TestManifestPollingWithETagsAndLongPoll(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	e := start(t, r.cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })
	subscribed(t, r)

	resp, body, _ := getManifest(t, e, "", "", "")
	etag := resp.Header.Get("ETag")
	var sm manifestv1.SignedManifest
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &sm) != nil || snapshotVersion(t, &sm) != 1 {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.HasPrefix(etag, `"`+env+`-1-`) {
		t.Fatalf("ETag %s, want \"%s-1-<issuedAt>\"", etag, env)
	}
	resp, body, _ = getManifest(t, e, "", "", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || protojson.Unmarshal(body, &sm) != nil {
		t.Fatalf("GET as JSON: %d %s", resp.StatusCode, body)
	}
	if resp, _, _ = getManifest(t, e, "", etag, ""); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	// Long-poll that times out: 304 after the wait.
	resp, _, took := getManifest(t, e, "?wait=300ms", etag, "")
	if resp.StatusCode != http.StatusNotModified || took < 300*time.Millisecond {
		t.Fatalf("long-poll timeout: %d after %s, want 304 after >= 300ms", resp.StatusCode, took)
	}
	// Long-poll answered early by a new version.
	go func() {
		time.Sleep(300 * time.Millisecond)
		r.publish(t, fixture.Manifest(env, 2, now(), fixture.BoolFlag("new-ui", false, true)))
	}()
	resp, body, took = getManifest(t, e, "?wait=30s", etag, "")
	if resp.StatusCode != 200 || took > 10*time.Second || proto.Unmarshal(body, &sm) != nil || snapshotVersion(t, &sm) != 2 {
		t.Fatalf("long-poll with a new version: %d after %s", resp.StatusCode, took)
	}
	if resp.Header.Get("ETag") == etag {
		t.Fatal("the ETag did not change with the version")
	}
	// Client keys may not poll the manifest.
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.app.HTTPAddr()+"/v1/manifest", nil)
	req.Header.Set("Authorization", "Bearer "+fixture.ClientKey(env))
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = cresp.Body.Close()
	if cresp.StatusCode != http.StatusForbidden {
		t.Fatalf("client key: %d, want 403", cresp.StatusCode)
	}
}

func TestRateLimitIs429WithRetryAfterAndResourceExhaustedOverGRPC(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	cfg := r.cfg
	cfg.RateLimit, cfg.RateBurst = 0.5, 1
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })

	if code, _ := post(t, e, "/v1/evaluate", fixture.ClientKey(env), `{"flagKey":"new-ui"}`); code != 200 {
		t.Fatalf("first call: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.app.HTTPAddr()+"/v1/evaluate", strings.NewReader(`{"flagKey":"new-ui"}`))
	req.Header.Set("Authorization", "Bearer "+fixture.ClientKey(env))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || ra < 1 {
		t.Fatalf("second call: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	ctx := withKey(fixture.ServerKey(env))
	if _, err := e.grpc.Evaluate(ctx, &evaluationv1.EvaluateRequest{FlagKey: "new-ui"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.grpc.Evaluate(ctx, &evaluationv1.EvaluateRequest{FlagKey: "new-ui"})
	st := status.Convert(err)
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if st.Code() != codes.ResourceExhausted || retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Fatalf("gRPC: got %v (retry %v), want RESOURCE_EXHAUSTED with RetryInfo", err, retry)
	}
}

// fakeControlPlane is a minimal SyncService that records usage batches, refusing
// the first call (to exercise retries) and counting each batch id once.
type fakeControlPlane struct {
	syncv1.UnimplementedSyncServiceServer
	mu      sync.Mutex
	calls   int
	seen    map[string]int // batch id -> deliveries
	counts  map[string]int64
	failFor int
}

func (f *fakeControlPlane) ReportUsage(_ context.Context, req *syncv1.ReportUsageRequest) (*syncv1.ReportUsageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.failFor {
		f.seen[req.GetBatchId()]++ // delivered, but the answer is lost
		return nil, status.Error(codes.Unavailable, "try later")
	}
	f.seen[req.GetBatchId()]++
	if f.seen[req.GetBatchId()] > 1 && f.calls > f.failFor+1 {
		return &syncv1.ReportUsageResponse{}, nil
	}
	e := req.GetEnvironment()
	for _, c := range req.GetCounts() {
		f.counts[e.GetOrg()+"/"+e.GetProject()+"/"+e.GetEnvironment()+" "+c.GetFlagKey()+" "+c.GetVariant()] += c.GetCount()
	}
	return &syncv1.ReportUsageResponse{Accepted: int64(len(req.GetCounts()))}, nil
}

func (f *fakeControlPlane) count(k string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[k]
}

func startControlPlane(t *testing.T, failFor int) (*fakeControlPlane, string) {
	t.Helper()
	f := &fakeControlPlane{seen: map[string]int{}, counts: map[string]int64{}, failFor: failFor}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	syncv1.RegisterSyncServiceServer(gs, f)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return f, lis.Addr().String()
}

func TestUsageCountsAreReportedToTheControlPlaneWithBatchIDsRetriedUnchanged(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t, 1)
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true)))
	cfg := r.cfg
	cfg.UsageAddr, cfg.UsageInterval = addr, 100*time.Millisecond
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })

	ctx := withKey(fixture.ServerKey(env))
	for range 7 {
		if _, err := e.grpc.Evaluate(ctx, &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.grpc.Evaluate(ctx, &evaluationv1.EvaluateRequest{FlagKey: "missing"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "7 evaluations of new-ui/on are reported", func() bool { return cp.count(env+" new-ui on") == 7 })
	time.Sleep(300 * time.Millisecond) // more flushes: nothing is counted twice
	if got := cp.count(env + " new-ui on"); got != 7 {
		t.Fatalf("reported %d, want 7", got)
	}
	if got := cp.count(env + " missing "); got != 0 {
		t.Fatalf("a flag that does not exist was counted %d times", got)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	retried := 0
	for id, n := range cp.seen {
		if id == "" {
			t.Fatal("a batch without an id")
		}
		if n > 1 {
			retried++
		}
	}
	if retried != 1 {
		t.Fatalf("%d batch ids delivered more than once, want exactly the refused one (%v)", retried, cp.seen)
	}
}

func TestReportEvaluationsMergesSDKCountsIntoTheUsageReport(t *testing.T) {
	t.Parallel()
	cp, addr := startControlPlane(t, 0)
	r := newRig(t)
	r.publish(t, fixture.Manifest(env, 1, now(), fixture.BoolFlag("new-ui", true, true), fixture.BoolFlag("secret", true, false)))
	cfg := r.cfg
	cfg.UsageAddr, cfg.UsageInterval = addr, 100*time.Millisecond
	e := start(t, cfg)
	eventually(t, "version 1 is served", func() bool { return e.app.Holder.Version(env) == 1 })

	minute := timestamppb.New(now().Truncate(time.Minute))
	res, err := e.grpc.ReportEvaluations(withKey(fixture.ServerKey(env)), &evaluationv1.ReportEvaluationsRequest{Counts: []*evaluationv1.EvaluationCount{
		{FlagKey: "new-ui", Variant: "on", Minute: minute, Count: 40},
		{FlagKey: "new-ui", Variant: "off", Minute: minute, Count: 2},
	}})
	if err != nil || res.GetAccepted() != 2 {
		t.Fatalf("ReportEvaluations: %v %v", res, err)
	}
	if _, err := e.grpc.Evaluate(withKey(fixture.ServerKey(env)), &evaluationv1.EvaluateRequest{FlagKey: "new-ui", Context: evalCtx()}); err != nil {
		t.Fatal(err)
	}
	// A client key may not report flags it cannot see.
	res, err = e.grpc.ReportEvaluations(withKey(fixture.ClientKey(env)), &evaluationv1.ReportEvaluationsRequest{Counts: []*evaluationv1.EvaluationCount{
		{FlagKey: "secret", Variant: "on", Minute: minute, Count: 5},
	}})
	if err != nil || res.GetAccepted() != 0 {
		t.Fatalf("client key, hidden flag: %v %v", res, err)
	}
	eventually(t, "SDK and evaluator counts are merged", func() bool {
		return cp.count(env+" new-ui on") == 41 && cp.count(env+" new-ui off") == 2
	})
	if cp.count(env+" secret on") != 0 {
		t.Fatal("a hidden flag's count from a client key was accepted")
	}
	_, err = e.grpc.ReportEvaluations(withKey(fixture.ServerKey(env)), &evaluationv1.ReportEvaluationsRequest{Counts: []*evaluationv1.EvaluationCount{
		{FlagKey: "new-ui", Variant: "on", Minute: minute, Count: -1},
	}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative count: %v, want INVALID_ARGUMENT", err)
	}
}
