package sdk_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEvaluator is an in-process EvaluationService: each StreamManifest call is
// handed to the test, which sends what it wants and ends it.
type fakeEvaluator struct {
	evaluationv1.UnimplementedEvaluationServiceServer
	streams chan *fakeStream
	mu      sync.Mutex
	counts  map[string]int64
	keys    []string
	// contexts are the sampled contexts received, as sent on the wire.
	contexts [][]byte
}

type fakeStream struct {
	from uint64
	send func(*evaluationv1.StreamManifestResponse) error
	end  chan error // the handler returns what is sent here
}

func (f *fakeEvaluator) StreamManifest(req *evaluationv1.StreamManifestRequest, st grpc.ServerStreamingServer[evaluationv1.StreamManifestResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	f.mu.Lock()
	f.keys = append(f.keys, md.Get("authorization")...)
	f.mu.Unlock()
	s := &fakeStream{from: req.GetFromVersion(), send: st.Send, end: make(chan error, 1)}
	select {
	case f.streams <- s:
	case <-st.Context().Done():
		return st.Context().Err()
	}
	select {
	case err := <-s.end:
		return err
	case <-st.Context().Done():
		return st.Context().Err()
	}
}

func (f *fakeEvaluator) ReportEvaluations(_ context.Context, req *evaluationv1.ReportEvaluationsRequest) (*evaluationv1.ReportEvaluationsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range req.GetCounts() {
		f.counts[c.GetFlagKey()+"/"+c.GetVariant()] += c.GetCount()
	}
	for _, c := range req.GetContexts() {
		b, err := proto.Marshal(c)
		if err != nil {
			return nil, err
		}
		f.contexts = append(f.contexts, b)
	}
	return &evaluationv1.ReportEvaluationsResponse{Accepted: int64(len(req.GetCounts()))}, nil
}

func startFake(t *testing.T) (*fakeEvaluator, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	f := &fakeEvaluator{streams: make(chan *fakeStream, 16), counts: map[string]int64{}}
	srv := grpc.NewServer()
	evaluationv1.RegisterEvaluationServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

func (f *fakeEvaluator) next(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case s := <-f.streams:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not open a stream")
		return nil
	}
}

func snapshotMsg(sm *manifestv1.SignedManifest) *evaluationv1.StreamManifestResponse {
	return &evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Snapshot{Snapshot: sm}}
}

func deltaMsg(t *testing.T, from, to *manifestv1.Manifest) *evaluationv1.StreamManifestResponse {
	d, err := manifest.Diff(from, to)
	must(t, err)
	sd, err := testSigner(t).Delta(d)
	must(t, err)
	return &evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Delta{Delta: sd}}
}

func heartbeatMsg(v uint64) *evaluationv1.StreamManifestResponse {
	return &evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Heartbeat{
		Heartbeat: &evaluationv1.Heartbeat{Version: v, Time: timestamppb.Now()}}}
}

// chained is exampleManifest at version, following prev, with new-ui on or off.
func chained(t *testing.T, prev *manifestv1.Manifest, version uint64, on bool) *manifestv1.Manifest {
	m := exampleManifest(t, version)
	for _, f := range m.Flags {
		if f.Key == "new-ui" {
			f.Config.On = on
		}
	}
	if prev != nil {
		p, err := manifest.Encode(prev)
		must(t, err)
		m.PreviousDigest = manifest.Digest(p)
	}
	return m
}

func fastConfig(addr string) sdk.Config {
	return sdk.Config{Address: addr, SDKKey: "srv-key", Backoff: sdk.Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond},
		DisableUsage: true}
}

