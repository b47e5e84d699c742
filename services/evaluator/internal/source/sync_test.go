package source_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/fixture"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/source"
)

const env = "acme/web/production"

// syncServer is a minimal SyncService: on each stream it records the request, sends
// the latest snapshot when the caller's cursor is behind, then relays live events.
type syncServer struct {
	syncv1.UnimplementedSyncServiceServer
	mu       sync.Mutex
	latest   *manifestv1.SignedManifest
	version  uint64
	requests []*syncv1.SyncManifestsRequest
	tokens   []string
	live     chan *syncv1.SyncManifestsResponse
}

func (s *syncServer) SyncManifests(req *syncv1.SyncManifestsRequest, st grpc.ServerStreamingServer[syncv1.SyncManifestsResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.tokens = append(s.tokens, md.Get("authorization")...)
	latest, version := s.latest, s.version
	s.mu.Unlock()
	if latest != nil && (len(req.GetCursors()) == 0 || req.GetCursors()[0].GetVersion() < version) {
		if err := st.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Snapshot{Snapshot: latest}}); err != nil {
			return err
		}
	}
	for {
		select {
		case <-st.Context().Done():
			return nil
		case m := <-s.live:
			if err := st.Send(m); err != nil {
				return err
			}
		}
	}
}

func (s *syncServer) set(sm *manifestv1.SignedManifest, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest, s.version = sm, version
}

func (s *syncServer) firstRequest() *syncv1.SyncManifestsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[0]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSyncStreamAppliesSnapshotsDeltasAndResubscribesAfterAGap(t *testing.T) {
	t.Parallel()
	signer := fixture.NewSigner()
	pub := &fixture.Publisher{Signer: signer}
	sign := func(version uint64, on bool) fixture.Published {
		p, err := pub.Sign(fixture.Manifest(env, version, time.Now(), fixture.BoolFlag("new-ui", on, false)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1, v2, v3, v4 := sign(1, true), sign(2, false), sign(3, true), sign(4, false)

	srv := &syncServer{live: make(chan *syncv1.SyncManifestsResponse)}
	srv.set(v1.Manifest, 1)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	syncv1.RegisterSyncServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	verifier, err := manifest.NewVerifier(nil, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	h, err := holder.New(holder.Config{Verifier: verifier, Environments: []string{env}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.NewSync(source.SyncConfig{Addr: lis.Addr().String(), Token: "svc-token", Environments: []string{env}}, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	eventually(t, "the snapshot is loaded", func() bool { return h.Version(env) == 1 })
	srv.live <- &syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Heartbeat{Heartbeat: &syncv1.SyncHeartbeat{Time: timestamppb.Now()}}}
	srv.live <- &syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Delta{Delta: v2.Delta}}
	eventually(t, "the delta 1->2 is applied", func() bool { return h.Version(env) == 2 })

	// 3 is lost; the delta 3->4 does not apply, so the client resubscribes with its
	// cursor (version 2) and the server answers with the snapshot of 4.
	_ = v3
	srv.set(v4.Manifest, 4)
	srv.live <- &syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Delta{Delta: v4.Delta}}
	eventually(t, "the snapshot of 4 arrives after resubscribing", func() bool { return h.Version(env) == 4 })

	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.requests) < 2 || srv.requests[1].GetCursors()[0].GetVersion() != 2 {
		t.Fatalf("second request %v, want a cursor at version 2", srv.requests)
	}
	if srv.tokens[0] != "Bearer svc-token" {
		t.Fatalf("authorization %q, want the service token", srv.tokens[0])
	}
}

func TestSyncStreamReconnectsWhenTheServerGoesAway(t *testing.T) {
	t.Parallel()
	signer := fixture.NewSigner()
	p, err := (&fixture.Publisher{Signer: signer}).Sign(fixture.Manifest(env, 1, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens yet

	verifier, _ := manifest.NewVerifier(nil, signer.PublicKey())
	h, _ := holder.New(holder.Config{Verifier: verifier})
	src, err := source.NewSync(source.SyncConfig{Addr: addr}, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() { cancel(); <-done }() //nolint:errcheck // Run returns nil on cancellation

	time.Sleep(300 * time.Millisecond) // a few failed attempts
	srv := &syncServer{live: make(chan *syncv1.SyncManifestsResponse)}
	srv.set(p.Manifest, 1)
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	gs := grpc.NewServer()
	syncv1.RegisterSyncServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	eventually(t, "the source connects once the server is up", func() bool { return h.Version(env) == 1 })
	if !srv.firstRequest().GetAllEnvironments() {
		t.Fatal("serving every environment, the request should ask for all of them")
	}
}

// A snapshot is one gRPC message: an environment of 20,000 flags (~6 MiB) is
// beyond gRPC's default 4 MiB receive limit, which refused it before the source
// raised it to manifest.MaxMessageBytes.
func TestSyncStreamTakesASnapshotLargerThanGRPCsDefaultLimit(t *testing.T) {
	t.Parallel()
	signer := fixture.NewSigner()
	flags := make([]*manifestv1.Flag, 20000)
	for i := range flags {
		f := fixture.BoolFlag(fmt.Sprintf("flag-%05d", i), i%2 == 0, false)
		f.Variants[0].Description = strings.Repeat("d", 300)
		flags[i] = f
	}
	p, err := (&fixture.Publisher{Signer: signer}).Sign(fixture.Manifest(env, 1, time.Now(), flags...))
	if err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(p.Manifest); size <= 4<<20 {
		t.Fatalf("snapshot of %d bytes, want more than 4 MiB for this test to mean anything", size)
	}
	srv := &syncServer{live: make(chan *syncv1.SyncManifestsResponse)}
	srv.set(p.Manifest, 1)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	syncv1.RegisterSyncServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	verifier, _ := manifest.NewVerifier(nil, signer.PublicKey())
	h, _ := holder.New(holder.Config{Verifier: verifier, Environments: []string{env}})
	src, err := source.NewSync(source.SyncConfig{Addr: lis.Addr().String(), Environments: []string{env}}, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() { cancel(); <-done }() //nolint:errcheck // Run returns nil on cancellation
	deadline := time.Now().Add(60 * time.Second)
	for h.Version(env) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the large snapshot never loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