func TestStreamAppliesSnapshotsAndDeltasAndResubscribesFromItsVersionAfterAGap(t *testing.T) {
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys = trustedKeys(t)
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	east := mustContext(t, map[string]any{"region": "us-east-1"})

	s := f.next(t)
	if s.from != 0 {
		t.Errorf("first stream from %d, want 0", s.from)
	}
	v1 := chained(t, nil, 1, true)
	must(t, s.send(snapshotMsg(sign(t, v1))))
	must(t, c.WaitReady(context.Background()))
	v2 := chained(t, v1, 2, false)
	must(t, s.send(deltaMsg(t, v1, v2)))
	waitFor(t, "version 2", func() bool { return c.Status().ManifestVersion == 2 })
	if d := c.BoolDetail("new-ui", east, true); d.Value || d.Reason != sdk.ReasonDisabled {
		t.Errorf("after the delta: %+v", d)
	}
	if st := c.Status(); st.Mode != sdk.ModeStreaming || st.State != sdk.StateReady {
		t.Errorf("status %+v", st)
	}

	// A delta 3->4 while holding 2: the client resubscribes from 2.
	v3 := chained(t, v2, 3, true)
	v4 := chained(t, v3, 4, false)
	must(t, s.send(deltaMsg(t, v3, v4)))
	s2 := f.next(t)
	if s2.from != 2 {
		t.Errorf("resubscribed from %d, want 2", s2.from)
	}
	must(t, s2.send(snapshotMsg(sign(t, v4))))
	waitFor(t, "version 4", func() bool { return c.Status().ManifestVersion == 4 })

	// A heartbeat announcing a version the client lacks: resubscribe too.
	must(t, s2.send(heartbeatMsg(5)))
	s3 := f.next(t)
	if s3.from != 4 {
		t.Errorf("resubscribed from %d, want 4", s3.from)
	}
	// A tampered delta is refused; the manifest held keeps serving.
	bad := deltaMsg(t, v4, chained(t, v4, 5, true))
	bad.GetDelta().Signature[0] ^= 0xff
	must(t, s3.send(bad))
	waitFor(t, "the refusal", func() bool { return errors.Is(c.Status().LastError, manifest.ErrBadSignature) })
	if c.Status().ManifestVersion != 4 {
		t.Errorf("version %d, want 4 kept", c.Status().ManifestVersion)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if k != "Bearer srv-key" {
			t.Errorf("authorization %q", k)
		}
	}
}

func TestARefusedKeyStopsTheClientForGood(t *testing.T) {
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys = trustedKeys(t)
	var mu sync.Mutex
	var events []sdk.Event
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	c.OnEvent(func(e sdk.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	s := f.next(t)
	s.end <- status.Error(codes.Unauthenticated, "unknown SDK key")
	err = c.WaitReady(context.Background())
	if !errors.Is(err, sdk.ErrKeyRefused) {
		t.Fatalf("WaitReady = %v, want ErrKeyRefused", err)
	}
	if st := c.Status(); st.State != sdk.StateError || !errors.Is(st.LastError, sdk.ErrKeyRefused) {
		t.Errorf("status %+v, want ERROR", st)
	}
	select {
	case s := <-f.streams:
		t.Fatalf("the client opened another stream (from %d) after a refused key", s.from)
	case <-time.After(300 * time.Millisecond): // 7+ backoff periods
	}
	waitFor(t, "the ERROR event", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if events[0].Type != sdk.EventError || !errors.Is(events[0].Err, sdk.ErrKeyRefused) {
		t.Errorf("event %+v", events[0])
	}
}

func TestEvaluationCountsAreReportedInTheBackground(t *testing.T) {
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys, cfg.DisableUsage, cfg.UsageInterval = trustedKeys(t), false, 50*time.Millisecond
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	s := f.next(t)
	must(t, s.send(snapshotMsg(sign(t, chained(t, nil, 1, true)))))
	must(t, c.WaitReady(context.Background()))
	east := mustContext(t, map[string]any{"region": "us-east-1"})
	for range 5 {
		c.Bool("new-ui", east, false)
	}
	c.Bool("new-ui", nil, false)
	c.Bool("missing", nil, false) // not counted: the flag does not exist
	waitFor(t, "the report", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.counts["new-ui/on"] == 5 && f.counts["new-ui/off"] == 1
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.counts) != 2 {
		t.Errorf("counts %v", f.counts)
	}
}

func TestSampledContextsAreReportedWithoutPrivateAttributes(t *testing.T) {
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys, cfg.DisableUsage, cfg.UsageInterval = trustedKeys(t), false, 50*time.Millisecond
	cfg.SeenContextsPerMinute = 3
	start := time.Now() // one minute for the whole test: the bound is per minute
	cfg.Now = func() time.Time { return start }
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	s := f.next(t)
	m := chained(t, nil, 1, true)
	m.PrivateAttributes = []string{"email", "card.number"}
	must(t, s.send(snapshotMsg(sign(t, m))))
	must(t, c.WaitReady(context.Background()))
	for i := range 10 {
		ctx := mustContext(t, map[string]any{"targetingKey": "user-" + string(rune('a'+i)), "email": "secret@example.com",
			"card": map[string]any{"number": "4111111111111111", "brand": "visa"}})
		c.Bool("new-ui", ctx, false)
	}
	waitFor(t, "the sampled contexts", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.contexts) > 0 })
	time.Sleep(150 * time.Millisecond) // a later report would bring more: there must be none
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.contexts) != 3 {
		t.Errorf("%d contexts reported, want the bound of 3 a minute", len(f.contexts))
	}
	for _, b := range f.contexts {
		for _, secret := range []string{"secret@example.com", "4111111111111111"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("a reported context carries the private value %q", secret)
			}
		}
		if !strings.Contains(string(b), "visa") {
			t.Errorf("a reported context lost its public attributes: %q", b)
		}
	}
}
